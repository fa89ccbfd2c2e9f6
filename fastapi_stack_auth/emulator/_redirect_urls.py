"""Stack's trusted-domain check of callback URLs (``validateRedirectUrl``): a loopback URL when
the project allows localhost, or a URL under one of the project's trusted domains."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import SplitResult, urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}


def _is_localhost(host: str) -> bool:
    """Stack's ``isLocalhost``: ``localhost``, ``*.localhost`` and loopback addresses."""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _split(url: str) -> SplitResult | None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError on a bad port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return parts


def _port(parts: SplitResult) -> int | None:
    return parts.port if parts.port is not None else _DEFAULT_PORTS.get(parts.scheme)


def _host_pattern(pattern: str) -> re.Pattern[str]:
    """``*`` is one DNS label, ``**`` any number of characters (as Stack's wildcard domains)."""
    regex = "".join(
        ".*" if part == "**" else "[^.]*" if part == "*" else re.escape(part)
        for part in re.split(r"(\*\*|\*)", pattern.lower())
    )
    return re.compile(regex)


def _matches(url: SplitResult, base: str, handler_path: str) -> bool:
    if "*" in base:
        found = re.fullmatch(r"([a-z]+)://([^/]*)(.*)", base)
        if found is None or found.group(1) != url.scheme:
            return False
        host, path = found.group(2), found.group(3)
        if ":" in host:
            name, _, port = host.rpartition(":")
            ok = _host_pattern(name).fullmatch(url.hostname or "") is not None
            ok = ok and port == str(_port(url))
        else:
            ok = _host_pattern(host).fullmatch(url.hostname or "") is not None
            ok = ok and _port(url) == _DEFAULT_PORTS[url.scheme]
        prefix = handler_path if path in ("", "/") else path + handler_path
        return ok and url.path.startswith(prefix or "/")
    parsed = _split(base)
    if parsed is None:
        return False
    return (
        parsed.scheme == url.scheme
        and parsed.hostname == url.hostname
        and _port(parsed) == _port(url)
        and url.path.startswith(handler_path or "/")
    )


def redirect_url_allowed(
    url: str, domains: Iterable[Mapping[str, Any]], *, allow_localhost: bool
) -> bool:
    """True if ``url`` is an http(s) URL on loopback (when allowed) or under a trusted domain
    (``{"domain": "https://app.example.com", "handler_path": "/handler"}``)."""
    parts = _split(url)
    if parts is None:
        return False
    if allow_localhost and _is_localhost(parts.hostname or ""):
        return True
    for domain in domains:
        base, handler = domain.get("domain"), domain.get("handler_path") or "/"
        if isinstance(base, str) and isinstance(handler, str) and _matches(parts, base, handler):
            return True
    return False
