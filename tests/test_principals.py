"""The principal dependencies end to end through FastAPI (HTTP and WebSockets), with Stack Auth
mocked by respx."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import respx
from fastapi import APIRouter, Depends, FastAPI, Request, WebSocket
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from fastapi_stack_auth import StackAuth, StackUser, current_user
from fastapi_stack_auth._principals import (
    ApiKeyPrincipal,
    CurrentPrincipal,
    PrincipalDependency,
    api_key_principal,
    current_principal,
)
from fastapi_stack_auth.models import Principal
from tests.conftest import PROJECT_ID, USER_ID, mint_token, stack_error, user_body
from tests.test_api_keys import TEAM_ID, checking, fixture_response, key_body, make_key


def describe(principal: Principal) -> dict[str, Any]:
    return {
        "kind": principal.kind,
        "user": principal.user.id if principal.user else None,
        "team": principal.team_id,
        "key": principal.api_key.id if principal.api_key else None,
        "claims": principal.claims is not None,
    }


USER_KEY_ONLY = PrincipalDependency(kind="user", api_key_only=True)
TEAM_KEY_ONLY = PrincipalDependency(kind="team")
USER_ONLY = PrincipalDependency(kind="user")
ANONYMOUS_OK = PrincipalDependency(allow_anonymous=True)


def build_app(stack: StackAuth) -> FastAPI:
    app = FastAPI()
    stack.init_app(app)

    @app.get("/principal")
    async def principal(caller: CurrentPrincipal) -> dict[str, Any]:
        return describe(caller)

    @app.get("/key")
    async def key(caller: ApiKeyPrincipal) -> dict[str, Any]:
        return describe(caller)

    @app.get("/user-key")
    async def user_key(
        caller: Principal = Depends(USER_KEY_ONLY),
    ) -> dict[str, Any]:
        return describe(caller)

    @app.get("/team-key")
    async def team_key(
        caller: Principal = Depends(TEAM_KEY_ONLY),
    ) -> dict[str, Any]:
        return describe(caller)

    @app.get("/user")
    async def user(caller: Principal = Depends(USER_ONLY)) -> dict[str, Any]:
        return describe(caller)

    @app.get("/anon-ok")
    async def anon_ok(
        caller: Principal = Depends(ANONYMOUS_OK),
    ) -> dict[str, Any]:
        return describe(caller)

    @app.get("/me")
    async def me(user: StackUser = Depends(current_user)) -> dict[str, str]:
        return {"id": user.id}

    @app.get("/state")
    async def state(request: Request, caller: CurrentPrincipal) -> dict[str, Any]:
        s = request.state
        user = s.stack_user.id if s.stack_user else None
        return {"same": s.stack_principal is caller, "user": user}

    machines = APIRouter(prefix="/machines", dependencies=[Depends(api_key_principal)])

    @machines.get("/both")
    async def both(caller: Principal = Depends(api_key_principal)) -> dict[str, Any]:
        return describe(caller)

    app.include_router(machines)

    @app.websocket("/ws")
    async def ws(websocket: WebSocket, caller: CurrentPrincipal) -> None:
        await websocket.accept()
        await websocket.send_json(describe(caller))
        await websocket.close()

    return app


@pytest.fixture
async def client(stack: StackAuth) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=build_app(stack))
    async with httpx.AsyncClient(transport=transport, base_url="http://app.test") as c:
        yield c


@pytest.fixture
def stack_mock(mock_api: respx.MockRouter) -> respx.MockRouter:
    """Stack knowing the test user (by token and by id) and every well-formed key."""
    mock_api.get("/users/me").respond(200, json=user_body())
    mock_api.get(f"/users/{USER_ID}").respond(200, json=user_body())
    checking("user", mock_api)
    checking("team", mock_api)
    return mock_api


def bearer(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["code"] == code
    assert set(response.json()) == {"detail", "code"}
    if status == 401:
        assert response.headers["www-authenticate"].startswith("Bearer")


def upstream_calls(mock_api: respx.MockRouter) -> int:
    return sum(route.call_count for route in mock_api.routes if "jwks" not in repr(route))


# --- who calls --------------------------------------------------------------------------------


async def test_current_principal_takes_a_token_or_either_kind_of_key(
    client: httpx.AsyncClient, stack_mock: respx.MockRouter
) -> None:
    by_token = await client.get("/principal", headers=bearer(mint_token()))
    assert by_token.json() == {
        "kind": "user",
        "user": USER_ID,
        "team": None,
        "key": None,
        "claims": True,
    }
    user_key, team_key = make_key("user"), make_key("team")
    for headers in (bearer(user_key), {"x-stack-api-key": user_key}):
        response = await client.get("/principal", headers=headers)
        assert response.json() == {
            "kind": "user",
            "user": USER_ID,
            "team": None,
            "key": key_body(user_key)["id"],
            "claims": False,
        }
    for headers in (bearer(team_key), {"x-stack-api-key": team_key}):
        response = await client.get("/principal", headers=headers)
        assert response.json()["kind"] == "team"
        assert response.json()["team"] == TEAM_ID


async def test_each_dependency_takes_only_what_it_says(
    client: httpx.AsyncClient, stack_mock: respx.MockRouter
) -> None:
    token, user_key, team_key = mint_token(), make_key("user"), make_key("team")
    accepted = {
        "/key": (user_key, team_key),
        "/user-key": (user_key,),
        "/team-key": (team_key,),
        "/user": (token, user_key),
    }
    for path, credentials in accepted.items():
        for credential in (token, user_key, team_key):
            response = await client.get(path, headers=bearer(credential))
            if credential in credentials:
                assert response.status_code == 200, (path, response.text)
            elif credential is token:
                assert_error(response, 401, "API_KEY_REQUIRED")
            else:
                assert_error(response, 401, "WRONG_API_KEY_TYPE")


async def test_a_refused_kind_costs_no_call(
    client: httpx.AsyncClient, mock_api: respx.MockRouter
) -> None:
    assert_error(await client.get("/key", headers=bearer(mint_token())), 401, "API_KEY_REQUIRED")
    response = await client.get("/user-key", headers=bearer(make_key("team")))
    assert_error(response, 401, "WRONG_API_KEY_TYPE")
    response = await client.get("/team-key", headers={"x-stack-api-key": make_key("user")})
    assert_error(response, 401, "WRONG_API_KEY_TYPE")
    assert upstream_calls(mock_api) == 0


@pytest.mark.parametrize(
    "headers",
    [
        {"x-stack-access-token": mint_token(), "x-stack-api-key": make_key()},
        {"Authorization": f"Bearer {make_key()}", "x-stack-access-token": mint_token()},
        {"Authorization": f"Bearer {mint_token()}", "x-stack-api-key": make_key()},
        {"Authorization": f"Bearer {make_key()}", "x-stack-api-key": make_key()},
        {"x-stack-api-key": ""},
        {"x-stack-api-key": "  "},
        {"x-stack-api-key": "sk_\u00e9".encode()},
    ],
)
async def test_ambiguous_or_unreadable_credentials_are_refused_unread(
    client: httpx.AsyncClient, mock_api: respx.MockRouter, headers: dict[str, str | bytes]
) -> None:
    assert_error(await client.get("/principal", headers=headers), 401, "MALFORMED_CREDENTIALS")
    assert upstream_calls(mock_api) == 0


async def test_no_credential_and_a_malformed_key(
    client: httpx.AsyncClient, mock_api: respx.MockRouter
) -> None:
    assert_error(await client.get("/principal"), 401, "NOT_AUTHENTICATED")
    assert_error(await client.get("/key"), 401, "NOT_AUTHENTICATED")
    for junk in ("sk_short", "pk_" + "a" * 99, make_key()[:-1] + "x"):
        for headers in (bearer(junk), {"x-stack-api-key": junk}):
            response = await client.get("/principal", headers=headers)
            assert_error(response, 401, "INVALID_API_KEY")
            assert junk not in response.text
    assert upstream_calls(mock_api) == 0


async def test_current_user_refuses_a_key_without_a_call(
    client: httpx.AsyncClient, stack_mock: respx.MockRouter
) -> None:
    # A key where a user's token is wanted is named as such; x-stack-api-key is not a header
    # current_user reads at all.
    assert_error(await client.get("/me", headers=bearer(make_key())), 401, "API_KEY_NOT_ACCEPTED")
    response = await client.get("/me", headers={"x-stack-api-key": make_key()})
    assert_error(response, 401, "NOT_AUTHENTICATED")
    assert upstream_calls(stack_mock) == 0


async def test_request_state_and_one_check_per_request(
    client: httpx.AsyncClient, stack_mock: respx.MockRouter
) -> None:
    response = await client.get("/state", headers={"x-stack-api-key": make_key()})
    assert response.json() == {"same": True, "user": USER_ID}
    team_key = make_key("team")
    response = await client.get("/machines/both", headers=bearer(team_key))
    assert response.json()["team"] == TEAM_ID
    assert sum(r.call_count for r in stack_mock.routes if "team-api-keys" in repr(r)) == 1


# --- the policy -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"is_anonymous": True, "is_restricted": True}, "ANONYMOUS_USER_NOT_ALLOWED"),
        (
            {"is_restricted": True, "restricted_reason": {"type": "email_not_verified"}},
            "RESTRICTED_USER_NOT_ALLOWED",
        ),
    ],
)
async def test_the_policy_applies_to_a_user_keys_user(
    client: httpx.AsyncClient,
    mock_api: respx.MockRouter,
    overrides: dict[str, Any],
    code: str,
) -> None:
    checking("user", mock_api)
    checking("team", mock_api)
    mock_api.get(f"/users/{USER_ID}").respond(200, json=user_body(**overrides))
    key = make_key()
    assert_error(await client.get("/principal", headers=bearer(key)), 403, code)
    if code.startswith("ANONYMOUS"):
        assert (await client.get("/anon-ok", headers=bearer(key))).status_code == 200
    # The team key has no user: no policy.
    assert (await client.get("/principal", headers=bearer(make_key("team")))).status_code == 200


async def test_the_policy_applies_to_a_tokens_user(
    client: httpx.AsyncClient, mock_api: respx.MockRouter
) -> None:
    anonymous = user_body(is_anonymous=True, is_restricted=True)
    mock_api.get("/users/me").respond(200, json=anonymous)
    token = mint_token(kind="anonymous")
    assert_error(
        await client.get("/principal", headers=bearer(token)), 403, "ANONYMOUS_USER_NOT_ALLOWED"
    )
    assert (await client.get("/anon-ok", headers=bearer(token))).status_code == 200


# --- faults -----------------------------------------------------------------------------------


async def test_stack_down_is_503(client: httpx.AsyncClient, mock_api: respx.MockRouter) -> None:
    mock_api.post("/team-api-keys/check").mock(side_effect=httpx.ConnectError("down"))
    response = await client.get("/principal", headers=bearer(make_key("team")))
    assert_error(response, 503, "STACK_AUTH_UNAVAILABLE")
    assert int(response.headers["retry-after"]) >= 1


@pytest.mark.parametrize(
    "upstream",
    [
        fixture_response("errors-constructed/INVALID_SECRET_SERVER_KEY.json"),
        fixture_response("errors/plain/USER_API_KEYS_DISABLED.json"),
        stack_error(401, "SERVER_AUTHENTICATION_REQUIRED"),
    ],
)
async def test_our_misconfiguration_is_500(
    client: httpx.AsyncClient, mock_api: respx.MockRouter, upstream: httpx.Response
) -> None:
    mock_api.post("/user-api-keys/check").mock(return_value=upstream)
    response = await client.get("/principal", headers={"x-stack-api-key": make_key()})
    assert_error(response, 500, "SERVER_MISCONFIGURED")


@pytest.mark.parametrize(
    ("fixture", "code"),
    [
        ("errors/API_KEY_NOT_FOUND.json", "INVALID_API_KEY"),
        ("errors/API_KEY_REVOKED.json", "API_KEY_REVOKED"),
        ("errors/API_KEY_EXPIRED.json", "API_KEY_EXPIRED"),
    ],
)
async def test_refused_keys_through_the_app(
    client: httpx.AsyncClient, mock_api: respx.MockRouter, fixture: str, code: str
) -> None:
    mock_api.post("/user-api-keys/check").mock(return_value=fixture_response(fixture))
    key = make_key()
    response = await client.get("/key", headers=bearer(key))
    assert_error(response, 401, code)
    assert key not in response.text
    assert key not in str(response.headers)


# --- WebSockets, several projects, OpenAPI -----------------------------------------------------


def test_websockets_close_1008_on_401_and_403_and_1013_when_stack_is_down(
    stack_settings: dict[str, Any], mock_api: respx.MockRouter
) -> None:
    checking("team", mock_api)
    mock_api.post("/user-api-keys/check").mock(
        return_value=fixture_response("errors/API_KEY_REVOKED.json")
    )
    mock_api.get("/users/me").respond(200, json=user_body(is_anonymous=True, is_restricted=True))
    with TestClient(build_app(StackAuth(**stack_settings))) as client:
        with client.websocket_connect("/ws", headers=bearer(make_key("team"))) as ws:
            assert ws.receive_json()["team"] == TEAM_ID
        for headers in (
            {},
            bearer(make_key()),  # revoked: 401
            {"x-stack-api-key": "sk_junk"},  # malformed: 401
            bearer(mint_token(kind="anonymous")),  # 403
        ):
            with (
                pytest.raises(WebSocketDisconnect) as info,
                client.websocket_connect("/ws", headers=headers) as ws,
            ):
                ws.receive_json()
            assert info.value.code == 1008
        mock_api.post("/team-api-keys/check").mock(side_effect=httpx.ConnectError("down"))
        with (
            pytest.raises(WebSocketDisconnect) as info,
            client.websocket_connect("/ws", headers=bearer(make_key("team"))) as ws,
        ):
            ws.receive_json()
        assert info.value.code == 1013


def test_a_second_project_checks_its_keys_with_its_own_stack(
    stack_settings: dict[str, Any], mock_api: respx.MockRouter
) -> None:
    other_project = "0b9e1c2d-3f4a-4b5c-8d6e-7f8091a2b3c4"
    asked: list[httpx.Request] = []

    def other_stack(request: httpx.Request) -> httpx.Response:
        if request.url.path != "/api/v1/team-api-keys/check":
            return httpx.Response(404, text="Not found")  # the JWKS at startup
        asked.append(request)
        return httpx.Response(200, json=key_body(json.loads(request.content)["api_key"]))

    other = StackAuth(
        **{**stack_settings, "api_url": "https://other.test", "project_id": other_project},
        transport=httpx.MockTransport(other_stack),
    )
    app = build_app(StackAuth(**stack_settings))
    other.init_app(app)

    other_team_key = PrincipalDependency(stack=other, kind="team")

    @app.get("/other")
    async def other_route(caller: Principal = Depends(other_team_key)) -> dict[str, Any]:
        return describe(caller)

    main_check = checking("team", mock_api)
    with TestClient(app) as client:
        assert client.get("/other", headers=bearer(make_key("team"))).json()["team"] == TEAM_ID
        assert client.get("/team-key", headers=bearer(make_key("team"))).status_code == 200
    assert [r.headers["x-stack-project-id"] for r in asked] == [other_project]
    assert main_check.call_count == 1
    assert main_check.calls.last.request.headers["x-stack-project-id"] == PROJECT_ID


def test_openapi_declares_both_schemes(stack_settings: dict[str, Any]) -> None:
    app = build_app(StackAuth(**stack_settings))
    schemes = app.openapi()["components"]["securitySchemes"]
    assert schemes["StackAuthOrApiKey"]["type"] == "http"
    assert schemes["StackAuthOrApiKey"]["scheme"] == "bearer"
    assert schemes["StackApiKey"] == {
        "type": "apiKey",
        "in": "header",
        "name": "x-stack-api-key",
        "description": schemes["StackApiKey"]["description"],
    }
    assert repr(current_principal).startswith("PrincipalDependency(kind=None")


# --- nothing secret in the logs ----------------------------------------------------------------


async def test_no_key_in_any_log_line_or_answer(
    stack: StackAuth, mock_api: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    outcomes = [
        httpx.Response(200, json={"id": "not-this-key"}),
        fixture_response("errors/API_KEY_NOT_FOUND.json"),
        fixture_response("errors/API_KEY_REVOKED.json"),
        fixture_response("errors/plain/USER_API_KEYS_DISABLED.json"),
        fixture_response("errors-constructed/INVALID_SECRET_SERVER_KEY.json"),
        fixture_response("errors/SCHEMA_ERROR.json"),
        httpx.Response(503, text="down"),
        httpx.Response(200, text="not json"),
        httpx.ConnectError("refused"),
        httpx.ReadTimeout("slow"),
    ]
    route = mock_api.post("/user-api-keys/check")
    mock_api.get(f"/users/{USER_ID}").respond(200, json=user_body())
    keys: list[str] = []
    transport = httpx.ASGITransport(app=build_app(stack))
    with caplog.at_level(logging.DEBUG):
        async with httpx.AsyncClient(transport=transport, base_url="http://app.test") as client:
            for outcome in outcomes:
                key = make_key()
                keys.append(key)
                if isinstance(outcome, Exception):
                    route.mock(side_effect=outcome)
                else:
                    route.mock(return_value=outcome, side_effect=None)
                response = await client.get("/principal", headers=bearer(key))
                assert response.status_code != 200
                assert key[3:48] not in response.text
            junk = make_key()[:-1] + "z"  # refused before any I/O
            keys.append(junk)
            await client.get("/principal", headers={"x-stack-api-key": junk})
    logged = "\n".join(f"{r.getMessage()} {r.args!r} {r.exc_text or ''}" for r in caplog.records)
    assert caplog.records  # the faults above are logged
    for key in keys:
        assert key[3:48] not in logged  # not the key, not even its secret part
