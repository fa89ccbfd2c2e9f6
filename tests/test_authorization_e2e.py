"""Authorization end to end: an app on ``TestClient`` asking the emulator over real loopback
HTTP, Stack's default team permissions and containment included."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
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
from fastapi_stack_auth._requirements import TeamFrom, any_of
from fastapi_stack_auth.testing import EmulatedStack, StackTestUser

pytest_plugins = ["fastapi_stack_auth.testing"]

UPDATE_TEAM = require_team_permission("$update_team")
READ_MEMBERS = require_team_permission("$read_members")
DELETE_DOCS = require_team_permission(any_of("docs:delete", "team_admin"))
BY_HEADER = require_team_permission("docs:read", team_from=TeamFrom.header())
SELECTED = require_team_permission("docs:read", team_from=TeamFrom.selected_team())
MEMBER = current_team_member()
ADMIN = require_project_permission("admin")
REPORTS = require_project_permission("reports:read")


def build_app() -> FastAPI:
    app = FastAPI()

    @app.patch("/teams/{team_id}", dependencies=[Depends(UPDATE_TEAM)])
    async def update_team(team_id: str) -> dict[str, str]:
        return {"updated": team_id}

    @app.get("/teams/{team_id}/members", dependencies=[Depends(READ_MEMBERS)])
    async def members(team_id: str) -> dict[str, str]:
        return {"members": team_id}

    @app.delete("/teams/{team_id}/docs", dependencies=[Depends(DELETE_DOCS)])
    async def delete_docs(team_id: str) -> dict[str, str]:
        return {"deleted": team_id}

    @app.get("/documents")
    async def documents(access: TeamAccess = Depends(BY_HEADER)) -> dict[str, str]:
        return {"team": access.team_id}

    @app.get("/my-team/documents")
    async def my_documents(access: TeamAccess = Depends(SELECTED)) -> dict[str, str]:
        return {"team": access.team_id}

    @app.get("/teams/{team_id}")
    async def team(member: TeamMember = Depends(MEMBER)) -> dict[str, str]:
        return {"id": member.team_id, "name": member.team.display_name}

    @app.get("/admin")
    async def admin(user: StackUser = Depends(ADMIN)) -> dict[str, str]:
        return {"admin": user.id}

    @app.get("/reports", dependencies=[Depends(REPORTS)])
    async def reports() -> dict[str, bool]:
        return {"ok": True}

    @app.websocket("/ws/teams/{team_id}")
    async def ws(websocket: WebSocket, member: TeamMember = Depends(MEMBER)) -> None:
        await websocket.accept()
        await websocket.send_json({"id": member.team_id})
        await websocket.close()

    return app


@pytest.fixture(params=["remote", "jwt"])
def client(request: pytest.FixtureRequest, stack_emulator: EmulatedStack) -> Iterator[TestClient]:
    """The app against the emulator, in each verification mode; answers are not cached, so a
    grant or a revocation shows at once."""
    app = build_app()
    stack_emulator.stack_auth(verify=request.param, permission_cache_ttl=0).init_app(app)
    with TestClient(app) as test_client:
        yield test_client


def as_user(client: TestClient, user: StackTestUser) -> TestClient:
    client.headers["authorization"] = f"Bearer {user.access_token}"
    return client


def test_a_creator_holds_team_admin_and_what_it_contains(
    client: TestClient, stack_emulator: EmulatedStack, stack_user: StackTestUser
) -> None:
    team = stack_emulator.create_team(stack_user)
    as_user(client, stack_user)
    assert client.patch(f"/teams/{team.id}").json() == {"updated": team.id}  # $update_team
    assert client.get(f"/teams/{team.id}/members").status_code == 200  # $read_members
    assert client.delete(f"/teams/{team.id}/docs").status_code == 200  # team_admin


def test_a_member_holds_team_member_only(
    client: TestClient, stack_emulator: EmulatedStack, stack_user: StackTestUser
) -> None:
    owner = stack_emulator.create_user()
    team = stack_emulator.create_team(owner)
    stack_emulator.add_member(team, stack_user)
    as_user(client, stack_user)
    assert client.get(f"/teams/{team.id}/members").status_code == 200  # in team_member
    denied = client.patch(f"/teams/{team.id}")
    assert denied.status_code == 403
    assert denied.json() == {
        "detail": "Requires the team permission '$update_team'",
        "code": "PERMISSION_REQUIRED",
    }
    assert client.get(f"/teams/{team.id}").json() == {"id": team.id, "name": "Test Team"}


def test_a_grant_and_its_revocation(
    client: TestClient, stack_emulator: EmulatedStack, stack_user: StackTestUser
) -> None:
    team = stack_emulator.create_team(stack_emulator.create_user())
    as_user(client, stack_user)
    assert client.delete(f"/teams/{team.id}/docs").status_code == 403
    stack_emulator.grant_team_permission(stack_user, team, "docs:delete")
    assert client.delete(f"/teams/{team.id}/docs").status_code == 200
    stack_emulator.revoke_team_permission(stack_user, team, "docs:delete")
    assert client.delete(f"/teams/{team.id}/docs").status_code == 403


def test_non_members_and_unknown_teams_are_403(
    client: TestClient, stack_emulator: EmulatedStack, stack_user: StackTestUser
) -> None:
    team = stack_emulator.create_team(stack_emulator.create_user())
    unknown = "0e9d8c7b-6a5f-4e3d-9c2b-1a0f9e8d7c6b"
    as_user(client, stack_user)
    for team_id in (team.id, unknown):
        assert client.get(f"/teams/{team_id}/members").json()["code"] == "PERMISSION_REQUIRED"
        membership = client.get(f"/teams/{team_id}")
        assert membership.status_code == 403
        assert membership.json()["code"] == "TEAM_MEMBERSHIP_REQUIRED"


def test_the_header_source(
    client: TestClient, stack_emulator: EmulatedStack, stack_user: StackTestUser
) -> None:
    team = stack_emulator.create_team()
    stack_emulator.grant_team_permission(stack_user, team, "docs:read")
    as_user(client, stack_user)
    assert client.get("/documents", headers={"x-team-id": team.id}).json() == {"team": team.id}
    assert client.get("/documents").json()["code"] == "TEAM_ID_REQUIRED"


def test_the_selected_team_source(
    client: TestClient, stack_emulator: EmulatedStack, stack_user: StackTestUser
) -> None:
    team = stack_emulator.create_team()
    stack_emulator.grant_team_permission(stack_user, team, "docs:read")
    as_user(client, stack_user)
    assert client.get("/my-team/documents").json()["code"] == "TEAM_ID_REQUIRED"
    selected = httpx.patch(
        f"{stack_emulator.url}/api/v1/users/{stack_user.id}",
        json={"selected_team_id": team.id},
        headers=stack_emulator.server_headers(),
    )
    assert selected.status_code == 200
    # A new token: JWT mode reads the selection from its claims, remote mode from the profile
    # (the old token's is cached for cache_ttl).
    client.headers["authorization"] = f"Bearer {stack_emulator.sign_in(stack_user).access_token}"
    assert client.get("/my-team/documents").json() == {"team": team.id}


def test_project_permissions_and_containment(
    client: TestClient, stack_emulator: EmulatedStack, stack_user: StackTestUser
) -> None:
    as_user(client, stack_user)
    assert client.get("/admin").json()["code"] == "PERMISSION_REQUIRED"
    stack_emulator.grant_project_permission(stack_user, "admin")
    assert client.get("/admin").json() == {"admin": stack_user.id}
    stack_emulator.emulator.define_permission("reports:read", scope="project")
    stack_emulator.emulator.define_permission(
        "reports:all", scope="project", contains=["reports:read"]
    )
    assert client.get("/reports").status_code == 403
    stack_emulator.grant_project_permission(stack_user, "reports:all")
    assert client.get("/reports").json() == {"ok": True}


def test_a_websocket_for_members_only(
    client: TestClient, stack_emulator: EmulatedStack, stack_user: StackTestUser
) -> None:
    team = stack_emulator.create_team(stack_user)
    other = stack_emulator.create_team(stack_emulator.create_user())
    as_user(client, stack_user)
    with client.websocket_connect(f"/ws/teams/{team.id}") as ws:
        assert ws.receive_json() == {"id": team.id}
    with (
        pytest.raises(WebSocketDisconnect) as info,
        client.websocket_connect(f"/ws/teams/{other.id}") as ws,
    ):
        ws.receive_json()
    assert info.value.code == 1008
