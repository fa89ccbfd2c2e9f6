"""The shared cache tier (Redis): against real redis-server processes on loopback.

Stack Auth is mocked with respx; Redis is real (``tests/redis_fixtures.py``). Every test here
also checks that nothing was left unclosed: no ResourceWarning, no "Unclosed ..." warning.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import respx
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from fastapi_stack_auth import (
    StackAuth,
    StackAuthConfigError,
    StackUser,
    _redis_tier,
    current_user,
)
from fastapi_stack_auth._cache import TokenCache, token_key
from fastapi_stack_auth._redis_tier import GuardedTier, _wait_for, _within
from fastapi_stack_auth._settings import load_settings
from fastapi_stack_auth._shared_cache import (
    KEY_PREFIX,
    SharedCache,
    dump_identity,
    dump_profile,
    load_identity,
    load_profile,
)
from fastapi_stack_auth.models import Identity, TokenClaims
from tests.conftest import PROJECT_ID, SECRET_KEY, USER_ID, mint_token, stack_error, user_body
from tests.emulator_helpers import jwt_parts
from tests.jwt_helpers import JwksEndpoint, KeyRing
from tests.redis_fixtures import RedisServer, free_port

pytest_plugins = ["tests.redis_fixtures"]
pytestmark = pytest.mark.usefixtures("nothing_left_unclosed")

TIER_LOGGER = "fastapi_stack_auth"
REDIS_PASSWORD = "redis-pw-0123456789-SECRET"


def build_app(settings: dict[str, Any]) -> tuple[FastAPI, StackAuth]:
    stack = StackAuth(**settings)
    app = FastAPI()
    stack.init_app(app)

    @app.get("/me")
    async def me(user: StackUser = Depends(current_user)) -> dict[str, str]:
        return {"id": user.id}

    return app, stack


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def redis_key(token: str, kind: str = "remote", project: str = PROJECT_ID) -> bytes:
    return f"{KEY_PREFIX}:{project}:{kind}:{hashlib.sha256(token.encode()).hexdigest()}".encode()


def tier_records(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == TIER_LOGGER and r.levelno == level and "shared token cache" in r.getMessage()
    ]


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _dump_str(value: str, until: float) -> bytes:
    return f"{until!r}|{value}".encode()


def _load_str(data: bytes) -> tuple[str, float]:
    until, value = data.decode().split("|", 1)
    return value, float(until)


STR_CODEC = (_dump_str, _load_str)


# --- values: what is stored, and how it comes back -------------------------------------------


def _identity_with_extras() -> Identity:
    claims = TokenClaims.model_validate(
        {
            "sub": USER_ID,
            "aud": PROJECT_ID,
            "exp": int(time.time()) + 600,
            "branchId": "dev",  # the alias
            "jti": "a-claim-newer-stack-versions-send",
            "nested_extra": {"a": [1, 2, {"b": None}]},
        }
    )
    body = user_body(
        selected_team_id="team-1",
        selected_team={"id": "team-1", "display_name": "T", "team_extra": True},
        oauth_providers=[{"id": "github", "account_id": "42", "email": None, "scope": "x"}],
        restricted_reason={"type": "email_not_verified", "since": 5},
        client_metadata={"theme": "dark", "n": 1.5},
        future_field={"deep": ["x", 1]},
    )
    return Identity(claims=claims, user=StackUser.model_validate(body))


def test_identity_round_trip_keeps_every_field_and_extra() -> None:
    identity = _identity_with_extras()
    until = float(identity.claims.exp - 100)
    loaded, loaded_until = load_identity(dump_identity(identity, until))
    assert loaded == identity
    assert loaded_until == until
    assert loaded.claims.branch_id == "dev"
    assert loaded.claims.model_extra == {
        "jti": "a-claim-newer-stack-versions-send",
        "nested_extra": {"a": [1, 2, {"b": None}]},
    }
    assert loaded.user.model_extra == {"future_field": {"deep": ["x", 1]}}
    assert loaded.user.selected_team is not None
    assert loaded.user.selected_team.model_extra == {"team_extra": True}
    assert loaded.user.oauth_providers[0].model_extra == {"scope": "x"}
    # Computed fields (signed_up_at, created_at, ...) are not stored, so not read back as extras.
    assert loaded.user.signed_up_at == identity.user.signed_up_at
    snapshot = Identity(claims=identity.claims, user=identity.user, snapshot=True)
    assert load_identity(dump_identity(snapshot, until))[0].snapshot is True


def test_identity_is_never_trusted_past_the_token_exp() -> None:
    identity = _identity_with_extras()
    _, until = load_identity(dump_identity(identity, float(identity.claims.exp + 3600)))
    assert until == identity.claims.exp


def test_profile_round_trip() -> None:
    user = _identity_with_extras().user
    loaded, until = load_profile(dump_profile(user, 123.5))
    assert (loaded, until) == (user, 123.5)
    assert loaded.model_extra == user.model_extra


# --- keys and TTLs, read back from Redis ------------------------------------------------------


async def test_keys_are_project_scoped_digests_and_no_token_is_stored(
    stack_settings: dict[str, Any],
    users_me: respx.Route,
    redis_server: RedisServer,
    redis_url: str,
) -> None:
    tokens = [mint_token(), mint_token(kind="restricted")]
    async with StackAuth(**stack_settings, cache_url=redis_url) as stack:
        for token in tokens:
            await stack.authenticate(token)
    stored = redis_server.cached_values()
    assert sorted(stored) == sorted(redis_key(token) for token in tokens)
    everything = b"\n".join(key + b"=" + value for key, value in stored.items())
    for token in tokens:
        assert token.encode() not in everything
        for segment in token.split("."):  # not even a part of one
            assert segment.encode() not in everything
    assert SECRET_KEY.encode() not in everything


async def test_ttl_never_outlives_the_token_exp(
    stack_settings: dict[str, Any],
    users_me: respx.Route,
    redis_server: RedisServer,
    redis_url: str,
) -> None:
    short, long = mint_token(exp_in=12), mint_token(exp_in=600)
    async with StackAuth(**stack_settings, cache_url=redis_url, cache_ttl=30) as stack:
        await stack.authenticate(short)
        await stack.authenticate(long)
    with redis_server.client() as client:
        assert 10 <= client.ttl(redis_key(short)) <= 12
        assert 28 <= client.ttl(redis_key(long)) <= 30
        for token in (short, long):
            value = client.get(redis_key(token))
            assert value is not None
            _, until = load_identity(value[32:])  # after the 32-byte tag
            assert until <= jwt_parts(token)[1]["exp"]


async def test_ttl_is_whole_seconds_rounded_down_and_short_lives_are_not_written(
    redis_server: RedisServer, redis_url: str
) -> None:
    clock = Clock(time.time())
    tier = GuardedTier(redis_url, timeout=1.0)
    await tier.start()
    shared = SharedCache(tier, "test:p:remote:", "k", STR_CODEC, clock=clock)
    await shared.put(b"a" * 32, "v", clock.now + 29.99)
    await shared.put(b"b" * 32, "v", clock.now + 0.99)
    await shared.put(b"c" * 32, "v", clock.now - 5)
    await shared.put(b"d" * 32, "v", math.inf)
    key = b"test:p:remote:" + (b"a" * 32).hex().encode()
    assert list(redis_server.cached_values()) == [key]
    with redis_server.client() as client:
        assert 28_000 < client.pttl(key) <= 29_000
    assert await shared.get(b"a" * 32) == ("v", clock.now + 29.99)
    clock.now += 30  # an entry past its time that Redis has not dropped yet is not used
    assert await shared.get(b"a" * 32) is None
    await tier.aclose()


async def test_cache_ttl_zero_writes_nothing(
    stack_settings: dict[str, Any],
    users_me: respx.Route,
    redis_server: RedisServer,
    redis_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with StackAuth(**stack_settings, cache_url=redis_url, cache_ttl=0) as stack:
        assert stack.shared_tier is None
        await stack.authenticate(mint_token())
    assert redis_server.cached_values() == {}
    assert any("STACK_CACHE_URL is set but unused" in r.getMessage() for r in caplog.records)


# --- the point of it: many instances, one upstream call ----------------------------------------


def test_two_apps_sharing_redis_make_one_upstream_call_per_token(
    stack_settings: dict[str, Any], users_me: respx.Route, redis_url: str
) -> None:
    settings = {**stack_settings, "cache_url": redis_url}
    (app_a, _), (app_b, stack_b) = build_app(settings), build_app(settings)
    token, other = mint_token(), mint_token()
    with TestClient(app_a) as a, TestClient(app_b) as b:
        for client in (a, b, a, b):
            response = client.get("/me", headers=bearer(token))
            assert response.status_code == 200
            assert response.json() == {"id": USER_ID}
        assert users_me.call_count == 1
        assert len(stack_b.pipeline.cache) == 1  # b filled its in-process cache from Redis
        for client in (b, a):
            assert client.get("/me", headers=bearer(other)).status_code == 200
        assert users_me.call_count == 2


async def test_a_shared_hit_is_the_same_identity(
    stack_settings: dict[str, Any], mock_api: respx.MockRouter, redis_url: str
) -> None:
    body = user_body(future_field={"x": 1}, client_metadata={"plan": "pro"})
    route = mock_api.get("/users/me").mock(return_value=httpx.Response(200, json=body))
    token = mint_token(jti_extra="kept")
    settings = {**stack_settings, "cache_url": redis_url}
    async with StackAuth(**settings) as first, StackAuth(**settings) as second:
        verified = await first.authenticate(token)
        shared = await second.authenticate(token)
    assert route.call_count == 1
    assert shared == verified
    assert shared.user.model_extra == {"future_field": {"x": 1}}
    assert shared.claims.model_extra is not None
    assert shared.claims.model_extra["jti_extra"] == "kept"


async def test_concurrent_requests_in_one_process_make_one_redis_lookup(
    stack_settings: dict[str, Any], users_me: respx.Route, redis_url: str
) -> None:
    settings = {**stack_settings, "cache_url": redis_url}
    token = mint_token()
    async with StackAuth(**settings) as first, StackAuth(**settings) as second:
        await first.authenticate(token)
        assert second.shared_tier is not None
        lookups = 0
        real_get = second.shared_tier.get

        async def counting_get(key: bytes) -> bytes | None:
            nonlocal lookups
            lookups += 1
            return await real_get(key)

        second.shared_tier.get = counting_get  # type: ignore[method-assign]
        results = await asyncio.gather(*(second.authenticate(token) for _ in range(50)))
    assert {r.user.id for r in results} == {USER_ID}
    assert lookups == 1
    assert users_me.call_count == 1


async def test_a_shared_entry_is_trusted_by_no_worker_past_the_ttl_since_verification(
    redis_server: RedisServer, redis_url: str
) -> None:
    """At most STACK_CACHE_TTL after Stack verified the token, in all workers together: a
    worker that takes an entry from Redis trusts it for what is left of it, and does not
    share it again (which would restart the clock for the others)."""
    clock = Clock(time.time())  # hand-driven; Redis itself keeps the entry meanwhile
    tier = GuardedTier(redis_url, timeout=1.0)
    await tier.start()

    def worker() -> TokenCache[str]:
        shared = SharedCache(tier, f"{KEY_PREFIX}:p:remote:", "k", STR_CODEC, clock=clock)
        return TokenCache(maxsize=10, ttl=30, clock=clock, shared=shared)

    calls = 0

    async def verify() -> tuple[str, float]:
        nonlocal calls
        calls += 1
        return "user", clock.now + 600  # the token's exp

    a, b, c = worker(), worker(), worker()
    key = token_key("a token")
    verified_at = clock.now
    assert await a.get_or_load(key, verify) == "user"
    [(redis_key_a, written)] = redis_server.cached_values().items()
    assert _load_str(written[32:]) == ("user", verified_at + 30)
    clock.now += 20
    assert await b.get_or_load(key, verify) == "user"
    assert calls == 1
    assert redis_server.cached_values() == {redis_key_a: written}  # not written again by b
    with redis_server.client() as admin:
        assert admin.ttl(redis_key_a) > 25  # real seconds: Redis has not dropped it
    clock.now += 9.9
    assert b.get(key) == "user"
    assert await c.get_or_load(key, verify) == "user"
    assert calls == 1
    clock.now += 0.2  # 30.1 s after a verified it: no worker trusts it any more
    assert (a.get(key), b.get(key), c.get(key)) == (None, None, None)
    assert await c.get_or_load(key, verify) == "user"  # the entry still in Redis is ignored
    assert calls == 2
    await tier.aclose()


# --- serve-stale stays in the process that serves it (issue 9.3) ------------------------------


class FlakyStack:
    """Worker A's own way to Stack Auth (an httpx transport): up, then unreachable. Like
    ``mock_api``, it serves no JWKS, so Stack alone judges the test tokens."""

    def __init__(self) -> None:
        self.up = True
        self.users_me_calls = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path != "/api/v1/users/me":
            return httpx.Response(404)
        self.users_me_calls += 1
        if not self.up:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(200, json=user_body())


def test_a_stale_answer_is_not_shared_and_a_healthy_worker_asks_stack(
    stack_settings: dict[str, Any],
    mock_api: respx.MockRouter,
    redis_server: RedisServer,
    redis_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A, cut off from Stack, lets a user in on what Stack confirmed earlier (serve-stale) but
    writes nothing to Redis; B reaches Stack, which deleted the user meanwhile: B asks it
    (nothing of A's outage in Redis to accept) and answers 401."""
    token = mint_token()
    flaky = FlakyStack()
    settings = {**stack_settings, "cache_url": redis_url}
    app_a, stack_a = build_app(
        {**settings, "stale_grace": 300, "max_attempts": 1, "transport": httpx.MockTransport(flaky)}
    )
    app_b, _ = build_app(settings)
    deleted = mock_api.get("/users/me").mock(
        return_value=stack_error(400, "CANNOT_GET_OWN_USER_WITHOUT_USER")
    )
    with caplog.at_level(logging.DEBUG), TestClient(app_a) as a, TestClient(app_b) as b:
        assert a.get("/me", headers=bearer(token)).status_code == 200  # Stack confirms it
        assert list(redis_server.cached_values()) == [redis_key(token)]  # and it is shared
        # STACK_CACHE_TTL passes: A's own entry and the shared one expire.
        stack_a.pipeline.cache.clear()
        with redis_server.client() as admin:
            admin.delete(redis_key(token))

        flaky.up = False
        for _ in range(2):
            response = a.get("/me", headers=bearer(token))
            assert response.status_code == 200
            assert response.json() == {"id": USER_ID}
        assert flaky.users_me_calls == 2  # the second stale answer: A's in-process cache
        assert stack_a.pipeline.cache.get(token_key(token)) is not None
        assert redis_server.cached_values() == {}

        response = b.get("/me", headers=bearer(token))
        assert response.status_code == 401
        assert response.json()["code"] == "USER_NOT_FOUND"
        assert deleted.call_count == 1
        assert redis_server.cached_values() == {}
    assert [r for r in caplog.records if "STACK_STALE_GRACE" in r.getMessage()]
    text = caplog.text + "\n".join(str(r.__dict__) for r in caplog.records)
    for secret in (token, redis_key(token).decode(), token_key(token).hex(), SECRET_KEY):
        assert secret not in text


