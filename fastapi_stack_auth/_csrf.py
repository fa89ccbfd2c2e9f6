"""Cross-site request forgery defence for requests authenticated by Stack's cookies.

A browser attaches cookies to requests that another site starts (a form posted to this app, a
``fetch`` without CORS): a cookie proves who the user is, not that they meant the request. So a
request that authenticates by cookie and may change something (any method but GET, HEAD and
OPTIONS, and every WebSocket handshake, which browsers let any page open) must show that it
comes from this app's own pages or a trusted frontend:

- ``Origin`` is sent: it must equal one of ``STACK_TRUSTED_ORIGINS`` or this request's own
  origin (its scheme and ``Host`` header), compared as browsers serialise origins: lower case,
  no default port. ``Origin: null`` (sandboxed frames, some redirects) is never trusted.
- ``Origin`` is absent: ``Sec-Fetch-Site: same-origin`` is accepted (browsers that send neither
  on such a request are long gone).

Anything else is answered 403 ``CROSS_SITE_REQUEST_REFUSED`` before the token is looked at.
Header credentials never need this: a page of another site cannot add an ``Authorization`` or
``x-stack-*`` header to a cross-origin request unless this app's CORS policy allows it.
"""

from __future__ import annotations

from collections.abc import Collection, MutableMapping
from typing import Any

from ._answers import cross_site_request_refused

#: Methods that must not change anything, so a forged one does no harm.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_DEFAULT_PORTS = {"http": ":80", "https": ":443"}
_SECURE_SCHEMES = frozenset({"https", "wss"})


def check_same_origin(scope: MutableMapping[str, Any], trusted_origins: Collection[str]) -> None:
    """Raise ``AuthError`` 403 unless the request of ``scope`` (HTTP or WebSocket), which
    authenticates by cookie, is safe or comes from its own origin or a trusted one."""
    if scope["type"] == "http" and scope["method"] in SAFE_METHODS:
        return
    origin = fetch_site = host = None
    origins = 0
    for name, value in scope["headers"]:
        if name == b"origin":
            origins += 1
            origin = value
        elif name == b"sec-fetch-site":
            fetch_site = value
        elif name == b"host" and host is None:
            host = value
    if origins > 1:
        raise cross_site_request_refused()
    if origin is not None:
        sent = _normalised(origin.decode("latin-1"))
        if sent is not None and (sent in trusted_origins or sent == _own_origin(scope, host)):
            return
        raise cross_site_request_refused()
    if fetch_site is not None and fetch_site.strip().lower() == b"same-origin":
        return
    raise cross_site_request_refused()


def is_secure(scope: MutableMapping[str, Any]) -> bool:
    """The request came over HTTPS (or WSS), as the server saw it."""
    return scope.get("scheme") in _SECURE_SCHEMES


def _own_origin(scope: MutableMapping[str, Any], host: bytes | None) -> str | None:
    if host is None:
        return None
    scheme = "https" if is_secure(scope) else "http"
    return _normalised(f"{scheme}://{host.decode('latin-1')}")


def _normalised(origin: str) -> str | None:
    """``scheme://host[:port]`` in lower case without the scheme's default port; ``None`` for
    anything else (``null``, a path, credentials, another scheme)."""
    origin = origin.strip().lower()
    scheme, sep, authority = origin.partition("://")
    if (
        not sep
        or scheme not in _DEFAULT_PORTS
        or not authority
        or not authority.isascii()
        or any(c in authority for c in "/?#@ \\")
    ):
        return None
    return f"{scheme}://{authority.removesuffix(_DEFAULT_PORTS[scheme])}"
