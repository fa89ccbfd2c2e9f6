"""Reading (and writing back) the cookies a Stack frontend on the same site sets (contract §8.2).

The SDK keeps two kinds of cookie, in two families of names (``hexclave-*`` written by newer
SDKs, ``stack-*`` by older ones, both still read):

- refresh cookies, per project: ``[__Host-]{family}-refresh-{pid}--default`` and
  ``{family}-refresh-{pid}--custom-{B32}``, each the JSON ``{"refresh_token": ...,
  "updated_at_millis": ...}``; legacy SDKs wrote the raw token as ``stack-refresh-{pid}`` or
  ``stack-refresh``;
- the access cookie, one per host: ``hexclave-access`` / ``stack-access``, the JSON
  ``["<refresh token>", "<access token>"]``.

Values are percent-encoded JSON (js-cookie in the browser, ``encodeURIComponent`` on a Next.js
server); Starlette does not decode them. The refresh token is chosen as the newer SDK chooses
it: the newest ``hexclave-refresh-{pid}--*`` cookie, else a legacy raw cookie, else the newest
``stack-refresh-{pid}--*`` cookie ("newest": the largest ``updated_at_millis``, one without it
counting as oldest, the first seen winning a tie). The access token is taken only from an
access cookie (``hexclave-access`` first) whose refresh token is that one: an access cookie left
over from another session or project is ignored.

Anything malformed (a value that is not percent-encoded UTF-8 JSON of the right shape, over its
size bound, a token with spaces or control characters) is skipped silently: a cookie is ambient,
the user did not choose to send it, so it can only mean "no credential", never an error.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

from ._tokens import COMPACT_JWS, MAX_TOKEN_BYTES, usable_refresh_token

#: The families of cookie names, newest first.
FAMILIES = ("hexclave", "stack")
#: The access cookies, in the order they are read.
ACCESS_COOKIES = ("hexclave-access", "stack-access")
#: Longest ``Cookie`` header read at all (all ``Cookie`` headers together); past it, none is.
MAX_COOKIE_HEADER_BYTES = 65536
#: Longest value of a refresh cookie, and of an access cookie, before percent-decoding.
MAX_REFRESH_COOKIE_BYTES = 4096
MAX_ACCESS_COOKIE_BYTES = 3 * (MAX_TOKEN_BYTES + 1100)
#: Most refresh cookies of one project compared (a page sets one or two).
MAX_REFRESH_CANDIDATES = 32
#: Seconds the access cookie written back lives: the SDK's own choice (1 day).
ACCESS_COOKIE_MAX_AGE = 86400

# Characters js-cookie leaves unencoded in a value (encodeURIComponent's, then the ones it
# decodes back); Python's quote() always keeps letters, digits and "_.-~".
_JS_COOKIE_SAFE = "!'()*#$&+/:<=>?@[]^`{|}"
_OURS = tuple(f"{p}{f}-" for p in ("", "__Host-") for f in FAMILIES)
_HTTPS_HINTS = ("hexclave-is-https", "stack-is-https")
#: ``["<refresh>","<jwt>"]`` as js-cookie or ``encodeURIComponent`` writes it, or unencoded.
#: ``{"refresh_token":"<token>","updated_at_millis":<ms>}`` as the SDK writes it, encoded
#: either way. (No re.IGNORECASE in these two: it makes every character class much slower.)
_USUAL_REFRESH_COOKIE = re.compile(
    r'(?:\{|%7[Bb])(?:"|%22)refresh_token(?:"|%22)(?::|%3[Aa])(?:"|%22)(?P<token>[A-Za-z0-9_.~-]+)'
    r'(?:"|%22)(?:,|%2[Cc])(?:"|%22)updated_at_millis(?:"|%22)(?::|%3[Aa])(?P<at>[0-9]{1,16})'
    r"(?:\}|%7[Dd])"
)
_USUAL_ACCESS_COOKIE = re.compile(
    r'(?:\[|%5[Bb])(?:"|%22)(?P<refresh>[A-Za-z0-9_.~-]+)(?:"|%22)(?:,|%2[Cc])'
    r'(?:"|%22)(?P<access>[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)(?:"|%22)(?:\]|%5[Dd])'
)


@dataclass(frozen=True)
class CookieCredential:
    """The tokens Stack's cookies carry for one project, and where the access token was read."""

    access_token: str
    refresh_token: str
    #: The access cookie's name (``hexclave-access`` or ``stack-access``): the one to update.
    access_cookie: str
    #: The SDK's ``*-is-https`` helper cookie says the page is served over HTTPS.
    https_hint: bool = False

    def __repr__(self) -> str:  # never the tokens
        return f"CookieCredential(access_cookie={self.access_cookie!r})"


def cookie_credential(
    raw_headers: Iterable[tuple[bytes, bytes]], project_id: str
) -> CookieCredential | None:
    """The access and refresh token of project ``project_id`` in the request's Stack cookies,
    or ``None`` when they hold no usable pair (nothing here raises on what a client sends)."""
    cookies = stack_cookies(raw_headers)
    if not cookies:
        return None
    refresh = choose_refresh_token(cookies, project_id)
    if refresh is None:
        return None
    for name in ACCESS_COOKIES:
        access = _access_token(cookies.get(name), refresh)
        if access is not None:
            https = any(cookies.get(hint) == "true" for hint in _HTTPS_HINTS)
            return CookieCredential(access, refresh, name, https)
    return None


