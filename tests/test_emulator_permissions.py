"""The emulator's team permissions against the contract (§9.4, §11): the default definitions,
containment, recursive listing and its traps, the sort order, grants and revocations with their
errors. Project permissions and definitions from a seed or the command line are in
``test_emulator_project_permissions.py``."""

from __future__ import annotations

import functools
from typing import Any

import httpx
import pytest

from fastapi_stack_auth.emulator import SYSTEM_TEAM_PERMISSIONS, Emulator
from fastapi_stack_auth.emulator._rbac import stack_compare
from tests.emulator_helpers import (
    UNKNOWN_UUID,
    client_headers,
    fixture,
    known_error,
    seed,
    server_headers,
)

pytest_plugins = ["tests.emulator_fixtures"]


async def listed(api: httpx.AsyncClient, path: str, **query: str) -> list[dict[str, Any]]:
    response = await api.get(path, params=query, headers=server_headers())
    assert response.status_code == 200, response.text
    assert response.json()["is_paginated"] is False
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def test_default_definitions_are_stacks() -> None:
    definitions = Emulator(seed()).project.permissions.definitions
    assert set(definitions) == {"team_admin", "team_member"}
    assert set(definitions["team_admin"].contained_permission_ids) == set(SYSTEM_TEAM_PERMISSIONS)
    assert set(definitions["team_member"].contained_permission_ids) == {
        "$read_members",
        "$invite_members",
    }
    assert SYSTEM_TEAM_PERMISSIONS == (
        "$update_team",
        "$delete_team",
        "$read_members",
        "$remove_members",
        "$invite_members",
        "$manage_api_keys",
    )


async def test_a_creators_recursive_list_is_the_fixtures(
    api: httpx.AsyncClient, emu: Emulator
) -> None:
    ada = emu.create_user(email="ada@example.com")
    team = emu.create_team("Docs", creator=ada.id)
    direct = await listed(api, "/team-permissions", team_id=team.id, user_id=ada.id)
    assert direct == [{"id": "team_admin", "team_id": team.id, "user_id": ada.id}]
    # recursive defaults to false; true adds the contained system permissions, sorted with
    # Stack's comparison ($ before letters): exactly the fixture's list.
    full = await listed(api, "/team-permissions", team_id=team.id, user_id=ada.id, recursive="true")
    expected = fixture("team-permissions-list.recursive.json")["items"]
    assert [item["id"] for item in full] == [item["id"] for item in expected]
    assert {(item["team_id"], item["user_id"]) for item in full} == {(team.id, ada.id)}


async def test_permission_id_filters_after_expansion(api: httpx.AsyncClient, emu: Emulator) -> None:
    ada = emu.create_user(email="ada@example.com")
    team = emu.create_team("Docs", creator=ada.id)
    query = {"team_id": team.id, "user_id": ada.id, "permission_id": "$delete_team"}
    assert await listed(api, "/team-permissions", **query) == []  # not granted directly
    found = await listed(api, "/team-permissions", **query, recursive="true")
    assert found == [{"id": "$delete_team", "team_id": team.id, "user_id": ada.id}]
    assert await listed(api, "/team-permissions", **{**query, "permission_id": "team_admin"}) != []


async def test_unknown_team_user_or_membership_lists_nothing(
    api: httpx.AsyncClient, emu: Emulator
) -> None:
    ada = emu.create_user(email="ada@example.com")
    team = emu.create_team("Docs")
    for query in (
        {"team_id": UNKNOWN_UUID, "user_id": ada.id},
        {"team_id": team.id, "user_id": ada.id},  # not a member
        {"team_id": team.id, "user_id": UNKNOWN_UUID},
    ):
        assert await listed(api, "/team-permissions", **query, recursive="true") == []
    for bad in (
        {"team_id": "nope"},
        {"permission_id": "Bad"},
        {"permission_id": "$nope"},
        {"x": "1"},
    ):
        response = await api.get("/team-permissions", params=bad, headers=server_headers())
        known_error(response, 400, "SCHEMA_ERROR")


async def test_sort_order_team_then_user_then_permission(
    api: httpx.AsyncClient, emu: Emulator
) -> None:
    users = [emu.create_user(email=f"u{i}@example.com") for i in range(3)]
    teams = [emu.create_team(f"T{i}") for i in range(3)]
    emu.define_permission("docs:read")
    emu.define_permission("a_z")
    for team in teams:
        for user in users:
            emu.add_member(team.id, user.id)
            for permission in ("docs:read", "$update_team", "a_z"):
                emu.grant_team_permission(team.id, user.id, permission)
    items = await listed(api, "/team-permissions", recursive="true")  # a server lists everything
    rows = [(i["team_id"], i["user_id"], i["id"]) for i in items]
    assert len(rows) == 3 * 3 * 6

    def compare(a: tuple[str, ...], b: tuple[str, ...]) -> int:
        return next((c for x, y in zip(a, b, strict=True) if (c := stack_compare(x, y))), 0)

    assert rows == sorted(rows, key=functools.cmp_to_key(compare))
    first = [pid for team, user, pid in rows[:6]]
    assert first == [
        "$invite_members",
        "$read_members",
        "$update_team",
        "a_z",
        "docs:read",
        "team_member",
    ]


