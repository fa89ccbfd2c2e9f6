"""The verified-token cache: a cachetools ``TLRUCache`` with single-flight loads on top."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Generic, TypeVar

from cachetools import TLRUCache

if TYPE_CHECKING:
    from ._shared_cache import SharedCache

V = TypeVar("V")

#: A loader returns the value and the wall-clock time (epoch seconds) after which it is stale.
Loader = Callable[[], Awaitable[tuple[V, float]]]


def token_key(token: str) -> bytes:
    """Cache key of a token: its SHA-256 digest, so raw tokens are never kept as keys."""
    return hashlib.sha256(token.encode()).digest()


class TokenCache(Generic[V]):
    """Maps token digests to verified values.

    An entry lives ``ttl`` seconds but never past the expiry its loader reports (the token's
    ``exp``), measured on the wall clock like ``exp`` itself; at ``maxsize`` entries the least
    recently used goes. ``get_or_load`` runs one load per key at a time: concurrent callers for
    the same key share it. Failures are not cached.

    With a ``shared`` tier (Redis, see ``_shared_cache``), a load asks the tier first and calls
    the loader only on a miss there; what the loader returns is written to the tier too.
    """

    def __init__(
        self,
        *,
        maxsize: int,
        ttl: float,
        clock: Callable[[], float] = time.time,
        shared: SharedCache[V] | None = None,
    ) -> None:
        self.ttl = ttl
        #: Most entries held; the least recently used goes first.
        self.maxsize = maxsize
        #: The shared tier consulted on the miss path (``None``: in-process only).
        self.shared = shared
        self._clock = clock
        # value: (cached value, its own expiry); TLRUCache asks ``_expiry`` when it is stored.
        self._entries: TLRUCache[bytes, tuple[V, float]] = TLRUCache(
            maxsize, ttu=self._expiry, timer=clock
        )
        self._inflight: dict[bytes, asyncio.Task[V]] = {}

    def _expiry(self, _key: bytes, entry: tuple[V, float], now: float) -> float:
        return min(now + self.ttl, entry[1])

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: bytes) -> V | None:
        """The cached value for ``key``, or ``None``."""
        try:
            return self._entries[key][0]  # one expiry check (``get`` would make two)
        except KeyError:
            return None

    def put(self, key: bytes, value: V, expires_at: float) -> None:
        """Cache ``value`` until ``expires_at`` (epoch seconds) or the TTL, whichever is first."""
        if min(self.ttl, expires_at - self._clock()) > 0:
            self._entries[key] = (value, expires_at)

    def discard(self, key: bytes) -> None:
        """Forget ``key`` (e.g. after a sign-out the app learned about)."""
        self._entries.pop(key, None)

    def clear(self) -> None:
        """Forget everything."""
        self._entries.clear()

    async def get_or_load(self, key: bytes, loader: Loader[V]) -> V:
        """The cached value for ``key``, else the result of one shared call to ``loader``."""
        value = self.get(key)
        if value is not None:
            return value
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._load(key, loader))
            self._inflight[key] = task
            task.add_done_callback(lambda done: self._done(key, done))
        # shield: a caller that goes away (client disconnect) must not cancel the others' load.
        return await asyncio.shield(task)

    async def _load(self, key: bytes, loader: Loader[V]) -> V:
        shared = self.shared
        if shared is not None:
            found = await shared.get(key)
            if found is not None:
                # ``until`` is when the worker that verified it stops trusting it: this one
                # trusts it no longer, so a token is never trusted for more than ``ttl`` in all.
                self.put(key, *found)
                return found[0]
        value, expires_at = await loader()
        self.put(key, value, expires_at)
        if shared is not None:
            await shared.put(key, value, min(expires_at, self._clock() + self.ttl))
        return value

    def _done(self, key: bytes, task: asyncio.Task[V]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
        if not task.cancelled():
            task.exception()  # mark retrieved: every waiter may have gone away
