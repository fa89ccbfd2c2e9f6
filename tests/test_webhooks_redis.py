"""Several workers share one Redis (``STACK_CACHE_URL``): a message id is handled once in
total. Redis is real (``tests/redis_fixtures.py``); Stack Auth is mocked with respx (only its
JWKS is asked for at startup)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import httpx
import pytest
import respx
from fastapi import FastAPI

from fastapi_stack_auth import StackAuth
from fastapi_stack_auth._shared_cache import KEY_PREFIX
from fastapi_stack_auth.webhooks import StackWebhooks, UserDeleted, WebhookEvent
from tests.conftest import PROJECT_ID, USER_ID
from tests.redis_fixtures import RedisServer
from tests.test_webhooks import (
    LOGGER,
    PATH,
    SECRET,
    Clock,
    Recorder,
    payload,
    signed,
)

pytest_plugins = ["tests.redis_fixtures"]

KEY_START = f"{KEY_PREFIX}:{PROJECT_ID}:webhook:".encode()


class Worker:
    """One app with its own StackAuth (on the shared Redis) and its own receiver."""

    def __init__(self, stack: StackAuth, hooks: StackWebhooks, client: httpx.AsyncClient) -> None:
        self.stack, self.hooks, self.client = stack, hooks, client

    async def post(self, delivery: tuple[bytes, dict[str, str]]) -> httpx.Response:
        body, headers = delivery
        return await self.client.post(PATH, content=body, headers=headers)


@asynccontextmanager
async def workers(
    count: int,
    settings: dict[str, Any],
    redis_url: str,
    setup: Callable[[StackWebhooks], None],
    secret: str | list[str] = SECRET,
) -> AsyncIterator[list[Worker]]:
    """``count`` started workers on one Redis; ``setup`` registers each one's handlers."""
    async with AsyncExitStack() as stack_of:
        started = []
        for _ in range(count):
            # A generous Redis timeout: under a loaded machine the default 0.1 s would let a
            # worker skip Redis and fall back to its own memory (it runs the handlers again).
            tuned = {**settings, "cache_url": redis_url, "cache_timeout": 2.0}
            stack = await stack_of.enter_async_context(StackAuth(**tuned))
            hooks = StackWebhooks(webhook_secret=secret, clock=Clock())
            setup(hooks)
            app = FastAPI()
            stack.init_app(app)  # the receiver finds it as the app's default
            app.include_router(hooks.router, prefix=PATH)
            client = await stack_of.enter_async_context(
                httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://w")
            )
            started.append(Worker(stack, hooks, client))
        yield started


def redis_entries(server: RedisServer) -> dict[bytes, tuple[bytes, int]]:
    """Each webhook key in Redis: its value and TTL."""
    with server.client() as client:
        return {
            key: (client.get(key) or b"", int(client.ttl(key)))
            for key in client.scan_iter(match=KEY_START + b"*")
        }


