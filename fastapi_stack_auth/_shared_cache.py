"""The shared cache tier: verified identities in Redis, for many workers and machines.

It sits under the in-process ``TokenCache``, on its miss path only: a token that is not cached
in this process is looked up here (inside the single-flight load, so concurrent requests for
one token make one lookup), and what the verifier answers is written here for the others.

- Key: ``fastapi-stack-auth:v1:<project id>:<kind>:<hex SHA-256 of the token>``, where kind
  is ``remote`` (identities verified by Stack Auth) or ``profile`` (full profiles fetched for
  JWT mode's ``fetch_user``); the token itself is never stored, in a key or a value.
- Value: an HMAC-SHA256 tag, then JSON of what was verified (claims, user, snapshot flag) and
  until when it may be trusted. The tag's key is derived from the secret server key, so an
  entry written by anyone without that key (or with an old one) is ignored, never trusted.
- TTL: the in-process cache's TTL, never past the token's ``exp``, in whole seconds rounded
  down; an entry with less than a second to live is not written.
- Faults: every call is bounded by ``cache_timeout``; a failure or a timeout makes the tier
  skip Redis for ``retry_interval`` seconds (then one call probes it again). The outage is
  logged once as a warning and the recovery once as info, with host and port only. No request
  ever fails because of Redis: it goes on with the in-process cache and Stack Auth.

``redis`` is imported only when a ``RedisTier`` is built: the library works without the
``[redis]`` extra as long as ``STACK_CACHE_URL`` is not set.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import math
import sys
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from pydantic import BaseModel

from ._settings import StackAuthSettings, redis_location
from .errors import StackAuthConfigError
from .models import Identity, StackUser, TokenClaims

if TYPE_CHECKING:
    from redis.asyncio import Redis

logger = logging.getLogger("fastapi_stack_auth")

V = TypeVar("V")
T = TypeVar("T")

#: Bumped when the value format changes, so old and new workers never read each other's.
KEY_PREFIX = "fastapi-stack-auth:v1"
#: Seconds Redis is skipped after a failure before one call tries it again.
RETRY_INTERVAL = 5.0
_TAG_SIZE = hashlib.sha256().digest_size
_MAC_CONTEXT = b"fastapi-stack-auth shared cache v1\x00"


if sys.version_info >= (3, 11):

    async def _within(timeout: float, call: Awaitable[T]) -> T:
        # A deadline on the running task: cheaper than wait_for's extra task.
        async with asyncio.timeout(timeout):
            return await call

else:  # pragma: no cover - Python 3.10

    async def _within(timeout: float, call: Awaitable[T]) -> T:
        return await asyncio.wait_for(call, timeout)


class SharedTier(Protocol):
    """A key-value store shared by workers: what ``SharedCache`` needs from Redis.

    Implementations may raise (and block) freely: ``GuardedTier`` bounds and absorbs it.
    """

    async def open(self) -> None:
        """Connect, or check the connection."""
        ...

    async def get(self, key: bytes) -> bytes | None:
        """The value stored under ``key``, or ``None``."""
        ...

    async def set(self, key: bytes, value: bytes, ttl_seconds: int) -> None:
        """Store ``value`` under ``key`` for ``ttl_seconds`` (at least 1)."""
        ...

    async def aclose(self) -> None:
        """Close the connections (idempotent)."""
        ...


class RedisTier:
    """A ``SharedTier`` on ``redis.asyncio``: one connection pool, no retries, short timeouts."""

    def __init__(self, url: str, *, timeout: float) -> None:
        try:
            import redis.asyncio  # noqa: F401
        except ImportError:
            raise StackAuthConfigError(
                "STACK_CACHE_URL is set but the redis package is not installed: "
                "pip install 'fastapi-stack-auth[redis]'"
            ) from None
        where = redis_location(url)
        if where is None:
            raise StackAuthConfigError("STACK_CACHE_URL is invalid: not a Redis URL")
        #: Host and port (or socket path): what log lines may say about this Redis.
        self.where = where
        self._url = url  # may hold a password: never logged, never in a repr
        self._timeout = timeout
        self._client: Redis | None = None

    def __repr__(self) -> str:
        return f"RedisTier({self.where!r})"

    async def open(self) -> None:
        if self._client is None:
            from redis.asyncio import Redis
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff

            self._client = Redis.from_url(
                self._url,
                socket_timeout=self._timeout,
                socket_connect_timeout=self._timeout,
                # A retry would only stretch a request past the timeout: the next request
                # tries again, after the circuit breaker's pause.
                retry=Retry(NoBackoff(), 0),
                client_name="fastapi-stack-auth",
            )
        await self._client.ping()

    async def get(self, key: bytes) -> bytes | None:
        client = self._client
        if client is None:
            return None
        value = await client.get(key)
        return value.encode() if isinstance(value, str) else value  # bytes unless decoding

    async def set(self, key: bytes, value: bytes, ttl_seconds: int) -> None:
        client = self._client
        if client is not None:
            await client.set(key, value, ex=ttl_seconds)

    async def aclose(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()


class GuardedTier:
    """A ``SharedTier`` wrapper that never raises and never stalls a request.

    Each call is bounded by ``timeout``. After a failure, calls are skipped (``get`` answers
    ``None``, ``set`` does nothing) for ``retry_interval`` seconds, then one call probes the
    tier again. An outage is logged once (warning), its end once (info); log lines name the
    tier's location and the kind of failure only.
    """

    def __init__(
        self,
        tier: SharedTier,
        *,
        where: str,
        timeout: float,
        retry_interval: float = RETRY_INTERVAL,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self.tier = tier
        self.where = where
        self.timeout = timeout
        self.retry_interval = retry_interval
        self._timer = timer
        self._started = False
        self._down = False
        self._skip_until = 0.0  # on ``timer``; 0: no pause
        # Bumped by each failure: only a call that started after the last failure may declare
        # the outage over (one that was already in flight proves nothing).
        self._epoch = 0

    def __repr__(self) -> str:
        return f"GuardedTier({self.where!r}, {'down' if self._down else 'up'})"

    @property
    def available(self) -> bool:
        """Started and not in an outage (as far as the last call knows)."""
        return self._started and not self._down

    async def start(self) -> None:
        """Connect; a failure is logged (once, as the start of an outage), never raised."""
        self._started = True
        try:
            await _within(self.timeout, self.tier.open())
        except Exception as exc:
            self._failed(exc, "at startup")
        else:
            logger.info("The shared token cache (Redis at %s) is connected", self.where)

    async def aclose(self) -> None:
        """Close the tier's connections (a failure to close is logged, not raised)."""
        self._started = False
        try:
            await self.tier.aclose()
        except Exception as exc:
            logger.warning(
                "Closing the shared token cache (Redis at %s) failed (%s)",
                self.where,
                type(exc).__name__,
            )

    async def get(self, key: bytes) -> bytes | None:
        """The value under ``key``; ``None`` if there is none or the tier is unavailable."""
        if not self._ready():
            return None
        epoch = self._epoch
        try:
            value = await _within(self.timeout, self.tier.get(key))
        except Exception as exc:
            self._failed(exc)
            return None
        if self._down and epoch == self._epoch:
            self._recovered()
        return value

    async def set(self, key: bytes, value: bytes, ttl_seconds: int) -> None:
        """Store ``value`` under ``key``, or do nothing if the tier is unavailable."""
        if not self._ready():
            return
        epoch = self._epoch
        try:
            await _within(self.timeout, self.tier.set(key, value, ttl_seconds))
        except Exception as exc:
            self._failed(exc)
            return
        if self._down and epoch == self._epoch:
            self._recovered()

    def _ready(self) -> bool:
        if not self._started:
            return False
        if self._skip_until:
            now = self._timer()
            if now < self._skip_until:
                return False
            # This call probes; the others keep skipping until it has an answer.
            self._skip_until = now + self.retry_interval
        return True

    def _failed(self, exc: Exception, when: str = "") -> None:
        self._epoch += 1
        self._skip_until = self._timer() + self.retry_interval
        if self._down:
            return
        self._down = True
        if isinstance(exc, asyncio.TimeoutError):
            reason = f"no answer within {self.timeout:g} s"
        else:
            # The type only: a driver's message is not ours to vouch for.
            reason = type(exc).__name__
        logger.warning(
            "The shared token cache (Redis at %s) is unavailable%s (%s): requests go on with "
            "the in-process cache and Stack Auth; trying it again every %g s",
            self.where,
            f" {when}" if when else "",
            reason,
            self.retry_interval,
        )

    def _recovered(self) -> None:
        self._down = False
        self._skip_until = 0.0
        logger.info("The shared token cache (Redis at %s) is available again", self.where)


