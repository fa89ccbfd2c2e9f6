"""The verified-token cache: a cachetools ``TLRUCache`` with single-flight loads on top."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Generic, TypeAlias, TypeGuard, TypeVar

from cachetools import Cache, TLRUCache

from ._subjects import Tags

if TYPE_CHECKING:
    from ._shared_cache import SharedCache

V = TypeVar("V")
E = TypeVar("E", bound=Exception)

#: A cache key: the SHA-256 digest of a secret (``token_key``: tokens and API keys are never
#: keys in clear), or a plain string of ids, which are not secret.
CacheKey: TypeAlias = str | bytes

#: A loader returns the value and the wall-clock time (epoch seconds) after which it is stale.
Loader = Callable[[], Awaitable[tuple[V, float]]]
#: The subject tags (``_subjects``) of a loaded value.
Tagger = Callable[[V], Tags]
#: Called with a loaded value before it is cached or returned; raises to refuse it.
Vetter = Callable[[V], None]


def token_key(token: str) -> bytes:
    """Cache key of a token: its SHA-256 digest, so raw tokens are never kept as keys."""
    return hashlib.sha256(token.encode()).digest()


class TokenCache(Generic[V]):
    """Maps keys (``CacheKey``: token digests, or ids) to verified values.

    An entry lives ``ttl`` seconds but never past the expiry its loader reports (the token's
    ``exp``), measured on the wall clock like ``exp`` itself; at ``maxsize`` entries the least
    recently used goes. ``get_or_load`` runs one load per key at a time: concurrent callers for
    the same key share it. Failures are not cached.

    With a ``shared`` tier (Redis, see ``_shared_cache``), a load asks the tier first and calls
    the loader only on a miss there; what the loader returns is written to the tier too.

    Each entry carries the subject tags (``_subjects``) of the users and teams it is about, so
    that ``drop`` can forget them all when Stack says one of them changed; a load in flight
    during a ``drop`` or ``clear`` caches nothing (it may have read the world before the
    change).
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
        # value: (cached value, its own expiry, its tags); TLRUCache asks ``_expiry`` when it
        # is stored.
        self._entries: TLRUCache[CacheKey, tuple[V, float, Tags]] = TLRUCache(
            maxsize, ttu=self._expiry, timer=clock
        )
        self._inflight: dict[CacheKey, asyncio.Task[V]] = {}
        self._generation = 0  # bumped by ``drop`` and ``clear``: loads started before keep out

    def _expiry(self, _key: CacheKey, entry: tuple[V, float, Tags], now: float) -> float:
        return min(now + self.ttl, entry[1])

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: CacheKey) -> V | None:
        """The cached value for ``key``, or ``None``."""
        try:
            return self._entries[key][0]  # one expiry check (``get`` would make two)
        except KeyError:
            return None

    def put(self, key: CacheKey, value: V, expires_at: float, tags: Tags = ()) -> None:
        """Cache ``value`` until ``expires_at`` (epoch seconds) or the TTL, whichever is first;
        ``tags`` name the users and teams it is about (see ``drop``)."""
        if min(self.ttl, expires_at - self._clock()) > 0:
            self._entries[key] = (value, expires_at, tags)

    def discard(self, key: CacheKey) -> None:
        """Forget ``key`` (e.g. after a sign-out the app learned about)."""
        self._entries.pop(key, None)

    def clear(self) -> None:
        """Forget everything, and let no load in flight cache what it finds."""
        self._entries.clear()
        self._stale_loads()

    def drop(self, tag: str) -> int:
        """Forget every entry tagged ``tag``, and let no load in flight cache what it finds;
        answers how many entries went.

        A scan of this cache: O(entries), about 0.25 µs each, so 2-3 ms at 10,000 entries.
        It runs for invalidations, which are rare; keeping an index up to date instead would
        cost every ``put`` and leak with every eviction.
        """
        self._stale_loads()
        entries = self._entries
        # The base class's plain dict access: no expiry check, no reordering of the LRU.
        peek = Cache.__getitem__
        doomed = [key for key in list(Cache.__iter__(entries)) if tag in peek(entries, key)[2]]
        for key in doomed:
            entries.pop(key, None)
        return len(doomed)

    def _stale_loads(self) -> None:
        # Loads running now may have read the world before the change: they still answer
        # their waiters, but cache nothing, and later callers start a load of their own.
        self._generation += 1
        self._inflight.clear()

    async def get_or_load(
        self,
        key: CacheKey,
        loader: Loader[V],
        *,
        tags: Tagger[V] | None = None,
        vet: Vetter[V] | None = None,
    ) -> V:
        """The cached value for ``key``, else the result of one shared call to ``loader``.

        ``tags`` gives the loaded value's subject tags; ``vet`` sees the loaded value (from
        the loader or the shared tier) before anything caches it, and raises to refuse it.
        """
        value = self.get(key)
        if value is not None:
            return value
        task = self._inflight.get(key)
        if task is None:
            load = self._load(key, loader, tags, vet)
            task = asyncio.get_running_loop().create_task(load)
            self._inflight[key] = task
            task.add_done_callback(lambda done: self._done(key, done))
        # shield: a caller that goes away (client disconnect) must not cancel the others' load.
        value = await asyncio.shield(task)
        if vet is not None:
            vet(value)  # again: a waiter resumes later; the world may have changed since
        return value

    async def _load(
        self, key: CacheKey, loader: Loader[V], tagger: Tagger[V] | None, vet: Vetter[V] | None
    ) -> V:
        generation = self._generation
        shared = self.shared
        if shared is not None:
            found = await shared.get(key)
            if found is not None:
                value = found[0]
                if vet is not None:
                    vet(value)
                if generation == self._generation:
                    # ``until`` is when the worker that verified it stops trusting it: this one
                    # trusts it no longer, so a token is never trusted for more than ``ttl``.
                    self.put(key, value, found[1], tagger(value) if tagger else ())
                return value
        value, expires_at = await loader()
        if vet is not None:
            vet(value)
        if generation != self._generation:
            return value  # invalidated while it loaded: answered, not kept
        tags = tagger(value) if tagger else ()
        self.put(key, value, expires_at, tags)
        if shared is not None:
            until = min(expires_at, self._clock() + self.ttl)
            if tags:
                await shared.put(key, value, until, tags)
            else:
                await shared.put(key, value, until)
        return value

    def _done(self, key: CacheKey, task: asyncio.Task[V]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
        if not task.cancelled():
            task.exception()  # mark retrieved: every waiter may have gone away


#: Seconds a refusal is remembered: one forged or revoked credential sent again and again
#: costs one upstream call per this many seconds, not one per request.
REJECTION_TTL = 5.0


async def load_unless_refused(
    cache: TokenCache[V],
    refused: MutableMapping[bytes, E],
    key: bytes,
    loader: Loader[V],
    is_verdict: Callable[[Exception], TypeGuard[E]],
    *,
    tags: Tagger[V] | None = None,
    vet: Vetter[V] | None = None,
) -> V:
    """The miss path of a credential cache: a refusal remembered is raised again without a
    call; else one shared load, and a verdict it raises is remembered."""
    known = refused.get(key)
    if known is not None:
        raise known.with_traceback(None)
    try:
        return await cache.get_or_load(key, loader, tags=tags, vet=vet)
    except Exception as exc:
        if is_verdict(exc):
            refused[key] = exc
        raise
