"""Upstream faults: bounded retries, the per-call deadline, serve-stale, and what each fault
gives our client (never a 500 traceback, never a token or key in a log line).

Retries wait through an injected ``sleep`` and measure the deadline on an injected ``clock``
(``FakeTime``), so these tests never sleep for real to wait out a backoff. The loopback tests
at the end use real sockets and httpx's own transport (the only one): a port that refuses, a
server that never answers, one that drips its body, raw bytes no HTTP server would send.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import gzip
import json
import logging
import socket
import threading
import time
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import anyio
import httpx
import jwt
import pytest
import respx
from cachetools import TTLCache
from fastapi import Depends, FastAPI

from fastapi_stack_auth import StackAuth, StackAuthSettings, StackUser, current_user
from fastapi_stack_auth._cache import TokenCache, token_key
from fastapi_stack_auth._client import BACKOFF_BASE, StackClient
from fastapi_stack_auth._jwks import JwksCache
from fastapi_stack_auth._pipeline import REJECTION_TTL
from fastapi_stack_auth._stale import StaleIdentities
from fastapi_stack_auth._tokens import read_claims
from fastapi_stack_auth.errors import StackBadResponseError, StackUnavailableError
from fastapi_stack_auth.models import Identity
from tests.conftest import (
    PROJECT_ID,
    PUBLISHABLE_KEY,
    SECRET_KEY,
    USER_ID,
    mint_token,
    stack_error,
    user_body,
)
from tests.jwt_helpers import JwksEndpoint, KeyRing
from tests.servers import (
    Handler,
    http_response,
    listening_socket,
    raw_server,
    read_request,
    serve_in_thread,
    url_of,
)

# --- helpers -----------------------------------------------------------------------------------


class FakeTime:
    """A monotonic clock that moves only through ``sleep`` or ``advance``, and records the
    sleeps it was asked for."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)  # still a checkpoint, as a real sleep is


def install(client: StackClient, fake: FakeTime, jitter: float = 0.5) -> None:
    """Make ``client`` retry on ``fake`` time with a fixed jitter draw."""
    client.sleep = fake.sleep
    client.clock = fake.clock
    client.random = lambda: jitter


@pytest.fixture
def fake() -> FakeTime:
    return FakeTime()


@pytest.fixture
async def client(
    stack_settings: dict[str, Any], mock_api: respx.MockRouter, fake: FakeTime
) -> AsyncIterator[StackClient]:
    async with StackClient(StackAuthSettings(**stack_settings)) as opened:
        install(opened, fake)
        yield opened


def build_app(stack: StackAuth) -> FastAPI:
    app = FastAPI()
    stack.init_app(app)

    @app.get("/me")
    async def me(user: StackUser = Depends(current_user)) -> dict[str, str]:
        return {"id": user.id}

    return app


def app_client(stack: StackAuth) -> httpx.AsyncClient:
    # raise_app_exceptions (the default): an unhandled exception fails the test outright.
    transport = httpx.ASGITransport(app=build_app(stack))
    return httpx.AsyncClient(transport=transport, base_url="http://app.test")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["code"] == code
    assert set(response.json()) == {"detail", "code"}


def assert_no_secrets(caplog: pytest.LogCaptureFixture, *secrets: str) -> None:
    """Nothing secret in any record of any logger: message, arguments or attributes."""
    text = caplog.text + "\n".join(str(r.__dict__) for r in caplog.records)
    for secret in (*secrets, SECRET_KEY, PUBLISHABLE_KEY):
        assert secret not in text


def slow(seconds: float, fake: FakeTime, then: httpx.Response) -> Callable[..., httpx.Response]:
    """A respx side effect: each attempt takes ``seconds`` of fake time, then answers."""

    def respond(request: httpx.Request) -> httpx.Response:
        fake.advance(seconds)
        return then

    return respond


# --- retry policy, at the client -------------------------------------------------------------

RETRIED = [
    pytest.param({"side_effect": httpx.ConnectError("refused")}, id="connect-error"),
    pytest.param({"side_effect": httpx.ConnectTimeout("slow")}, id="connect-timeout"),
    pytest.param({"side_effect": httpx.ReadTimeout("slow")}, id="read-timeout"),
    pytest.param({"side_effect": httpx.ReadError("reset")}, id="read-error"),
    pytest.param({"side_effect": httpx.RemoteProtocolError("cut")}, id="cut-mid-answer"),
    pytest.param({"return_value": httpx.Response(502, text="bad gateway")}, id="502"),
    pytest.param({"return_value": httpx.Response(503, text="down")}, id="503"),
    pytest.param({"return_value": httpx.Response(504, text="gateway timeout")}, id="504"),
    pytest.param({"return_value": httpx.Response(429, json={"message": "slow"})}, id="429"),
]