def stack_cookies(raw_headers: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """The request's cookies whose names are Stack's (raw values, the first of each name, as
    the SDK reads them); empty when the ``Cookie`` headers are over their bound."""
    parts = [value for name, value in raw_headers if name == b"cookie"]
    if not parts or sum(len(part) for part in parts) > MAX_COOKIE_HEADER_BYTES:
        return {}
    found: dict[str, str] = {}
    for part in parts:
        for pair in part.decode("latin-1").split(";"):
            name, sep, value = pair.partition("=")
            name = name.strip()
            if sep and name.startswith(_OURS) and name not in found:
                found[name] = value.strip()
    return found


def choose_refresh_token(cookies: dict[str, str], project_id: str) -> str | None:
    """The refresh token the SDK would use, from ``stack_cookies``' result (``None``: none)."""
    newest = _newest_structured(cookies, "hexclave", project_id)
    if newest is not None:
        return newest
    for legacy in (f"stack-refresh-{project_id}", "stack-refresh"):
        value = cookies.get(legacy)
        token = usable_refresh_token(_decoded(value, MAX_REFRESH_COOKIE_BYTES)) if value else None
        if token is not None:
            return token
    return _newest_structured(cookies, "stack", project_id)


def _newest_structured(cookies: dict[str, str], family: str, project_id: str) -> str | None:
    base = f"{family}-refresh-{project_id}--"
    prefixes = (base, f"__Host-{base}")
    best: str | None = None
    best_at = -math.inf
    seen = 0
    for name, value in cookies.items():
        if not name.startswith(prefixes):
            continue
        seen += 1
        if seen > MAX_REFRESH_CANDIDATES:
            break
        found = _refresh_cookie(value)
        if found is not None and (best is None or found[1] > best_at):
            best, best_at = found
    return best


def _refresh_cookie(value: str) -> tuple[str, float] | None:
    """The refresh token and ``updated_at_millis`` of a structured refresh cookie (a cookie
    without a usable timestamp is the oldest); ``None`` when it holds no usable token."""
    if len(value) > MAX_REFRESH_COOKIE_BYTES:
        return None
    usual = _USUAL_REFRESH_COOKIE.fullmatch(value)  # the SDK's own output, in one pass
    if usual is not None:
        token = usable_refresh_token(usual["token"])
        return None if token is None else (token, int(usual["at"]))
    parsed = _json(value, MAX_REFRESH_COOKIE_BYTES)
    if not isinstance(parsed, dict):
        return None
    token = usable_refresh_token(parsed.get("refresh_token"))
    if token is None:
        return None
    at = parsed.get("updated_at_millis")
    # A number (not a bool, not NaN), else the oldest; ints compare exactly, however long.
    if isinstance(at, (int, float)) and not isinstance(at, bool) and at == at:
        return token, at
    return token, -math.inf


def _access_token(value: str | None, refresh: str) -> str | None:
    if not value or len(value) > MAX_ACCESS_COOKIE_BYTES:
        return None
    # The usual value, however it was percent-encoded, read in one pass: tokens never contain
    # a character that JSON or percent-encoding would change. Anything else: decode and parse.
    usual = _USUAL_ACCESS_COOKIE.fullmatch(value)
    if usual is not None:
        token = usual["access"]
        return token if usual["refresh"] == refresh and len(token) <= MAX_TOKEN_BYTES else None
    parsed = _json(value, MAX_ACCESS_COOKIE_BYTES)
    if (
        not isinstance(parsed, list)
        or len(parsed) != 2
        or parsed[0] != refresh
        or not isinstance(parsed[1], str)
    ):
        return None
    token = parsed[1]
    if len(token) > MAX_TOKEN_BYTES or COMPACT_JWS.fullmatch(token) is None:
        return None
    return token


def _decoded(value: str | None, limit: int) -> str | None:
    """``value`` percent-decoded (UTF-8, strictly), or ``None`` when it cannot be."""
    if value is None or len(value) > limit or not value.isascii():
        return None
    if len(value) >= 2 and value[0] == value[-1] == '"':  # RFC 6265 allows a quoted value
        value = value[1:-1]
    try:
        return unquote(value, errors="strict")
    except UnicodeDecodeError:
        return None


def _json(value: str, limit: int) -> Any:
    text = _decoded(value, limit)
    if text is None:
        return None
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def access_cookie_header(
    name: str, refresh_token: str, access_token: str, *, secure: bool
) -> bytes:
    """A ``Set-Cookie`` value that updates access cookie ``name`` as the SDK writes it:
    ``["<refresh>","<access>"]`` percent-encoded like js-cookie, ``Path=/``, ``SameSite=Lax``,
    one day, ``Secure`` on HTTPS, and not ``HttpOnly`` (the browser SDK reads it)."""
    value = quote(json.dumps([refresh_token, access_token], separators=(",", ":")), _JS_COOKIE_SAFE)
    attributes = f"; Path=/; Max-Age={ACCESS_COOKIE_MAX_AGE}; SameSite=Lax"
    return f"{name}={value}{attributes}{'; Secure' if secure else ''}".encode("latin-1")