class Codec(Protocol[V]):
    """Turns a cached value and its ``until`` (epoch seconds) into bytes and back."""

    def dump(self, value: V, until: float) -> bytes: ...

    def load(self, data: bytes) -> tuple[V, float]: ...


class _IdentityRecord(BaseModel):
    until: float
    claims: TokenClaims
    user: StackUser
    snapshot: bool = False


class _ProfileRecord(BaseModel):
    until: float
    user: StackUser


class IdentityCodec:
    """``Identity`` as JSON: claims, user (extra fields included) and the snapshot flag."""

    def dump(self, value: Identity, until: float) -> bytes:
        record = _IdentityRecord(
            until=until, claims=value.claims, user=value.user, snapshot=value.snapshot
        )
        # round_trip: no computed fields (signed_up_at, ...), which would come back as extras.
        return record.model_dump_json(round_trip=True).encode()

    def load(self, data: bytes) -> tuple[Identity, float]:
        record = _IdentityRecord.model_validate_json(data)
        identity = Identity(claims=record.claims, user=record.user, snapshot=record.snapshot)
        # Never trusted past the token's own expiry, whatever the record says.
        return identity, min(record.until, float(record.claims.exp))


class ProfileCodec:
    """A full ``StackUser`` profile as JSON (JWT mode's ``fetch_user``)."""

    def dump(self, value: StackUser, until: float) -> bytes:
        return _ProfileRecord(until=until, user=value).model_dump_json(round_trip=True).encode()

    def load(self, data: bytes) -> tuple[StackUser, float]:
        record = _ProfileRecord.model_validate_json(data)
        return record.user, record.until


