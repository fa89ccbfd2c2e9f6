"""Secrets the emulator hands out or keeps: IDs, refresh tokens, password hashes and API keys in
Stack's format (contract §7.1, §9.6). Only digests of passwords and API keys are stored."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import uuid
import zlib

#: Lower-case Crockford base32, the alphabet of Stack's refresh tokens and API-key secrets.
CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"
REFRESH_TOKEN_LENGTH = 45
_PBKDF2_ITERATIONS = 10_000
#: Stack's marker in every API key, so secret scanners can tell them apart.
API_KEY_MARKER = "574ck4u7h"
API_KEY_SECRET_LENGTH = 45
API_KEY_LENGTH = 102


def new_id() -> str:
    """A fresh random UUID, as text."""
    return str(uuid.uuid4())


def _crockford(length: int) -> str:
    # One random byte per character, its low 5 bits (256 is a multiple of 32: uniform); 30 times
    # faster than secrets.choice per character, which load tests minting 100k sessions notice.
    return "".join(CROCKFORD[b & 31] for b in secrets.token_bytes(length))


def new_refresh_token() -> str:
    """An opaque refresh token: 45 lower-case Crockford base32 characters (225 random bits)."""
    return _crockford(REFRESH_TOKEN_LENGTH)


def hash_password(password: str) -> str:
    """A salted PBKDF2 hash (the emulator never keeps a password in the clear)."""
    salt = secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, _PBKDF2_ITERATIONS)
    return "$".join(
        (
            "pbkdf2_sha256",
            str(_PBKDF2_ITERATIONS),
            base64.b64encode(salt).decode(),
            base64.b64encode(digest).decode(),
        )
    )


def check_password(password: str, stored: str | None) -> bool:
    """True when ``password`` matches a hash made by ``hash_password``."""
    if stored is None:
        return False
    try:
        scheme, iterations, salt, digest = stored.split("$")
        if scheme != "pbkdf2_sha256":
            return False
        actual = hashlib.pbkdf2_hmac(
            "sha256", password.encode(), base64.b64decode(salt), int(iterations)
        )
    except ValueError:
        return False
    return hmac.compare_digest(actual, base64.b64decode(digest))


def new_api_key(key_id: str, kind: str, *, is_public: bool) -> str:
    """A key as Stack mints it: ``{pk|sk}_``, a 45-character secret, the key ID's 32 hex digits,
    ``user``/``team``, the flag (self-hosted: ``1`` secret, ``3`` public), the marker, and the
    zlib CRC-32 of all that in 8 hex digits: 102 characters."""
    if kind not in ("user", "team"):
        raise ValueError("an API key is a 'user' or a 'team' key")
    prefix = "pk" if is_public else "sk"
    flag = "3" if is_public else "1"
    body = (
        f"{prefix}_{_crockford(API_KEY_SECRET_LENGTH)}{uuid.UUID(key_id).hex}{kind}{flag}"
        f"{API_KEY_MARKER}"
    )
    return f"{body}{zlib.crc32(body.encode()):08x}"


def api_key_digest(value: str) -> bytes:
    """What the emulator keeps of an API key: its SHA-256 (lookups go by digest)."""
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).digest()
