"""The dependencies end to end through FastAPI, with Stack Auth mocked by respx."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import logging
import math
import random
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import jwt
import pytest
import respx
from cachetools import TTLCache
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from fastapi import APIRouter, Depends, FastAPI, Request, WebSocket
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from fastapi_stack_auth import (
    CurrentClaims,
    CurrentUser,
    OptionalUser,
    StackAuth,
    StackUser,
    UserDependency,
    current_user,
    optional_user,
    require_user,
)
from fastapi_stack_auth._cache import TokenCache
from fastapi_stack_auth._pipeline import REJECTION_TTL
from fastapi_stack_auth.errors import AuthError, StackAuthError
from tests.conftest import (
    FIXTURES,
    PROJECT_ID,
    SECRET_KEY,
    USER_ID,
    fixture_response,
    mint_token,
    user_body,
)
from tests.jwt_helpers import JwksEndpoint, KeyRing, SigningKey, b64url

ANON_ID = "b7a1c3d5-e9f2-4a6b-8c0d-2e4f6a8b0c1d"


def build_app(stack: StackAuth) -> FastAPI:
    app = FastAPI()
    stack.init_app(app)

    @app.get("/me")
    async def me(user: StackUser = Depends(current_user)) -> dict[str, Any]:
        return {"id": user.id, "signed_up_at": user.signed_up_at.isoformat()}

    @app.get("/hello")
    async def hello(user: StackUser | None = Depends(optional_user)) -> dict[str, Any]:
        return {"id": user.id if user else None}

    @app.get("/anon-ok")
    async def anon_ok(
        user: StackUser = Depends(UserDependency(allow_anonymous=True)),
    ) -> dict[str, Any]:
        return {"id": user.id}

    @app.get("/restricted-ok")
    async def restricted_ok(
        user: StackUser = Depends(UserDependency(allow_restricted=True)),
    ) -> dict[str, Any]:
        return {"id": user.id}

    @app.get("/state", dependencies=[Depends(require_user)])
    async def state(request: Request) -> dict[str, Any]:
        return {"id": request.state.stack_user.id, "sub": request.state.stack_claims.sub}

    admin = APIRouter(prefix="/admin", dependencies=[Depends(require_user)])

    @admin.get("/stats")
    async def stats() -> dict[str, int]:
        return {"n": 1}

    app.include_router(admin)

    @app.websocket("/ws")
    async def ws(websocket: WebSocket, user: StackUser = Depends(current_user)) -> None:
        await websocket.accept()
        await websocket.send_json({"id": user.id})
        await websocket.close()

    return app


@pytest.fixture
async def client(stack: StackAuth) -> AsyncIterator[httpx.AsyncClient]:
    app = build_app(stack)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://app.test") as c:
        yield c


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code
    assert isinstance(body["detail"], str)
    assert body["detail"]
    assert set(body) == {"detail", "code"}
    if status == 401:
        assert response.headers["www-authenticate"].startswith("Bearer")


# --- success ----------------------------------------------------------------------------------


async def test_valid_token_gives_the_user(
    client: httpx.AsyncClient, mock_api: respx.MockRouter
) -> None:
    route = mock_api.get("/users/me").respond(200, json=user_body())
    response = await client.get("/me", headers=bearer(mint_token()))
    assert response.status_code == 200
    assert response.json() == {"id": USER_ID, "signed_up_at": "2026-01-01T00:00:00+00:00"}
    assert route.call_count == 1


@pytest.mark.parametrize("shape", ["x-stack-access-token", "x-stack-auth", "stackauth", "bearer"])
async def test_every_header_shape_authenticates(
    client: httpx.AsyncClient, mock_api: respx.MockRouter, shape: str
) -> None:
    import base64

    route = mock_api.get("/users/me").respond(200, json=user_body())
    token = mint_token()
    sdk = json.dumps({"accessToken": token, "refreshToken": "rt"})
    headers = {
        "x-stack-access-token": {"x-stack-access-token": token},
        "x-stack-auth": {"x-stack-auth": sdk},
        "stackauth": {
            "Authorization": "Bearer stackauth_" + base64.b64encode(sdk.encode()).decode()
        },
        "bearer": bearer(token),
    }[shape]
    assert (await client.get("/me", headers=headers)).status_code == 200
    assert route.calls.last.request.headers["x-stack-access-token"] == token


async def test_precedence_is_applied_end_to_end(
    client: httpx.AsyncClient, mock_api: respx.MockRouter
) -> None:
    route = mock_api.get("/users/me").respond(200, json=user_body())
    winner, loser = mint_token(), mint_token()
    await client.get("/me", headers={"x-stack-access-token": winner, **bearer(loser)})
    assert route.calls.last.request.headers["x-stack-access-token"] == winner


async def test_unknown_fields_from_stack_are_tolerated(
    client: httpx.AsyncClient, mock_api: respx.MockRouter
) -> None:
    mock_api.get("/users/me").respond(200, json=user_body(brand_new_field={"x": 1}))
    assert (await client.get("/me", headers=bearer(mint_token()))).status_code == 200


async def test_user_in_request_state_and_router_protection(
    client: httpx.AsyncClient, mock_api: respx.MockRouter
) -> None:
    mock_api.get("/users/me").respond(200, json=user_body())
    token = mint_token()
    response = await client.get("/state", headers=bearer(token))
    assert response.json() == {"id": USER_ID, "sub": USER_ID}
    assert (await client.get("/admin/stats", headers=bearer(token))).json() == {"n": 1}
    assert_error(await client.get("/admin/stats"), 401, "NOT_AUTHENTICATED")


# --- 401s that need no upstream call ---------------------------------------------------------


async def test_no_credential(client: httpx.AsyncClient, mock_api: respx.MockRouter) -> None:
    route = mock_api.get("/users/me")
    response = await client.get("/me")
    assert_error(response, 401, "NOT_AUTHENTICATED")
    assert response.headers["www-authenticate"] == 'Bearer realm="stack-auth"'
    assert route.call_count == 0


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({"x-stack-access-token": "not-a-jwt"}, "INVALID_TOKEN"),
        ({"x-stack-access-token": "a" * 9000 + ".b.c"}, "INVALID_TOKEN"),
        ({"x-stack-auth": "{broken"}, "MALFORMED_CREDENTIALS"),
        ({"x-stack-auth": "[" * 10000}, "MALFORMED_CREDENTIALS"),
        ({"Authorization": "Bearer stackauth_%%%"}, "MALFORMED_CREDENTIALS"),
        ({"Authorization": "Bearer a.b"}, "INVALID_TOKEN"),
        ({"Authorization": "Bearer " + mint_token(alg="HS256")}, "INVALID_TOKEN"),
        ({"Authorization": "Bearer " + mint_token(alg="none")}, "INVALID_TOKEN"),
        ({"Authorization": "Bearer " + mint_token(exp_in=-5)}, "TOKEN_EXPIRED"),
        ({"Authorization": "Bearer " + mint_token(project_id="other-project")}, "INVALID_TOKEN"),
    ],
)
async def test_bad_input_is_401_without_upstream_call(
    client: httpx.AsyncClient, mock_api: respx.MockRouter, headers: dict[str, str], code: str
) -> None:
    route = mock_api.get("/users/me")
    response = await client.get("/me", headers=headers)
    assert_error(response, 401, code)
    assert 'error="invalid' in response.headers["www-authenticate"]
    assert route.call_count == 0


async def test_non_ascii_header_is_401(
    client: httpx.AsyncClient, mock_api: respx.MockRouter
) -> None:
    route = mock_api.get("/users/me")
    response = await client.get("/me", headers=[(b"x-stack-access-token", "ä.b.c".encode())])
    assert_error(response, 401, "MALFORMED_CREDENTIALS")
    assert route.call_count == 0


async def test_repeated_authorization_header_is_401(
    client: httpx.AsyncClient, mock_api: respx.MockRouter
) -> None:
    token = mint_token()
    headers = [(b"authorization", f"Bearer {token}".encode())] * 2
    assert_error(await client.get("/me", headers=headers), 401, "MALFORMED_CREDENTIALS")


# --- what Stack says, mapped by whose fault it is ---------------------------------------------


@pytest.mark.parametrize(
    ("fixture", "status", "code"),
    [
        ("errors/UNPARSABLE_ACCESS_TOKEN.json", 401, "INVALID_TOKEN"),
        ("errors-constructed/ACCESS_TOKEN_EXPIRED.json", 401, "TOKEN_EXPIRED"),
        ("errors-constructed/INVALID_PROJECT_FOR_ACCESS_TOKEN.json", 401, "INVALID_TOKEN"),
        # The trap: a deleted user's valid token gets 400 from Stack, 401 from us.
        ("errors/CANNOT_GET_OWN_USER_WITHOUT_USER.json", 401, "USER_NOT_FOUND"),
        ("errors/ANONYMOUS_AUTHENTICATION_NOT_ALLOWED.json", 403, "ANONYMOUS_USER_NOT_ALLOWED"),
        ("errors-constructed/RESTRICTED_USER_NOT_ALLOWED.json", 403, "RESTRICTED_USER_NOT_ALLOWED"),
        ("errors-constructed/INVALID_SECRET_SERVER_KEY.json", 500, "SERVER_MISCONFIGURED"),
        ("errors/SERVER_AUTHENTICATION_REQUIRED.json", 500, "SERVER_MISCONFIGURED"),
        ("errors/CURRENT_PROJECT_NOT_FOUND.json", 500, "SERVER_MISCONFIGURED"),
        ("errors/INVALID_PUBLISHABLE_CLIENT_KEY.json", 500, "SERVER_MISCONFIGURED"),
        ("errors/INSUFFICIENT_ACCESS_TYPE.json", 500, "SERVER_MISCONFIGURED"),
        ("errors/SCHEMA_ERROR.json", 500, "SERVER_MISCONFIGURED"),
        (
            "errors-constructed/OVERRIDE_ERROR_STATUS.UNPARSABLE_ACCESS_TOKEN.json",
            401,
            "INVALID_TOKEN",
        ),
        ("errors-constructed/RATE_LIMIT_DEV_ONLY_429.json", 503, "STACK_AUTH_UNAVAILABLE"),
    ],
)
async def test_stack_errors_map_by_whose_fault(
    client: httpx.AsyncClient,
    mock_api: respx.MockRouter,
    fixture: str,
    status: int,
    code: str,
) -> None:
    upstream = fixture_response(fixture)
    mock_api.get("/users/me").mock(return_value=upstream)
    response = await client.get("/me", headers=bearer(mint_token()))
    assert_error(response, status, code)
    # Upstream text never reaches our client.
    upstream_text = json.loads((FIXTURES / fixture).read_text())["body"]
    for value in (upstream_text.get("error"), upstream_text.get("message")):
        if value:
            assert value not in response.text


@pytest.mark.parametrize(
    ("fixture", "setting"),
    [
        ("errors-constructed/INVALID_SECRET_SERVER_KEY.json", "STACK_SECRET_SERVER_KEY"),
        ("errors/SERVER_AUTHENTICATION_REQUIRED.json", "STACK_SECRET_SERVER_KEY"),
        ("errors/CURRENT_PROJECT_NOT_FOUND.json", "STACK_PROJECT_ID"),
        ("errors/INVALID_PUBLISHABLE_CLIENT_KEY.json", "STACK_PUBLISHABLE_CLIENT_KEY"),
    ],
)
async def test_misconfiguration_logs_the_setting_to_fix(
    client: httpx.AsyncClient,
    mock_api: respx.MockRouter,
    caplog: pytest.LogCaptureFixture,
    fixture: str,
    setting: str,
) -> None:
    mock_api.get("/users/me").mock(return_value=fixture_response(fixture))
    with caplog.at_level(logging.ERROR, logger="fastapi_stack_auth"):
        await client.get("/me", headers=bearer(mint_token()))
    assert setting in caplog.text
    assert SECRET_KEY not in caplog.text


@pytest.mark.parametrize(
    ("mock", "retry_after"),
    [
        ({"side_effect": httpx.ConnectError("refused")}, "5"),
        ({"side_effect": httpx.ConnectTimeout("slow")}, "5"),
        ({"side_effect": httpx.ReadTimeout("slow")}, "5"),
        (
            {
                "return_value": httpx.Response(
                    503, text="maintenance", headers={"retry-after": "30"}
                )
            },
            "30",
        ),
        ({"return_value": httpx.Response(500, text="Internal error, request id 42")}, "5"),
        ({"return_value": httpx.Response(429, json={"message": "slow down"})}, "5"),
    ],
)
async def test_unreachable_stack_is_503_with_retry_after(
    client: httpx.AsyncClient, mock_api: respx.MockRouter, mock: dict[str, Any], retry_after: str
) -> None:
    mock_api.get("/users/me").mock(**mock)
    response = await client.get("/me", headers=bearer(mint_token()))
    assert_error(response, 503, "STACK_AUTH_UNAVAILABLE")
    assert response.headers["retry-after"] == retry_after
    assert "maintenance" not in response.text
    assert "request id" not in response.text


@pytest.mark.parametrize(
    "body",
    [
        {"primary_email": "x@example.com"},  # no id, no signed_up_at_millis
        {"id": USER_ID, "signed_up_at_millis": "yesterday"},
        {"id": "someone-else", "signed_up_at_millis": 1},  # another user than the token's
    ],
)
async def test_unusable_user_body_is_502(
    client: httpx.AsyncClient, mock_api: respx.MockRouter, body: dict[str, Any]
) -> None:
    mock_api.get("/users/me").respond(200, json=body)
    assert_error(
        await client.get("/me", headers=bearer(mint_token())), 502, "STACK_AUTH_BAD_RESPONSE"
    )


# --- anonymous and restricted users ---------------------------------------------------------


def anonymous_body() -> dict[str, Any]:
    return user_body(
        id=ANON_ID,
        is_anonymous=True,
        is_restricted=True,
        restricted_reason={"type": "anonymous"},
        primary_email=None,
    )


def restricted_body() -> dict[str, Any]:
    return user_body(
        is_restricted=True,
        restricted_reason={"type": "email_not_verified"},
        primary_email_verified=False,
    )


async def test_anonymous_user_refused_by_default_allowed_on_opt_in(
    client: httpx.AsyncClient, mock_api: respx.MockRouter
) -> None:
    mock_api.get("/users/me").respond(200, json=anonymous_body())
    token = mint_token(sub=ANON_ID, kind="anonymous")
    assert_error(await client.get("/me", headers=bearer(token)), 403, "ANONYMOUS_USER_NOT_ALLOWED")
    assert (await client.get("/anon-ok", headers=bearer(token))).json() == {"id": ANON_ID}
    # Restricted opt-in does not let anonymous users in.
    assert (await client.get("/restricted-ok", headers=bearer(token))).status_code == 403
    # A public route treats a user it may not let in as signed out.
    assert (await client.get("/hello", headers=bearer(token))).json() == {"id": None}


async def test_restricted_user_refused_by_default_allowed_on_opt_in(
    client: httpx.AsyncClient, mock_api: respx.MockRouter
) -> None:
    mock_api.get("/users/me").respond(200, json=restricted_body())
    token = mint_token(kind="restricted")
    response = await client.get("/me", headers=bearer(token))
    assert_error(response, 403, "RESTRICTED_USER_NOT_ALLOWED")
    assert (await client.get("/restricted-ok", headers=bearer(token))).status_code == 200
    assert (await client.get("/anon-ok", headers=bearer(token))).status_code == 403


async def test_settings_allow_anonymous_and_restricted(
    stack_settings: dict[str, Any], mock_api: respx.MockRouter
) -> None:
    stack = StackAuth(**stack_settings, allow_anonymous=True, allow_restricted=True)
    async with (
        stack,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=build_app(stack)), base_url="http://app.test"
        ) as client,
    ):
        mock_api.get("/users/me").respond(200, json=anonymous_body())
        anon = await client.get("/me", headers=bearer(mint_token(sub=ANON_ID, kind="anonymous")))
        assert anon.status_code == 200
        mock_api.get("/users/me").respond(200, json=restricted_body())
        restricted = await client.get("/me", headers=bearer(mint_token(kind="restricted")))
        assert restricted.status_code == 200


# --- optional_user ----------------------------------------------------------------------------


async def test_optional_user(client: httpx.AsyncClient, mock_api: respx.MockRouter) -> None:
    route = mock_api.get("/users/me").respond(200, json=user_body())
    assert (await client.get("/hello")).json() == {"id": None}
    assert route.call_count == 0
    assert (await client.get("/hello", headers=bearer(mint_token()))).json() == {"id": USER_ID}
    # A credential that is sent and bad is still 401: the client must learn its token is bad.
    assert_error(await client.get("/hello", headers=bearer("garbage")), 401, "INVALID_TOKEN")
    mock_api.get("/users/me").mock(
        return_value=fixture_response("errors/UNPARSABLE_ACCESS_TOKEN.json")
    )
    assert_error(await client.get("/hello", headers=bearer(mint_token())), 401, "INVALID_TOKEN")


async def test_optional_user_with_null_sdk_tokens_is_anonymous_visitor(
    client: httpx.AsyncClient, mock_api: respx.MockRouter
) -> None:
    headers = {"x-stack-auth": json.dumps({"accessToken": None, "refreshToken": None})}
    assert (await client.get("/hello", headers=headers)).json() == {"id": None}
    assert_error(await client.get("/me", headers=headers), 401, "NOT_AUTHENTICATED")


# --- caching ------------------------------------------------------------------------------------


async def test_cache_hit_makes_no_second_call(
    client: httpx.AsyncClient, mock_api: respx.MockRouter
) -> None:
    route = mock_api.get("/users/me").respond(200, json=user_body())
    token = mint_token()
    for _ in range(5):
        assert (await client.get("/me", headers=bearer(token))).status_code == 200
    assert route.call_count == 1
    # Another token is another entry.
    await client.get("/me", headers=bearer(mint_token()))
    assert route.call_count == 2


async def test_one_token_100_concurrent_requests_make_one_upstream_call(
    client: httpx.AsyncClient, mock_api: respx.MockRouter
) -> None:
    started, release = asyncio.Event(), asyncio.Event()
    calls = 0

    async def slow_stack(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        started.set()
        await release.wait()
        return httpx.Response(200, json=user_body())

    mock_api.get("/users/me").mock(side_effect=slow_stack)
    token = mint_token()
    requests = [asyncio.create_task(client.get("/me", headers=bearer(token))) for _ in range(100)]
    await started.wait()
    release.set()
    responses = await asyncio.gather(*requests)
    assert [r.status_code for r in responses] == [200] * 100
    assert calls == 1


async def test_failures_are_not_cached(
    client: httpx.AsyncClient, mock_api: respx.MockRouter
) -> None:
    route = mock_api.get("/users/me")
    # A 500 is not retried (a 503 would be, within the same request): one failed request.
    route.side_effect = [httpx.Response(500), httpx.Response(200, json=user_body())]
    token = mint_token()
    assert (await client.get("/me", headers=bearer(token))).status_code == 503
    assert (await client.get("/me", headers=bearer(token))).status_code == 200
    assert route.call_count == 2


async def test_rejected_token_is_not_cached_as_success(
    stack: StackAuth, client: httpx.AsyncClient, mock_api: respx.MockRouter
) -> None:
    clock = _Clock()
    pipeline = stack.pipeline
    pipeline.rejected = TTLCache(pipeline.cache.maxsize, REJECTION_TTL, timer=clock)
    route = mock_api.get("/users/me").mock(
        return_value=fixture_response("errors/UNPARSABLE_ACCESS_TOKEN.json")
    )
    token = mint_token()
    for _ in range(2):
        assert (await client.get("/me", headers=bearer(token))).status_code == 401
    assert route.call_count == 1  # the rejection is remembered for a few seconds
    assert len(pipeline.cache) == 0  # never as a success
    clock.now += REJECTION_TTL
    assert (await client.get("/me", headers=bearer(token))).status_code == 401
    assert route.call_count == 2  # then Stack is asked again


async def test_cache_keys_are_not_raw_tokens(stack: StackAuth, mock_api: respx.MockRouter) -> None:
    route = mock_api.get("/users/me").respond(200, json=user_body())
    token = mint_token()
    await stack.authenticate(token)
    digest = hashlib.sha256(token.encode()).digest()
    assert len(stack.pipeline.cache) == 1
    assert stack.pipeline.cache.get(digest) is not None
    # Nor in the memory of rejected tokens.
    route.mock(return_value=fixture_response("errors/UNPARSABLE_ACCESS_TOKEN.json"))
    rejected = mint_token()
    with pytest.raises(StackAuthError):
        await stack.authenticate(rejected)
    assert list(stack.pipeline.rejected.keys()) == [hashlib.sha256(rejected.encode()).digest()]


# --- WebSockets, OpenAPI, wiring -------------------------------------------------------------


def test_websocket_routes_are_protected(
    stack_settings: dict[str, Any], mock_api: respx.MockRouter
) -> None:
    mock_api.get("/users/me").respond(200, json=user_body())
    app = build_app(StackAuth(**stack_settings))
    with TestClient(app) as client:
        with client.websocket_connect("/ws", headers=bearer(mint_token())) as ws:
            assert ws.receive_json() == {"id": USER_ID}
        with pytest.raises(WebSocketDisconnect) as info, client.websocket_connect("/ws") as ws:
            ws.receive_json()
        assert info.value.code == 1008
        with (
            pytest.raises(WebSocketDisconnect) as info,
            client.websocket_connect("/ws", headers=bearer("garbage")) as ws,
        ):
            ws.receive_json()
        assert info.value.code == 1008


def test_websocket_closes_1013_when_stack_is_down(
    stack_settings: dict[str, Any], mock_api: respx.MockRouter
) -> None:
    mock_api.get("/users/me").mock(side_effect=httpx.ConnectError("down"))
    with TestClient(build_app(StackAuth(**stack_settings))) as client:
        with (
            pytest.raises(WebSocketDisconnect) as info,
            client.websocket_connect("/ws", headers=bearer(mint_token())) as ws,
        ):
            ws.receive_json()
        assert info.value.code == 1013


def test_openapi_declares_the_bearer_scheme(stack_settings: dict[str, Any]) -> None:
    app = build_app(StackAuth(**stack_settings))
    schema = TestClient(app).get("/openapi.json").json()
    scheme = schema["components"]["securitySchemes"]["StackAuth"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    assert schema["paths"]["/me"]["get"]["security"] == [{"StackAuth": []}]
    assert schema["paths"]["/hello"]["get"]["security"] == [{"StackAuth": []}]
    assert schema["paths"]["/admin/stats"]["get"]["security"] == [{"StackAuth": []}]


def test_init_app_composes_with_the_apps_own_lifespan(
    stack_settings: dict[str, Any], mock_api: respx.MockRouter
) -> None:
    events: list[str] = []
    stack = StackAuth(**stack_settings)

    @asynccontextmanager
    async def own_lifespan(app: FastAPI) -> AsyncIterator[dict[str, str]]:
        events.append(f"app start, stack open={stack.client.is_open}")
        yield {"from_app": "yes"}
        events.append("app stop")

    app = FastAPI(lifespan=own_lifespan)
    stack.init_app(app)

    @app.get("/state")
    async def state(request: Request) -> dict[str, str]:
        return {"from_app": request.state.from_app}

    with TestClient(app) as client:
        assert stack.client.is_open
        assert client.get("/state").json() == {"from_app": "yes"}
    assert events == ["app start, stack open=True", "app stop"]
    assert not stack.client.is_open


def test_dependency_without_init_app_says_what_to_do() -> None:
    app = FastAPI()

    @app.get("/me")
    async def me(user: StackUser = Depends(current_user)) -> str:
        return user.id

    with pytest.raises(RuntimeError, match="init_app"):
        TestClient(app).get("/me", headers=bearer(mint_token()))


def test_explicit_stack_for_a_second_project(
    stack_settings: dict[str, Any], mock_api: respx.MockRouter
) -> None:
    mock_api.get("/users/me").respond(200, json=user_body())
    main = StackAuth(**stack_settings)
    other = StackAuth(**stack_settings)
    app = FastAPI()
    main.init_app(app)

    @app.get("/other")
    async def other_route(user: StackUser = Depends(UserDependency(stack=other))) -> str:
        return user.id

    with TestClient(app) as client:
        # `other` was never started: using it proves the dependency really uses it.
        response = client.get("/other", headers=bearer(mint_token()))
    assert response.status_code == 500


# --- startup key check ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mock", "level", "needle"),
    [
        (
            {"return_value": fixture_response("errors-constructed/INVALID_SECRET_SERVER_KEY.json")},
            "ERROR",
            "STACK_SECRET_SERVER_KEY",
        ),
        (
            {"return_value": fixture_response("errors/CURRENT_PROJECT_NOT_FOUND.json")},
            "ERROR",
            "STACK_PROJECT_ID",
        ),
        ({"side_effect": httpx.ConnectError("refused")}, "WARNING", "unreachable"),
        ({"return_value": httpx.Response(200, json={"id": "p"})}, "INFO", "accepted"),
    ],
)
def test_startup_checks_keys_once(
    stack_settings: dict[str, Any],
    mock_api: respx.MockRouter,
    caplog: pytest.LogCaptureFixture,
    mock: dict[str, Any],
    level: str,
    needle: str,
) -> None:
    route = mock_api.get("/projects/current").mock(**mock)
    stack = StackAuth(**{**stack_settings, "check_keys_on_startup": True})
    app = FastAPI()
    stack.init_app(app)
    with caplog.at_level(logging.INFO, logger="fastapi_stack_auth"), TestClient(app):
        pass  # startup did not crash
    # One check; an unreachable Stack is retried within it (GET is idempotent).
    assert route.call_count == (stack.settings.max_attempts if "side_effect" in mock else 1)
    records = [r for r in caplog.records if r.name == "fastapi_stack_auth"]
    assert any(r.levelname == level and needle in r.getMessage() for r in records), records
    assert SECRET_KEY not in caplog.text


class _Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("exp_in", "advance", "calls_after"),
    [
        (600, 29, 1),  # within the TTL: still a hit
        (600, 31, 2),  # past the 30 s TTL: asked again
        (10, 11, 2),  # the token's exp (10 s) comes before the TTL: asked again
    ],
)
async def test_cache_entry_lives_for_ttl_but_never_past_exp(
    stack: StackAuth,
    client: httpx.AsyncClient,
    mock_api: respx.MockRouter,
    exp_in: int,
    advance: int,
    calls_after: int,
) -> None:
    shift = 0.0  # how far the test has moved the cache's wall clock forward
    stack.pipeline.cache = TokenCache(maxsize=10, ttl=30, clock=lambda: time.time() + shift)
    route = mock_api.get("/users/me").respond(200, json=user_body())
    token = mint_token(exp_in=exp_in)
    assert (await client.get("/me", headers=bearer(token))).status_code == 200
    shift += advance
    assert (await client.get("/me", headers=bearer(token))).status_code == 200
    assert route.call_count == calls_after


async def test_cache_max_entries_evicts(
    stack_settings: dict[str, Any], mock_api: respx.MockRouter
) -> None:
    route = mock_api.get("/users/me").respond(200, json=user_body())
    async with StackAuth(**stack_settings, cache_max_entries=2) as stack:
        first, second, third = mint_token(), mint_token(), mint_token()
        for token in (first, second, third):
            await stack.authenticate(token)
        assert len(stack.pipeline.cache) == 2
        await stack.authenticate(first)  # evicted: asked again
        assert route.call_count == 4
        await stack.authenticate(third)  # still cached
        assert route.call_count == 4


async def test_router_and_route_dependencies_verify_once(
    stack: StackAuth, mock_api: respx.MockRouter
) -> None:
    mock_api.get("/users/me").respond(200, json=user_body())
    calls = 0
    pipeline = stack.pipeline
    authenticate = pipeline.authenticate

    async def counting(raw: str) -> Any:
        nonlocal calls
        calls += 1
        return await authenticate(raw)

    pipeline.authenticate = counting  # type: ignore[method-assign]
    app = FastAPI()
    stack.init_app(app)
    router = APIRouter(dependencies=[Depends(require_user)])

    @router.get("/both")
    async def both(user: StackUser = Depends(current_user)) -> str:
        return user.id

    app.include_router(router)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://app.test"
    ) as client:
        assert (await client.get("/both", headers=bearer(mint_token()))).status_code == 200
    assert calls == 1


# --- found by review ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"x-stack-auth": '{"accessToken": "\\ud800"}'},
        {"Authorization": "Bearer " + mint_token(exp=10**400)},
        {"Authorization": "Bearer " + mint_token(exp="2000000000")},
        {"Authorization": "Bearer " + mint_token(exp=True)},
        {"Authorization": "Bearer " + mint_token(sub=5)},
        {"Authorization": "Bearer " + mint_token(aud=f"{PROJECT_ID}:admin")},
        {"Authorization": "Bearer " + mint_token(aud=f"{PROJECT_ID}:anon:x")},
    ],
)
async def test_more_bad_tokens_are_401_without_upstream_call(
    client: httpx.AsyncClient, mock_api: respx.MockRouter, headers: dict[str, str]
) -> None:
    route = mock_api.get("/users/me")
    response = await client.get("/me", headers=headers)
    assert response.status_code == 401
    assert response.json()["code"] == "INVALID_TOKEN"
    assert route.call_count == 0


@pytest.mark.parametrize("missing", ["is_anonymous", "is_restricted"])
async def test_user_without_its_security_flags_is_not_let_in(
    client: httpx.AsyncClient, mock_api: respx.MockRouter, missing: str
) -> None:
    body = anonymous_body()
    del body[missing]
    mock_api.get("/users/me").respond(200, json=body)
    token = mint_token(sub=ANON_ID, kind="anonymous")
    assert_error(await client.get("/me", headers=bearer(token)), 502, "STACK_AUTH_BAD_RESPONSE")


async def test_concurrent_failures_are_separate_exceptions(
    stack: StackAuth, mock_api: respx.MockRouter
) -> None:
    """Concurrent requests share one upstream call and its failure, but each request gets an
    exception of its own: tracebacks and error trackers do not tie unrelated requests
    together."""
    started, release = asyncio.Event(), asyncio.Event()

    async def slow_failure(request: httpx.Request) -> httpx.Response:
        started.set()
        await release.wait()
        return fixture_response("errors/UNPARSABLE_ACCESS_TOKEN.json")

    route = mock_api.get("/users/me").mock(side_effect=slow_failure)
    app = build_app(stack)
    handled: list[AuthError] = []

    async def recording(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, AuthError)
        handled.append(exc)
        return JSONResponse({"code": exc.code}, status_code=exc.status_code)

    app.add_exception_handler(AuthError, recording)
    token = mint_token()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://app.test") as client:
        tasks = [asyncio.create_task(client.get("/me", headers=bearer(token))) for _ in range(5)]
        await started.wait()
        release.set()
        responses = await asyncio.gather(*tasks)
    assert [r.json() for r in responses] == [{"code": "INVALID_TOKEN"}] * 5
    assert len({id(e) for e in handled}) == 5
    assert route.call_count == 1


async def test_a_cache_hit_past_the_tokens_exp_is_not_served(
    stack: StackAuth, mock_api: respx.MockRouter
) -> None:
    shift = 0.0  # how far the test has moved the cache's wall clock forward
    stack.pipeline.cache = TokenCache(maxsize=10, ttl=math.inf, clock=lambda: time.time() + shift)
    route = mock_api.get("/users/me").respond(200, json=user_body())
    token = mint_token(exp_in=600)
    for _ in range(2):
        await stack.authenticate(token)
    assert route.call_count == 1
    # As if the machine had been suspended: no TTL ran out, but the token's exp has passed in
    # wall time, and the cache keeps wall time.
    shift = 601
    await stack.authenticate(token)
    assert route.call_count == 2  # not served from the cache: Stack was asked again


async def test_plain_404_names_the_api_url_setting(
    client: httpx.AsyncClient, mock_api: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    mock_api.get("/users/me").respond(404, text="Not found")
    with caplog.at_level(logging.ERROR, logger="fastapi_stack_auth"):
        response = await client.get("/me", headers=bearer(mint_token()))
    assert_error(response, 500, "SERVER_MISCONFIGURED")
    assert "STACK_API_URL" in caplog.text


@pytest.mark.parametrize(
    "mock",
    [
        {"return_value": httpx.Response(503, headers={"retry-after": "9" * 5000})},
        {"return_value": httpx.Response(200, content=b"[" * 5000)},
        {"side_effect": RuntimeError("something nobody expected")},
    ],
)
def test_startup_survives_any_answer(
    stack_settings: dict[str, Any],
    mock_api: respx.MockRouter,
    caplog: pytest.LogCaptureFixture,
    mock: dict[str, Any],
) -> None:
    mock_api.get("/projects/current").mock(**mock)
    stack = StackAuth(**{**stack_settings, "check_keys_on_startup": True})
    app = FastAPI()
    stack.init_app(app)

    @app.get("/")
    async def index() -> str:
        return "up"

    with TestClient(app) as client:
        assert client.get("/").json() == "up"


def test_optional_user_sets_state_to_none_when_signed_out(
    stack_settings: dict[str, Any], mock_api: respx.MockRouter
) -> None:
    stack = StackAuth(**stack_settings)
    app = FastAPI()
    stack.init_app(app)

    @app.get("/who", dependencies=[Depends(optional_user)])
    async def who(request: Request) -> dict[str, Any]:
        return {"user": request.state.stack_user, "claims": request.state.stack_claims}

    with TestClient(app) as client:
        assert client.get("/who").json() == {"user": None, "claims": None}


def test_annotated_shorthands(stack_settings: dict[str, Any], mock_api: respx.MockRouter) -> None:
    mock_api.get("/users/me").respond(200, json=user_body())
    stack = StackAuth(**stack_settings)
    app = FastAPI()
    stack.init_app(app)

    @app.get("/a")
    async def a(user: CurrentUser, maybe: OptionalUser, claims: CurrentClaims) -> list[str]:
        assert maybe is not None
        return [user.id, maybe.id, claims.sub]

    with TestClient(app) as client:
        assert client.get("/a", headers=bearer(mint_token())).json() == [USER_ID] * 3
        assert client.get("/a").status_code == 401


def test_plain_http_to_a_remote_host_is_warned_about(
    stack_settings: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="fastapi_stack_auth"):
        remote = StackAuth(**{**stack_settings, "api_url": "http://stack.internal:8102"})
        local = StackAuth(**{**stack_settings, "api_url": "http://127.0.0.1:8102"})
        assert caplog.records == []  # construction reads no settings
        for stack in (remote, local, remote):  # the settings are read on first use, once
            assert stack.settings.api_url.startswith("http://")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "stack.internal" in warnings[0]


# --- JWT mode: every ES256 signature, whatever its r and s ------------------------------------
#
# PyJWT turns the JWS signature (raw r || s, 32 bytes each) into the DER form cryptography
# verifies. These are the signatures the former hand-built DER encoder was checked on: valid
# ones whose r or s has leading zero bytes or the high bit set must verify, and every other
# 64 bytes (zeros, r or s out of range, random) must be refused, as encode_dss_signature's DER
# would be.

P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def _with_signature(token: str, signature: bytes) -> str:
    header, payload, _ = token.split(".")
    return f"{header}.{payload}.{b64url(signature)}"


def _signatures_of_every_shape(key: SigningKey, signing_input: bytes) -> dict[str, bytes]:
    """Valid signatures of ``signing_input``: one for each shape of r and s that DER encodes
    differently (a leading zero byte dropped, a zero byte added before a high bit)."""
    wanted = {
        "r short": lambda r, s: r < 2**248,
        "s short": lambda r, s: s < 2**248,
        "r high bit": lambda r, s: r >= 2**255,
        "s high bit": lambda r, s: s >= 2**255,
        "both plain": lambda r, s: 2**248 <= r < 2**255 and 2**248 <= s < 2**255,
    }
    found: dict[str, bytes] = {}
    for _ in range(100_000):
        r, s = decode_dss_signature(key.private.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        for s_variant in (s, P256_ORDER - s):  # (r, n - s) is valid too
            for name, test in wanted.items():
                if name not in found and test(r, s_variant):
                    found[name] = r.to_bytes(32, "big") + s_variant.to_bytes(32, "big")
        if len(found) == len(wanted):
            return found
    raise AssertionError(f"no signature found for {set(wanted) - set(found)}")


def _invalid_signatures() -> list[bytes]:
    """The former encoder's fixed cases, and random r and s of every shape its 20,000 random
    cases drew from (0, 1, 2, 31 or 32 leading zero bytes, then a byte with or without its high
    bit), three of each pair of shapes: a signature check costs 0.3 ms."""
    rng = random.Random(3)
    signatures = [bytes(64), b"\xff" * 64, b"\x80" + bytes(63), bytes(31) + b"\x80" + bytes(32)]
    signatures += [bytes(32) + b"\x01" + bytes(31), bytes(63) + b"\x01"]
    shapes = [(zeros, high) for zeros in (0, 1, 2, 31, 32) for high in (False, True)]
    for r_shape, s_shape in itertools.product(shapes, repeat=2):
        for _ in range(3):
            signature = bytearray(rng.randbytes(64))
            for half, (zeros, high) in zip((0, 32), (r_shape, s_shape), strict=True):
                signature[half : half + zeros] = bytes(zeros)
                if zeros < 32:
                    if high:
                        signature[half + zeros] |= 0x80
                    else:
                        signature[half + zeros] = signature[half + zeros] & 0x7F or 1
            signatures.append(bytes(signature))
    return signatures


async def test_jwt_mode_verifies_es256_signatures_whatever_their_r_and_s(
    stack_settings: dict[str, Any],
    mock_api: respx.MockRouter,
    ring: KeyRing,
    endpoint: JwksEndpoint,
) -> None:
    token = ring.mint()
    signing_input = token.rsplit(".", 1)[0].encode()
    key = ring.signer().private.public_key()
    async with StackAuth(**{**stack_settings, "verify": "jwt"}) as stack:
        for shape, signature in _signatures_of_every_shape(ring.signer(), signing_input).items():
            identity = await stack.authenticate(_with_signature(token, signature))
            assert (
                identity.claims.sub == jwt.decode(token, options={"verify_signature": False})["sub"]
            ), shape
        verifier = stack.pipeline.verifier
        for signature in _invalid_signatures():
            r = int.from_bytes(signature[:32], "big")
            s = int.from_bytes(signature[32:], "big")
            with pytest.raises(InvalidSignature):  # what cryptography says of their DER
                key.verify(encode_dss_signature(r, s), signing_input, ec.ECDSA(hashes.SHA256()))
            with pytest.raises(AuthError) as info:
                await verifier.verify(_with_signature(token, signature))
            assert (info.value.status_code, info.value.code) == (401, "INVALID_TOKEN")
            assert info.value.detail == "The access token's signature is invalid", signature.hex()
    assert mock_api.calls.call_count == endpoint.calls  # nothing but the JWKS was fetched
