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
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

from pydantic import ValidationError

from ._errors import invalid_token, malformed_credentials
from ._models import TokenClaims

#: Longest access token accepted (bytes). Stack's tokens are about 1 KiB.
MAX_TOKEN_BYTES = 8192
#: Longest ``x-stack-auth`` / ``stackauth_`` value accepted (it also carries a refresh token).
MAX_JSON_CREDENTIAL_BYTES = 16384
#: Length of an ES256 signature (64 bytes) in unpadded base64url.
ES256_SIGNATURE_B64_LENGTH = 86

#: The base64url alphabet (RFC 4648 section 5, no padding): all a JWT segment may hold.
B64URL_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_JWT_ALPHABET = B64URL_ALPHABET + b"."
#: base64url to standard base64, for ``binascii.a2b_base64`` (which ``base64.urlsafe_b64decode``
#: also ends in, after two layers of Python and a str round trip).
FROM_B64URL = bytes.maketrans(b"-_", b"+/")
#: Parsed JOSE headers by their base64url text: every token signed with one key has the same
#: header, so it is decoded once. Only headers that parse as an object are kept, read-only; the
#: dict is emptied when full, so a client sending random headers cannot grow it.
_HEADERS: dict[bytes, Mapping[str, Any]] = {}
_MAX_CACHED_HEADERS = 64
_JSON_BEARER_PREFIXES = ("stackauth_", "hexclave_")

_ACCESS_TOKEN = b"x-stack-access-token"
_STACK_AUTH = b"x-stack-auth"
_AUTHORIZATION = b"authorization"
_CREDENTIAL_HEADERS = (_ACCESS_TOKEN, _STACK_AUTH, _AUTHORIZATION)
_SEQUENCES = (list, tuple)


class AccessToken(NamedTuple):
    """A token that has the shape of a Stack access token; nothing about it is verified yet.

    Immutable; a named tuple rather than a frozen dataclass, whose ``__init__`` costs three
    ``object.__setattr__`` calls on every first sight of a token.
    """

    raw: str
    #: The JOSE header (read-only: it is shared by every token with the same header).
    header: Mapping[str, Any]
    claims: TokenClaims


def credential_from_headers(raw_headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The raw access token of a request (``None`` when none is sent), from ASGI headers.

    Raises ``AuthError`` (401) for a credential header that is repeated or cannot be read.
    ``Authorization`` headers of another scheme than Bearer (e.g. Basic) are not ours: they
    are ignored, whatever they hold and however many there are.
    """
    if not isinstance(raw_headers, _SEQUENCES):
        raw_headers = list(raw_headers)  # it may be read twice
    # Every request runs this. The shape nearly every request has, a single credential header
    # ``Authorization: Bearer <jwt>``, is read in this one short pass; anything else is read
    # again, by the general rules of ``_credential``.
    bearer = None
    for name, value in raw_headers:
        if name in _CREDENTIAL_HEADERS:
            if bearer is not None or name != _AUTHORIZATION or value[:7] != b"Bearer ":
                return _credential(raw_headers)
            bearer = value
    if bearer is None:
        return None
    try:
        token = bearer[7:].decode("ascii").strip()
    except UnicodeDecodeError:
        return _credential(raw_headers)
    if not token or token.startswith(_JSON_BEARER_PREFIXES):
        return _credential(raw_headers)
    return token


def _credential(raw_headers: Iterable[tuple[bytes, bytes]]) -> str | None:
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


def _json(data: bytes) -> Any:
    # JWT segments are UTF-8 JSON (RFC 7519); json.loads(bytes) would also guess UTF-16/32.
    return json.loads(data.decode("utf-8"))


def _b64url(segment: bytes) -> bytes:
    # ``segment`` holds base64url characters only (checked by the caller); a length of 4n+1
    # cannot be base64 and raises binascii.Error, a ValueError.
    return binascii.a2b_base64(segment.translate(FROM_B64URL) + b"=" * (-len(segment) % 4))


def _header(segment: bytes) -> Mapping[str, Any] | None:
    header = _HEADERS.get(segment)
    if header is None:
        parsed = _json(_b64url(segment))
        if not isinstance(parsed, dict):
            return None
        header = MappingProxyType(parsed)
        if len(_HEADERS) >= _MAX_CACHED_HEADERS:
            _HEADERS.clear()
        _HEADERS[segment] = header
    return header


def _claims_object(payload: bytes) -> dict[str, Any]:
    try:
        data = _json(payload)
    except (ValueError, RecursionError):
        raise invalid_token("The access token is not a JWT") from None
    if not isinstance(data, dict):
        raise invalid_token("The access token is not a JWT")
    return data


#: ``TokenClaims.model_validate_json`` without its Python wrapper (keyword arguments included).
_validate_claims_json = TokenClaims.__pydantic_validator__.validate_json


def parse_access_token(raw: str) -> AccessToken:
    """Check that ``raw`` can be a Stack access token and decode (not verify) its parts.

    Raises ``AuthError`` 401 ``INVALID_TOKEN`` for anything too long, non-ASCII, not three
    base64url segments, not JSON, not signed with ES256, or without the claims every Stack
    token has (``sub``, ``aud``, ``exp``) -- all without any I/O.
    """
    if len(raw) > MAX_TOKEN_BYTES:
        raise invalid_token("The access token is too long")
    if not raw.isascii():
        raise invalid_token("The access token is not a JWT")
    data = raw.encode("ascii")
    # Three non-empty segments of base64url characters, nothing else: deleting every allowed
    # byte must leave nothing, and two dots must separate non-empty parts. A segment of 4n+1
    # characters cannot be base64 (for the header and payload, the decoding below fails).
    segments = data.split(b".")
    if data.translate(None, _JWT_ALPHABET) or len(segments) != 3:
        raise invalid_token("The access token is not a JWT")
    header_b64, payload_b64, signature_b64 = segments
    if not header_b64 or not payload_b64 or not signature_b64 or len(signature_b64) % 4 == 1:
        raise invalid_token("The access token is not a JWT")
    try:
        header = _header(header_b64)
        payload = _b64url(payload_b64)
    except (ValueError, RecursionError):
        raise invalid_token("The access token is not a JWT") from None
    try:
        # Parsed and validated in one pass by pydantic's Rust JSON parser, with no Python dict
        # in between (half the cost of json.loads + model_validate). It accepts a subset of what
        # the reference reading below accepts (it refuses lone surrogate escapes, "\ud800",
        # and nesting deeper than 200), with the same result (tests/test_fast_paths.py
        # compares them); whatever it refuses is read again below, so errors and their order
        # stay those of the reference.
        claims: TokenClaims | None = _validate_claims_json(payload)
    except ValidationError:
        claims = None
    if claims is None:
        claims_data = _claims_object(payload)
    if header is None:
        raise invalid_token("The access token is not a JWT")
    if header.get("alg") != "ES256":
        raise invalid_token("The access token is not signed with ES256")
    if claims is None:
        try:
            claims = TokenClaims.model_validate(claims_data)
        except ValidationError:
            raise invalid_token("The access token lacks the claims of a Stack Auth token") from None
    return AccessToken(raw=raw, header=header, claims=claims)
