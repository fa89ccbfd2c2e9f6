"""User and team API keys as credentials: a format pre-check, then Stack's check endpoints,
cached by the key's digest.

A key is judged in this order, and the first failure wins:

1. Its format (§9.6 of the contract), with no I/O: 102 characters, ``sk_``/``pk_``, the secret
   in lower-case letters and digits, the key id in hex, ``user``/``team``, one flag character,
   the ``574ck4u7h`` marker, and a CRC-32 (zlib's) of everything before it, in hex.
2. The kind a route asks for (the key says it, so a mismatch costs no call either).
3. The cache (the key's SHA-256 digest: the raw key is never a cache key) and the memory of
   recent rejections (a revoked key sent in a loop costs one call per ``REJECTION_TTL``).
4. ``POST /{user|team}-api-keys/check``, then for a user key ``GET /users/{id}``: both answers
   are cached together for ``cache_ttl`` seconds, never past the key's own expiry.
"""

from __future__ import annotations

import logging
import math
import re
import time
import zlib
from collections.abc import Callable
from typing import Any, Literal, TypeGuard

from cachetools import TTLCache
from pydantic import BaseModel, ValidationError

from ._answers import (
    AuthError,
    api_key_expired,
    api_key_revoked,
    invalid_api_key,
    wrong_api_key_type,
)
from ._cache import REJECTION_TTL, TokenCache, load_unless_refused, token_key
from ._client import StackClient
from ._denied import DeniedUsers
from ._exceptions import (
    ApiKeyError,
    ApiKeyExpiredError,
    ApiKeyRevokedError,
    StackAPIError,
    StackAuthConfigError,
    StackBadResponseError,
    UserNotFoundError,
)
from ._redis_tier import GuardedTier
from ._settings import StackAuthSettings
from ._shared_cache import SharedCache, namespace, subject_index
from ._subjects import API_KEY, principal_tags
from .models import ApiKey, Principal, StackUser

logger = logging.getLogger("fastapi_stack_auth")

Kind = Literal["user", "team"]

#: Length of every key Stack issues: ``sk_`` + 45 + 32 + 4 + 1 + 9 + 8.
API_KEY_LENGTH = 102
#: Stack's marker, so that secret scanners (and we) can tell its keys apart.
API_KEY_MARKER = "574ck4u7h"
# The secret is lower-case Crockford base32 today; any lower-case letter is let through so that
# a change of alphabet within it cannot lock every key out (the CRC still catches typos).
_FORMAT = re.compile(
    r"(?:sk|pk)_[0-9a-z]{45}(?P<id>[0-9a-f]{32})(?P<kind>user|team)[0-9a-z]"
    + API_KEY_MARKER
    + r"(?P<crc>[0-9a-f]{8})"
)
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)


def parse_api_key(raw: str, *, check_crc: bool = True) -> tuple[Kind, str]:
    """The kind (``user``/``team``) and key id (32 hex digits) ``raw`` claims, read without I/O;
    ``AuthError`` 401 ``INVALID_API_KEY`` when it does not have the format of a Stack key."""
    match = _FORMAT.fullmatch(raw) if len(raw) == API_KEY_LENGTH else None
    if match is None:
        raise invalid_api_key("The API key is malformed")
    # Stack's check: the ``crc`` package's CRC-32 (the IEEE polynomial, zlib's) of the key up to
    # the checksum, as 8 lower-case hex digits. Not secret: an int comparison will do.
    if check_crc and zlib.crc32(raw[:-8].encode("ascii")) != int(match["crc"], 16):
        _warn_crc_once()
        raise invalid_api_key("The API key's checksum does not match: mistyped or cut short?")
    kind: Kind = "user" if match["kind"] == "user" else "team"
    return kind, match["id"]


_crc_warned = False


def _warn_crc_once() -> None:
    global _crc_warned
    if not _crc_warned:
        _crc_warned = True
        logger.info(
            "An API key failed its CRC-32 check and was refused without asking Stack Auth "
            "(logged once). If keys Stack Auth issued are refused with INVALID_API_KEY, its "
            "checksum has changed: set stack.api_keys.check_crc = False."
        )


