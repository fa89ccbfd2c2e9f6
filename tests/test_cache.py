"""The token cache: hits, TTL capped at the token's exp (wall clock), LRU eviction, single-flight,
failures not cached, cancelled waiters, and the shared tier on the miss path only."""

from __future__ import annotations

import asyncio
import gc
import hashlib
import math
from typing import Any, cast

import pytest

from fastapi_stack_auth._cache import TokenCache, token_key
from fastapi_stack_auth._shared_cache import SharedCache


class Clock:
    """A hand-driven wall clock (epoch seconds), as ``exp`` is."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_cache(
    clock: Clock, *, ttl: float = 30, maxsize: int = 100, shared: Any = None
) -> TokenCache[str]:
    return TokenCache(
        maxsize=maxsize, ttl=ttl, clock=clock, shared=cast("SharedCache[str] | None", shared)
    )


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


def test_without_a_ttl_an_entry_lives_until_exp_on_the_wall_clock() -> None:
    # JWT mode caches until exp (ttl=inf). The clock is the wall clock, like exp itself: a
    # machine suspended past exp finds the entry gone when it wakes up.
    clock = Clock()
    cache = make_cache(clock, ttl=math.inf)
    cache.put(b"k", "v", expires_at=clock.now + 600)
    clock.now += 599
    assert cache.get(b"k") == "v"
    clock.now += 3600  # the suspend
    assert cache.get(b"k") is None
    assert len(cache) == 0


def test_already_expired_value_is_not_cached() -> None:
    clock = Clock()
    cache = make_cache(clock)
    cache.put(b"k", "v", expires_at=clock.now - 1)
    cache.put(b"now", "v", expires_at=clock.now)
    assert cache.get(b"k") is None
    assert cache.get(b"now") is None
    assert len(cache) == 0


def test_ttl_zero_disables_caching() -> None:
    clock = Clock()
    cache = make_cache(clock, ttl=0)
    cache.put(b"k", "v", expires_at=clock.now + 600)
    assert cache.get(b"k") is None
    assert len(cache) == 0


def test_eviction_at_max_size_drops_least_recently_used() -> None:
    clock = Clock()
    cache = make_cache(clock, maxsize=3)
    assert cache.maxsize == 3
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
    cache.discard(b"never there")
    assert cache.get(b"a") is None
    assert cache.get(b"b") == "b"
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


async def test_loads_of_different_keys_do_not_wait_for_each_other() -> None:
    clock = Clock()
    cache = make_cache(clock)
    release = asyncio.Event()

    async def slow() -> tuple[str, float]:
        await release.wait()
        return "slow", clock.now + 600

    async def quick() -> tuple[str, float]:
        return "quick", clock.now + 600

    blocked = asyncio.create_task(cache.get_or_load(b"a", slow))
    assert await cache.get_or_load(b"b", quick) == "quick"
    assert not blocked.done()
    release.set()
    assert await blocked == "slow"


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


async def test_a_load_whose_only_waiter_went_away_still_completes() -> None:
    # A client that disconnects must not waste the upstream call it started.
    clock = Clock()
    cache = make_cache(clock)
    started, release = asyncio.Event(), asyncio.Event()

    async def loader() -> tuple[str, float]:
        started.set()
        await release.wait()
        return "user", clock.now + 600

    async def must_not_run() -> tuple[str, float]:
        raise AssertionError("a second load started")

    waiter = asyncio.create_task(cache.get_or_load(b"k", loader))
    await started.wait()
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    later = asyncio.create_task(cache.get_or_load(b"k", must_not_run))  # joins the load
    release.set()
    assert await later == "user"
    assert cache.get(b"k") == "user"


async def test_a_failed_load_nobody_waits_for_is_not_reported_as_unretrieved() -> None:
    clock = Clock()
    cache = make_cache(clock)
    started, release = asyncio.Event(), asyncio.Event()
    reported: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, context: reported.append(context))

    async def loader() -> tuple[str, float]:
        started.set()
        await release.wait()
        raise RuntimeError("upstream down")

    waiter = asyncio.create_task(cache.get_or_load(b"k", loader))
    await started.wait()
    load = cache._inflight[b"k"]
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    release.set()
    await asyncio.wait([load])  # waits without retrieving the exception
    assert not cache._inflight
    del load, waiter
    gc.collect()
    loop.set_exception_handler(None)
    assert reported == []  # no "Task exception was never retrieved"


# --- the shared tier -----------------------------------------------------------------------------


class Tier:
    """A stand-in ``SharedCache``: a dict of ``(value, until)``, recording every call."""

    def __init__(self) -> None:
        self.entries: dict[bytes, tuple[str, float]] = {}
        self.calls: list[tuple[str, bytes]] = []

    async def get(self, digest: bytes) -> tuple[str, float] | None:
        self.calls.append(("get", digest))
        return self.entries.get(digest)

    async def put(self, digest: bytes, value: str, until: float) -> None:
        self.calls.append(("put", digest))
        self.entries[digest] = (value, until)


async def test_shared_tier_is_consulted_on_the_miss_path_only() -> None:
    clock, tier = Clock(), Tier()
    cache = make_cache(clock, ttl=30, shared=tier)
    calls = 0

    async def loader() -> tuple[str, float]:
        nonlocal calls
        calls += 1
        return "user", clock.now + 600

    assert await cache.get_or_load(b"k", loader) == "user"
    assert calls == 1
    # A miss asked the tier, then wrote what the loader verified, trusted for the TTL only.
    assert tier.calls == [("get", b"k"), ("put", b"k")]
    assert tier.entries[b"k"] == ("user", clock.now + 30)
    for _ in range(5):  # hits: neither the tier nor the loader is asked
        assert await cache.get_or_load(b"k", loader) == "user"
    assert tier.calls == [("get", b"k"), ("put", b"k")]
    assert calls == 1


async def test_a_shared_hit_spares_the_load_and_is_trusted_no_longer_than_there() -> None:
    clock, tier = Clock(), Tier()
    cache = make_cache(clock, ttl=30, shared=tier)
    tier.entries[b"k"] = ("from another worker", clock.now + 10)

    async def loader() -> tuple[str, float]:
        raise AssertionError("the loader must not run on a shared hit")

    assert await cache.get_or_load(b"k", loader) == "from another worker"
    assert tier.calls == [("get", b"k")]  # not written back
    clock.now += 9.9
    assert cache.get(b"k") == "from another worker"
    clock.now += 0.2  # the other worker's trust has run out: so has ours
    assert cache.get(b"k") is None


async def test_the_shared_tier_is_written_no_later_than_the_tokens_exp() -> None:
    clock, tier = Clock(), Tier()
    cache = make_cache(clock, ttl=30, shared=tier)

    async def loader() -> tuple[str, float]:
        return "user", clock.now + 5

    await cache.get_or_load(b"k", loader)
    assert tier.entries[b"k"] == ("user", clock.now + 5)


async def test_concurrent_misses_ask_the_shared_tier_once() -> None:
    clock = Clock()
    release = asyncio.Event()

    asked = asyncio.Event()

    class SlowTier(Tier):
        async def get(self, digest: bytes) -> tuple[str, float] | None:
            self.calls.append(("get", digest))
            asked.set()
            await release.wait()
            return None

    tier = SlowTier()
    cache = make_cache(clock, shared=tier)

    async def loader() -> tuple[str, float]:
        return "user", clock.now + 600

    waiters = [asyncio.create_task(cache.get_or_load(b"k", loader)) for _ in range(20)]
    await asked.wait()
    release.set()
    assert await asyncio.gather(*waiters) == ["user"] * 20
    assert tier.calls == [("get", b"k"), ("put", b"k")]


async def test_a_failed_load_writes_nothing_to_the_shared_tier() -> None:
    clock, tier = Clock(), Tier()
    cache = make_cache(clock, shared=tier)

    async def failing() -> tuple[str, float]:
        raise RuntimeError("upstream down")

    with pytest.raises(RuntimeError):
        await cache.get_or_load(b"k", failing)
    assert tier.calls == [("get", b"k")]
    assert tier.entries == {}