@pytest.mark.parametrize("mock", RETRIED)
async def test_transient_faults_are_retried_up_to_max_attempts(
    client: StackClient, mock_api: respx.MockRouter, fake: FakeTime, mock: dict[str, Any]
) -> None:
    route = mock_api.get("/users/me").mock(**mock)
    with pytest.raises(StackUnavailableError) as info:
        await client.get_current_user(mint_token())
    assert route.call_count == 3
    assert "3 attempts" in info.value.reason
    assert info.value.retry_after == 5
    # Full jitter (the draw is 0.5 here), doubling: 0.5 * 0.1, then 0.5 * 0.2.
    assert fake.sleeps == pytest.approx([0.5 * BACKOFF_BASE, 0.5 * BACKOFF_BASE * 2])


async def test_a_retry_that_succeeds_is_invisible(
    client: StackClient, mock_api: respx.MockRouter, fake: FakeTime
) -> None:
    route = mock_api.get("/users/me")
    route.side_effect = [
        httpx.ConnectError("refused"),
        httpx.Response(503),
        httpx.Response(200, json=user_body()),
    ]
    assert (await client.get_current_user(mint_token()))["id"] == USER_ID
    assert route.call_count == 3


@pytest.mark.parametrize(
    "response",
    [
        pytest.param(httpx.Response(500, text="Internal error, request id 42"), id="500"),
        pytest.param(stack_error(401, "UNPARSABLE_ACCESS_TOKEN"), id="401"),
        pytest.param(stack_error(400, "CANNOT_GET_OWN_USER_WITHOUT_USER"), id="400"),
        pytest.param(httpx.Response(200, content=b'{"id": "tru'), id="truncated-json"),
        pytest.param(httpx.Response(200, text="<html>"), id="not-json"),
    ],
)
async def test_answers_that_would_not_change_are_not_retried(
    client: StackClient, mock_api: respx.MockRouter, fake: FakeTime, response: httpx.Response
) -> None:
    route = mock_api.get("/users/me").mock(return_value=response)
    with pytest.raises(Exception):  # noqa: B017, PT011 -- which one is tested elsewhere
        await client.get_current_user(mint_token())
    assert route.call_count == 1
    assert fake.sleeps == []


async def test_non_idempotent_methods_are_never_retried(
    client: StackClient, mock_api: respx.MockRouter, fake: FakeTime
) -> None:
    route = mock_api.post("/users").mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(StackUnavailableError):
        await client.request("POST", "/users", json_body={})
    mock_api.post("/teams").respond(503)
    with pytest.raises(StackUnavailableError):
        await client.request("POST", "/teams", json_body={})
    assert route.call_count == 1
    assert mock_api.routes[-1].call_count == 1
    assert fake.sleeps == []


async def test_max_attempts_1_disables_retries(
    stack_settings: dict[str, Any], mock_api: respx.MockRouter, fake: FakeTime
) -> None:
    route = mock_api.get("/users/me").respond(503)
    settings = StackAuthSettings(**stack_settings, max_attempts=1)
    async with StackClient(settings) as client:
        install(client, fake)
        with pytest.raises(StackUnavailableError):
            await client.get_current_user(mint_token())
    assert route.call_count == 1


@pytest.mark.parametrize("status", [429, 503])
async def test_retry_after_is_waited_for_when_it_fits(
    client: StackClient, mock_api: respx.MockRouter, fake: FakeTime, status: int
) -> None:
    route = mock_api.get("/users/me")
    route.side_effect = [
        httpx.Response(status, headers={"retry-after": "2"}, json={"message": "slow down"}),
        httpx.Response(200, json=user_body()),
    ]
    assert (await client.get_current_user(mint_token()))["id"] == USER_ID
    assert route.call_count == 2
    assert fake.sleeps == [2.0]  # Stack's wait, not the (shorter) backoff


async def test_retry_after_of_0_still_backs_off(
    client: StackClient, mock_api: respx.MockRouter, fake: FakeTime
) -> None:
    route = mock_api.get("/users/me")
    route.side_effect = [
        httpx.Response(429, headers={"retry-after": "0"}),
        httpx.Response(200, json=user_body()),
    ]
    await client.get_current_user(mint_token())
    assert fake.sleeps == [0.5 * BACKOFF_BASE]


@pytest.mark.parametrize("status", [429, 503])
async def test_retry_after_beyond_the_deadline_fails_fast_and_is_passed_on(
    client: StackClient, mock_api: respx.MockRouter, fake: FakeTime, status: int
) -> None:
    # The deadline is twice http_timeout (10 s) by default: 30 s cannot be waited for.
    route = mock_api.get("/users/me").respond(status, headers={"retry-after": "30"})
    with pytest.raises(StackUnavailableError) as info:
        await client.get_current_user(mint_token())
    assert route.call_count == 1
    assert fake.sleeps == []
    assert info.value.retry_after == 30


