"""Invalidation against the emulator over loopback HTTP: a user deleted through Stack's REST
API, and the app's next request with that user's cached token or API key refused once
``stack.invalidation.user_deleted`` is called (what a webhook receiver does)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from fastapi_stack_auth import StackAuth
from fastapi_stack_auth._principals import CurrentPrincipal
from fastapi_stack_auth.models import Principal
from fastapi_stack_auth.testing import EmulatedStack
from tests.conftest import eventually

pytest_plugins = ["fastapi_stack_auth.testing", "tests.redis_fixtures"]

MODES = ["remote", "jwt"]


def build_app(stack: StackAuth) -> FastAPI:
    app = FastAPI()
    stack.init_app(app)

    @app.get("/me")
    async def me(caller: CurrentPrincipal) -> dict[str, Any]:
        return describe(caller)

    return app


def describe(caller: Principal) -> dict[str, Any]:
    return {"kind": caller.kind, "user": caller.user.id if caller.user else None}


@asynccontextmanager
async def serving(stack: StackAuth) -> AsyncIterator[httpx.AsyncClient]:
    """``stack`` started, and a client of an app that uses it."""
    transport = httpx.ASGITransport(app=build_app(stack))
    async with stack, httpx.AsyncClient(transport=transport, base_url="http://app.test") as c:
        yield c


def delete_through_stack(emulated: EmulatedStack, user_id: str) -> None:
    """``DELETE /users/{id}`` with the server key, as an admin would."""
    with httpx.Client(base_url=f"{emulated.url}/api/v1") as client:
        response = client.delete(f"/users/{user_id}", headers=emulated.server_headers())
    assert response.status_code == 200, response.text


@pytest.fixture
def emulated(stack_emulator: EmulatedStack) -> EmulatedStack:
    config = stack_emulator.emulator.project.config
    config.allow_user_api_keys = True
    return stack_emulator


@pytest.mark.parametrize("mode", MODES)
async def test_a_deleted_users_cached_token_and_key_are_refused(
    emulated: EmulatedStack, mode: str
) -> None:
    user, other = emulated.create_user(), emulated.create_user()
    key = emulated.create_api_key(user.id)
    stack = emulated.stack_auth(verify=mode)
    async with serving(stack) as client:
        for headers in (user.headers, {"x-stack-api-key": key}, other.headers):
            assert (await client.get("/me", headers=headers)).status_code == 200
        delete_through_stack(emulated, user.id)
        # Cached: still let in (remote mode for cache_ttl, JWT mode until exp) ...
        assert (await client.get("/me", headers=user.headers)).status_code == 200
        assert (await client.get("/me", headers={"x-stack-api-key": key})).status_code == 200
        # ... until Stack's webhook says so.
        assert await stack.invalidation.user_deleted(user.id) is True
        token = await client.get("/me", headers=user.headers)
        assert (token.status_code, token.json()["code"]) == (401, "USER_NOT_FOUND")
        by_key = await client.get("/me", headers={"x-stack-api-key": key})
        assert (by_key.status_code, by_key.json()["code"]) == (401, "INVALID_API_KEY")
        assert (await client.get("/me", headers=other.headers)).json()["user"] == other.id


@pytest.mark.parametrize("mode", MODES)
async def test_every_worker_refuses_the_user_through_redis(
    emulated: EmulatedStack, redis_url: str, mode: str
) -> None:
    user = emulated.create_user()
    a, b = (emulated.stack_auth(verify=mode, cache_url=redis_url) for _ in range(2))
    async with serving(a) as worker_a, serving(b) as worker_b:
        for worker in (worker_a, worker_b):
            assert (await worker.get("/me", headers=user.headers)).status_code == 200
        delete_through_stack(emulated, user.id)
        await a.invalidation.user_deleted(user.id)  # the worker that got the webhook
        await eventually(lambda: user.id in b.invalidation.denied, "b hears of the deletion")
        assert (await worker_b.get("/me", headers=user.headers)).status_code == 401
        late = emulated.stack_auth(verify=mode, cache_url=redis_url)
        async with serving(late) as worker_c:  # started after the deletion
            assert (await worker_c.get("/me", headers=user.headers)).status_code == 401
