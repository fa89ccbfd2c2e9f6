"""``stack.server.api_keys`` and ``stack.server.sessions`` against a respx-mocked Stack."""

from __future__ import annotations

import json
from typing import Any

import pytest
import respx
from pydantic import SecretStr

from fastapi_stack_auth import StackAuth
from fastapi_stack_auth.errors import (
    ApiKeyExpiredError,
    ApiKeyNotFoundError,
    ApiKeyRevokedError,
    StackBadResponseError,
    UserNotFoundError,
    WrongApiKeyTypeError,
)
from fastapi_stack_auth.models import ApiKey
from fastapi_stack_auth.server import NewApiKey, Session, SessionTokens, StackServer
from tests.conftest import USER_ID, fixture_json, fixture_response

TEAM_ID = "5b6c7d8e-9f0a-4b1c-8d2e-3f4a5b6c7d8e"
KEY_ID = "7c8d9e0f-1a2b-4c3d-9e4f-5a6b7c8d9e0f"
SESSIONS_LIST: dict[str, Any] = fixture_json("sessions-list.server.CONSTRUCTED.json")


def body_of(route: respx.Route) -> Any:
    return json.loads(route.calls.last.request.content)


@pytest.fixture
def server(stack: StackAuth) -> StackServer:
    return stack.server


# --- API keys -------------------------------------------------------------------------------


async def test_create_user_key_returns_the_value_once_and_keeps_it_secret(
    server: StackServer, mock_api: respx.MockRouter
) -> None:
    created = fixture_json("api-key-create.user.json")
    route = mock_api.post("/user-api-keys").respond(200, json=created)
    new = await server.api_keys.create_user_key(
        USER_ID, description="Test Expiring User API Key", expires_at_millis=1767232860000
    )
    assert isinstance(new, NewApiKey)
    assert new.value.get_secret_value() == created["value"]
    assert created["value"] not in repr(new)  # SecretStr: a log line shows '**********'
    # The described key carries the last four characters only, as Stack's reads do.
    assert new.api_key.value == {"last_four": created["value"][-4:]}
    assert (new.api_key.id, new.api_key.type, new.api_key.user_id) == (KEY_ID, "user", USER_ID)
    assert body_of(route) == {
        "user_id": USER_ID,
        "description": "Test Expiring User API Key",
        "expires_at_millis": 1767232860000,
        "is_public": False,
    }


async def test_create_team_key_that_never_expires(
    server: StackServer, mock_api: respx.MockRouter
) -> None:
    key = "sk_" + "x" * 99
    answer = {**fixture_json("api-key-check.team.CONSTRUCTED.json"), "value": key}
    route = mock_api.post("/team-api-keys").respond(200, json=answer)
    new = await server.api_keys.create_team_key(TEAM_ID, description="ci", is_public=True)
    assert new.api_key.team_id == TEAM_ID
    assert new.api_key.expires_at_millis is None
    assert body_of(route) == {
        "team_id": TEAM_ID,
        "description": "ci",
        "expires_at_millis": None,  # Stack requires the field; null = never
        "is_public": True,
    }


async def test_create_key_answer_without_a_value_is_a_bad_response(
    server: StackServer, mock_api: respx.MockRouter
) -> None:
    mock_api.post("/user-api-keys").respond(200, json=fixture_json("api-key-check.user.json"))
    with pytest.raises(StackBadResponseError, match="no key value"):
        await server.api_keys.create_user_key(USER_ID, description="d")


async def test_list_keys(server: StackServer, mock_api: respx.MockRouter) -> None:
    user_route = mock_api.get("/user-api-keys").respond(
        200, json={"items": [fixture_json("api-key-check.user.json")], "is_paginated": False}
    )
    keys = await server.api_keys.list_user_keys(USER_ID)
    assert [k.id for k in keys] == [KEY_ID]
    assert dict(user_route.calls.last.request.url.params) == {"user_id": USER_ID}
    team_route = mock_api.get("/team-api-keys").respond(
        200,
        json={
            "items": [fixture_json("api-key-check.team.CONSTRUCTED.json")],
            "is_paginated": False,
        },
    )
    keys = await server.api_keys.list_team_keys(TEAM_ID)
    assert [k.type for k in keys] == ["team"]
    assert dict(team_route.calls.last.request.url.params) == {"team_id": TEAM_ID}


