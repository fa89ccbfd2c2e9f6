"""Invalidation across workers, against real redis-server processes on loopback.

Each ``StackAuth`` here is one worker; two on one Redis are two workers of one app. Stack is
mocked with respx. Waiting for another worker is polling with a deadline, never a fixed sleep.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import respx

from fastapi_stack_auth import AuthError, StackAuth
from fastapi_stack_auth._cache import token_key
from fastapi_stack_auth._permissions import project_key, team_key
from fastapi_stack_auth._shared_cache import KEY_PREFIX, mac_key, seal, subject_index
from fastapi_stack_auth._subjects import user_subject
from tests.conftest import (
    PROJECT_ID,
    SECRET_KEY,
    USER_ID,
    eventually,
    granted,
    mint_token,
    user_body,
)
from tests.jwt_helpers import JwksEndpoint, KeyRing
from tests.redis_fixtures import RedisServer

pytest_plugins = ["tests.redis_fixtures"]
pytestmark = pytest.mark.usefixtures("nothing_left_unclosed")

NAMESPACE = f"{KEY_PREFIX}:{PROJECT_ID}:".encode()
CHANNEL = NAMESPACE + b"invalidate"
DELETED = NAMESPACE + b"deleted-users"
OTHER_USER = "0a1b2c3d-0000-4000-8000-000000000002"
TEAM = "7e7e7e7e-0000-4000-8000-0000000000a1"
OTHER_TEAM = "7e7e7e7e-0000-4000-8000-0000000000a2"


@pytest.fixture
def grants(mock_api: respx.MockRouter) -> respx.Route:
    """Stack granting every team and project permission asked about."""
    mock_api.get("/project-permissions").mock(side_effect=granted)
    return mock_api.get("/team-permissions").mock(side_effect=granted)


def entry_key(kind: str, key: str | bytes) -> bytes:
    """The Redis name of a cache entry: a token's digest as it is, ids hashed."""
    digest = key if isinstance(key, bytes) else hashlib.sha256(key.encode()).digest()
    return NAMESPACE + kind.encode() + b":" + digest.hex().encode()


def exists(server: RedisServer, key: bytes) -> bool:
    with server.client() as client:
        return bool(client.exists(key))


async def test_another_workers_entries_go_and_it_asks_stack_again(
    stack_settings: dict[str, Any],
    users_me: respx.Route,
    redis_server: RedisServer,
    redis_url: str,
) -> None:
    settings = {**stack_settings, "cache_url": redis_url}
    token = mint_token()
    key = token_key(token)
    async with StackAuth(**settings) as a, StackAuth(**settings) as b:
        assert b.invalidation.channel is not None
        assert b.invalidation.channel.subscribed
        await b.authenticate(token)
        await a.authenticate(token)  # from Redis
        assert users_me.call_count == 1
        assert exists(redis_server, entry_key("remote", key))
        with redis_server.client() as client:  # listed under its user and team, by digest
            indexes = list(client.scan_iter(match=NAMESPACE + b"subject:*"))
            assert len(indexes) == 2
            assert not [k for k in indexes if USER_ID.encode() in k]
            index = subject_index(a.settings).key(user_subject(USER_ID))
            assert client.zrange(index, 0, -1) == [entry_key("remote", key)]
            assert client.ttl(index) >= client.ttl(entry_key("remote", key))

        assert await a.invalidation.user_changed(USER_ID) is True
        assert a.pipeline.cache.get(key) is None
        assert not exists(redis_server, entry_key("remote", key))  # gone before it returned
        await eventually(lambda: b.pipeline.cache.get(key) is None, "b drops its entry")
        await b.authenticate(token)
        assert users_me.call_count == 2  # b asked Stack again