async def test_the_deadline_bounds_all_attempts_together(
    stack_settings: dict[str, Any], mock_api: respx.MockRouter, fake: FakeTime
) -> None:
    # Each attempt takes 4 s (of fake time) and ends in a 503; 10 attempts are allowed, but
    # the 10 s deadline starts only three: at 0, 4.05 and 8.15 s (in real life the third is
    # cut to the 1.85 s left by its own budget, tested in real time below).
    settings = StackAuthSettings(**stack_settings, max_attempts=10, request_deadline=10)
    route = mock_api.get("/users/me").mock(side_effect=slow(4, fake, httpx.Response(503)))
    async with StackClient(settings) as client:
        install(client, fake)
        start = fake.now
        with pytest.raises(StackUnavailableError):
            await client.get_current_user(mint_token())
    assert route.call_count == 3
    assert fake.now - start <= 10 + 4  # no attempt *started* after the deadline
    assert sum(fake.sleeps) < 1


async def test_no_retry_starts_without_time_left_for_it(
    stack_settings: dict[str, Any], mock_api: respx.MockRouter, fake: FakeTime
) -> None:
    settings = StackAuthSettings(**stack_settings, http_timeout=5, request_deadline=5)
    route = mock_api.get("/users/me").mock(side_effect=slow(4.97, fake, httpx.Response(503)))
    async with StackClient(settings) as client:
        install(client, fake)
        with pytest.raises(StackUnavailableError):
            await client.get_current_user(mint_token())
    assert route.call_count == 1
    assert fake.sleeps == []


def test_deadline_defaults_to_twice_the_timeout_and_must_cover_one_attempt(
    stack_settings: dict[str, Any],
) -> None:
    from fastapi_stack_auth import StackAuthConfigError
    from fastapi_stack_auth._settings import load_settings

    assert StackClient(load_settings(**stack_settings, http_timeout=3)).deadline == 6
    assert StackClient(load_settings(**stack_settings, request_deadline=7)).deadline == 7
    with pytest.raises(StackAuthConfigError, match="STACK_REQUEST_DEADLINE"):
        load_settings(**stack_settings, http_timeout=5, request_deadline=2)
    with pytest.raises(StackAuthConfigError, match="STACK_MAX_ATTEMPTS"):
        load_settings(**stack_settings, max_attempts=0)
    with pytest.raises(StackAuthConfigError, match="STACK_STALE_GRACE"):
        load_settings(**stack_settings, stale_grace=-1)


async def test_each_attempt_and_the_whole_call_are_bounded_in_real_time(
    stack_settings: dict[str, Any], mock_api: respx.MockRouter
) -> None:
    """The per-attempt bound (``http_timeout``) and the overall one (``request_deadline``)
    with the real clock: an upstream that never answers."""
    never = asyncio.Event()
    attempts: list[float] = []

    async def hangs(request: httpx.Request) -> httpx.Response:
        attempts.append(time.monotonic())
        await never.wait()
        raise AssertionError("unreachable")

    mock_api.get("/users/me").mock(side_effect=hangs)
    settings = StackAuthSettings(**stack_settings, http_timeout=0.5, request_deadline=0.8)
    async with StackClient(settings) as client:
        client.random = lambda: 0.0  # no backoff: the second attempt gets the 0.3 s left
        start = time.monotonic()
        with pytest.raises(StackUnavailableError, match="timed out"):
            await client.get_current_user(mint_token())
        elapsed = time.monotonic() - start
    assert len(attempts) == 2
    assert attempts[1] - attempts[0] >= 0.45  # the first attempt ran its 0.5 s
    assert 0.75 <= elapsed < 3  # and both together the 0.8 s deadline


async def test_jwks_fetches_are_retried_within_one_fetch(
    stack_settings: dict[str, Any], mock_api: respx.MockRouter, fake: FakeTime
) -> None:
    ring = KeyRing()
    endpoint = JwksEndpoint(ring)
    answers = iter([httpx.Response(503), None, None])

    def flaky(request: httpx.Request) -> httpx.Response:
        first = next(answers, None)
        return first if first is not None else endpoint(request)

    route = mock_api.get(f"/projects/{PROJECT_ID}/.well-known/jwks.json").mock(side_effect=flaky)
    settings = StackAuthSettings(**stack_settings, verify="jwt")
    async with StackClient(settings) as client:
        install(client, fake)
        jwks = JwksCache(client, PROJECT_ID)
        assert await jwks.get(ring.signer().kid) is not None
    assert jwks.fetches == 1  # one fetch (the rate limit counts fetches) ...
    # ... in which one request (of one per key set asked for) took two attempts.
    queries = [call.request.url.query for call in route.calls]
    assert len(queries) == len(set(queries)) + 1
    for call in route.calls:  # a retry strips our keys too
        assert "x-stack-secret-server-key" not in call.request.headers


# --- what each fault gives our client, through the app ----------------------------------------


def deep_list(depth: int) -> Any:
    value: Any = []
    for _ in range(depth):
        value = [value]
    return value


def bad_gzip() -> httpx.Response:
    # A stream, so that decoding happens when our client reads it, not here.
    headers = {"content-encoding": "gzip"}
    return httpx.Response(200, headers=headers, stream=httpx.ByteStream(b"not gzip at all"))


