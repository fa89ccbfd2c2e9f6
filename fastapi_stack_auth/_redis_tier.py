"""The Redis tier: one client that never raises and never stalls a request.

Each call is bounded by a timeout; after a failure the tier is left out for a while, then one
call probes it again. Logs name host and port only. ``redis`` is imported only when a tier is
made (``STACK_CACHE_URL`` is set).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from ._exceptions import StackAuthConfigError
from ._settings import redis_location

if TYPE_CHECKING:
    from redis.asyncio import Redis

logger = logging.getLogger("fastapi_stack_auth")

T = TypeVar("T")

#: Seconds Redis is left out after a failure before one call tries it again.
RETRY_INTERVAL = 5.0


async def _wait_for(timeout: float, call: Awaitable[T]) -> T:  # Python 3.10's way
    return await asyncio.wait_for(call, timeout)


if sys.version_info >= (3, 11):

    async def _within(timeout: float, call: Awaitable[T]) -> T:
        # A deadline on the running task: cheaper than wait_for's extra task.
        async with asyncio.timeout(timeout):
            return await call

else:  # pragma: no cover - Python 3.10
    _within = _wait_for


def as_bytes(value: Any) -> bytes:
    """A member or value Redis returned, as bytes (``str`` from a client that decodes)."""
    return value.encode() if isinstance(value, str) else bytes(value)


class GuardedTier:
    """Redis that never raises and never stalls a request: each call is bounded by ``timeout``;
    after a failure, calls are skipped (``get`` answers ``None``) for ``retry_interval`` seconds,
    then one probes again. An outage is logged once (warning), its end once (info)."""

    def __init__(self, url: str, *, timeout: float) -> None:
        try:
            import redis.asyncio  # noqa: F401
        except ImportError:
            raise StackAuthConfigError(
                "STACK_CACHE_URL is set but the redis package is not installed: "
                "pip install 'fastapi-stack-auth[redis]'"
            ) from None
        #: Host and port (or socket path; the settings checked the URL): all a log may say.
        self.where = redis_location(url) or "?"
        self._url = url  # may hold a password: never logged, never in a repr
        self.timeout = timeout
        self.retry_interval = RETRY_INTERVAL
        self.timer: Callable[[], float] = time.monotonic  # for the retry interval
        self._client: Redis | None = None  # from start() to aclose()
        self._down = False
        self._skip_until = 0.0  # on ``timer``; 0: no pause
        self._epoch = 0  # bumped by each failure: only a later call may end the outage

    def __repr__(self) -> str:
        return f"GuardedTier({self.where!r}, {'down' if self._down else 'up'})"

    @property
    def available(self) -> bool:
        """Started, and the last call worked."""
        return self._client is not None and not self._down

    async def start(self) -> None:
        """Connect (one connection pool, no retries); a failure is logged, never raised."""
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        self._down, self._skip_until = False, 0.0
        try:
            if self._client is None:
                self._client = Redis.from_url(
                    self._url,
                    socket_timeout=self.timeout,
                    socket_connect_timeout=self.timeout,
                    retry=Retry(NoBackoff(), 0),  # a retry would only stretch the request
                    client_name="fastapi-stack-auth",
                )
            await _within(self.timeout, self._client.ping())
        except Exception as exc:
            self._failed(exc, " at startup")
        else:
            logger.info("The shared token cache (Redis at %s) is connected", self.where)

    async def aclose(self) -> None:
        """Close the connections (a failure to close is logged, not raised)."""
        client, self._client = self._client, None
        try:
            if client is not None:
                await client.aclose()
        except Exception as exc:
            logger.warning(
                "Closing the shared token cache (Redis at %s) failed (%s)",
                self.where,
                type(exc).__name__,
            )

    async def get(self, key: bytes) -> bytes | None:
        """The value under ``key``; ``None`` if there is none or Redis is unavailable."""
        value = await self._call(lambda client: client.get(key))
        return None if value is None else as_bytes(value)

    async def set(self, key: bytes, value: bytes, ttl_seconds: int) -> None:
        """Store ``value`` under ``key`` for ``ttl_seconds``, unless Redis is unavailable."""
        await self._call(lambda client: client.set(key, value, ex=ttl_seconds))

    async def claim(self, key: bytes, value: bytes, ttl_seconds: int) -> bool | None:
        """Store ``value`` under ``key`` only if the key is absent (``SET NX``): ``True`` if
        stored, ``False`` if the key was there, ``None`` if Redis is unavailable."""

        async def set_if_absent(client: Redis) -> bool:
            return bool(await client.set(key, value, ex=ttl_seconds, nx=True))

        return await self._call(set_if_absent)

    async def delete(self, key: bytes) -> None:
        """Remove ``key``, unless Redis is unavailable."""
        await self._call(lambda client: client.delete(key))

    async def run(self, op: Callable[[Redis], Awaitable[T]]) -> T | None:
        """``op(client)``, bounded and guarded like every call here (a pipeline counts as one
        call); ``None`` if Redis is unavailable or the call failed."""
        return await self._call(op)

    async def _call(self, op: Callable[[Redis], Awaitable[T]]) -> T | None:
        client = self._client
        if client is None:
            return None
        if self._skip_until:
            now = self.timer()
            if now < self._skip_until:
                return None
            self._skip_until = now + self.retry_interval  # this call probes, the others skip
        epoch = self._epoch
        try:
            result = await _within(self.timeout, op(client))
        except Exception as exc:
            self._failed(exc)
            return None
        if self._down and epoch == self._epoch:
            self._down, self._skip_until = False, 0.0
            logger.info("The shared token cache (Redis at %s) is available again", self.where)
        return result

    def _failed(self, exc: Exception, when: str = "") -> None:
        self._epoch += 1
        self._skip_until = self.timer() + self.retry_interval
        if not self._down:
            self._down = True
            # Ours (asyncio's, one type with the builtin from 3.11) or the driver's own socket
            # timeout (redis.exceptions.TimeoutError, which some versions raise first).
            from redis.exceptions import TimeoutError as RedisTimeoutError

            timed_out = isinstance(exc, (asyncio.TimeoutError, TimeoutError, RedisTimeoutError))
            logger.warning(
                "The shared token cache (Redis at %s) is unavailable%s (%s): requests go on "
                "with the in-process cache and Stack Auth; trying it again every %g s",
                self.where,
                when,
                # The type only: a driver's message is not ours to vouch for.
                f"no answer within {self.timeout:g} s" if timed_out else type(exc).__name__,
                self.retry_interval,
            )
