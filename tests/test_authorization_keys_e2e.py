"""Authorization by API key end to end: keys minted by the emulator, checked and their user's
permissions asked over real loopback HTTP, for HTTP routes and a WebSocket."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import Depends, FastAPI, WebSocket
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from fastapi_stack_auth import StackUser
from fastapi_stack_auth._authorization import (
    TeamAccess,
    TeamMember,
    current_team_member,
    require_project_permission,
    require_team_permission,
)
from fastapi_stack_auth._principals import current_principal
from fastapi_stack_auth.testing import EmulatedStack, StackTestUser

pytest_plugins = ["fastapi_stack_auth.testing"]

DELETE_DOCS = require_team_permission("docs:delete", user=current_principal)
MEMBER = current_team_member(user=current_principal)
ADMIN = require_project_permission("admin", user=current_principal)


def build_app() -> FastAPI:
    app = FastAPI()

    @app.delete("/teams/{team_id}/docs")
    async def delete_docs(access: TeamAccess = Depends(DELETE_DOCS)) -> dict[str, str]:
        return {"deleted": access.team_id, "by": access.user.id}

    @app.get("/teams/{team_id}")
    async def team(member: TeamMember = Depends(MEMBER)) -> dict[str, str]:
        return {"name": member.team.display_name}

    @app.get("/admin")
    async def admin(user: StackUser = Depends(ADMIN)) -> dict[str, str]:
        return {"admin": user.id}

    @app.websocket("/ws/teams/{team_id}")
    async def ws(websocket: WebSocket, member: TeamMember = Depends(MEMBER)) -> None:
        await websocket.accept()
        await websocket.send_json({"id": member.team_id, "user": member.user.id})
        await websocket.close()

    return app


@pytest.fixture(params=["remote", "jwt"])
def client(request: pytest.FixtureRequest, stack_emulator: EmulatedStack) -> Iterator[TestClient]:
    """The app against the emulator with API keys on, answers not cached (a grant or a
    revocation shows at once)."""
    config = stack_emulator.emulator.project.config
    config.allow_user_api_keys = config.allow_team_api_keys = True
    app = build_app()
    stack_emulator.stack_auth(verify=request.param, permission_cache_ttl=0).init_app(app)
    with TestClient(app) as test_client:
        yield test_client


def key_headers(key: str) -> dict[str, str]:
    return {"x-stack-api-key": key}


def test_a_user_key_has_its_users_permissions_as_stack_sees_them(
    client: TestClient, stack_emulator: EmulatedStack, stack_user: StackTestUser
) -> None:
    team = stack_emulator.create_team(stack_emulator.create_user())
    key = stack_emulator.create_api_key(stack_user)
    url = f"/teams/{team.id}/docs"
    denied = client.delete(url, headers=key_headers(key))
    assert (denied.status_code, denied.json()["code"]) == (403, "PERMISSION_REQUIRED")
    stack_emulator.grant_team_permission(stack_user, team, "docs:delete")
    granted = client.delete(url, headers={"authorization": f"Bearer {key}"})
    assert granted.json() == {"deleted": team.id, "by": stack_user.id}
    assert client.get(f"/teams/{team.id}", headers=key_headers(key)).json() == {"name": "Test Team"}
    stack_emulator.revoke_team_permission(stack_user, team, "docs:delete")
    assert client.delete(url, headers=key_headers(key)).status_code == 403
    # The user's own token and the key answer alike.
    assert client.delete(url, headers=stack_user.headers).status_code == 403


def test_project_permissions_by_key(
    client: TestClient, stack_emulator: EmulatedStack, stack_user: StackTestUser
) -> None:
    key = stack_emulator.create_api_key(stack_user)
    assert client.get("/admin", headers=key_headers(key)).status_code == 403
    stack_emulator.grant_project_permission(stack_user, "admin")
    assert client.get("/admin", headers=key_headers(key)).json() == {"admin": stack_user.id}


def test_a_team_key_is_refused_without_asking_stack(
    client: TestClient, stack_emulator: EmulatedStack, stack_user: StackTestUser
) -> None:
    team = stack_emulator.create_team(stack_user)
    team_key = stack_emulator.create_api_key(team)
    calls = stack_emulator.emulator.calls
    before = sum(calls.values())
    for method, url in (
        ("DELETE", f"/teams/{team.id}/docs"),
        ("GET", f"/teams/{team.id}"),
        ("GET", "/admin"),
    ):
        response = client.request(method, url, headers=key_headers(team_key))
        assert response.status_code == 401
        assert response.json()["code"] == "WRONG_API_KEY_TYPE"
    assert sum(calls.values()) == before


def test_a_websocket_by_key(
    client: TestClient, stack_emulator: EmulatedStack, stack_user: StackTestUser
) -> None:
    team = stack_emulator.create_team(stack_user)
    user_key, team_key = (
        stack_emulator.create_api_key(stack_user),
        stack_emulator.create_api_key(team),
    )
    with client.websocket_connect(f"/ws/teams/{team.id}", headers=key_headers(user_key)) as ws:
        assert ws.receive_json() == {"id": team.id, "user": stack_user.id}
    other = stack_emulator.create_team(stack_emulator.create_user())
    for team_id, key in ((other.id, user_key), (team.id, team_key)):  # 403, then 401
        with (
            pytest.raises(WebSocketDisconnect) as info,
            client.websocket_connect(f"/ws/teams/{team_id}", headers=key_headers(key)) as ws,
        ):
            ws.receive_json()
        assert info.value.code == 1008