async def test_two_workers_run_the_handlers_once_in_total(
    stack_settings: dict[str, Any],
    mock_api: respx.MockRouter,
    redis_url: str,
    redis_server: RedisServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    recorder = Recorder()
    delivery = signed(payload("user.deleted.json"), msg_id="msg_shared")
    async with workers(2, stack_settings, redis_url, lambda h: h.on(WebhookEvent)(recorder)) as (
        a,
        b,
    ):
        assert (await a.post(delivery)).status_code == 204
        # The library subscribed itself: the worker that handled it refuses the deleted user.
        assert USER_ID in a.stack.invalidation.denied
        assert (await b.post(delivery)).status_code == 204
        assert (await b.post(delivery)).status_code == 204
    assert recorder.ids == ["msg_shared"]
    # The real StackAuth.invalidation ran, and told the other worker through Redis.
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    ((key, (value, ttl)),) = redis_entries(redis_server).items()
    # The id is not in the key: a digest keyed with the endpoint's secret.
    expected = hmac.new(
        base64.b64decode(SECRET[6:]),
        b"fastapi-stack-auth webhook message id\x00msg_shared",
        hashlib.sha256,
    ).hexdigest()
    assert key == KEY_START + expected.encode()
    assert value == b"done"
    assert 86_000 < ttl <= 86_400


async def test_a_duplicate_on_another_worker_while_the_first_runs_is_409(
    stack_settings: dict[str, Any],
    mock_api: respx.MockRouter,
    redis_url: str,
    redis_server: RedisServer,
) -> None:
    started, release = asyncio.Event(), asyncio.Event()
    runs: list[str] = []

    def setup(hooks: StackWebhooks) -> None:
        @hooks.on(UserDeleted)
        async def slow(event: UserDeleted) -> None:
            runs.append(event.id)
            started.set()
            await release.wait()

    delivery = signed(payload("user.deleted.json"), msg_id="msg_concurrent")
    async with workers(2, stack_settings, redis_url, setup) as (a, b):
        first = asyncio.create_task(a.post(delivery))
        await started.wait()
        (value, ttl) = next(iter(redis_entries(redis_server).values()))
        assert value == b"processing"
        assert 0 < ttl <= 120
        duplicate = await b.post(delivery)
        assert duplicate.status_code == 409
        assert duplicate.json()["code"] == "WEBHOOK_IN_PROGRESS"
        release.set()
        assert (await first).status_code == 204
        assert (await b.post(delivery)).status_code == 204
    assert runs == ["msg_concurrent"]


async def test_a_failure_on_one_worker_lets_the_retry_run_on_another(
    stack_settings: dict[str, Any],
    mock_api: respx.MockRouter,
    redis_url: str,
    redis_server: RedisServer,
) -> None:
    runs: list[str] = []

    def setup(hooks: StackWebhooks) -> None:
        @hooks.on(UserDeleted)
        async def flaky(event: UserDeleted) -> None:
            runs.append(event.id)
            if len(runs) == 1:
                raise RuntimeError("database down")

    delivery = signed(payload("user.deleted.json"), msg_id="msg_flaky")
    async with workers(2, stack_settings, redis_url, setup) as (a, b):
        assert (await a.post(delivery)).status_code == 500
        assert redis_entries(redis_server) == {}  # released
        assert (await b.post(delivery)).status_code == 204
        assert (await a.post(delivery)).status_code == 204
    assert runs == ["msg_flaky", "msg_flaky"]


async def test_two_endpoints_of_one_project_on_one_redis_both_handle_a_message(
    stack_settings: dict[str, Any],
    mock_api: respx.MockRouter,
    redis_url: str,
    redis_server: RedisServer,
) -> None:
    # Svix sends the same message id to every endpoint of the project, each with its own
    # secret: two services sharing a Redis must not skip each other's deliveries.
    from fastapi_stack_auth.webhooks import new_webhook_secret

    other_secret = new_webhook_secret()
    first, second = Recorder(), Recorder()
    async with (
        workers(1, stack_settings, redis_url, lambda h: h.on(WebhookEvent)(first)) as (a,),
        workers(
            1, stack_settings, redis_url, lambda h: h.on(WebhookEvent)(second), other_secret
        ) as (b,),
    ):
        assert (
            await a.post(signed(payload("team.deleted.json"), msg_id="msg_x"))
        ).status_code == 204
        delivery = signed(payload("team.deleted.json"), other_secret, msg_id="msg_x")
        assert (await b.post(delivery)).status_code == 204
    assert first.ids == ["msg_x"]
    assert second.ids == ["msg_x"]
    assert len(redis_entries(redis_server)) == 2


async def test_workers_midway_through_a_rotation_agree(
    stack_settings: dict[str, Any], mock_api: respx.MockRouter, redis_url: str
) -> None:
    # One worker still has only the old secret, the other has both (old first); Svix signs
    # with both while the old one is valid, in either order.
    from fastapi_stack_auth.webhooks import new_webhook_secret

    new = new_webhook_secret()
    recorder = Recorder()
    delivery = signed(payload("team.deleted.json"), [new, SECRET], msg_id="msg_rotating")
    async with (
        workers(1, stack_settings, redis_url, lambda h: h.on(WebhookEvent)(recorder)) as (a,),
        workers(
            1, stack_settings, redis_url, lambda h: h.on(WebhookEvent)(recorder), [SECRET, new]
        ) as (b,),
    ):
        assert (await b.post(delivery)).status_code == 204
        assert (await a.post(delivery)).status_code == 204
    assert recorder.ids == ["msg_rotating"]


async def test_with_redis_down_this_process_still_deduplicates(
    stack_settings: dict[str, Any],
    mock_api: respx.MockRouter,
    redis_factory: Callable[..., RedisServer],
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = redis_factory()
    recorder = Recorder()
    async with workers(1, stack_settings, server.url, lambda h: h.on(WebhookEvent)(recorder)) as (
        a,
    ):
        assert (
            await a.post(signed(payload("team.deleted.json"), msg_id="msg_up"))
        ).status_code == 204
        server.kill()
        delivery = signed(payload("user.deleted.json"), msg_id="msg_down")
        for _ in range(3):
            assert (await a.post(delivery)).status_code == 204
        # A second delivery while Redis is still down: no second warning.
        assert (await a.post(signed(payload("team.deleted.json")))).status_code == 204
    assert recorder.ids[:2] == ["msg_up", "msg_down"]
    assert len(recorder.ids) == 3
    warnings = [
        r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING
    ]
    assert len([w for w in warnings if "deduplicated by this process alone" in w]) == 1
