"""Finding the access token in a request's headers, and reading (not verifying) it.

A Stack frontend sends the token in one of these shapes; when several are present, the first in
this order wins (an unusable winner is an error, we never fall through to a weaker shape):

1. ``x-stack-access-token: <jwt>``
2. ``x-stack-auth: {"accessToken": <jwt|null>, "refreshToken": ...}`` (JS SDK ``getAuthHeaders()``)
3. ``Authorization: Bearer stackauth_<base64 of that JSON>`` (or ``hexclave_``;
   JS SDK ``getAuthorizationHeader()``), or ``Authorization: Bearer <jwt>``

A JSON credential whose ``accessToken`` is null means "no credential" (the SDK sends it so for
users it will not hand out); the next shape is then tried. ``Authorization`` headers of another
scheme (Basic, ...) are not ours and are ignored.

The two JSON shapes also carry the user's ``refreshToken``: ``credential_pair_from_headers``
returns it with the access token it came with (silent refresh, ``_refresh``). A refresh token
that is not a usable string is left out, never an error: it only matters once the access token
has expired.

``credentials_from_headers`` (the dependencies that take API keys) also finds an API key: in
``x-stack-api-key: <key>``, or as ``Authorization: Bearer <key>`` when the bearer credential
starts with ``sk_`` or ``pk_`` (no JWT or ``stackauth_`` credential does). A request that
sends both a token and a key, or two keys, is refused: which one it meant is not ours to guess.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable
from typing import Any

from pydantic import ValidationError

from ._answers import invalid_token, malformed_credentials
from .models import TokenClaims

#: Longest access token accepted (characters). Stack's tokens are about 1 KiB.
MAX_TOKEN_BYTES = 8192
#: Longest ``x-stack-auth`` / ``stackauth_`` value accepted (it also carries a refresh token).
MAX_JSON_CREDENTIAL_BYTES = 16384
#: Longest refresh token accepted (Stack's are 45 characters).
MAX_REFRESH_TOKEN_BYTES = 1024
#: A refresh token: visible ASCII, no spaces (Stack's are lower-case Crockford base32).
_REFRESH_TOKEN = re.compile(r"[\x21-\x7e]+")
_JSON_BEARER_PREFIXES = ("stackauth_", "hexclave_")
_HEADERS = (b"x-stack-access-token", b"x-stack-auth", b"authorization")
_API_KEY_HEADER = b"x-stack-api-key"
_PRINCIPAL_HEADERS = (*_HEADERS, _API_KEY_HEADER)
#: How an API key starts (secret and public keys, §9.6); an ``Authorization: Bearer`` credential
#: that starts so is an API key, never an access token.
API_KEY_PREFIXES = ("sk_", "pk_")
#: A JWT as RFC 7515 spells it: three non-empty base64url segments, without padding.
COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


def credential_from_headers(raw_headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The raw access token of a request (``None`` when none is sent), from ASGI headers.

    Raises ``AuthError`` 401 for a credential header that is repeated or cannot be read, and
    for a token that is too long or not ASCII: nothing past this point sees such input.
    """
    return _tokens_from(_collect(raw_headers, _HEADERS))[0]


def credential_pair_from_headers(
    raw_headers: Iterable[tuple[bytes, bytes]],
) -> tuple[str | None, str | None]:
    """The raw access token of a request and the refresh token sent with it (from the same
    ``x-stack-auth`` or ``stackauth_`` JSON; ``None`` for the other shapes, or when none is
    usable). Raises as ``credential_from_headers`` does."""
    return _tokens_from(_collect(raw_headers, _HEADERS))


