"""The token cache: hits, TTL capped at exp, LRU eviction, single-flight, failures not cached."""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from fastapi_stack_auth import TokenCache
from fastapi_stack_auth._cache import token_key


class Clock:
    """A hand-driven clock, for both wall time (epoch) and the monotonic timer."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_cache(clock: Clock, *, ttl: float = 30, maxsize: int = 100) -> TokenCache[str]:
    return TokenCache(maxsize=maxsize, ttl=ttl, clock=clock, timer=clock)


def test_key_is_sha256_of_the_token_not_the_token() -> None:
    key = token_key("abc.def.ghi")
    assert key == hashlib.sha256(b"abc.def.ghi").digest()


def test_hit_until_ttl() -> None:
    clock = Clock()
    cache = make_cache(clock, ttl=30)
    cache.put(b"k", "v", expires_at=clock.now + 600)
    clock.now += 29.9
    assert cache.get(b"k") == "v"
    clock.now += 0.2
    assert cache.get(b"k") is None


def test_entry_never_outlives_token_exp() -> None:
    clock = Clock()
    cache = make_cache(clock, ttl=30)
    cache.put(b"k", "v", expires_at=clock.now + 5)  # token expires before the TTL
    clock.now += 4.9
    assert cache.get(b"k") == "v"
    clock.now += 0.2
    assert cache.get(b"k") is None


def test_already_expired_value_is_not_cached() -> None:
    clock = Clock()
    cache = make_cache(clock)
    cache.put(b"k", "v", expires_at=clock.now - 1)
    assert cache.get(b"k") is None
    assert len(cache) == 0


def test_ttl_zero_disables_caching() -> None:
    clock = Clock()
    cache = make_cache(clock, ttl=0)
    cache.put(b"k", "v", expires_at=clock.now + 600)
    assert cache.get(b"k") is None


def test_eviction_at_max_size_drops_least_recently_used() -> None:
    clock = Clock()
    cache = make_cache(clock, maxsize=3)
    for key in (b"a", b"b", b"c"):
        cache.put(key, key.decode(), expires_at=clock.now + 600)
    assert cache.get(b"a") == "a"  # a is now the most recently used
    cache.put(b"d", "d", expires_at=clock.now + 600)
    assert len(cache) == 3
    assert cache.get(b"b") is None
    assert [cache.get(k) for k in (b"a", b"c", b"d")] == ["a", "c", "d"]


def test_discard_and_clear() -> None:
    clock = Clock()
    cache = make_cache(clock)
    cache.put(b"a", "a", expires_at=clock.now + 600)
    cache.put(b"b", "b", expires_at=clock.now + 600)
    cache.discard(b"a")
    assert cache.get(b"a") is None
    cache.clear()
    assert len(cache) == 0


async def test_single_flight_shares_one_load() -> None:
    clock = Clock()
    cache = make_cache(clock)
    calls = 0
    started, release = asyncio.Event(), asyncio.Event()

    async def loader() -> tuple[str, float]:
        nonlocal calls
        calls += 1
        started.set()
        await release.wait()
        return "user", clock.now + 600

    waiters = [asyncio.create_task(cache.get_or_load(b"k", loader)) for _ in range(100)]
    await started.wait()  # the load runs only after all 100 waiters have asked
    release.set()
    assert await asyncio.gather(*waiters) == ["user"] * 100
    assert calls == 1
    assert await cache.get_or_load(b"k", loader) == "user"  # now a plain hit
    assert calls == 1


async def test_failures_are_shared_but_not_cached() -> None:
    clock = Clock()
    cache = make_cache(clock)
    calls = 0

    async def failing() -> tuple[str, float]:
        nonlocal calls
        calls += 1
        raise RuntimeError("upstream down")

    results = await asyncio.gather(
        *(cache.get_or_load(b"k", failing) for _ in range(10)), return_exceptions=True
    )
    assert all(isinstance(r, RuntimeError) for r in results)
    assert calls == 1
    assert cache.get(b"k") is None

    async def working() -> tuple[str, float]:
        return "user", clock.now + 600

    assert await cache.get_or_load(b"k", working) == "user"


async def test_a_cancelled_waiter_does_not_cancel_the_others() -> None:
    clock = Clock()
    cache = make_cache(clock)
    started, release = asyncio.Event(), asyncio.Event()

    async def loader() -> tuple[str, float]:
        started.set()
        await release.wait()
        return "user", clock.now + 600

    first = asyncio.create_task(cache.get_or_load(b"k", loader))
    second = asyncio.create_task(cache.get_or_load(b"k", loader))
    await started.wait()
    first.cancel()
    release.set()
    assert await second == "user"
    with pytest.raises(asyncio.CancelledError):
        await first
    assert cache.get(b"k") == "user"
