"""The shared cache: what Stack verified, in Redis (``GuardedTier``), under ``TokenCache``.

Keys are ``fastapi-stack-auth:v1:<project id>:<kind>:<hex SHA-256 of the token>`` (kinds in
``_subjects``); values an HMAC-SHA256 tag keyed from the secret server key (entries with a
wrong tag are ignored), then JSON of the value and until when it may be trusted: ``cache_ttl``
after Stack verified it, never past ``exp``. Next to each entry, in the same round trip, its
key is listed under each of its subjects (``SubjectIndex``), so that an invalidation finds
every entry about a user or a team. No request fails because of Redis (see ``_redis_tier``).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

from pydantic import BaseModel

from ._cache import CacheKey
from ._redis_tier import GuardedTier
from ._settings import StackAuthSettings
from ._subjects import IDENTITY, PROFILE, Tags
from .models import Identity, StackUser, TokenClaims

if TYPE_CHECKING:
    from redis.asyncio import Redis

logger = logging.getLogger("fastapi_stack_auth")

V = TypeVar("V")

#: Bumped when the value format changes, so old and new workers never read each other's.
KEY_PREFIX = "fastapi-stack-auth:v1"
_TAG_SIZE = hashlib.sha256().digest_size
_MAC_CONTEXT = b"fastapi-stack-auth shared cache v1\x00"


def namespace(project_id: str) -> str:
    """The start of every key (and channel) of the project ``project_id`` in the tier."""
    return f"{KEY_PREFIX}:{project_id}:"


def mac_key(secret: str) -> bytes:
    """The HMAC key of everything written to the tier, derived from the secret server key."""
    return hashlib.sha256(_MAC_CONTEXT + secret.encode()).digest()


def seal(key: bytes, where: bytes, body: bytes) -> bytes:
    """``body`` behind an HMAC-SHA256 tag (keyed ``key``) of where it goes and what it is:
    a body cannot be moved to another key or channel."""
    return hmac.new(key, where + b"\x00" + body, hashlib.sha256).digest() + body


def unseal(key: bytes, where: bytes, data: bytes) -> bytes | None:
    """The body ``seal`` put in ``data`` for ``where``; ``None`` if the tag is wrong."""
    body = data[_TAG_SIZE:]
    return body if hmac.compare_digest(seal(key, where, body), data) else None


def open_sealed(key: bytes, where: bytes, data: bytes, read: Callable[[bytes], V]) -> V | None:
    """What ``seal`` put behind the tag, read with ``read``; ``None`` for data not sealed with
    ``key`` for ``where``, or that ``read`` refuses (``ValueError``, as pydantic's errors are)."""
    body = unseal(key, where, data)
    if body is None:
        return None
    try:
        return read(body)
    except ValueError:
        return None


@dataclass(frozen=True)
class SubjectIndex:
    """Where the tier lists the entries about a subject (a tag of ``_subjects``): a sorted set
    per tag of the entries' keys, scored by until when each lives. A write drops the members
    that have expired and gives the set ``ttl`` seconds more, longer than any entry lives."""

    namespace: bytes
    ttl: int

    def key(self, tag: str) -> bytes:
        """The sorted set of ``tag`` (a digest: ids are not written in clear in key names)."""
        return self.namespace + b"subject:" + hashlib.sha256(tag.encode()).hexdigest().encode()


def subject_index(settings: StackAuthSettings) -> SubjectIndex:
    """The subject index of the project in ``settings``."""
    longest = max(settings.cache_ttl, settings.permission_cache_ttl)
    return SubjectIndex(namespace(settings.project_id).encode(), math.ceil(longest) + 1)


class _IdentityRecord(BaseModel):
    until: float
    claims: TokenClaims
    user: StackUser
    snapshot: bool = False


class _ProfileRecord(BaseModel):
    until: float
    user: StackUser


# Values as JSON, extra fields included; round_trip=True: computed fields (signed_up_at, ...)
# would come back as extras.
def dump_identity(value: Identity, until: float) -> bytes:
    record = _IdentityRecord(
        until=until, claims=value.claims, user=value.user, snapshot=value.snapshot
    )
    return record.model_dump_json(round_trip=True).encode()


def load_identity(data: bytes) -> tuple[Identity, float]:
    r = _IdentityRecord.model_validate_json(data)
    # Never trusted past the token's own expiry, whatever the record says.
    return Identity(r.claims, r.user, r.snapshot), min(r.until, float(r.claims.exp))


def dump_profile(value: StackUser, until: float) -> bytes:
    return _ProfileRecord(until=until, user=value).model_dump_json(round_trip=True).encode()


def load_profile(data: bytes) -> tuple[StackUser, float]:
    record = _ProfileRecord.model_validate_json(data)
    return record.user, record.until


class SharedCache(Generic[V]):
    """One kind of value in the tier, by the key the in-process cache uses: key names, signed
    values, TTLs, and, with an ``index``, the entries listed under the subjects ``put`` is
    given. Neither ``get`` nor ``put`` raises.

    A ``bytes`` key is a digest already (of a token or an API key, which are never kept in
    clear); a ``str`` key (ids, which are not secret) is hashed here, so that no id is written
    in clear in a key name either.
    """

    def __init__(
        self,
        tier: GuardedTier,
        prefix: str,
        secret: str,
        codec: tuple[Callable[[V, float], bytes], Callable[[bytes], tuple[V, float]]],
        clock: Callable[[], float] = time.time,
        *,
        index: SubjectIndex | None = None,
    ) -> None:
        self.tier = tier
        self._prefix = prefix.encode()  # KEY_PREFIX:<project id>:<kind>:
        self._mac_key = mac_key(secret)
        self._dump, self._load = codec
        self._clock = clock
        self._index = index
        self._warned = False

    def _name(self, key: CacheKey) -> bytes:
        digest = key if isinstance(key, bytes) else hashlib.sha256(key.encode()).digest()
        return self._prefix + digest.hex().encode()

    async def get(self, cache_key: CacheKey) -> tuple[V, float] | None:
        """The value and the epoch second until which it may be trusted, or ``None``."""
        key = self._name(cache_key)
        data = await self.tier.get(key)
        if data is None:
            return None
        body = unseal(self._mac_key, key, data)
        try:
            if body is None:
                raise ValueError("not signed with our key")
            value, until = self._load(body)  # signed, yet unreadable: another version
        except Exception:
            if not self._warned:
                self._warned = True
                logger.warning(
                    "Ignored an entry of the shared token cache (Redis at %s) that failed its "
                    "integrity check: written with another STACK_SECRET_SERVER_KEY, by another "
                    "version, or tampered with (logged once)",
                    self.tier.where,
                )
            return None
        return (value, until) if until > self._clock() else None

    async def put(self, cache_key: CacheKey, value: V, until: float, tags: Tags = ()) -> None:
        """Share ``value`` until ``until`` (epoch seconds), listed under ``tags`` in the index;
        skipped under a second to live."""
        now = self._clock()
        lifetime = until - now
        if not 1 <= lifetime < math.inf:  # under a second to live (or NaN): not worth it
            return
        key = self._name(cache_key)
        try:
            body = self._dump(value, until)
        except Exception as exc:  # a value that cannot be shared is still served
            logger.debug("Not sharing a cached value: %s", type(exc).__name__)
            return
        data, ttl, index = seal(self._mac_key, key, body), math.floor(lifetime), self._index
        if not tags or index is None:
            await self.tier.set(key, data, ttl)
            return

        async def write(client: Redis) -> None:
            # One round trip, as a plain SET: the load before it asked Stack anyway.
            pipe = client.pipeline(transaction=False)
            pipe.set(key, data, ex=ttl)
            for tag in tags:
                where = index.key(tag)
                pipe.zadd(where, {key: until})
                pipe.zremrangebyscore(where, "-inf", now)
                pipe.expire(where, index.ttl)
            await pipe.execute()

        await self.tier.run(write)


def shared_caches(
    settings: StackAuthSettings, *, jwt_mode: bool
) -> tuple[GuardedTier | None, SharedCache[Identity] | None, SharedCache[StackUser] | None]:
    """The tier (not connected yet) and what is shared in it: identities, in remote mode only
    (JWT mode checks a signature faster than a Redis round trip), and full profiles. Raises
    ``StackAuthConfigError`` if ``STACK_CACHE_URL`` is set but ``redis`` is not installed."""
    url, key = settings.cache_url, settings.secret_server_key
    if url is None:
        return None, None, None
    if settings.cache_ttl <= 0 or key is None:
        logger.warning(
            "STACK_CACHE_URL is set but unused: %s",
            "JWT mode without STACK_SECRET_SERVER_KEY verifies tokens locally and fetches "
            "no profiles"
            if key is None
            else "STACK_CACHE_TTL=0 turns caching off",
        )
        return None, None, None
    tier = GuardedTier(url.get_secret_value(), timeout=settings.cache_timeout)
    prefix, secret = namespace(settings.project_id), key.get_secret_value()
    index = subject_index(settings)
    profiles = SharedCache(
        tier, f"{prefix}{PROFILE}:", secret, (dump_profile, load_profile), index=index
    )
    if jwt_mode:
        return tier, None, profiles
    identities = SharedCache(
        tier, f"{prefix}{IDENTITY}:", secret, (dump_identity, load_identity), index=index
    )
    return tier, identities, profiles