#: (fault, status, Retry-After, attempts)
FAULTS = [
    pytest.param({"side_effect": httpx.ConnectError("refused")}, 503, "5", 3, id="refused"),
    pytest.param({"side_effect": httpx.ConnectTimeout("slow")}, 503, "5", 3, id="conn-timeout"),
    pytest.param({"side_effect": httpx.ReadTimeout("slow")}, 503, "5", 3, id="timeout"),
    pytest.param({"side_effect": httpx.RemoteProtocolError("x")}, 503, "5", 3, id="cut"),
    pytest.param({"return_value": httpx.Response(500, text="oops")}, 503, "5", 1, id="500"),
    pytest.param({"return_value": httpx.Response(502, text="bad gw")}, 503, "5", 3, id="502"),
    pytest.param({"return_value": httpx.Response(504, text="gw slow")}, 503, "5", 3, id="504"),
    pytest.param(
        {"return_value": httpx.Response(503, headers={"retry-after": "1"}, text="brb")},
        503,
        "1",
        3,
        id="503-retry-after-1",
    ),
    pytest.param(
        {"return_value": httpx.Response(503, headers={"retry-after": "120"}, text="brb")},
        503,
        "120",
        1,
        id="503-retry-after-120",
    ),
    pytest.param(
        {"return_value": httpx.Response(429, json={"message": "slow down"})},
        503,
        "5",
        3,
        id="429",
    ),
    pytest.param(
        # 6 s waited once; a second 6 s wait would end past the 10 s deadline: fail fast.
        {"return_value": httpx.Response(429, headers={"retry-after": "6"}, json={})},
        503,
        "6",
        2,
        id="429-retry-after-6",
    ),
    pytest.param(
        {"return_value": httpx.Response(200, content=b'{"id": "3f5c8e21-7a4b')},
        502,
        None,
        1,
        id="truncated-json",
    ),
    pytest.param(
        {"return_value": httpx.Response(200, text="<html>maintenance</html>")},
        502,
        None,
        1,
        id="not-json",
    ),
    pytest.param(
        {"return_value": httpx.Response(200, json={"id": USER_ID})},
        502,
        None,
        1,
        id="missing-fields",
    ),
    pytest.param(
        {
            "return_value": httpx.Response(
                200, json={k: v for k, v in user_body().items() if k != "is_restricted"}
            )
        },
        502,
        None,
        1,
        id="missing-is-restricted",
    ),
    pytest.param(
        {"return_value": httpx.Response(200, json=user_body(id="someone-else"))},
        502,
        None,
        1,
        id="another-user",
    ),
    pytest.param(
        {"side_effect": lambda _: bad_gzip()},
        502,
        None,
        1,
        id="bad-content-encoding",
    ),
    pytest.param(
        {"return_value": httpx.Response(200, content=b"[" * 50_000)}, 502, None, 1, id="deep"
    ),
    pytest.param(
        # A good answer, but for 2 MiB of trailing whitespace.
        {
            "return_value": httpx.Response(
                200, content=json.dumps(user_body()).encode() + b" " * (2 << 20)
            )
        },
        502,
        None,
        1,
        id="2-MiB-body",
    ),
    pytest.param(
        {
            "return_value": stack_error(
                400, "CANNOT_GET_OWN_USER_WITHOUT_USER\n2026-01-01 CRITICAL forged by upstream"
            )
        },
        500,
        None,
        1,
        id="code-with-a-newline",
    ),
    pytest.param(
        {"return_value": httpx.Response(200, content=b'{"id": "\xff\xfe"}')},
        502,
        None,
        1,
        id="not-utf-8",
    ),
    pytest.param(
        {"return_value": httpx.Response(200, json=user_body(client_metadata=deep_list(600)))},
        502,
        None,
        1,
        id="deep-metadata",
    ),
]


@pytest.mark.parametrize(("mock", "status", "retry_after", "attempts"), FAULTS)
async def test_each_fault_gives_its_documented_status(
    stack: StackAuth,
    mock_api: respx.MockRouter,
    fake: FakeTime,
    caplog: pytest.LogCaptureFixture,
    mock: dict[str, Any],
    status: int,
    retry_after: str | None,
    attempts: int,
) -> None:
    install(stack.client, fake)
    route = mock_api.get("/users/me").mock(**mock)
    token = mint_token()
    caplog.set_level(logging.DEBUG)  # every logger, every level
    async with app_client(stack) as app:
        response = await app.get("/me", headers=bearer(token))
    if status == 503:
        assert_error(response, 503, "STACK_AUTH_UNAVAILABLE")
        assert response.headers["retry-after"] == retry_after
    elif status == 502:
        assert_error(response, 502, "STACK_AUTH_BAD_RESPONSE")
        assert "retry-after" not in response.headers
    else:
        assert_error(response, 500, "SERVER_MISCONFIGURED")
    # Whatever upstream sent, each of our log records is one line of printable text.
    ours = [r.getMessage() for r in caplog.records if r.name == "fastapi_stack_auth"]
    assert ours
    assert all(m.isprintable() for m in ours), ours
    assert route.call_count == attempts
    assert sum(fake.sleeps) <= stack.client.deadline
    assert not any(r.levelno >= logging.CRITICAL for r in caplog.records)
    for text in ("oops", "brb", "maintenance", "slow down", "3f5c8e21-7a4b"):
        assert text not in response.text
    assert_no_secrets(caplog, token)