class SharedCache(Generic[V]):
    """One kind of cached value in a ``GuardedTier``: keys, signed values and TTLs.

    ``get``/``put`` take the 32-byte token digest the in-process cache uses as its key.
    Neither raises.
    """

    def __init__(
        self,
        tier: GuardedTier,
        *,
        project_id: str,
        kind: str,
        codec: Codec[V],
        secret: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.tier = tier
        self._prefix = f"{KEY_PREFIX}:{project_id}:{kind}:".encode()
        self._codec = codec
        self._mac_key = hashlib.sha256(_MAC_CONTEXT + secret.encode()).digest()
        self._clock = clock
        self._warned_bad_entry = False

    def __repr__(self) -> str:
        return f"SharedCache({self._prefix.decode()!r}, {self.tier!r})"

    def key(self, digest: bytes) -> bytes:
        """The Redis key for a token digest (``token_key``)."""
        return self._prefix + digest.hex().encode()

    async def get(self, digest: bytes) -> tuple[V, float] | None:
        """The value and the epoch second until which it may be trusted, or ``None``."""
        key = self.key(digest)
        data = await self.tier.get(key)
        if data is None:
            return None
        tag, body = data[:_TAG_SIZE], data[_TAG_SIZE:]
        if not hmac.compare_digest(tag, self._tag(key, body)):
            self._bad_entry()
            return None
        try:
            value, until = self._codec.load(body)
        except Exception:  # signed by us, yet unreadable: another version of the format
            self._bad_entry()
            return None
        if until <= self._clock():
            return None
        return value, until

    async def put(self, digest: bytes, value: V, until: float) -> None:
        """Share ``value`` until ``until`` (epoch seconds); skipped under a second to live."""
        lifetime = until - self._clock()
        if not 1 <= lifetime < math.inf:  # under a second to live (or NaN): not worth sharing
            return
        key = self.key(digest)
        try:
            body = self._codec.dump(value, until)
        except Exception as exc:  # a value that cannot be shared is still served
            logger.debug("Not sharing a cached value: %s", type(exc).__name__)
            return
        await self.tier.set(key, self._tag(key, body) + body, math.floor(lifetime))

    def _tag(self, key: bytes, body: bytes) -> bytes:
        return hmac.new(self._mac_key, key + b"\x00" + body, hashlib.sha256).digest()

    def _bad_entry(self) -> None:
        if not self._warned_bad_entry:
            self._warned_bad_entry = True
            logger.warning(
                "Ignored an entry of the shared token cache (Redis at %s) that failed its "
                "integrity check: written with another STACK_SECRET_SERVER_KEY, by another "
                "version, or tampered with (logged once)",
                self.tier.where,
            )


def shared_caches(
    settings: StackAuthSettings, *, jwt_mode: bool
) -> tuple[GuardedTier | None, SharedCache[Identity] | None, SharedCache[StackUser] | None]:
    """The shared tier and what ``StackAuth`` shares in it: verified identities (remote mode)
    and full profiles (JWT mode's ``fetch_user``).

    JWT mode does not share identities: verifying an ES256 signature locally takes about
    100 us of CPU, less than a Redis round trip, and needs no network at all. What it does
    fetch from Stack Auth, full profiles, is shared.

    Nothing connects yet (``GuardedTier.start`` does). Raises ``StackAuthConfigError`` if
    ``STACK_CACHE_URL`` is set but the ``redis`` package is missing.
    """
    url, key = settings.cache_url, settings.secret_server_key
    if url is None:
        return None, None, None
    if settings.cache_ttl <= 0 or key is None:
        logger.warning(
            "STACK_CACHE_URL is set but unused: %s",
            "STACK_CACHE_TTL=0 turns caching off"
            if key is not None
            else "JWT mode without STACK_SECRET_SERVER_KEY verifies tokens locally and "
            "fetches no profiles",
        )
        return None, None, None
    redis_tier = RedisTier(url.get_secret_value(), timeout=settings.cache_timeout)
    tier = GuardedTier(redis_tier, where=redis_tier.where, timeout=settings.cache_timeout)
    secret = key.get_secret_value()
    project = settings.project_id
    identities: SharedCache[Identity] | None = None
    if not jwt_mode:
        identities = SharedCache(
            tier, project_id=project, kind=settings.verify, codec=IdentityCodec(), secret=secret
        )
    profiles = SharedCache(
        tier, project_id=project, kind="profile", codec=ProfileCodec(), secret=secret
    )
    return tier, identities, profiles