def credentials_from_headers(
    raw_headers: Iterable[tuple[bytes, bytes]],
) -> tuple[str | None, str | None]:
    """The raw access token and the raw API key of a request (each ``None`` when not sent).

    Raises ``AuthError`` 401 as ``credential_from_headers`` does, and when both a token and a
    key, or two keys, are sent. The key is only read here; ``ApiKeys`` judges its format.
    """
    found = _collect(raw_headers, _PRINCIPAL_HEADERS)
    api_key: str | None = None
    header_key = found.pop(_API_KEY_HEADER, None)
    if header_key is not None:
        api_key = _ascii(header_key, "x-stack-api-key")
        if not api_key:
            raise malformed_credentials("The x-stack-api-key header is empty")
    authorization = found.get(b"authorization")
    if authorization is not None:
        bearer = _bearer_credential(authorization)
        if bearer.startswith(API_KEY_PREFIXES):
            if api_key is not None:
                raise malformed_credentials("Send one API key, not two")
            api_key = bearer
            del found[b"authorization"]
    token = _tokens_from(found)[0]
    if token is not None and api_key is not None:
        raise malformed_credentials("Send either an access token or an API key, not both")
    return token, api_key


def _collect(
    raw_headers: Iterable[tuple[bytes, bytes]], names: tuple[bytes, ...]
) -> dict[bytes, bytes]:
    # Of an ``Authorization`` header only a bearer credential is ours, and only the credential
    # (what follows the scheme) is kept; other schemes are skipped before any other check.
    found: dict[bytes, bytes] = {}
    for name, value in raw_headers:
        if name not in names:
            continue
        if name == b"authorization":
            parts = value.split(None, 1)
            if not parts or parts[0].lower() != b"bearer":
                continue
            value = parts[1] if len(parts) == 2 else b""
        if name in found:
            raise malformed_credentials(f"The {name.decode()} header is sent more than once")
        found[name] = value
    return found


def _tokens_from(found: dict[bytes, bytes]) -> tuple[str | None, str | None]:
    token: str | None = None
    refresh: str | None = None
    if b"x-stack-access-token" in found:
        token = _ascii(found[b"x-stack-access-token"], "x-stack-access-token")
    elif b"x-stack-auth" in found:
        token, refresh = _from_json(_ascii(found[b"x-stack-auth"], "x-stack-auth"), "x-stack-auth")
    if token is None and b"authorization" in found:
        token, refresh = _from_bearer(_bearer_credential(found[b"authorization"]))
    if token is not None and len(token) > MAX_TOKEN_BYTES:
        raise invalid_token("The access token is too long")
    return token, refresh


def _ascii(value: bytes, name: str) -> str:
    try:
        return value.decode("ascii").strip()
    except UnicodeDecodeError:
        raise malformed_credentials(f"The {name} header must be ASCII") from None


def _bearer_credential(value: bytes) -> str:
    # ``value``: what follows ``Bearer`` (``_collect``).
    credentials = _ascii(value, "Authorization")
    if not credentials:
        raise malformed_credentials("The Authorization header has no bearer token")
    return credentials


def _from_bearer(credentials: str) -> tuple[str | None, str | None]:
    for prefix in _JSON_BEARER_PREFIXES:
        if credentials.startswith(prefix):
            encoded = credentials[len(prefix) :]
            if len(encoded) > MAX_JSON_CREDENTIAL_BYTES * 4 // 3 + 4:
                raise malformed_credentials("The Authorization header is too large")
            try:
                text = base64.b64decode(encoded, validate=True).decode("utf-8")
            except (binascii.Error, ValueError):
                raise malformed_credentials(
                    f"The {prefix} bearer credential is not valid base64"
                ) from None
            return _from_json(text, f"{prefix} bearer credential")
    return credentials, None


def _from_json(text: str, where: str) -> tuple[str | None, str | None]:
    if len(text) > MAX_JSON_CREDENTIAL_BYTES:
        raise malformed_credentials(f"The {where} is too large")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        raise malformed_credentials(f"The {where} is not valid JSON") from None
    if not isinstance(data, dict):
        raise malformed_credentials(f"The {where} must be a JSON object")
    token = data.get("accessToken")
    if token is None:
        return None, None
    if not isinstance(token, str):
        raise malformed_credentials(f"The {where} has a non-string accessToken")
    if not token.isascii():  # JSON escapes can smuggle in any code point, even lone surrogates
        raise invalid_token("The access token is not a JWT")
    return token, usable_refresh_token(data.get("refreshToken"))


