"""Cached authorization answers: per (user, team, permission) and per user for membership,
for ``permission_cache_ttl`` seconds, single-flight, faults never cached, and shared between
workers through a real Redis."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
import respx
from fastapi import Depends, FastAPI

from fastapi_stack_auth import StackAuth
from fastapi_stack_auth._authorization import TeamAccess, require_team_permission
from fastapi_stack_auth._exceptions import StackUnavailableError
from fastapi_stack_auth._permissions import (
    Permissions,
    dump_flag,
    dump_teams,
    load_flag,
    load_teams,
)
from fastapi_stack_auth._shared_cache import KEY_PREFIX
from fastapi_stack_auth.models import Team
from tests.conftest import PROJECT_ID, USER_ID, fixture_json, granted, mint_token, user_body
from tests.redis_fixtures import RedisServer

pytest_plugins = ["tests.redis_fixtures"]

TEAM = "5b6c7d8e-9f0a-4b1c-8d2e-3f4a5b6c7d8e"
OTHER_TEAM = "c4e7a9b1-2d3f-4a5b-9c6d-7e8f9a0b1c2d"
OTHER_USER = "9d2e4f6a-1b3c-4d5e-8f7a-6b5c4d3e2f1a"


class Clock:
    """Wall time that moves only when a test says so."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def grants(mock_api: respx.MockRouter) -> respx.Route:
    """``GET /team-permissions`` granting whatever is asked."""
    return mock_api.get("/team-permissions").mock(side_effect=granted)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def permissions(stack: StackAuth, clock: Clock) -> Permissions:
    return Permissions(stack.client, stack.settings, None, clock=clock)


# --- the TTL --------------------------------------------------------------------------------


async def test_an_answer_is_reused_for_the_ttl_then_asked_again(
    permissions: Permissions, grants: respx.Route, clock: Clock
) -> None:
    assert await permissions.has_team_permission(USER_ID, TEAM, "docs:read")
    clock.now += 4.99  # permission_cache_ttl defaults to 5 s
    assert await permissions.has_team_permission(USER_ID, TEAM, "docs:read")
    assert grants.call_count == 1
    clock.now += 0.02
    assert await permissions.has_team_permission(USER_ID, TEAM, "docs:read")
    assert grants.call_count == 2


async def test_a_denial_is_cached_like_a_grant(
    permissions: Permissions, mock_api: respx.MockRouter, clock: Clock
) -> None:
    route = mock_api.get("/project-permissions").respond(200, json={"items": []})
    assert not await permissions.has_project_permission(USER_ID, "admin")
    assert not await permissions.has_project_permission(USER_ID, "admin")
    assert route.call_count == 1
    clock.now += 5.01
    assert not await permissions.has_project_permission(USER_ID, "admin")
    assert route.call_count == 2


async def test_the_ttl_is_its_own_setting(
    stack_settings: dict[str, Any], grants: respx.Route, clock: Clock
) -> None:
    async with StackAuth(**stack_settings, permission_cache_ttl=1, cache_ttl=60) as stack:
        permissions = Permissions(stack.client, stack.settings, None, clock=clock)
        await permissions.has_team_permission(USER_ID, TEAM, "docs:read")
        clock.now += 1.01
        await permissions.has_team_permission(USER_ID, TEAM, "docs:read")
    assert grants.call_count == 2


async def test_ttl_zero_asks_every_time(
    stack_settings: dict[str, Any], grants: respx.Route
) -> None:
    async with StackAuth(**stack_settings, permission_cache_ttl=0) as stack:
        for _ in range(3):
            assert await stack.permissions.has_team_permission(USER_ID, TEAM, "docs:read")
    assert grants.call_count == 3


async def test_each_question_has_its_own_answer(
    permissions: Permissions, grants: respx.Route
) -> None:
    questions = [
        (USER_ID, TEAM, "docs:read"),
        (USER_ID, TEAM, "docs:write"),
        (USER_ID, OTHER_TEAM, "docs:read"),
        (OTHER_USER, TEAM, "docs:read"),
    ]
    for _ in range(2):
        for question in questions:
            assert await permissions.has_team_permission(*question)
    assert grants.call_count == len(questions)
    asked = {
        (r.url.params["user_id"], r.url.params["team_id"], r.url.params["permission_id"])
        for r, _ in grants.calls
    }
    assert asked == set(questions)


async def test_membership_is_cached_per_user(
    permissions: Permissions, mock_api: respx.MockRouter, clock: Clock
) -> None:
    route = mock_api.get("/teams").respond(200, json=fixture_json("teams-list.server.json"))
    assert await permissions.is_team_member(USER_ID, TEAM)
    assert await permissions.is_team_member(USER_ID, OTHER_TEAM.upper())
    assert not await permissions.is_team_member(USER_ID, "0e9d8c7b-6a5f-4e3d-9c2b-1a0f9e8d7c6b")
    assert route.call_count == 1
    assert await permissions.is_team_member(OTHER_USER, TEAM)
    assert route.call_count == 2
    clock.now += 5.01
    assert await permissions.is_team_member(USER_ID, TEAM)
    assert route.call_count == 3


# --- single flight, and faults ----------------------------------------------------------------


async def test_100_concurrent_checks_make_one_call(
    permissions: Permissions, grants: respx.Route
) -> None:
    results = await asyncio.gather(
        *(permissions.has_team_permission(USER_ID, TEAM, "docs:read") for _ in range(100))
    )
    assert results == [True] * 100
    assert grants.call_count == 1