async def test_permission_answers_go_in_every_worker_and_in_redis(
    stack_settings: dict[str, Any], grants: respx.Route, redis_server: RedisServer, redis_url: str
) -> None:
    settings = {**stack_settings, "cache_url": redis_url}
    revoked, kept = team_key(USER_ID, TEAM, "docs:read"), team_key(USER_ID, OTHER_TEAM, "docs:read")
    async with StackAuth(**settings) as a, StackAuth(**settings) as b:
        for worker in (a, b):
            for team in (TEAM, OTHER_TEAM):
                assert await worker.permissions.has_team_permission(USER_ID, team, "docs:read")
        assert grants.call_count == 2  # b's answers came from Redis
        await a.invalidation.team_permissions_changed(USER_ID, TEAM)
        assert not exists(redis_server, entry_key("team-permission", revoked))
        assert exists(redis_server, entry_key("team-permission", kept))
        cache = b.permissions.team_permissions
        await eventually(lambda: cache.get(revoked) is None, "b drops the pair's answer")
        assert cache.get(kept) is True
        assert await b.permissions.has_team_permission(USER_ID, TEAM, "docs:read")
        assert grants.call_count == 3


async def test_a_worker_started_after_a_deletion_refuses_the_users_jwt(
    stack_settings: dict[str, Any],
    ring: KeyRing,
    endpoint: JwksEndpoint,
    mock_api: respx.MockRouter,
    redis_url: str,
) -> None:
    settings = {**stack_settings, "cache_url": redis_url, "verify": "jwt"}
    async with StackAuth(**settings) as a:
        assert await a.invalidation.user_deleted(USER_ID) is True
    calls = len(mock_api.calls)
    async with StackAuth(**settings) as late:
        assert USER_ID in late.invalidation.denied
        with pytest.raises(AuthError) as info:
            await late.authenticate(ring.mint(sub=USER_ID))
        assert (info.value.status_code, info.value.code) == (401, "USER_NOT_FOUND")
        assert (await late.authenticate(ring.mint(sub=OTHER_USER))).claims.sub == OTHER_USER
    assert [call.request.url.path for call in mock_api.calls[calls:]] == [
        f"/api/v1/projects/{PROJECT_ID}/.well-known/jwks.json"  # its startup JWKS, nothing else
    ] * 3


async def test_a_jwt_worker_hears_of_a_deletion_at_once(
    stack_settings: dict[str, Any], ring: KeyRing, endpoint: JwksEndpoint, redis_url: str
) -> None:
    settings = {**stack_settings, "cache_url": redis_url, "verify": "jwt"}
    token = ring.mint(sub=USER_ID)
    async with StackAuth(**settings) as a, StackAuth(**settings) as b:
        await b.authenticate(token)
        await a.invalidation.user_deleted(USER_ID)
        await eventually(lambda: USER_ID in b.invalidation.denied, "b hears of the deletion")
        assert b.pipeline.cache.get(token_key(token)) is None
        with pytest.raises(AuthError):
            await b.authenticate(token)


async def test_a_load_in_flight_in_another_worker_does_not_bring_the_user_back(
    stack_settings: dict[str, Any],
    mock_api: respx.MockRouter,
    grants: respx.Route,
    redis_server: RedisServer,
    redis_url: str,
) -> None:
    settings = {**stack_settings, "cache_url": redis_url}
    started, release = asyncio.Event(), asyncio.Event()

    async def held(request: httpx.Request) -> httpx.Response:
        started.set()
        await release.wait()
        return httpx.Response(200, json=user_body())  # Stack's answer before the deletion

    mock_api.get("/users/me").mock(side_effect=held)
    token = mint_token()
    async with StackAuth(**settings) as a, StackAuth(**settings) as b:
        assert await b.permissions.has_project_permission(USER_ID, "admin")  # to watch
        loading = asyncio.create_task(b.authenticate(token))
        await started.wait()
        await a.invalidation.user_deleted(USER_ID)
        watched = b.permissions.project_permissions
        await eventually(lambda: watched.get(project_key(USER_ID, "admin")) is None, "b hears")
        release.set()
        with pytest.raises(AuthError) as info:
            await loading
        assert info.value.code == "USER_NOT_FOUND"
        assert b.pipeline.cache.get(token_key(token)) is None
        assert not exists(redis_server, entry_key("remote", token_key(token)))