class ApiKeys:
    """Turns an API key into the ``Principal`` it stands for, or raises.

    ``verify`` raises ``AuthError`` 401 for a key it refuses (``INVALID_API_KEY``,
    ``API_KEY_REVOKED``, ``API_KEY_EXPIRED``, ``WRONG_API_KEY_TYPE``) and the library's other
    exceptions for faults (Stack down, our own settings, API keys not enabled for the
    project); the edge (``to_auth_error``) turns those into 500/502/503. No policy is applied.
    """

    def __init__(
        self,
        client: StackClient,
        settings: StackAuthSettings,
        tier: GuardedTier | None,
        *,
        denied: DeniedUsers | None = None,
    ) -> None:
        self._client = client
        self._settings = settings
        self._tier = tier
        #: Users deleted recently: their keys are refused (see ``_denied``).
        self.denied = DeniedUsers() if denied is None else denied
        #: Refuse a key whose CRC-32 does not match before asking Stack (see ``parse_api_key``).
        self.check_crc = True
        #: Checked keys, by digest: until ``cache_ttl`` passes or the key expires.
        self.cache: TokenCache[Principal] = TokenCache(
            maxsize=settings.cache_max_entries,
            ttl=settings.cache_ttl,
            shared=_shared(settings, tier),
        )
        #: Keys Stack refused (401), by digest, for ``REJECTION_TTL`` seconds.
        self.rejected: TTLCache[bytes, AuthError] = TTLCache(
            settings.cache_max_entries, REJECTION_TTL
        )
        self.clock: Callable[[], float] = time.time  # wall clock, like ``expires_at_millis``

    async def verify(self, raw_key: str, *, kind: Kind | None = None) -> Principal:
        """The user or team behind ``raw_key``; ``AuthError`` 401 when it is not a live key
        (or not of ``kind``, when given)."""
        key_kind, key_id = parse_api_key(raw_key, check_crc=self.check_crc)
        if kind is not None and key_kind != kind:
            raise wrong_api_key_type(kind)
        if self._settings.secret_server_key is None:
            raise StackAuthConfigError(
                "API keys are checked with Stack Auth's server API: set STACK_SECRET_SERVER_KEY"
            )
        digest = token_key(raw_key)
        principal = self.cache.get(digest)
        if principal is not None:
            return principal
        return await load_unless_refused(
            self.cache,
            self.rejected,
            digest,
            lambda: self._check(raw_key, key_kind, key_id),
            _is_verdict,
            tags=principal_tags,
            vet=self._vet,
        )

    def _vet(self, principal: Principal) -> None:
        user = principal.user
        if user is not None and user.id in self.denied:
            raise invalid_api_key("The API key's user no longer exists")

    async def _check(self, raw_key: str, kind: Kind, key_id: str) -> tuple[Principal, float]:
        path = f"/{kind}-api-keys/check"
        try:
            body = await self._client.request(
                "POST", path, json_body={"api_key": raw_key}, ok=(200,)
            )
        except ApiKeyError as exc:
            raise _refusal(exc) from None
        except StackAPIError as exc:
            if exc.status_code == 400 and exc.code is None:  # Stack's text 400 (§9.6, step 1)
                raise StackAuthConfigError(
                    f"{kind.capitalize()} API keys are not enabled for this Stack Auth project: "
                    f"enable them in the Stack Auth dashboard, or do not accept {kind} API keys"
                ) from None
            raise
        key = _read_key(body, path, kind, key_id)
        if key.manually_revoked_at_millis is not None:
            raise api_key_revoked()
        expires_at = math.inf if key.expires_at_millis is None else key.expires_at_millis / 1000
        if expires_at <= self.clock():
            raise api_key_expired()
        if kind == "team":
            return Principal(kind="team", team_id=key.team_id, api_key=key), expires_at
        user = await self._fetch_user(str(key.user_id))
        return Principal(kind="user", user=user, api_key=key), expires_at

    async def _fetch_user(self, user_id: str) -> StackUser:
        try:
            body = await self._client.request("GET", f"/users/{user_id}", ok=(200,))
        except UserNotFoundError:
            # Stack deletes a user's keys with the user: gone in between, the key is gone too.
            raise invalid_api_key("The API key's user no longer exists") from None
        try:
            user = StackUser.model_validate(body)
        except ValidationError as exc:
            raise StackBadResponseError(
                f"GET /users/{{id}} returned an unexpected user ({exc.error_count()} problems)"
            ) from None
        if user.id != user_id:
            raise StackBadResponseError("GET /users/{id} returned another user than asked for")
        return user


def _refusal(exc: ApiKeyError) -> AuthError:
    if isinstance(exc, ApiKeyRevokedError):
        return api_key_revoked()
    if isinstance(exc, ApiKeyExpiredError):
        return api_key_expired()
    # API_KEY_NOT_FOUND; WRONG_API_KEY_TYPE would mean the key's own ``user``/``team`` lies
    # (we ask the endpoint it names): no key Stack issued does, so it is no key of this project.
    return invalid_api_key("The API key is not a key of this project")


def _read_key(body: Any, path: str, kind: Kind, key_id: str) -> ApiKey:
    try:
        key = ApiKey.model_validate(body)
    except ValidationError as exc:
        raise StackBadResponseError(
            f"POST {path} returned an unexpected key ({exc.error_count()} problems)"
        ) from None
    owner = key.user_id if kind == "user" else key.team_id
    if key.type != kind or key.id.replace("-", "").lower() != key_id:
        raise StackBadResponseError(f"POST {path} described another key than the one sent")
    if owner is None or not _UUID.fullmatch(owner):
        raise StackBadResponseError(f"POST {path} returned a key without a valid {kind}_id")
    return key


# --- the shared tier --------------------------------------------------------------------------


class _PrincipalRecord(BaseModel):
    until: float
    kind: Kind
    user: StackUser | None = None
    team_id: str | None = None
    api_key: ApiKey


def dump_principal(value: Principal, until: float) -> bytes:
    """A checked key's principal as JSON for the shared tier."""
    if value.api_key is None:
        raise ValueError("only API-key principals are shared")
    record = _PrincipalRecord(
        until=until,
        kind=value.kind,
        user=value.user,
        team_id=value.team_id,
        api_key=value.api_key,
    )
    return record.model_dump_json(round_trip=True).encode()


def load_principal(data: bytes) -> tuple[Principal, float]:
    """``dump_principal`` read back; never trusted past the key's own expiry."""
    r = _PrincipalRecord.model_validate_json(data)
    expires = r.api_key.expires_at_millis
    until = r.until if expires is None else min(r.until, expires / 1000)
    return Principal(kind=r.kind, user=r.user, team_id=r.team_id, api_key=r.api_key), until


def _shared(settings: StackAuthSettings, tier: GuardedTier | None) -> SharedCache[Principal] | None:
    key = settings.secret_server_key
    if tier is None or key is None:
        return None
    prefix, codec = f"{namespace(settings.project_id)}{API_KEY}:", (dump_principal, load_principal)
    index = subject_index(settings)
    return SharedCache(tier, prefix, key.get_secret_value(), codec, index=index)


def _is_verdict(exc: Exception) -> TypeGuard[AuthError]:
    return isinstance(exc, AuthError) and exc.status_code == 401
