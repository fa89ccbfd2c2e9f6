"""``stack.server.teams``, ``.memberships``, ``.team_permissions`` and ``.project_permissions``
against a respx-mocked Stack, with the contract's fixtures as answers."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import respx

from fastapi_stack_auth import StackAuth
from fastapi_stack_auth.errors import (
    PermissionNotFoundError,
    StackBadResponseError,
    TeamMembershipAlreadyExistsError,
    TeamMembershipNotFoundError,
    TeamNotFoundError,
    TeamPermissionRequiredError,
    UserNotFoundError,
    WrongPermissionScopeError,
)
from fastapi_stack_auth.models import Team
from fastapi_stack_auth.server import ProjectPermission, StackServer, TeamMembership, TeamPermission
from tests.conftest import USER_ID, fixture_json, fixture_response

TEAM_ID = "5b6c7d8e-9f0a-4b1c-8d2e-3f4a5b6c7d8e"
SECOND_USER = "9d2e4f6a-1b3c-4d5e-8f7a-6b5c4d3e2f1a"


def body_of(route: respx.Route) -> Any:
    return json.loads(route.calls.last.request.content)


@pytest.fixture
def server(stack: StackAuth) -> StackServer:
    return stack.server


# --- teams ----------------------------------------------------------------------------------


async def test_get_team(server: StackServer, mock_api: respx.MockRouter) -> None:
    mock_api.get(f"/teams/{TEAM_ID}").respond(200, json=fixture_json("team.json"))
    team = await server.teams.get(TEAM_ID)
    assert isinstance(team, Team)
    assert (team.id, team.display_name, team.created_at_millis) == (
        TEAM_ID,
        "New Team",
        1767226500077,
    )


async def test_get_unknown_team(server: StackServer, mock_api: respx.MockRouter) -> None:
    answer = fixture_response("errors-constructed/TEAM_NOT_FOUND.json")
    mock_api.get(f"/teams/{TEAM_ID}").mock(return_value=answer)
    with pytest.raises(TeamNotFoundError) as info:
        await server.teams.get(TEAM_ID)
    assert info.value.details == {"team_id": TEAM_ID}


async def test_list_teams_of_a_user_and_of_the_project(
    server: StackServer, mock_api: respx.MockRouter
) -> None:
    route = mock_api.get("/teams").respond(200, json=fixture_json("teams-list.server.json"))
    teams = await server.teams.list(user_id=USER_ID)
    assert [t.display_name for t in teams][1] == "New Team"
    assert dict(route.calls.last.request.url.params) == {"user_id": USER_ID}
    await server.teams.list()
    assert dict(route.calls.last.request.url.params) == {}


async def test_list_without_items_is_a_bad_response(
    server: StackServer, mock_api: respx.MockRouter
) -> None:
    mock_api.get("/teams").respond(200, json={"is_paginated": False})
    with pytest.raises(StackBadResponseError, match="GET /teams"):
        await server.teams.list()


async def test_create_team(server: StackServer, mock_api: respx.MockRouter) -> None:
    route = mock_api.post("/teams").respond(201, json=fixture_json("team.json"))
    team = await server.teams.create("New Team", creator_user_id=USER_ID, server_metadata={"a": 1})
    assert team.id == TEAM_ID
    assert body_of(route) == {
        "display_name": "New Team",
        "creator_user_id": USER_ID,
        "server_metadata": {"a": 1},
    }


async def test_create_team_with_unknown_creator(
    server: StackServer, mock_api: respx.MockRouter
) -> None:
    mock_api.post("/teams").mock(return_value=fixture_response("errors/USER_NOT_FOUND.json"))
    with pytest.raises(UserNotFoundError):
        await server.teams.create("T", creator_user_id=USER_ID)


async def test_update_team_sends_only_what_is_given(
    server: StackServer, mock_api: respx.MockRouter
) -> None:
    route = mock_api.patch(f"/teams/{TEAM_ID}").respond(200, json=fixture_json("team.json"))
    await server.teams.update(TEAM_ID, profile_image_url=None, client_read_only_metadata={"x": 1})
    assert body_of(route) == {"profile_image_url": None, "client_read_only_metadata": {"x": 1}}


async def test_update_team_without_permission(
    server: StackServer, mock_api: respx.MockRouter
) -> None:
    answer = fixture_response("errors/TEAM_PERMISSION_REQUIRED.json")
    mock_api.patch(f"/teams/{TEAM_ID}").mock(return_value=answer)
    with pytest.raises(TeamPermissionRequiredError) as info:
        await server.teams.update(TEAM_ID, display_name="x")
    assert info.value.details["permission_id"] == "$read_members"


async def test_delete_team(server: StackServer, mock_api: respx.MockRouter) -> None:
    route = mock_api.delete(f"/teams/{TEAM_ID}").respond(200, json={"success": True})
    await server.teams.delete(TEAM_ID)
    assert route.call_count == 1


# --- memberships ----------------------------------------------------------------------------


async def test_add_member(server: StackServer, mock_api: respx.MockRouter) -> None:
    route = mock_api.post(f"/team-memberships/{TEAM_ID}/{SECOND_USER}").respond(
        201, json=fixture_json("team-membership-create.json")
    )
    membership = await server.memberships.add(TEAM_ID, SECOND_USER)
    assert membership == TeamMembership(team_id=TEAM_ID, user_id=SECOND_USER)
    assert body_of(route) == {}  # Stack's creates want a JSON object


async def test_add_member_twice(server: StackServer, mock_api: respx.MockRouter) -> None:
    answer = fixture_response("errors/TEAM_MEMBERSHIP_ALREADY_EXISTS.json")
    mock_api.post(f"/team-memberships/{TEAM_ID}/{USER_ID}").mock(return_value=answer)
    with pytest.raises(TeamMembershipAlreadyExistsError):
        await server.memberships.add(TEAM_ID, USER_ID)


async def test_remove_member(server: StackServer, mock_api: respx.MockRouter) -> None:
    route = mock_api.delete(f"/team-memberships/{TEAM_ID}/{USER_ID}").respond(
        200, json={"success": True}
    )
    await server.memberships.remove(TEAM_ID, USER_ID)
    assert route.call_count == 1
    answer = fixture_response("errors/TEAM_MEMBERSHIP_NOT_FOUND.json")
    route.mock(return_value=answer)
    with pytest.raises(TeamMembershipNotFoundError):
        await server.memberships.remove(TEAM_ID, USER_ID)


async def test_members_lists_users_of_the_team(
    server: StackServer, mock_api: respx.MockRouter
) -> None:
    route = mock_api.get("/users").respond(200, json=fixture_json("users-list.server.json"))
    members = [u.id async for u in server.memberships.members(TEAM_ID, include_restricted=True)]
    assert members == [USER_ID]
    assert dict(route.calls.last.request.url.params) == {
        "team_id": TEAM_ID,
        "include_restricted": "true",
        "limit": "100",
    }


async def test_teams_of_a_user(server: StackServer, mock_api: respx.MockRouter) -> None:
    route = mock_api.get("/teams").respond(200, json=fixture_json("teams-list.server.json"))
    teams = await server.memberships.teams_of(USER_ID)
    assert len(teams) == 2
    assert dict(route.calls.last.request.url.params) == {"user_id": USER_ID}


# --- team permissions -----------------------------------------------------------------------


async def test_team_permissions_are_listed_recursively_by_default(
    server: StackServer, mock_api: respx.MockRouter
) -> None:
    route = mock_api.get("/team-permissions").respond(
        200, json=fixture_json("team-permissions-list.recursive.json")
    )
    found = await server.team_permissions.list(team_id=TEAM_ID, user_id=USER_ID)
    assert all(isinstance(p, TeamPermission) for p in found)
    assert "$update_team" in {p.id for p in found}
    assert dict(route.calls.last.request.url.params) == {
        "recursive": "true",
        "team_id": TEAM_ID,
        "user_id": USER_ID,
    }
    await server.team_permissions.list(team_id=TEAM_ID, recursive=False)
    assert dict(route.calls.last.request.url.params) == {"recursive": "false", "team_id": TEAM_ID}


async def test_has_team_permission(server: StackServer, mock_api: respx.MockRouter) -> None:
    answers = {
        "$update_team": fixture_json("team-permissions-list.recursive.json"),
        "docs:delete": {"items": [], "is_paginated": False},  # what an unknown team gives too
    }

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=answers[request.url.params["permission_id"]])

    route = mock_api.get("/team-permissions").mock(side_effect=answer)
    assert await server.team_permissions.has(TEAM_ID, USER_ID, "$update_team") is True
    assert dict(route.calls.last.request.url.params) == {
        "recursive": "true",
        "team_id": TEAM_ID,
        "user_id": USER_ID,
        "permission_id": "$update_team",
    }
    assert await server.team_permissions.has(TEAM_ID, USER_ID, "docs:delete") is False


async def test_grant_and_revoke_team_permission(
    server: StackServer, mock_api: respx.MockRouter
) -> None:
    path = f"/team-permissions/{TEAM_ID}/{USER_ID}/docs:delete"
    granted = {"id": "docs:delete", "team_id": TEAM_ID, "user_id": USER_ID}
    post = mock_api.post(path).respond(201, json=granted)
    assert await server.team_permissions.grant(TEAM_ID, USER_ID, "docs:delete") == TeamPermission(
        **granted
    )
    assert body_of(post) == {}
    delete = mock_api.delete(path).respond(200, json={"success": True})
    await server.team_permissions.revoke(TEAM_ID, USER_ID, "docs:delete")
    assert delete.call_count == 1


async def test_permission_ids_are_quoted(server: StackServer, mock_api: respx.MockRouter) -> None:
    route = mock_api.route().respond(200, json={"success": True})
    await server.team_permissions.revoke(TEAM_ID, USER_ID, "../../users/x")
    assert route.calls.last.request.url.raw_path == (
        f"/api/v1/team-permissions/{TEAM_ID}/{USER_ID}/..%2F..%2Fusers%2Fx".encode()
    )


@pytest.mark.parametrize(
    ("fixture", "exc_type"),
    [
        ("errors/PERMISSION_NOT_FOUND.json", PermissionNotFoundError),
        ("errors/WRONG_PERMISSION_SCOPE.json", WrongPermissionScopeError),
        ("errors/TEAM_MEMBERSHIP_NOT_FOUND.json", TeamMembershipNotFoundError),
    ],
)
async def test_grant_errors(
    server: StackServer, mock_api: respx.MockRouter, fixture: str, exc_type: type[Exception]
) -> None:
    mock_api.post(f"/team-permissions/{TEAM_ID}/{USER_ID}/p1").mock(
        return_value=fixture_response(fixture)
    )
    with pytest.raises(exc_type):
        await server.team_permissions.grant(TEAM_ID, USER_ID, "p1")


async def test_revoking_an_indirect_team_permission(
    server: StackServer, mock_api: respx.MockRouter
) -> None:
    answer = fixture_response("errors-constructed/TEAM_PERMISSION_NOT_FOUND.json")
    mock_api.delete(f"/team-permissions/{TEAM_ID}/{USER_ID}/team_member").mock(return_value=answer)
    with pytest.raises(PermissionNotFoundError) as info:
        await server.team_permissions.revoke(TEAM_ID, USER_ID, "team_member")
    assert info.value.status_code == 401  # Stack's status for this one


# --- project permissions --------------------------------------------------------------------


async def test_project_permissions(server: StackServer, mock_api: respx.MockRouter) -> None:
    route = mock_api.get("/project-permissions").respond(
        200, json=fixture_json("project-permissions-list.json")
    )
    found = await server.project_permissions.list(user_id=USER_ID)
    assert found == [ProjectPermission(id="parent", user_id=USER_ID)]
    assert dict(route.calls.last.request.url.params) == {"recursive": "true", "user_id": USER_ID}
    assert await server.project_permissions.has(USER_ID, "parent") is True
    assert dict(route.calls.last.request.url.params) == {
        "recursive": "true",
        "user_id": USER_ID,
        "permission_id": "parent",
    }


async def test_grant_and_revoke_project_permission(
    server: StackServer, mock_api: respx.MockRouter
) -> None:
    path = f"/project-permissions/{USER_ID}/admin"
    post = mock_api.post(path).respond(201, json={"id": "admin", "user_id": USER_ID})
    granted = await server.project_permissions.grant(USER_ID, "admin")
    assert granted == ProjectPermission(id="admin", user_id=USER_ID)
    assert body_of(post) == {}
    mock_api.delete(path).mock(return_value=fixture_response("errors/PERMISSION_NOT_FOUND.json"))
    with pytest.raises(PermissionNotFoundError):
        await server.project_permissions.revoke(USER_ID, "admin")