# --- Redis faults: no request fails, one warning per outage ----------------------------------


def test_redis_down_at_startup(
    stack_settings: dict[str, Any],
    users_me: respx.Route,
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = free_port()  # nothing listens there
    app, stack = build_app({**stack_settings, "cache_url": f"redis://127.0.0.1:{port}/0"})
    tokens = [mint_token() for _ in range(3)]
    with caplog.at_level(logging.INFO), TestClient(app) as client:
        assert stack.shared_tier is not None
        assert not stack.shared_tier.available
        stack.shared_tier.retry_interval = 0  # probe the dead Redis on every miss
        for token in tokens * 2:
            assert client.get("/me", headers=bearer(token)).status_code == 200
    assert users_me.call_count == 3  # the in-process cache still works
    [warning] = tier_records(caplog, logging.WARNING)
    assert f"127.0.0.1:{port}" in warning
    assert "at startup" in warning


def test_redis_killed_mid_run_then_back(
    stack_settings: dict[str, Any],
    users_me: respx.Route,
    redis_factory: Callable[..., RedisServer],
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = redis_factory()
    app, stack = build_app({**stack_settings, "cache_url": server.url})
    first, during, after = mint_token(), [mint_token() for _ in range(3)], mint_token()
    with caplog.at_level(logging.INFO), TestClient(app) as client:
        assert client.get("/me", headers=bearer(first)).status_code == 200
        assert redis_key(first) in server.cached_values()
        server.kill()
        assert stack.shared_tier is not None
        stack.shared_tier.retry_interval = 0  # probe on every miss while it is down
        for token in during:
            assert client.get("/me", headers=bearer(token)).status_code == 200
        assert client.get("/me", headers=bearer(first)).status_code == 200
        [warning] = tier_records(caplog, logging.WARNING)
        assert f"127.0.0.1:{server.port}" in warning
        assert not stack.shared_tier.available

        server.restart()
        assert client.get("/me", headers=bearer(after)).status_code == 200
        assert stack.shared_tier.available
        assert redis_key(after) in server.cached_values()
    assert len(tier_records(caplog, logging.WARNING)) == 1
    [back] = [m for m in tier_records(caplog, logging.INFO) if "available again" in m]
    assert f"127.0.0.1:{server.port}" in back
    assert users_me.call_count == 5


@pytest.mark.parametrize("helper", ["_within", "_wait_for"])
def test_slow_redis_is_skipped_within_the_timeout(
    helper: str,
    stack_settings: dict[str, Any],
    users_me: respx.Route,
    redis_factory: Callable[..., RedisServer],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Through either timeout helper (``_wait_for``: the Python 3.10 path)."""
    monkeypatch.setattr(_redis_tier, "_within", getattr(_redis_tier, helper))
    server = redis_factory()
    app, _ = build_app({**stack_settings, "cache_url": server.url, "cache_timeout": 0.1})
    with caplog.at_level(logging.INFO), TestClient(app) as client:
        assert client.get("/me", headers=bearer(mint_token())).status_code == 200  # warm
        with server.client() as admin:
            admin.execute_command("CLIENT", "PAUSE", 3000, "ALL")  # every command waits 3 s
        elapsed = []
        for _ in range(3):
            started = time.perf_counter()
            assert client.get("/me", headers=bearer(mint_token())).status_code == 200
            elapsed.append(time.perf_counter() - started)
    assert max(elapsed) < 1.0, elapsed  # bounded by the 0.1 s timeout, not the 3 s pause
    [warning] = tier_records(caplog, logging.WARNING)
    assert "no answer within 0.1 s" in warning
    assert users_me.call_count == 4


async def test_a_tampered_or_foreign_entry_is_ignored(
    stack_settings: dict[str, Any],
    users_me: respx.Route,
    redis_server: RedisServer,
    redis_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    token = mint_token()
    forged_user = StackUser.model_validate(user_body(primary_email="attacker@example.com"))
    forged = Identity(claims=TokenClaims.model_validate(jwt_parts(token)[1]), user=forged_user)
    async with StackAuth(**stack_settings, cache_url=redis_url) as stack:
        assert stack.shared_tier is not None
        # Someone with write access to Redis but without our secret server key.
        intruder = SharedCache(
            stack.shared_tier,
            f"{KEY_PREFIX}:{PROJECT_ID}:remote:",
            "not-the-server-key",
            (dump_identity, load_identity),
        )
        await intruder.put(token_key(token), forged, time.time() + 30)
        assert redis_key(token) in redis_server.cached_values()
        identity = await stack.authenticate(token)
        assert identity.user.primary_email != "attacker@example.com"
        assert users_me.call_count == 1
        # Garbage is ignored the same way (and the warning is not repeated).
        other = mint_token()
        with redis_server.client() as client:
            client.set(redis_key(other), b"\x00" * 40, ex=60)
        await stack.authenticate(other)
        assert users_me.call_count == 2
    [warning] = [m for m in tier_records(caplog, logging.WARNING) if "integrity" in m]
    assert "logged once" in warning


# --- secrets never reach a log line, whatever Redis does --------------------------------------


def test_no_token_key_or_password_in_logs_under_redis_faults(
    stack_settings: dict[str, Any],
    users_me: respx.Route,
    redis_factory: Callable[..., RedisServer],
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = redis_factory("--requirepass", REDIS_PASSWORD)
    good_url = f"redis://:{REDIS_PASSWORD}@127.0.0.1:{server.port}/0"
    wrong_url = f"redis://default:{REDIS_PASSWORD}-wrong@127.0.0.1:{server.port}/0"
    tokens: list[str] = []

    def request(client: TestClient) -> None:
        token = mint_token()
        tokens.append(token)
        assert client.get("/me", headers=bearer(token)).status_code == 200

    with caplog.at_level(logging.DEBUG):
        logging.getLogger("redis").setLevel(logging.DEBUG)
        # A wrong password: refused at startup and after.
        app, stack = build_app({**stack_settings, "cache_url": wrong_url})
        with TestClient(app) as client:
            assert stack.shared_tier is not None
            stack.shared_tier.retry_interval = 0
            request(client)
            request(client)
        # The right one: working, then garbage in Redis, then slow, then killed.
        app, stack = build_app({**stack_settings, "cache_url": good_url, "cache_timeout": 0.1})
        with TestClient(app) as client:
            assert stack.shared_tier is not None
            stack.shared_tier.retry_interval = 0
            request(client)
            garbage = mint_token()
            with server.client(REDIS_PASSWORD) as admin:
                admin.set(redis_key(garbage), b"\x01" * 64, ex=60)
            tokens.append(garbage)
            assert client.get("/me", headers=bearer(garbage)).status_code == 200
            with server.client(REDIS_PASSWORD) as admin:
                admin.execute_command("CLIENT", "PAUSE", 500, "ALL")
            request(client)
            server.kill()
            request(client)
            request(client)
        logging.getLogger("redis").setLevel(logging.NOTSET)
    warnings_logged = tier_records(caplog, logging.WARNING)
    assert len(warnings_logged) >= 3  # wrong password, integrity, slow/killed
    text = caplog.text + "\n".join(str(r.__dict__) for r in caplog.records)
    secrets = [REDIS_PASSWORD, SECRET_KEY, *tokens]
    secrets += [redis_key(token).decode() for token in tokens]
    secrets += [hashlib.sha256(token.encode()).hexdigest() for token in tokens]
    for secret in secrets:
        assert secret not in text
    shown = repr(stack.settings) + repr(stack.shared_tier)
    assert f"127.0.0.1:{server.port}" in shown
    assert REDIS_PASSWORD not in shown


# --- lifespan ------------------------------------------------------------------------------------


def test_shutdown_closes_every_redis_connection(
    stack_settings: dict[str, Any],
    users_me: respx.Route,
    redis_server: RedisServer,
    redis_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def ours() -> list[dict[str, Any]]:
        with redis_server.client() as admin:
            return [c for c in admin.client_list() if c.get("name") == "fastapi-stack-auth"]

    (app_a, _), (app_b, _) = (
        build_app({**stack_settings, "cache_url": redis_url}),
        build_app({**stack_settings, "cache_url": redis_url}),
    )
    with TestClient(app_a) as a, TestClient(app_b) as b:
        for _ in range(3):
            token = mint_token()
            assert a.get("/me", headers=bearer(token)).status_code == 200
            assert b.get("/me", headers=bearer(token)).status_code == 200
        assert ours()
    assert ours() == []
    # No "Task was destroyed but it is pending!" nor "exception was never retrieved".
    assert not [r for r in caplog.records if r.name == "asyncio" and r.levelno >= logging.ERROR]


async def test_stop_and_start_again(
    stack_settings: dict[str, Any], users_me: respx.Route, redis_url: str
) -> None:
    stack = StackAuth(**stack_settings, cache_url=redis_url)
    for _ in range(2):
        async with stack:
            assert stack.shared_tier is not None
            assert stack.shared_tier.available
            await stack.authenticate(mint_token())
        assert stack.shared_tier is not None
        assert not stack.shared_tier.available


# --- JWT mode: identities stay local, full profiles are shared ---------------------------------


async def test_jwt_mode_shares_full_profiles_but_not_identities(
    stack_settings: dict[str, Any],
    ring: KeyRing,
    endpoint: JwksEndpoint,
    users_me: respx.Route,
    redis_server: RedisServer,
    redis_url: str,
) -> None:
    token = ring.mint(sub=USER_ID)
    settings = {**stack_settings, "verify": "jwt", "cache_url": redis_url}
    async with StackAuth(**settings) as a, StackAuth(**settings) as b:
        assert (await a.authenticate(token)).snapshot
        assert (await b.authenticate(token)).snapshot
        profile_a = await a.fetch_user(token)
        profile_b = await b.fetch_user(token)
    assert profile_a == profile_b
    assert users_me.call_count == 1
    assert list(redis_server.cached_values()) == [redis_key(token, kind="profile")]


# --- configuration -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:6379",
        "redis://",
        f"redis://:{REDIS_PASSWORD}@127.0.0.1:notaport/0",
        f"{REDIS_PASSWORD}",
        "unix://",
    ],
)
def test_an_invalid_cache_url_names_the_setting_not_the_value(
    stack_settings: dict[str, Any], url: str
) -> None:
    stack = StackAuth(**stack_settings, cache_url=url)  # settings are read at first use
    with pytest.raises(StackAuthConfigError, match="STACK_CACHE_URL is invalid") as caught:
        stack.shared_tier  # noqa: B018
    assert REDIS_PASSWORD not in str(caught.value)


def test_cache_url_from_the_environment(
    stack_settings: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STACK_CACHE_URL", f"rediss://:{REDIS_PASSWORD}@cache.internal:6380/2")
    monkeypatch.setenv("STACK_CACHE_TIMEOUT", "0.05")
    settings = load_settings(**stack_settings)
    assert settings.cache_url is not None
    assert settings.cache_timeout == 0.05
    assert REDIS_PASSWORD not in repr(settings)
    stack = StackAuth(settings)
    assert stack.shared_tier is not None
    assert stack.shared_tier.where == "cache.internal:6380"
    monkeypatch.setenv("STACK_CACHE_URL", "")  # a template's empty placeholder: no shared tier
    assert load_settings(**stack_settings).cache_url is None


def test_without_the_redis_package(
    stack_settings: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)
    monkeypatch.setitem(sys.modules, "redis.asyncio", None)
    stack = StackAuth(**stack_settings, cache_url=f"redis://:{REDIS_PASSWORD}@127.0.0.1:6379/0")
    with pytest.raises(StackAuthConfigError) as caught:
        stack.shared_tier  # noqa: B018
    assert "pip install 'fastapi-stack-auth[redis]'" in str(caught.value)
    assert REDIS_PASSWORD not in str(caught.value)
    assert StackAuth(**stack_settings).shared_tier is None


def test_the_library_does_not_import_redis() -> None:
    code = "import sys, fastapi_stack_auth; sys.exit('redis' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# --- the circuit breaker, with a hand-driven clock ----------------------------------------------


class FakeRedis:
    """Stands in for ``redis.asyncio.Redis`` and can be made to fail or hang (for the breaker's
    logic; the Redis behaviour itself is tested against real servers above)."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}
        self.calls = 0
        self.fail = False
        self.hang = False
        #: When set, calls wait for it; ``entered`` tells that one is waiting.
        self.gate: asyncio.Event | None = None
        self.entered = asyncio.Event()

    async def ping(self) -> bool:
        await self._act()
        return True

    async def get(self, key: bytes) -> bytes | None:
        await self._act()
        return self.data.get(key)

    async def set(self, key: bytes, value: bytes, ex: int) -> None:
        await self._act()
        self.data[key] = value

    async def aclose(self) -> None:
        pass

    async def _act(self) -> None:
        self.calls += 1
        if self.gate is not None:
            self.entered.set()
            await self.gate.wait()
        if self.hang:
            await asyncio.Event().wait()
        if self.fail:
            raise ConnectionError("refused")


async def started_tier(fake: FakeRedis, *, timeout: float = 1.0) -> GuardedTier:
    tier = GuardedTier("redis://fake.invalid:6379/0", timeout=timeout)
    tier._client = fake  # type: ignore[assignment]  # start() pings it instead of connecting
    await tier.start()
    assert tier.available
    return tier


async def test_breaker_skips_then_probes_then_recovers(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    clock, fake = Clock(), FakeRedis()
    tier = await started_tier(fake)
    tier.timer, tier.retry_interval = clock, 5
    await tier.set(b"k", b"v", 10)
    fake.fail = True
    assert await tier.get(b"k") is None  # fails: opens the breaker
    calls = fake.calls
    for _ in range(10):
        assert await tier.get(b"k") is None  # skipped, Redis not even asked
    await tier.set(b"k", b"w", 10)
    assert fake.calls == calls
    clock.now += 5
    assert await tier.get(b"k") is None  # one probe, fails
    assert fake.calls == calls + 1
    assert await tier.get(b"k") is None
    assert fake.calls == calls + 1
    fake.fail = False
    clock.now += 5
    assert await tier.get(b"k") == b"v"  # the probe succeeds: closed again
    assert await tier.get(b"k") == b"v"
    assert tier.available
    assert len(tier_records(caplog, logging.WARNING)) == 1
    assert len([m for m in tier_records(caplog, logging.INFO) if "again" in m]) == 1
    await tier.aclose()


async def test_an_answer_from_before_the_failure_does_not_end_the_outage(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    fake = FakeRedis()
    tier = await started_tier(fake, timeout=5.0)
    tier.retry_interval = 0
    gate = fake.gate = asyncio.Event()
    slow = asyncio.create_task(tier.get(b"k"))
    await fake.entered.wait()  # ``slow`` is in flight
    fake.gate, fake.fail = None, True
    assert await tier.get(b"k") is None  # fails: an outage starts
    fake.fail = False
    gate.set()
    assert await slow is None  # answered fine, but it was asked before the failure
    assert not tier.available
    assert await tier.get(b"k") is None  # asked after it: the outage is over
    assert tier.available
    assert len(tier_records(caplog, logging.WARNING)) == 1
    assert len([m for m in tier_records(caplog, logging.INFO) if "again" in m]) == 1
    await tier.aclose()


@pytest.mark.parametrize("helper", ["_within", "_wait_for"])
async def test_a_hanging_tier_is_bounded_by_the_timeout(
    helper: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Through either timeout helper (``_wait_for``: the Python 3.10 path)."""
    monkeypatch.setattr(_redis_tier, "_within", getattr(_redis_tier, helper))
    fake = FakeRedis()
    tier = await started_tier(fake, timeout=0.05)
    fake.hang = True
    started = time.perf_counter()
    assert await tier.get(b"k") is None
    await tier.set(b"k", b"v", 10)  # skipped: the breaker is open
    assert time.perf_counter() - started < 1.0
    assert not tier.available
    [warning] = tier_records(caplog, logging.WARNING)
    assert "no answer within 0.05 s" in warning
    await tier.aclose()


@pytest.mark.parametrize("within", [_within, _wait_for], ids=["running-python", "python-3.10"])
async def test_the_timeout_helpers(within: Callable[..., Any]) -> None:
    async def fails() -> None:
        raise ConnectionError("refused")

    assert await within(1.0, asyncio.sleep(0, "answer")) == "answer"
    with pytest.raises(ConnectionError):
        await within(1.0, fails())
    started = time.perf_counter()
    with pytest.raises(asyncio.TimeoutError):
        await within(0.05, asyncio.Event().wait())
    assert time.perf_counter() - started < 1.0


async def test_a_failure_to_close_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    fake = FakeRedis()
    tier = await started_tier(fake)

    async def broken_close() -> None:
        raise ConnectionError("reset")

    fake.aclose = broken_close  # type: ignore[method-assign]
    await tier.aclose()
    assert not tier.available
    [warning] = tier_records(caplog, logging.WARNING)
    assert "Closing" in warning
    assert "ConnectionError" in warning


async def test_claim_stores_only_when_absent_and_delete_frees_the_key(redis_url: str) -> None:
    tier = GuardedTier(redis_url, timeout=1.0)
    await tier.start()
    try:
        assert await tier.claim(b"k", b"first", 60) is True
        assert await tier.claim(b"k", b"second", 60) is False
        assert await tier.get(b"k") == b"first"
        await tier.delete(b"k")
        assert await tier.get(b"k") is None
        assert await tier.claim(b"k", b"third", 60) is True
    finally:
        await tier.aclose()


async def test_claim_answers_none_when_redis_is_unavailable() -> None:
    tier = GuardedTier(f"redis://127.0.0.1:{free_port()}", timeout=0.5)
    await tier.start()  # nothing listens: logged, not raised
    try:
        assert await tier.claim(b"k", b"v", 60) is None
        await tier.delete(b"k")  # never raises
    finally:
        await tier.aclose()
