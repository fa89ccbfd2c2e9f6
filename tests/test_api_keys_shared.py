"""Checked API keys in the shared tier: a real Redis (``tests/redis_fixtures.py``), Stack Auth
mocked with respx."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import httpx
import pytest
import respx
from fastapi import FastAPI
from fastapi.testclient import TestClient

from fastapi_stack_auth import StackAuth
from fastapi_stack_auth._principals import CurrentPrincipal
from fastapi_stack_auth._shared_cache import KEY_PREFIX
from fastapi_stack_auth.models import Principal
from tests.conftest import PROJECT_ID, SECRET_KEY, USER_ID, user_body
from tests.redis_fixtures import RedisServer
from tests.test_api_keys import checking, key_body, make_key

pytest_plugins = ["tests.redis_fixtures"]


def redis_key(key: str) -> bytes:
    digest = hashlib.sha256(key.encode()).hexdigest()
    return f"{KEY_PREFIX}:{PROJECT_ID}:api-key:{digest}".encode()


def build_app(settings: dict[str, Any]) -> tuple[FastAPI, StackAuth]:
    stack = StackAuth(**settings)
    app = FastAPI()
    stack.init_app(app)

    @app.get("/principal")
    async def principal(caller: CurrentPrincipal) -> dict[str, Any]:
        return {"kind": caller.kind, "user": caller.user.id if caller.user else None}

    return app, stack


@pytest.fixture
def user_get(mock_api: respx.MockRouter) -> respx.Route:
    return mock_api.get(f"/users/{USER_ID}").respond(200, json=user_body())


def test_two_apps_sharing_redis_make_one_check_per_key(
    stack_settings: dict[str, Any],
    mock_api: respx.MockRouter,
    user_get: respx.Route,
    redis_server: RedisServer,
    redis_url: str,
) -> None:
    check = checking("user", mock_api)
    settings = {**stack_settings, "cache_url": redis_url}
    (app_a, _), (app_b, stack_b) = build_app(settings), build_app(settings)
    key = make_key("user")
    with TestClient(app_a) as a, TestClient(app_b) as b:
        for client in (a, b, a, b):
            response = client.get("/principal", headers={"x-stack-api-key": key})
            assert response.json() == {"kind": "user", "user": USER_ID}
        assert (check.call_count, user_get.call_count) == (1, 1)
        shared = stack_b.api_keys.cache.get(hashlib.sha256(key.encode()).digest())
        assert isinstance(shared, Principal)  # b filled its in-process cache from Redis
        assert shared.api_key is not None
    stored = redis_server.cached_values()  # the index sets left out
    assert list(stored) == [redis_key(key)]
    everything = b"\n".join(k + b"=" + v for k, v in stored.items())
    assert key[3:48].encode() not in everything  # not the key, nor its secret part
    assert SECRET_KEY.encode() not in everything


def test_the_shared_entry_never_outlives_the_key(
    stack_settings: dict[str, Any],
    mock_api: respx.MockRouter,
    user_get: respx.Route,
    redis_server: RedisServer,
    redis_url: str,
) -> None:
    key, forever = make_key("team"), make_key("team")
    expires = int((time.time() + 12) * 1000)
    answers = {key: key_body(key, expires_at_millis=expires), forever: key_body(forever)}

    def check(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=answers[json.loads(request.content)["api_key"]])

    mock_api.post("/team-api-keys/check").mock(side_effect=check)
    app, _ = build_app({**stack_settings, "cache_url": redis_url, "cache_ttl": 30})
    with TestClient(app) as client:
        for k in (key, forever):
            assert client.get("/principal", headers={"x-stack-api-key": k}).status_code == 200
    with redis_server.client() as client:
        assert 10 <= client.ttl(redis_key(key)) <= 12
        assert 28 <= client.ttl(redis_key(forever)) <= 30