async def test_forged_messages_and_records_change_nothing(
    stack_settings: dict[str, Any],
    users_me: respx.Route,
    grants: respx.Route,
    redis_server: RedisServer,
    redis_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = {**stack_settings, "cache_url": redis_url}
    token = mint_token()
    wrong_key = mac_key("ssk_another_project_key")

    def message(**fields: Any) -> bytes:
        body = {"origin": "intruder", "user_id": USER_ID, "team_id": None, "at": 1e12}
        return json.dumps({**body, **fields}).encode()

    forged_messages = [
        b"not even json",
        message(name="user_deleted"),  # no seal at all
        seal(wrong_key, CHANNEL, message(name="user_deleted")),  # sealed with another key
        seal(wrong_key, CHANNEL, message(name="user_changed")),
        seal(mac_key(SECRET_KEY), NAMESPACE + b"elsewhere", message(name="user_deleted")),
        b"x" * 10_000,
    ]
    with caplog.at_level(logging.WARNING):
        async with StackAuth(**settings) as a, StackAuth(**settings) as b:
            await b.authenticate(token)
            assert await b.permissions.has_project_permission(OTHER_USER, "admin")
            with redis_server.client() as client:
                for forged in forged_messages:
                    assert client.publish(CHANNEL, forged) == 2  # both workers got each
                client.zadd(DELETED, {b"unsealed " + USER_ID.encode(): 1e12})
                record = json.dumps({"user_id": USER_ID, "at": 1e12}).encode()
                client.zadd(DELETED, {seal(wrong_key, DELETED, record): 1e12})
            # A genuine message after them: once b has applied it, it has seen them all (a
            # channel delivers in order).
            await a.invalidation.project_permissions_changed(OTHER_USER)
            watched = b.permissions.project_permissions
            await eventually(lambda: watched.get(project_key(OTHER_USER, "admin")) is None, "b")
            assert b.pipeline.cache.get(token_key(token)) is not None
            assert len(b.invalidation.denied) == 0
            async with StackAuth(**settings) as late:  # reads the forged records
                assert len(late.invalidation.denied) == 0
                await late.authenticate(token)
    warned = [r.getMessage() for r in caplog.records if "integrity check" in r.getMessage()]
    assert len(warned) == 3  # once per worker (a, b) for messages, once for late's records
    assert all(f"127.0.0.1:{redis_server.port}" in w for w in warned)


async def test_redis_down_invalidation_still_works_here_and_nothing_raises(
    stack_settings: dict[str, Any],
    users_me: respx.Route,
    redis_factory: Callable[..., RedisServer],
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = redis_factory()
    settings = {**stack_settings, "cache_url": server.url}
    token, other = mint_token(), mint_token(sub=OTHER_USER)
    with caplog.at_level(logging.INFO):
        async with StackAuth(**settings) as stack:
            channel = stack.invalidation.channel
            assert channel is not None
            channel.retry_interval = 0.01
            await stack.authenticate(token)
            server.kill()
            await eventually(lambda: not channel.subscribed, "the subscriber notices")
            assert await stack.invalidation.user_deleted(USER_ID) is False  # not shared
            assert stack.pipeline.cache.get(token_key(token)) is None
            with pytest.raises(AuthError) as info:
                await stack.authenticate(token)
            assert info.value.code == "USER_NOT_FOUND"
            for method in ("user_changed", "team_changed", "project_permissions_changed"):
                assert await getattr(stack.invalidation, method)(OTHER_USER) is False

            # While it was away it heard nothing: once back, what it cached meanwhile goes.
            users_me.mock(return_value=httpx.Response(200, json=user_body(id=OTHER_USER)))
            await stack.authenticate(other)
            server.restart()
            await eventually(lambda: channel.subscribed, "the subscriber is back", timeout=20)
            assert stack.pipeline.cache.get(token_key(other)) is None
            assert USER_ID in stack.invalidation.denied  # this worker's own memory stays
    messages = [r.getMessage() for r in caplog.records if "invalidation channel" in r.getMessage()]
    down = [m for m in messages if "unavailable" in m]
    back = [m for m in messages if "available again" in m]
    assert len(down) == 1  # logged once, however many attempts failed
    assert len(back) == 1
    assert f"127.0.0.1:{server.port}" in down[0]


async def test_a_worker_whose_redis_is_down_at_startup_starts(
    stack_settings: dict[str, Any], users_me: respx.Route, redis_factory: Callable[..., RedisServer]
) -> None:
    server = redis_factory()
    server.kill()
    async with StackAuth(**stack_settings, cache_url=server.url) as stack:
        assert stack.invalidation.channel is not None
        assert not stack.invalidation.channel.subscribed
        await stack.authenticate(mint_token())
        assert await stack.invalidation.user_deleted(USER_ID) is False


async def test_the_index_of_a_subject_keeps_only_live_entries(
    stack_settings: dict[str, Any], grants: respx.Route, redis_server: RedisServer, redis_url: str
) -> None:
    index = NAMESPACE + b"subject:"
    async with StackAuth(**stack_settings, cache_url=redis_url, permission_cache_ttl=5) as stack:
        await stack.permissions.has_project_permission(USER_ID, "admin")
        with redis_server.client() as client:
            [key] = [k for k in client.scan_iter(match=index + b"*") if client.zcard(k) == 1]
            # An entry listed long ago (its score is its expiry) goes at the next write.
            client.zadd(key, {NAMESPACE + b"project-permission:old": 1.0})
        await stack.permissions.has_project_permission(USER_ID, "read")
        with redis_server.client() as client:
            members = client.zrange(key, 0, -1)
            assert NAMESPACE + b"project-permission:old" not in members
            assert len(members) == 2
            assert 29 < client.ttl(key) <= 31  # longer than any entry lives (cache_ttl: 30)


async def test_only_this_projects_entries_of_the_kinds_asked_are_deleted(
    stack_settings: dict[str, Any], redis_server: RedisServer, redis_url: str
) -> None:
    # What an index set lists is Redis data like any other: only our own keys are deleted.
    async with StackAuth(**stack_settings, cache_url=redis_url) as stack:
        with redis_server.client() as client:
            subject = subject_index(stack.settings).key(user_subject(USER_ID))
            planted = [b"someone-elses-key", NAMESPACE + b"teams:x", NAMESPACE + b"remote:x"]
            for key in planted:
                client.set(key, b"v")
            client.zadd(subject, dict.fromkeys(planted, 1e12))
        await stack.invalidation.user_changed(USER_ID)  # identities, profiles, API keys
        with redis_server.client() as client:
            assert [bool(client.exists(key)) for key in planted] == [True, True, False]


async def test_stop_ends_the_listener_even_when_a_read_swallows_the_cancellation(
    stack_settings: dict[str, Any],
    users_me: respx.Route,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # As redis-py can on Python 3.10: a cancelled read under a timeout returns as no message.
    from redis.asyncio.client import PubSub

    read = PubSub.get_message

    async def swallowing(self: PubSub, *args: Any, **kwargs: Any) -> Any:
        try:
            return await read(self, *args, **kwargs)
        except asyncio.CancelledError:
            return None

    monkeypatch.setattr(PubSub, "get_message", swallowing)
    stack = StackAuth(**stack_settings, cache_url=redis_url)
    await stack.start()
    channel = stack.invalidation.channel
    assert channel is not None
    assert channel.subscribed
    await asyncio.wait_for(stack.stop(), 10)  # hung for ever before the fix
    assert not channel.subscribed