def usable_refresh_token(value: object) -> str | None:
    """``value`` if it can be a refresh token (a string of visible ASCII, at most
    ``MAX_REFRESH_TOKEN_BYTES`` long), else ``None``."""
    if (
        isinstance(value, str)
        and len(value) <= MAX_REFRESH_TOKEN_BYTES
        and _REFRESH_TOKEN.fullmatch(value) is not None
    ):
        return value
    return None


def read_header(raw: str) -> dict[str, Any]:
    """The JOSE header of ``raw``, unverified; 401 unless ``raw`` is a JWT signed with ES256.

    ``raw`` must be at most ``MAX_TOKEN_BYTES`` long and three base64url segments without
    padding (RFC 7515; PyJWT itself also takes ``=`` padding, which Stack never sends), the
    header a UTF-8 JSON object. Such a token is refused here, in either mode, without any I/O.
    The header only picks the key: the signature check (PyJWT) reads and checks it again.
    """
    return _split(raw)[0]


def read_unverified(raw: str) -> tuple[dict[str, Any], TokenClaims]:
    """The header and the claims of ``raw``, neither verified: what may reject a token before
    any call (expired, another project), never what accepts one. Raises as ``read_header``,
    and 401 for claims that are not a UTF-8 JSON object or lack what every Stack token has."""
    header, payload = _split(raw)
    return header, read_claims(_json_object(_utf8(payload)))


def _split(raw: str) -> tuple[dict[str, Any], str]:
    # The header, read and checked, and the payload segment as it came.
    if len(raw) > MAX_TOKEN_BYTES:
        raise invalid_token("The access token is too long")
    if not COMPACT_JWS.fullmatch(raw):
        raise invalid_token("The access token is not a JWT")
    header_segment, payload_segment, signature_segment = raw.split(".")
    _decoded(signature_segment)
    header = _json_object(_utf8(header_segment))
    if header.get("alg") != "ES256":
        raise invalid_token("The access token is not signed with ES256")
    # As PyJWT refuses them, before any call: Stack sends none of these.
    if "crit" in header:
        raise invalid_token("The access token has critical header parameters")
    if "b64" in header or not isinstance(header.get("kid", ""), str):
        raise invalid_token("The access token is not a JWT")
    return header, payload_segment


def _decoded(segment: str) -> bytes:
    # One spelling per token, as PyJWT checks: a length base64 can have, and no stray bits in
    # the last character (``segment`` holds only base64url characters: ``COMPACT_JWS``).
    if len(segment) % 4 != 1:
        data = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        if base64.urlsafe_b64encode(data).rstrip(b"=") == segment.encode():
            return data
    raise invalid_token("The access token is not a JWT")


def _utf8(segment: str) -> str:
    # Only UTF-16/32 (told apart by NUL bytes, which UTF-8 JSON never holds) or a BOM makes
    # ``json.loads(data)`` (PyJWT) read what ``json.loads(data.decode("utf-8"))`` refuses.
    try:
        text = _decoded(segment).decode("utf-8")
    except ValueError:  # UnicodeDecodeError
        raise invalid_token("The access token is not a JWT") from None
    if "\x00" in text or text.startswith("\ufeff"):
        raise invalid_token("The access token is not a JWT")
    return text


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        raise invalid_token("The access token is not a JWT") from None
    if not isinstance(value, dict):
        raise invalid_token("The access token is not a JWT")
    return value


def read_claims(payload: dict[str, Any]) -> TokenClaims:
    """``payload`` as ``TokenClaims``; 401 when it lacks what every Stack token has."""
    try:
        return TokenClaims.model_validate(payload)
    except ValidationError:
        raise invalid_token("The access token lacks the claims of a Stack Auth token") from None