async def test_an_unwrapped_network_error_from_a_custom_transport_is_503(
    stack_settings: dict[str, Any], fake: FakeTime
) -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/jwks.json"):  # loaded at startup: no key set here
            return httpx.Response(404)
        calls.append(request)
        raise ConnectionResetError("reset by peer")

    async with StackAuth(**stack_settings, transport=httpx.MockTransport(handler)) as stack:
        install(stack.client, fake)
        async with app_client(stack) as app:
            response = await app.get("/me", headers=bearer(mint_token()))
    assert_error(response, 503, "STACK_AUTH_UNAVAILABLE")
    assert len(calls) == 3


async def test_no_fault_is_cached(
    stack: StackAuth, mock_api: respx.MockRouter, fake: FakeTime
) -> None:
    install(stack.client, fake)
    route = mock_api.get("/users/me")
    route.side_effect = [httpx.ConnectError("refused")] * 3 + [
        httpx.Response(200, json=user_body())
    ]
    token = mint_token()
    async with app_client(stack) as app:
        assert (await app.get("/me", headers=bearer(token))).status_code == 503
        assert (await app.get("/me", headers=bearer(token))).status_code == 200
    assert route.call_count == 4


# --- serve-stale -------------------------------------------------------------------------------


class WallClock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def stale_stack(
    stack_settings: dict[str, Any], mock_api: respx.MockRouter, fake: FakeTime
) -> AsyncIterator[tuple[StackAuth, WallClock]]:
    # cache_ttl=0: every request asks Stack, so each one meets the outage.
    async with StackAuth(**stack_settings, cache_ttl=0, stale_grace=60) as stack:
        install(stack.client, fake)
        wall = WallClock()
        assert stack.pipeline.stale is not None
        stack.pipeline.stale = StaleIdentities(grace=60, maxsize=100, clock=wall, timer=fake.clock)
        stack.pipeline.rejected = TTLCache(100, REJECTION_TTL, timer=fake.clock)
        yield stack, wall


async def test_serve_stale_is_off_by_default(
    stack_settings: dict[str, Any], mock_api: respx.MockRouter, fake: FakeTime
) -> None:
    route = mock_api.get("/users/me").respond(200, json=user_body())
    token = mint_token()
    async with StackAuth(**stack_settings, cache_ttl=0) as stack:
        install(stack.client, fake)
        assert stack.pipeline.stale is None
        async with app_client(stack) as app:
            assert (await app.get("/me", headers=bearer(token))).status_code == 200
            route.mock(side_effect=httpx.ConnectError("refused"))
            assert_error(await app.get("/me", headers=bearer(token)), 503, "STACK_AUTH_UNAVAILABLE")


@pytest.mark.parametrize(
    "outage",
    [
        pytest.param({"side_effect": httpx.ConnectError("refused")}, id="refused"),
        pytest.param({"side_effect": httpx.ReadTimeout("slow")}, id="timeout"),
        pytest.param({"return_value": httpx.Response(503)}, id="503"),
        pytest.param({"return_value": httpx.Response(429)}, id="429"),
        pytest.param({"return_value": httpx.Response(500)}, id="500"),
    ],
)
async def test_serve_stale_lets_a_recently_verified_user_in_during_an_outage(
    stale_stack: tuple[StackAuth, WallClock],
    mock_api: respx.MockRouter,
    fake: FakeTime,
    caplog: pytest.LogCaptureFixture,
    outage: dict[str, Any],
) -> None:
    stack, wall = stale_stack
    route = mock_api.get("/users/me").respond(200, json=user_body())
    token, never_seen = mint_token(), mint_token()
    caplog.set_level(logging.DEBUG)
    async with app_client(stack) as app:
        assert (await app.get("/me", headers=bearer(token))).status_code == 200
        route.mock(**outage)
        wall.now += 30
        for _ in range(3):
            response = await app.get("/me", headers=bearer(token))
            assert response.status_code == 200
            assert response.json() == {"id": USER_ID}
        # A token Stack never confirmed gets no such favour.
        assert_error(
            await app.get("/me", headers=bearer(never_seen)), 503, "STACK_AUTH_UNAVAILABLE"
        )
        # Past the grace window, the outage shows.
        wall.now += 31
        assert_error(await app.get("/me", headers=bearer(token)), 503, "STACK_AUTH_UNAVAILABLE")
    warnings = [r for r in caplog.records if "STACK_STALE_GRACE" in r.getMessage()]
    assert len(warnings) == 1  # once per outage (rate-limited), not once per request
    assert warnings[0].levelno == logging.WARNING
    assert_no_secrets(caplog, token, never_seen)