def test_stack_compare() -> None:
    # Upper-cased first, so "_" (after the letters in upper case) sorts after "z"; "$" first.
    words = ["b", "$x", "a_b", "ab", "A", "a"]
    assert sorted(words, key=functools.cmp_to_key(stack_compare)) == [
        "$x",
        "a",
        "A",
        "ab",
        "a_b",
        "b",
    ]


async def test_containment_is_recursive_and_reaches_system_permissions(
    api: httpx.AsyncClient, emu: Emulator
) -> None:
    ada = emu.create_user(email="ada@example.com")
    team = emu.create_team("Docs", creator=ada.id)
    emu.define_permission("docs:read")
    emu.define_permission("docs:write", contains=["docs:read", "$read_members"])
    emu.define_permission("docs:admin", contains=["docs:write"])
    emu.grant_team_permission(team.id, ada.id, "docs:admin")
    emu.revoke_team_permission(team.id, ada.id, "team_admin")
    ids = [
        i["id"] for i in await listed(api, "/team-permissions", team_id=team.id, recursive="true")
    ]
    assert ids == ["$read_members", "docs:admin", "docs:read", "docs:write"]
    with pytest.raises(ValueError, match="no team permission"):
        emu.define_permission("docs:all", contains=["docs:nope"])
    emu.define_permission("admin", scope="project")
    with pytest.raises(ValueError, match="already a project permission"):
        emu.define_permission("admin", scope="team")


async def test_team_grant_and_revoke(api: httpx.AsyncClient, emu: Emulator) -> None:
    ada = emu.create_user(email="ada@example.com")
    team = emu.create_team("Docs")
    emu.add_member(team.id, ada.id)
    emu.define_permission("docs:read")
    emu.define_permission("docs:write", contains=["docs:read"])
    path = f"/team-permissions/{team.id}/{ada.id}"
    for permission in ("docs:write", "docs:write", "$manage_api_keys"):  # twice is fine
        granted = await api.post(f"{path}/{permission}", json={}, headers=server_headers())
        assert granted.status_code == 201, granted.text
        assert granted.json() == {"id": permission, "team_id": team.id, "user_id": ada.id}
    # Only a direct grant can be revoked: a contained one is TEAM_PERMISSION_NOT_FOUND, a 401.
    refused = await api.delete(f"{path}/docs:read", headers=server_headers())
    details = known_error(refused, 401, "TEAM_PERMISSION_NOT_FOUND")["details"]
    assert details == {"team_id": team.id, "user_id": ada.id, "permission_id": "docs:read"}
    revoked = await api.delete(f"{path}/docs:write", headers=server_headers())
    assert revoked.json() == {"success": True}
    again = await api.delete(f"{path}/docs:write", headers=server_headers())
    known_error(again, 401, "TEAM_PERMISSION_NOT_FOUND")
    me = await api.delete(
        f"/team-permissions/{team.id}/me/$manage_api_keys",
        headers=server_headers(**{"x-stack-access-token": emu.sign_in(ada.id).access_token}),
    )
    assert me.json() == {"success": True}


async def test_team_grant_errors_in_stacks_order(api: httpx.AsyncClient, emu: Emulator) -> None:
    ada, bob = emu.create_user(email="ada@example.com"), emu.create_user(email="bob@example.com")
    team = emu.create_team("Docs", creator=ada.id)
    emu.define_permission("admin", scope="project")

    async def grant(user_id: str, permission: str, team_id: str = team.id) -> httpx.Response:
        path = f"/team-permissions/{team_id}/{user_id}/{permission}"
        return await api.post(path, json={}, headers=server_headers())

    known_error(await grant(UNKNOWN_UUID, "nope", UNKNOWN_UUID), 404, "USER_NOT_FOUND")
    details = known_error(await grant(bob.id, "nope"), 404, "TEAM_MEMBERSHIP_NOT_FOUND")["details"]
    assert details == {"team_id": team.id, "user_id": bob.id}
    known_error(await grant(ada.id, "nope", UNKNOWN_UUID), 404, "TEAM_MEMBERSHIP_NOT_FOUND")
    body = known_error(await grant(ada.id, "does_not_exist"), 404, "PERMISSION_NOT_FOUND")
    assert body["details"] == {"permission_id": "does_not_exist"}
    body = known_error(await grant(ada.id, "admin"), 404, "WRONG_PERMISSION_SCOPE")
    assert body["details"] == {
        "permission_id": "admin",
        "expected_scope": "team",
        "actual_scope": "project",
    }
    for bad in ("Bad", "$nope", "a b"):
        known_error(await grant(ada.id, bad), 400, "SCHEMA_ERROR")
    client = await api.post(
        f"/team-permissions/{team.id}/{ada.id}/team_admin", json={}, headers=client_headers()
    )
    known_error(client, 401, "INSUFFICIENT_ACCESS_TYPE")
    for method in ("POST", "DELETE"):
        path = f"/team-permissions/{team.id}/{UNKNOWN_UUID}/team_admin"
        response = await api.request(method, path, json={}, headers=server_headers())
        known_error(response, 404, "USER_NOT_FOUND")