async def test_revoke_keys(server: StackServer, mock_api: respx.MockRouter) -> None:
    revoked = {**fixture_json("api-key-check.user.json"), "manually_revoked_at_millis": 1}
    user_route = mock_api.patch(f"/user-api-keys/{KEY_ID}").respond(200, json=revoked)
    key = await server.api_keys.revoke_user_key(KEY_ID, user_id=USER_ID)
    assert key.manually_revoked_at_millis == 1
    assert body_of(user_route) == {"revoked": True}
    assert dict(user_route.calls.last.request.url.params) == {"user_id": USER_ID}

    team_key = fixture_json("api-key-check.team.CONSTRUCTED.json")
    team_route = mock_api.patch(f"/team-api-keys/{KEY_ID}").respond(200, json=team_key)
    await server.api_keys.revoke(ApiKey.model_validate(team_key))  # owner taken from the key
    assert body_of(team_route) == {"revoked": True}
    # Stack's team-key query schema requires team_id on every operation.
    assert dict(team_route.calls.last.request.url.params) == {"team_id": TEAM_ID}


async def test_check_keys(server: StackServer, mock_api: respx.MockRouter) -> None:
    route = mock_api.post("/user-api-keys/check").respond(
        200, json=fixture_json("api-key-check.user.json")
    )
    value = fixture_json("api-key-create.user.json")["value"]
    key = await server.api_keys.check_user_key(value)
    assert (key.id, key.user_id) == (KEY_ID, USER_ID)
    assert body_of(route) == {"api_key": value}
    team = mock_api.post("/team-api-keys/check").respond(
        200, json=fixture_json("api-key-check.team.CONSTRUCTED.json")
    )
    assert (await server.api_keys.check_team_key(value)).team_id == TEAM_ID
    assert team.call_count == 1


@pytest.mark.parametrize(
    ("fixture", "exc_type"),
    [
        ("errors/API_KEY_NOT_FOUND.json", ApiKeyNotFoundError),
        ("errors/API_KEY_REVOKED.json", ApiKeyRevokedError),
        ("errors/API_KEY_EXPIRED.json", ApiKeyExpiredError),
        ("errors/WRONG_API_KEY_TYPE.json", WrongApiKeyTypeError),
    ],
)
async def test_check_errors(
    server: StackServer, mock_api: respx.MockRouter, fixture: str, exc_type: type[Exception]
) -> None:
    mock_api.post("/user-api-keys/check").mock(return_value=fixture_response(fixture))
    with pytest.raises(exc_type):
        await server.api_keys.check_user_key("sk_whatever")


# --- sessions -------------------------------------------------------------------------------


async def test_create_session(server: StackServer, mock_api: respx.MockRouter) -> None:
    answer = fixture_json("auth-sessions-create.json")
    route = mock_api.post("/auth/sessions").respond(200, json=answer)
    tokens = await server.sessions.create(USER_ID)
    assert isinstance(tokens, SessionTokens)
    assert tokens.access_token == SecretStr(answer["access_token"])
    assert tokens.refresh_token.get_secret_value() == answer["refresh_token"]
    assert answer["access_token"] not in repr(tokens)
    assert answer["refresh_token"] not in str(tokens)
    assert body_of(route) == {"user_id": USER_ID, "is_impersonation": False}


async def test_create_impersonation_session(
    server: StackServer, mock_api: respx.MockRouter
) -> None:
    route = mock_api.post("/auth/sessions").respond(
        200, json=fixture_json("auth-sessions-create.json")
    )
    await server.sessions.create(USER_ID, expires_in_millis=60_000, is_impersonation=True)
    assert body_of(route) == {
        "user_id": USER_ID,
        "expires_in_millis": 60_000,
        "is_impersonation": True,
    }


async def test_create_session_for_unknown_user(
    server: StackServer, mock_api: respx.MockRouter
) -> None:
    answer = fixture_response("errors-constructed/USER_ID_DOES_NOT_EXIST.json")
    mock_api.post("/auth/sessions").mock(return_value=answer)
    with pytest.raises(UserNotFoundError) as info:
        await server.sessions.create(USER_ID)
    assert info.value.code == "USER_ID_DOES_NOT_EXIST"


async def test_list_sessions(server: StackServer, mock_api: respx.MockRouter) -> None:
    route = mock_api.get("/auth/sessions").respond(200, json=SESSIONS_LIST)
    sessions = await server.sessions.list(USER_ID)
    assert all(isinstance(s, Session) for s in sessions)
    assert [s.last_used_at_end_user_ip_info is None for s in sessions] == [True, False]
    info = sessions[1].last_used_at_end_user_ip_info
    assert info is not None
    assert (info.country_code, info.city_name, info.tz_identifier) == (
        "US",
        "San Francisco",
        "America/Los_Angeles",
    )
    assert sessions[1].created_at == 1767225600000
    assert dict(route.calls.last.request.url.params) == {"user_id": USER_ID}


async def test_revoke_session(server: StackServer, mock_api: respx.MockRouter) -> None:
    session_id = SESSIONS_LIST["items"][0]["id"]
    route = mock_api.delete(f"/auth/sessions/{session_id}").respond(200, json={"success": True})
    await server.sessions.revoke(session_id, user_id=USER_ID)
    assert dict(route.calls.last.request.url.params) == {"user_id": USER_ID}
