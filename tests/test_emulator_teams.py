"""The emulator's teams and memberships against the contract (§9.2, §9.3): server and client
access, Stack's order of checks, statuses and error bodies, and what a deletion takes along."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from fastapi_stack_auth.emulator import Emulator, User
from tests.emulator_helpers import (
    UNKNOWN_UUID,
    Clock,
    client_headers,
    known_error,
    server_headers,
)

pytest_plugins = ["tests.emulator_fixtures"]


def token(emu: Emulator, user: User) -> dict[str, str]:
    return {"x-stack-access-token": emu.sign_in(user.id).access_token}


async def permissions(
    api: httpx.AsyncClient, team_id: str, user_id: str, recursive: bool = False
) -> list[str]:
    query: dict[str, Any] = {"team_id": team_id, "user_id": user_id}
    if recursive:
        query["recursive"] = "true"
    response = await api.get("/team-permissions", params=query, headers=server_headers())
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


async def test_server_team_lifecycle(api: httpx.AsyncClient, emu: Emulator) -> None:
    ada = emu.create_user(email="ada@example.com")
    body = {"display_name": "Docs", "creator_user_id": ada.id, "server_metadata": {"plan": 1}}
    created = await api.post("/teams", json=body, headers=server_headers())
    assert created.status_code == 201, created.text
    team = created.json()
    assert set(team) == {
        "id",
        "display_name",
        "profile_image_url",
        "client_metadata",
        "client_read_only_metadata",
        "created_at_millis",
        "server_metadata",
    }
    assert team["server_metadata"] == {"plan": 1}
    # The creator is a member with team_admin, granted directly.
    assert await permissions(api, team["id"], ada.id) == ["team_admin"]
    read = await api.get(f"/teams/{team['id']}", headers=server_headers())
    assert read.json() == team
    patched = await api.patch(
        f"/teams/{team['id']}", json={"display_name": "Manuals"}, headers=server_headers()
    )
    assert patched.status_code == 200
    assert patched.json()["display_name"] == "Manuals"
    assert patched.json()["server_metadata"] == {"plan": 1}
    deleted = await api.delete(f"/teams/{team['id']}", headers=server_headers())
    assert (deleted.status_code, deleted.json()) == (200, {"success": True})
    gone = await api.get(f"/teams/{team['id']}", headers=server_headers())
    assert known_error(gone, 404, "TEAM_NOT_FOUND")["details"] == {"team_id": team["id"]}
    assert await permissions(api, team["id"], ada.id) == []  # the grants went with it
    for method in ("PATCH", "DELETE"):
        response = await api.request(
            method, f"/teams/{UNKNOWN_UUID}", json={}, headers=server_headers()
        )
        known_error(response, 404, "TEAM_NOT_FOUND")


async def test_team_lists_oldest_first_all_teams_without_user_id(
    api: httpx.AsyncClient, emu: Emulator, clock: Clock
) -> None:
    ada = emu.create_user(email="ada@example.com")
    first = emu.create_team("First", creator=ada.id)
    clock.now += 1
    emu.create_team("Orphan")  # no creator: no member at all
    clock.now += 1
    third = emu.create_team("Third")
    emu.add_member(third.id, ada.id)
    everything = await api.get("/teams", headers=server_headers())
    assert [t["display_name"] for t in everything.json()["items"]] == ["First", "Orphan", "Third"]
    assert everything.json()["is_paginated"] is False
    mine = await api.get("/teams", params={"user_id": ada.id}, headers=server_headers())
    assert [t["id"] for t in mine.json()["items"]] == [first.id, third.id]
    nobody = await api.get("/teams", params={"user_id": UNKNOWN_UUID}, headers=server_headers())
    assert nobody.json() == {"items": [], "is_paginated": False}  # an unknown user: no error
    me = await api.get("/teams?user_id=me", headers=server_headers(**token(emu, ada)))
    assert len(me.json()["items"]) == 2
    no_user = await api.get("/teams?user_id=me", headers=server_headers())
    known_error(no_user, 400, "CANNOT_GET_OWN_USER_WITHOUT_USER")
    bad = await api.get("/teams?user_id=nope", headers=server_headers())
    known_error(bad, 400, "SCHEMA_ERROR")


async def test_create_team_checks(api: httpx.AsyncClient, emu: Emulator) -> None:
    unknown = {"display_name": "X", "creator_user_id": UNKNOWN_UUID}
    response = await api.post("/teams", json=unknown, headers=server_headers())
    known_error(response, 404, "USER_NOT_FOUND")
    assert emu.project.teams == {}  # nothing left behind
    for body in ({}, {"display_name": "X", "extra": 1}, {"display_name": 3}):
        response = await api.post("/teams", json=body, headers=server_headers())
        known_error(response, 400, "SCHEMA_ERROR")
    ada = emu.create_user(email="ada@example.com")
    me = {"display_name": "Mine", "creator_user_id": "me"}
    created = await api.post("/teams", json=me, headers=server_headers(**token(emu, ada)))
    assert created.status_code == 201
    assert emu.project.is_member(created.json()["id"], ada.id)


async def test_client_team_access(api: httpx.AsyncClient, emu: Emulator) -> None:
    ada, bob = emu.create_user(email="ada@example.com"), emu.create_user(email="bob@example.com")
    team = emu.create_team("Docs", creator=ada.id)
    as_ada, as_bob = client_headers(**token(emu, ada)), client_headers(**token(emu, bob))
    read = await api.get(f"/teams/{team.id}", headers=as_ada)
    assert read.status_code == 200
    assert "server_metadata" not in read.json()
    assert "created_at_millis" not in read.json()
    # Not a member, or no such team: both TEAM_MEMBERSHIP_NOT_FOUND for a client (§11.10).
    for team_id in (team.id, UNKNOWN_UUID):
        response = await api.get(f"/teams/{team_id}", headers=as_bob)
        details = known_error(response, 404, "TEAM_MEMBERSHIP_NOT_FOUND")["details"]
        assert details == {"team_id": team_id, "user_id": bob.id}
    anonymous = await api.get(f"/teams/{team.id}", headers=client_headers())
    known_error(anonymous, 401, "USER_AUTHENTICATION_REQUIRED")
    # Lists: only one's own teams, by "me" or one's ID.
    for query in ("?user_id=me", f"?user_id={ada.id}"):
        mine = await api.get(f"/teams{query}", headers=as_ada)
        assert [t["id"] for t in mine.json()["items"]] == [team.id]
    for query in ("", f"?user_id={bob.id}"):
        refused = await api.get(f"/teams{query}", headers=as_ada)
        assert refused.status_code == 403
        assert refused.headers["content-type"].startswith("text/plain")
    no_user = await api.get("/teams?user_id=me", headers=client_headers())
    known_error(no_user, 400, "CANNOT_GET_OWN_USER_WITHOUT_USER")


async def test_client_changes_need_system_permissions(
    api: httpx.AsyncClient, emu: Emulator
) -> None:
    ada, bob = emu.create_user(email="ada@example.com"), emu.create_user(email="bob@example.com")
    team = emu.create_team("Docs", creator=ada.id)
    emu.add_member(team.id, bob.id)  # team_member: no $update_team, no $delete_team
    as_ada, as_bob = client_headers(**token(emu, ada)), client_headers(**token(emu, bob))
    rename = {"display_name": "Renamed"}
    refused = await api.patch(f"/teams/{team.id}", json=rename, headers=as_bob)
    details = known_error(refused, 401, "TEAM_PERMISSION_REQUIRED")["details"]
    assert details == {"team_id": team.id, "user_id": bob.id, "permission_id": "$update_team"}
    refused = await api.delete(f"/teams/{team.id}", headers=as_bob)
    assert known_error(refused, 401, "TEAM_PERMISSION_REQUIRED")["details"]["permission_id"] == (
        "$delete_team"
    )
    server_only = await api.patch(f"/teams/{team.id}", json={"server_metadata": 1}, headers=as_ada)
    known_error(server_only, 400, "SCHEMA_ERROR")
    renamed = await api.patch(f"/teams/{team.id}", json=rename, headers=as_ada)
    assert renamed.json()["display_name"] == "Renamed"
    outsider = client_headers(**token(emu, emu.create_user(email="eve@example.com")))
    refused = await api.delete(f"/teams/{team.id}", headers=outsider)
    known_error(refused, 404, "TEAM_MEMBERSHIP_NOT_FOUND")
    deleted = await api.delete(f"/teams/{team.id}", headers=as_ada)
    assert deleted.json() == {"success": True}


@pytest.mark.parametrize("enabled", [False, True])
async def test_client_team_creation(emu: Emulator, api: httpx.AsyncClient, enabled: bool) -> None:
    emu.project.config.client_team_creation_enabled = enabled
    ada, bob = emu.create_user(email="ada@example.com"), emu.create_user(email="bob@example.com")
    as_ada = client_headers(**token(emu, ada))
    response = await api.post("/teams", json={"display_name": "Mine"}, headers=as_ada)
    if not enabled:
        assert response.status_code == 403
        assert "x-stack-known-error" not in response.headers
        return
    assert response.status_code == 201
    assert emu.team_permissions(response.json()["id"], ada.id, recursive=False) == ["team_admin"]
    as_bob = {"display_name": "X", "creator_user_id": bob.id}
    refused = await api.post("/teams", json=as_bob, headers=as_ada)
    assert refused.status_code == 403
    with_server_field = {"display_name": "X", "server_metadata": {}}
    refused = await api.post("/teams", json=with_server_field, headers=as_ada)
    known_error(refused, 400, "SCHEMA_ERROR")
    no_user = await api.post("/teams", json={"display_name": "X"}, headers=client_headers())
    known_error(no_user, 401, "USER_AUTHENTICATION_REQUIRED")


async def test_memberships(api: httpx.AsyncClient, emu: Emulator) -> None:
    ada, bob = emu.create_user(email="ada@example.com"), emu.create_user(email="bob@example.com")
    team = emu.create_team("Docs", creator=ada.id)
    path = f"/team-memberships/{team.id}/{bob.id}"
    added = await api.post(path, json={}, headers=server_headers())
    assert (added.status_code, added.json()) == (201, {"team_id": team.id, "user_id": bob.id})
    assert await permissions(api, team.id, bob.id) == ["team_member"]
    expanded = await permissions(api, team.id, bob.id, recursive=True)
    assert expanded == ["$invite_members", "$read_members", "team_member"]
    again = await api.post(path, json={}, headers=server_headers())
    known_error(again, 409, "TEAM_MEMBERSHIP_ALREADY_EXISTS")
    # Members are listed by GET /users?team_id= (there is no membership GET).
    members = await api.get("/users", params={"team_id": team.id}, headers=server_headers())
    assert {u["id"] for u in members.json()["items"]} == {ada.id, bob.id}
    assert (await api.get(path, headers=server_headers())).status_code == 405
    # Leaving: the membership, its permissions and the selection of the team go.
    emu.get_user(bob.id).selected_team_id = team.id  # type: ignore[union-attr]
    removed = await api.delete(path, headers=server_headers())
    assert removed.json() == {"success": True}
    assert await permissions(api, team.id, bob.id) == []
    assert emu.get_user(bob.id).selected_team_id is None  # type: ignore[union-attr]
    again = await api.delete(path, headers=server_headers())
    known_error(again, 404, "TEAM_MEMBERSHIP_NOT_FOUND")


async def test_membership_errors_in_stacks_order(api: httpx.AsyncClient, emu: Emulator) -> None:
    ada = emu.create_user(email="ada@example.com")
    team = emu.create_team("Docs")
    both_unknown = f"/team-memberships/{UNKNOWN_UUID}/{UNKNOWN_UUID}"
    known_error(
        await api.post(both_unknown, json={}, headers=server_headers()), 404, "USER_NOT_FOUND"
    )
    no_team = f"/team-memberships/{UNKNOWN_UUID}/{ada.id}"
    response = await api.post(no_team, json={}, headers=server_headers())
    assert known_error(response, 404, "TEAM_NOT_FOUND")["details"] == {"team_id": UNKNOWN_UUID}
    client = await api.post(
        f"/team-memberships/{team.id}/{ada.id}", json={}, headers=client_headers()
    )
    known_error(client, 401, "INSUFFICIENT_ACCESS_TYPE")
    not_uuid = await api.post(
        f"/team-memberships/{team.id}/nope", json={}, headers=server_headers()
    )
    known_error(not_uuid, 400, "SCHEMA_ERROR")
    no_user = f"/team-memberships/{team.id}/{UNKNOWN_UUID}"
    known_error(await api.delete(no_user, headers=server_headers()), 404, "USER_NOT_FOUND")
    me = await api.post(
        f"/team-memberships/{team.id}/me", json={}, headers=server_headers(**token(emu, ada))
    )
    assert me.json() == {"team_id": team.id, "user_id": ada.id}


async def test_client_leaves_or_removes_with_remove_members(
    api: httpx.AsyncClient, emu: Emulator
) -> None:
    ada, bob = emu.create_user(email="ada@example.com"), emu.create_user(email="bob@example.com")
    eve = emu.create_user(email="eve@example.com")
    team = emu.create_team("Docs", creator=ada.id)
    emu.add_member(team.id, bob.id)
    emu.add_member(team.id, eve.id)
    as_bob = client_headers(**token(emu, bob))
    refused = await api.delete(f"/team-memberships/{team.id}/{eve.id}", headers=as_bob)
    assert known_error(refused, 401, "TEAM_PERMISSION_REQUIRED")["details"]["permission_id"] == (
        "$remove_members"
    )
    left = await api.delete(f"/team-memberships/{team.id}/me", headers=as_bob)
    assert left.json() == {"success": True}
    as_ada = client_headers(**token(emu, ada))
    removed = await api.delete(f"/team-memberships/{team.id}/{eve.id}", headers=as_ada)
    assert removed.json() == {"success": True}
    assert [u.id for u in emu.project.users.values() if emu.project.is_member(team.id, u.id)] == [
        ada.id
    ]


async def test_deleting_a_user_ends_their_memberships(
    api: httpx.AsyncClient, emu: Emulator
) -> None:
    ada = emu.create_user(email="ada@example.com")
    team = emu.create_team("Docs", creator=ada.id)
    assert (await api.delete(f"/users/{ada.id}", headers=server_headers())).status_code == 200
    assert not emu.project.is_member(team.id, ada.id)
    assert emu.project.permissions.list_team(team_id=team.id) == []
    assert emu.get_team(team.id) is not None  # the team stays, with no members