async def test_100_concurrent_requests_make_one_call(
    stack_settings: dict[str, Any], mock_api: respx.MockRouter
) -> None:
    """Through the app: the permission call is held until all 100 requests wait for it."""
    mock_api.get("/users/me").respond(200, json=user_body())
    arrived = asyncio.Condition()
    waiting = 0
    release = asyncio.Event()

    async def held(request: httpx.Request) -> httpx.Response:
        await release.wait()
        return granted(request)

    route = mock_api.get("/team-permissions").mock(side_effect=held)
    stack = StackAuth(**stack_settings)
    app = FastAPI()
    stack.init_app(app)
    guard = require_team_permission("docs:read")

    @app.get("/teams/{team_id}/docs")
    async def docs(access: TeamAccess = Depends(guard)) -> dict[str, str]:
        return {"team": access.team_id}

    async with stack:
        load = stack.permissions.load_team_permission  # each cache miss goes through it

        async def counted(key: bytes, user_id: str, team_id: str, permission_id: str) -> bool:
            nonlocal waiting
            async with arrived:
                waiting += 1
                arrived.notify_all()
            return await load(key, user_id, team_id, permission_id)

        stack.permissions.load_team_permission = counted  # type: ignore[method-assign]
        transport = httpx.ASGITransport(app=app)
        headers = {"authorization": f"Bearer {mint_token()}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            requests = [
                asyncio.ensure_future(client.get(f"/teams/{TEAM}/docs", headers=headers))
                for _ in range(100)
            ]
            async with arrived:  # (the timeout only turns a bug into a failure, not a hang)
                await asyncio.wait_for(arrived.wait_for(lambda: waiting == 100), 60)
            release.set()
            responses = await asyncio.gather(*requests)
    assert [r.status_code for r in responses] == [200] * 100
    assert route.call_count == 1


async def test_a_fault_is_shared_by_the_waiters_but_never_cached(
    permissions: Permissions, mock_api: respx.MockRouter
) -> None:
    route = mock_api.get("/team-permissions").respond(503)
    results = await asyncio.gather(
        *(permissions.has_team_permission(USER_ID, TEAM, "docs:read") for _ in range(10)),
        return_exceptions=True,
    )
    assert all(isinstance(r, StackUnavailableError) for r in results)
    # One call, retried by the client (max_attempts) under the one single-flight load.
    attempts = route.call_count
    assert attempts >= 1
    route.mock(side_effect=granted)
    assert await permissions.has_team_permission(USER_ID, TEAM, "docs:read")
    assert route.call_count == attempts + 1


# --- the shared tier ------------------------------------------------------------------------


@pytest.fixture
def workers(
    stack_settings: dict[str, Any], redis_url: str, redis_server: RedisServer
) -> tuple[dict[str, Any], RedisServer]:
    """Settings for workers sharing the session's Redis (emptied for this test)."""
    return {**stack_settings, "cache_url": redis_url}, redis_server


async def test_workers_share_answers_through_redis(
    workers: tuple[dict[str, Any], RedisServer], grants: respx.Route, mock_api: respx.MockRouter
) -> None:
    settings, server = workers
    teams = mock_api.get("/teams").respond(200, json=fixture_json("teams-list.server.json"))
    projects = mock_api.get("/project-permissions").respond(200, json={"items": []})
    async with StackAuth(**settings) as one, StackAuth(**settings) as two:
        for worker in (one, two):
            assert await worker.permissions.has_team_permission(USER_ID, TEAM, "docs:read")
            assert await worker.permissions.is_team_member(USER_ID, TEAM)
            assert not await worker.permissions.has_project_permission(USER_ID, "admin")
        assert (grants.call_count, teams.call_count, projects.call_count) == (1, 1, 1)
        prefix = f"{KEY_PREFIX}:{PROJECT_ID}:".encode()
        kinds = sorted(key[len(prefix) :].split(b":")[0] for key in server.cached_values())
        assert kinds == [b"project-permission", b"team-permission", b"teams"]
        for key in server.cached_values():
            assert USER_ID.encode() not in key  # keys are digests
        with server.client() as client:
            assert 1 <= min(client.ttl(key) for key in client.keys("*")) <= 5


async def test_a_tampered_shared_answer_is_ignored(
    workers: tuple[dict[str, Any], RedisServer], mock_api: respx.MockRouter
) -> None:
    settings, server = workers
    route = mock_api.get("/team-permissions").respond(200, json={"items": []})
    async with StackAuth(**settings) as one, StackAuth(**settings) as two:
        assert not await one.permissions.has_team_permission(USER_ID, TEAM, "docs:read")
        [(key, value)] = server.cached_values().items()
        forged = value[:32] + dump_flag(True, time.time() + 60)  # the tag no longer fits
        with server.client() as client:
            client.set(key, forged, ex=60)
        assert not await two.permissions.has_team_permission(USER_ID, TEAM, "docs:read")
    assert route.call_count == 2


async def test_no_shared_tier_when_the_ttl_is_zero(
    workers: tuple[dict[str, Any], RedisServer], grants: respx.Route
) -> None:
    settings, server = workers
    async with StackAuth(**settings, permission_cache_ttl=0) as stack:
        assert await stack.permissions.has_team_permission(USER_ID, TEAM, "docs:read")
    assert server.cached_values() == {}


def test_the_codecs_round_trip_and_refuse_other_values() -> None:
    assert load_flag(dump_flag(True, 12.5)) == (True, 12.5)
    assert load_flag(dump_flag(False, 3)) == (False, 3.0)
    for junk in (b'["yes", 1]', b"[true, true]", b'[true, "1"]', b"{}"):
        with pytest.raises((ValueError, TypeError)):
            load_flag(junk)
    teams = {
        t["id"]: Team.model_validate(t) for t in fixture_json("teams-list.server.json")["items"]
    }
    loaded, until = load_teams(dump_teams(teams, 99.0))
    assert (loaded, until) == (teams, 99.0)
