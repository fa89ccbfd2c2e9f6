"""Finding the access token in a request and checking its shape, before any I/O.

A Stack frontend sends the token in one of these shapes; when several are present, the first in
this order wins (an unusable winner is an error, we never fall through to a weaker shape):

1. ``x-stack-access-token: <jwt>``
2. ``x-stack-auth: {"accessToken": <jwt|null>, "refreshToken": ...}`` (JS SDK ``getAuthHeaders()``)
3. ``Authorization: Bearer stackauth_<base64 of that JSON>`` (or ``hexclave_``;
   JS SDK ``getAuthorizationHeader()``), or ``Authorization: Bearer <jwt>``

A JSON credential whose ``accessToken`` is null means "no credential", as the SDK produces it for
users it will not hand out; the next shape is then tried.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from ._errors import invalid_token, malformed_credentials
from ._models import TokenClaims

#: Longest access token accepted (bytes). Stack's tokens are about 1 KiB.
MAX_TOKEN_BYTES = 8192
#: Longest ``x-stack-auth`` / ``stackauth_`` value accepted (it also carries a refresh token).
MAX_JSON_CREDENTIAL_BYTES = 16384

_JWT_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
_JSON_BEARER_PREFIXES = ("stackauth_", "hexclave_")

_ACCESS_TOKEN = b"x-stack-access-token"
_STACK_AUTH = b"x-stack-auth"
_AUTHORIZATION = b"authorization"
_CREDENTIAL_HEADERS = (_ACCESS_TOKEN, _STACK_AUTH, _AUTHORIZATION)


@dataclass(frozen=True, slots=True)
class AccessToken:
    """A token that has the shape of a Stack access token; nothing about it is verified yet."""

    raw: str
    header: dict[str, Any]
    claims: TokenClaims


def credential_from_headers(raw_headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The raw access token of a request (``None`` when none is sent), from ASGI headers.

    Raises ``AuthError`` (401) for a credential header that is repeated or cannot be read.
    ``Authorization`` headers of another scheme than Bearer (e.g. Basic) are not ours: they
    are ignored, whatever they hold and however many there are.
    """
    found: dict[bytes, bytes] = {}
    for name, value in raw_headers:
        if name in _CREDENTIAL_HEADERS:
            if name == _AUTHORIZATION and not _is_bearer(value):
                continue
            if name in found:
                raise malformed_credentials(f"The {name.decode()} header is sent more than once")
            found[name] = value

    if not found:
        return None
    access_token = found.get(_ACCESS_TOKEN)
    if access_token is not None:
        return _decode_header(access_token, "x-stack-access-token")
    stack_auth = found.get(_STACK_AUTH)
    if stack_auth is not None:
        token = _token_from_json(_decode_header(stack_auth, "x-stack-auth"), "x-stack-auth")
        if token is not None:
            return token
    authorization = found.get(_AUTHORIZATION)
    if authorization is not None:
        return _token_from_authorization(_decode_header(authorization, "Authorization"))
    return None


def _is_bearer(value: bytes) -> bool:
    scheme = value.split(None, 1)[0] if value.strip() else b""
    return scheme.lower() == b"bearer"


def _decode_header(value: bytes, name: str) -> str:
    try:
        return value.decode("ascii")
    except UnicodeDecodeError:
        raise malformed_credentials(f"The {name} header must be ASCII") from None


def _token_from_authorization(value: str) -> str | None:
    # ``value`` is known to start with the Bearer scheme (``_is_bearer``).
    parts = value.split(None, 1)
    credentials = parts[1].strip() if len(parts) == 2 else ""
    if not credentials:
        raise malformed_credentials("The Authorization header has no bearer token")
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
            return _token_from_json(text, f"{prefix} bearer credential")
    return credentials


def _token_from_json(text: str, where: str) -> str | None:
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
        return None
    if not isinstance(token, str):
        raise malformed_credentials(f"The {where} has a non-string accessToken")
    if not token.isascii():  # JSON escapes can smuggle in any code point, even lone surrogates
        raise invalid_token("The access token is not a JWT")
    return token


def _b64url_json(segment: str) -> Any:
    padded = segment + "=" * (-len(segment) % 4)
    # JWT segments are UTF-8 JSON (RFC 7519); json.loads(bytes) would also guess UTF-16/32.
    return json.loads(base64.urlsafe_b64decode(padded).decode("utf-8"))


def parse_access_token(raw: str) -> AccessToken:
    """Check that ``raw`` can be a Stack access token and decode (not verify) its parts.

    Raises ``AuthError`` 401 ``INVALID_TOKEN`` for anything too long, non-ASCII, not three
    base64url segments, not JSON, not signed with ES256, or without the claims every Stack
    token has (``sub``, ``aud``, ``exp``) -- all without any I/O.
    """
    if len(raw) > MAX_TOKEN_BYTES:
        raise invalid_token("The access token is too long")
    if not raw.isascii() or _JWT_SHAPE.fullmatch(raw) is None:
        raise invalid_token("The access token is not a JWT")
    header_b64, payload_b64, _ = raw.split(".")
    try:
        header = _b64url_json(header_b64)
        payload = _b64url_json(payload_b64)
    except (ValueError, RecursionError):
        raise invalid_token("The access token is not a JWT") from None
    if not isinstance(header, dict) or not isinstance(payload, dict):
        raise invalid_token("The access token is not a JWT")
    if header.get("alg") != "ES256":
        raise invalid_token("The access token is not signed with ES256")
    try:
        claims = TokenClaims.model_validate(payload)
    except ValidationError:
        raise invalid_token("The access token lacks the claims of a Stack Auth token") from None
    return AccessToken(raw=raw, header=header, claims=claims)