async def test_serve_stale_warns_again_after_the_interval_and_notes_the_recovery(
    stale_stack: tuple[StackAuth, WallClock],
    mock_api: respx.MockRouter,
    fake: FakeTime,
    caplog: pytest.LogCaptureFixture,
) -> None:
    stack, _ = stale_stack
    route = mock_api.get("/users/me").respond(200, json=user_body())
    token = mint_token()
    caplog.set_level(logging.INFO, logger="fastapi_stack_auth")
    async with app_client(stack) as app:
        await app.get("/me", headers=bearer(token))
        route.mock(side_effect=httpx.ConnectError("refused"))
        await app.get("/me", headers=bearer(token))
        fake.advance(61)
        await app.get("/me", headers=bearer(token))
        route.mock(return_value=httpx.Response(200, json=user_body()))
        await app.get("/me", headers=bearer(token))
    messages = [r.getMessage() for r in caplog.records if "STACK_STALE_GRACE" in r.getMessage()]
    assert len(messages) == 3
    assert "answers again" in messages[-1]
    assert "2 requests" in messages[-1]


@pytest.mark.parametrize(
    ("verdict", "status"),
    [
        (stack_error(401, "UNPARSABLE_ACCESS_TOKEN"), 401),
        (stack_error(400, "CANNOT_GET_OWN_USER_WITHOUT_USER"), 401),
        (httpx.Response(200, text="not json"), 502),
    ],
)
async def test_serve_stale_forgets_a_token_stack_no_longer_vouches_for(
    stale_stack: tuple[StackAuth, WallClock],
    mock_api: respx.MockRouter,
    fake: FakeTime,
    verdict: httpx.Response,
    status: int,
) -> None:
    stack, _ = stale_stack
    route = mock_api.get("/users/me").respond(200, json=user_body())
    token = mint_token()
    async with app_client(stack) as app:
        assert (await app.get("/me", headers=bearer(token))).status_code == 200
        route.mock(return_value=verdict)
        assert (await app.get("/me", headers=bearer(token))).status_code == status
        route.mock(side_effect=httpx.ConnectError("refused"))
        # A 401 verdict is remembered for a while: the outage is not even asked about.
        if status == 401:
            assert (await app.get("/me", headers=bearer(token))).status_code == 401
            fake.advance(REJECTION_TTL)
        assert_error(await app.get("/me", headers=bearer(token)), 503, "STACK_AUTH_UNAVAILABLE")


async def test_serve_stale_applies_the_policy_to_the_stale_user(
    stale_stack: tuple[StackAuth, WallClock], mock_api: respx.MockRouter
) -> None:
    stack, _ = stale_stack
    anon = user_body(is_anonymous=True, is_restricted=True, restricted_reason={"type": "anonymous"})
    route = mock_api.get("/users/me").respond(200, json=anon)
    token = mint_token(kind="anonymous")
    async with app_client(stack) as app:
        assert_error(await app.get("/me", headers=bearer(token)), 403, "ANONYMOUS_USER_NOT_ALLOWED")
        route.mock(side_effect=httpx.ConnectError("refused"))
        assert_error(await app.get("/me", headers=bearer(token)), 403, "ANONYMOUS_USER_NOT_ALLOWED")


async def test_a_stale_answer_is_cached_no_longer_than_the_grace_window(
    stack_settings: dict[str, Any], mock_api: respx.MockRouter, fake: FakeTime
) -> None:
    route = mock_api.get("/users/me").respond(200, json=user_body())
    token = mint_token(exp_in=200)
    key = token_key(token)
    async with StackAuth(**stack_settings, cache_ttl=300, stale_grace=10) as stack:
        install(stack.client, fake)
        wall = WallClock()
        pipeline = stack.pipeline
        pipeline.stale = StaleIdentities(grace=10, maxsize=100, clock=wall)
        pipeline.cache = cache = TokenCache(maxsize=100, ttl=300, clock=wall)
        identity = await pipeline.authenticate(token)
        # A fresh answer is cached until the token's exp (200 s, before the 300 s TTL).
        wall.now = identity.claims.exp - 0.1
        assert cache.get(key) is identity
        wall.now = identity.claims.exp
        assert cache.get(key) is None
        # Stack goes down 4 s after it verified the token: the stale answer is cached for
        # the 6 s of grace left, not the TTL.
        wall.now = identity.claims.exp - 100
        cache.clear()
        identity = await pipeline.authenticate(token)
        route.mock(side_effect=httpx.ConnectError("refused"))
        cache.clear()
        wall.now += 4
        assert await pipeline.authenticate(token) is identity
        wall.now += 5.9
        assert cache.get(key) is identity
        wall.now += 0.2
        assert cache.get(key) is None
    assert route.call_count == 5  # two verifications, then the outage's three attempts


