"""API keys as credentials against the emulator over loopback HTTP: keys minted, revoked and
expired through Stack's own REST API, checked by the library across a process boundary."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI, WebSocket
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from fastapi_stack_auth import StackAuth
from fastapi_stack_auth._api_keys import parse_api_key
from fastapi_stack_auth._principals import CurrentPrincipal, PrincipalDependency
from fastapi_stack_auth.models import Principal
from fastapi_stack_auth.testing import EmulatedStack, StackTestUser
from tests.test_api_keys import make_key

pytest_plugins = ["fastapi_stack_auth.testing"]

USER_KEYS = PrincipalDependency(kind="user", api_key_only=True)
TEAM_KEYS = PrincipalDependency(kind="team")


@pytest.fixture
def emulated(stack_emulator: EmulatedStack) -> EmulatedStack:
    """The emulator with user and team API keys turned on (the test's reset turns them off)."""
    config = stack_emulator.emulator.project.config
    config.allow_user_api_keys = True
    config.allow_team_api_keys = True
    return stack_emulator


def stack_api(emulated: EmulatedStack, method: str, path: str, body: Any = None) -> Any:
    """One server-access call to the emulator's REST API, as a Stack Auth admin would make."""
    with httpx.Client(base_url=f"{emulated.url}/api/v1") as client:
        response = client.request(method, path, json=body, headers=emulated.server_headers())
    assert response.status_code in (200, 201), response.text
    return response.json()


def mint(
    emulated: EmulatedStack, kind: str, owner: str, expires_at_millis: int | None = None
) -> str:
    created = stack_api(
        emulated,
        "POST",
        f"/{kind}-api-keys",
        {f"{kind}_id": owner, "description": "e2e", "expires_at_millis": expires_at_millis},
    )
    key: str = created["value"]
    return key


def build_app(stack: StackAuth) -> FastAPI:
    app = FastAPI()
    stack.init_app(app)

    def describe(caller: Principal) -> dict[str, Any]:
        return {
            "kind": caller.kind,
            "user": caller.user.id if caller.user else None,
            "team": caller.team_id,
        }

    @app.get("/principal")
    async def principal(caller: CurrentPrincipal) -> dict[str, Any]:
        return describe(caller)

    @app.get("/user-key")
    async def user_key(caller: Principal = Depends(USER_KEYS)) -> dict[str, Any]:
        return describe(caller)

    @app.get("/team-key")
    async def team_key(caller: Principal = Depends(TEAM_KEYS)) -> dict[str, Any]:
        return describe(caller)

    @app.websocket("/ws")
    async def ws(websocket: WebSocket, caller: CurrentPrincipal) -> None:
        await websocket.accept()
        await websocket.send_json(describe(caller))
        await websocket.close()

    return app


def bearer(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}


def code_of(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json().get("code", "")


def test_keys_the_emulator_mints_resolve_to_their_user_and_team(
    emulated: EmulatedStack, stack_user: StackTestUser
) -> None:
    team = stack_api(emulated, "POST", "/teams", {"display_name": "Machines"})
    user_key, team_key = mint(emulated, "user", stack_user.id), mint(emulated, "team", team["id"])
    assert parse_api_key(user_key)[0] == "user"  # the library's format is the emulator's
    assert parse_api_key(team_key)[0] == "team"
    with TestClient(build_app(emulated.stack_auth())) as client:
        by_key = client.get("/principal", headers={"x-stack-api-key": user_key})
        assert by_key.json() == {"kind": "user", "user": stack_user.id, "team": None}
        by_token = client.get("/principal", headers=stack_user.headers)
        assert by_token.json() == {"kind": "user", "user": stack_user.id, "team": None}
        by_team = client.get("/team-key", headers=bearer(team_key))
        assert by_team.json() == {"kind": "team", "user": None, "team": team["id"]}
        assert code_of(client.get("/user-key", headers=bearer(team_key))) == (
            401,
            "WRONG_API_KEY_TYPE",
        )
        with client.websocket_connect("/ws", headers=bearer(team_key)) as ws:
            assert ws.receive_json()["team"] == team["id"]


def test_cached_until_revoked_is_seen_after_the_ttl(
    emulated: EmulatedStack, stack_user: StackTestUser
) -> None:
    key = mint(emulated, "user", stack_user.id)
    calls = emulated.emulator.calls
    with TestClient(build_app(emulated.stack_auth())) as client:
        before = calls["POST /user-api-keys/check"]
        for _ in range(3):
            assert client.get("/principal", headers=bearer(key)).status_code == 200
        assert calls["POST /user-api-keys/check"] == before + 1
    key_id = uuid.UUID(parse_api_key(key)[1])
    stack_api(emulated, "PATCH", f"/user-api-keys/{key_id}", {"revoked": True})
    with TestClient(build_app(emulated.stack_auth(cache_ttl=0))) as client:
        assert code_of(client.get("/principal", headers=bearer(key))) == (401, "API_KEY_REVOKED")
        with (
            pytest.raises(WebSocketDisconnect) as info,
            client.websocket_connect("/ws", headers=bearer(key)) as ws,
        ):
            ws.receive_json()
        assert info.value.code == 1008


def test_expired_unknown_and_orphaned_keys_are_refused(
    emulated: EmulatedStack, stack_user: StackTestUser
) -> None:
    expired = mint(emulated, "user", stack_user.id, int(time.time() * 1000) - 60_000)
    orphan_owner = emulated.create_user()
    orphan = mint(emulated, "user", orphan_owner.id)
    emulated.delete_user(orphan_owner)
    with TestClient(build_app(emulated.stack_auth())) as client:
        assert code_of(client.get("/principal", headers=bearer(expired))) == (
            401,
            "API_KEY_EXPIRED",
        )
        unknown = make_key("user")
        assert code_of(client.get("/principal", headers=bearer(unknown))) == (
            401,
            "INVALID_API_KEY",
        )
        assert code_of(client.get("/principal", headers=bearer(orphan))) == (401, "INVALID_API_KEY")
        before = dict(emulated.emulator.calls)
        assert code_of(client.get("/principal", headers=bearer(unknown[:-1]))) == (
            401,
            "INVALID_API_KEY",
        )
        assert dict(emulated.emulator.calls) == before  # refused before any I/O


def test_the_policy_applies_to_an_anonymous_users_key(emulated: EmulatedStack) -> None:
    anonymous = emulated.create_user(anonymous=True)
    key = mint(emulated, "user", anonymous.id)
    with TestClient(build_app(emulated.stack_auth())) as client:
        response = client.get("/principal", headers=bearer(key))
        assert code_of(response) == (403, "ANONYMOUS_USER_NOT_ALLOWED")


def test_keys_turned_off_in_the_project_are_our_misconfiguration(
    emulated: EmulatedStack, stack_user: StackTestUser, caplog: pytest.LogCaptureFixture
) -> None:
    key = mint(emulated, "user", stack_user.id)
    emulated.emulator.project.config.allow_user_api_keys = False
    with TestClient(build_app(emulated.stack_auth())) as client:
        response = client.get("/principal", headers=bearer(key))
    assert code_of(response) == (500, "SERVER_MISCONFIGURED")
    assert "User API keys are not enabled" in caplog.text
    assert key[3:48] not in caplog.text