def test_stale_store_never_outlives_the_token_exp() -> None:
    wall = WallClock()
    claims = read_claims(jwt.decode(mint_token(exp_in=20), options={"verify_signature": False}))
    identity = Identity(claims=claims, user=StackUser.model_validate(user_body()))
    store = StaleIdentities(grace=3600, maxsize=2, clock=wall)
    store.remember(b"k", identity)
    hit = store.recall(b"k", "test")
    assert hit is not None
    assert hit[1] == claims.exp
    wall.now = claims.exp + 1
    assert store.recall(b"k", "test") is None
    assert len(store) == 0
    # Bounded: the least recently used goes.
    wall.now = claims.exp - 10
    for key in (b"a", b"b", b"c"):
        store.remember(key, identity)
    assert len(store) == 2


def test_serve_stale_is_remote_mode_only(stack_settings: dict[str, Any]) -> None:
    assert StackAuth(**stack_settings, stale_grace=60).pipeline.stale is not None
    assert StackAuth(**stack_settings, stale_grace=60, verify="jwt").pipeline.stale is None


# --- real sockets on loopback -----------------------------------------------------------------


@pytest.fixture
def refusing_url() -> Iterator[str]:
    """A loopback port that refuses connections: bound (so nobody else takes it), never
    listening."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield url_of(sock)
    finally:
        sock.close()


@pytest.fixture
def silent_url() -> Iterator[str]:
    """A loopback port that accepts connections (the kernel's backlog does) and never
    answers."""
    sock = listening_socket()
    try:
        yield url_of(sock)
    finally:
        sock.close()


@pytest.fixture
def dripping_url() -> Iterator[str]:
    """A real HTTP server that sends a 200's headers at once, then its body a byte at a time:
    no single read ever times out."""
    stop = threading.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = json.dumps(user_body()).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        for i in range(len(body)):
            if stop.is_set():
                return
            await send({"type": "http.response.body", "body": body[i : i + 1], "more_body": True})
            await asyncio.sleep(0.05)  # the fault being simulated: a server dripping its body
        await send({"type": "http.response.body", "body": b""})

    with serve_in_thread(app) as url:
        try:
            yield url
        finally:
            stop.set()


@pytest.mark.parametrize(
    ("server", "reason"),
    [("refusing_url", "ConnectError"), ("silent_url", "timed out"), ("dripping_url", "timed out")],
)
async def test_real_socket_faults_are_503_within_the_deadline(
    request: pytest.FixtureRequest,
    stack_settings: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
    server: str,
    reason: str,
) -> None:
    url = request.getfixturevalue(server)
    settings = {**stack_settings, "api_url": url, "http_timeout": 0.3, "request_deadline": 0.7}
    token = mint_token()
    caplog.set_level(logging.DEBUG)  # httpcore and h11 too: they see the real headers
    async with StackAuth(**settings) as stack:
        stack.client.random = lambda: 0.0
        start = time.monotonic()
        async with app_client(stack) as app:
            response = await app.get("/me", headers=bearer(token))
        elapsed = time.monotonic() - start
    assert_error(response, 503, "STACK_AUTH_UNAVAILABLE")
    assert response.headers["retry-after"] == "5"
    assert elapsed < 3  # 0.7 s deadline, with room for a loaded machine
    warnings = [r.getMessage() for r in caplog.records if r.name == "fastapi_stack_auth"]
    assert any(reason in m for m in warnings), warnings
    assert_no_secrets(caplog, token)


async def test_real_socket_faults_are_bridged_by_serve_stale(
    stack_settings: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """Verified against a real stand-in, which then goes away (its port refuses): the outage is
    bridged by serve-stale."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def users_me(request: Any) -> JSONResponse:
        return JSONResponse(user_body())

    stand_in = Starlette(routes=[Route("/api/v1/users/me", users_me)])
    token = mint_token()
    caplog.set_level(logging.DEBUG)
    async with contextlib.AsyncExitStack() as running:
        with serve_in_thread(stand_in) as url:
            settings = {**stack_settings, "api_url": url, "cache_ttl": 0, "stale_grace": 60}
            stack = await running.enter_async_context(StackAuth(**settings))
            async with app_client(stack) as app:
                assert (await app.get("/me", headers=bearer(token))).status_code == 200
        async with app_client(stack) as app:
            response = await app.get("/me", headers=bearer(token))
    assert response.status_code == 200
    assert response.json() == {"id": USER_ID}
    assert any("STACK_STALE_GRACE" in r.getMessage() for r in caplog.records)
    assert_no_secrets(caplog, token)


# --- httpx's own transport against raw loopback sockets -----------------------------------------
# (folded in from the removed test_transport.py, whose aiohttp transport is gone)


def loopback_settings(url: str, **overrides: Any) -> StackAuthSettings:
    values: dict[str, Any] = {
        "project_id": PROJECT_ID,
        "secret_server_key": SECRET_KEY,
        "api_url": url,
        "max_attempts": 1,
        **overrides,
    }
    return StackAuthSettings(**values)


def answer_then(reply: bytes, *, close: bool = True) -> Handler:
    """A handler that reads one request, sends ``reply``, then closes (or waits for the
    client to)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(reply)
        await writer.drain()
        if not close:
            await reader.read()  # hold the connection until the client goes
        writer.close()

    return handle


async def test_requests_on_the_wire() -> None:
    seen: list[tuple[str, dict[str, str], bytes]] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while not reader.at_eof():
            try:
                request = await read_request(reader)
            except asyncio.IncompleteReadError:
                break
            seen.append(request)
            body = gzip.compress(json.dumps(user_body()).encode())
            writer.write(
                http_response(200, body, "content-type: application/json", "content-encoding: gzip")
            )
            await writer.drain()
        writer.close()

    token = mint_token()
    async with raw_server(handle) as url, StackClient(loopback_settings(url)) as client:
        user = await client.get_current_user(token)
        created = await client.request("POST", "/users", json_body={"display_name": "Ada"})
    assert user["id"] == USER_ID  # gzip decoded
    assert created["id"] == USER_ID
    (line, headers, _), (post_line, post_headers, post_body) = seen
    assert line == "GET /api/v1/users/me HTTP/1.1"
    assert headers["x-stack-access-token"] == token
    assert headers["x-stack-secret-server-key"] == SECRET_KEY
    assert headers["x-stack-access-type"] == "server"
    assert headers["x-stack-allow-anonymous-user"] == "true"
    assert headers["host"] == url.removeprefix("http://")
    assert "authorization" not in headers
    assert "cookie" not in headers
    assert post_line == "POST /api/v1/users HTTP/1.1"
    assert post_headers["content-type"] == "application/json"
    assert json.loads(post_body) == {"display_name": "Ada"}


@pytest.mark.parametrize(
    "reply",
    [
        b"",  # closed without a word
        b"NOT HTTP AT ALL\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{}",  # cut short
        b"HTTP/1.1 200 OK\r\nbad header line\r\n\r\n",
    ],
    ids=["closed", "garbage", "short-body", "bad-header"],
)
async def test_broken_answers_on_the_wire_are_unavailable_not_a_crash(reply: bytes) -> None:
    async with (
        raw_server(answer_then(reply)) as url,
        StackClient(loopback_settings(url)) as client,
    ):
        with pytest.raises(StackUnavailableError):
            await client.get_current_user(mint_token())


async def test_undecodable_body_on_the_wire_is_a_bad_response() -> None:
    reply = http_response(200, b"not gzip", "content-encoding: gzip")
    async with (
        raw_server(answer_then(reply)) as url,
        StackClient(loopback_settings(url)) as client,
    ):
        with pytest.raises(StackBadResponseError):
            await client.get_current_user(mint_token())


async def test_refused_connection_is_unavailable(refusing_url: str) -> None:
    async with StackClient(loopback_settings(refusing_url)) as client:
        with pytest.raises(StackUnavailableError) as caught:
            await client.get_current_user(mint_token())
    assert caught.value.reason == "ConnectError"


async def test_silent_server_times_out(silent_url: str) -> None:
    async with StackClient(loopback_settings(silent_url, http_timeout=0.2)) as client:
        with pytest.raises(StackUnavailableError, match="timed out"):
            await client.get_current_user(mint_token())


async def test_closing_the_client_closes_its_connections() -> None:
    closed = asyncio.Event()
    reply = http_response(200, json.dumps(user_body()).encode())

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await answer_then(reply, close=False)(reader, writer)
        closed.set()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        async with raw_server(handle) as url:
            client = StackClient(loopback_settings(url))
            await client.open()
            await client.get_current_user(mint_token())
            assert not closed.is_set()  # kept alive in the pool until now
            await client.aclose()
            with anyio.fail_after(5):
                await closed.wait()  # the server saw the connection end
            del client
            gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)], caught


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
async def test_a_huge_body_on_the_wire_is_not_read_to_its_end(framing: str) -> None:
    """256 MiB offered over a real socket: the client stops past 1 MiB (or at once, when the
    Content-Length says so) and drops the connection; the server sees it go."""
    total, chunk = 256 << 20, b" " * 65536
    sent = 0
    gone = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal sent
        await read_request(reader)
        framing_header = (
            f"content-length: {total}"
            if framing == "content-length"
            else "transfer-encoding: chunked"
        )
        writer.write(f"HTTP/1.1 200 OK\r\n{framing_header}\r\n\r\n".encode())
        try:
            while sent < total:
                if framing == "chunked":
                    writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                else:
                    writer.write(chunk)
                await writer.drain()
                sent += len(chunk)
        except (ConnectionError, OSError):
            gone.set()
        finally:
            writer.close()

    async with raw_server(handle) as url, StackClient(loopback_settings(url)) as client:
        with pytest.raises(StackBadResponseError, match="over 1048576 bytes"):
            await client.get_current_user(mint_token())
        with anyio.fail_after(10):
            await gone.wait()
    # What the kernel buffers on loopback is a few MiB at most: far from all of it.
    assert sent < 32 << 20
