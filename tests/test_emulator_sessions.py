"""Listing and revoking sessions (contract §7.4, §7.5), and the Python API of teams, permissions,
API keys and sessions that tests use instead of HTTP."""

from __future__ import annotations

import httpx
import pytest

from fastapi_stack_auth.emulator import Emulator, KnownError, Seed, default_seed
from tests.emulator_helpers import (
    ADMIN,
    UNKNOWN_UUID,
    Clock,
    client_headers,
    known_error,
    server_headers,
)

pytest_plugins = ["tests.emulator_fixtures"]


async def test_list_sessions(api: httpx.AsyncClient, emu: Emulator, clock: Clock) -> None:
    ada = emu.create_user(email="ada@example.com")
    first = emu.sign_in(ada.id)
    clock.now += 1
    second = emu.sign_in(ada.id)
    impersonation = await api.post(
        "/auth/sessions",
        json={"user_id": ada.id, "is_impersonation": True},
        headers=server_headers(),
    )
    assert impersonation.status_code == 200
    listed = await api.get(f"/auth/sessions?user_id={ada.id}", headers=server_headers())
    items = listed.json()["items"]
    assert [s["id"] for s in items] == [second.refresh_token_id, first.refresh_token_id]
    assert not any(s["is_current_session"] for s in items)  # no token sent
    assert set(items[0]) == {
        "id",
        "user_id",
        "created_at",
        "last_used_at",
        "is_impersonation",
        "is_current_session",
    }
    as_admin = {**server_headers(), "x-stack-access-type": "admin"}
    as_admin["x-stack-super-secret-admin-key"] = ADMIN
    every = await api.get(f"/auth/sessions?user_id={ada.id}", headers=as_admin)
    assert [s["is_impersonation"] for s in every.json()["items"]] == [True, False, False]
    mine = client_headers(**{"x-stack-access-token": first.access_token})
    own = await api.get("/auth/sessions?user_id=me", headers=mine)
    assert [s["is_current_session"] for s in own.json()["items"]] == [False, True]
    bob = emu.create_user(email="bob@example.com")
    refused = await api.get(f"/auth/sessions?user_id={bob.id}", headers=mine)
    assert (refused.status_code, refused.text) == (
        403,
        "Client can only list sessions for their own user.",
    )
    nobody = await api.get(f"/auth/sessions?user_id={UNKNOWN_UUID}", headers=server_headers())
    assert nobody.json() == {"items": [], "is_paginated": False}
    known_error(await api.get("/auth/sessions", headers=server_headers()), 400, "SCHEMA_ERROR")


async def test_revoke_sessions(api: httpx.AsyncClient, emu: Emulator) -> None:
    ada, bob = emu.create_user(email="ada@example.com"), emu.create_user(email="bob@example.com")
    one, two, bobs = emu.sign_in(ada.id), emu.sign_in(ada.id), emu.sign_in(bob.id)
    # A server deletes anyone's session; user_id is required but not used.
    path = f"/auth/sessions/{one.refresh_token_id}?user_id={bob.id}"
    deleted = await api.delete(path, headers=server_headers())
    assert deleted.json() == {"success": True}
    refresh = await api.post(
        "/auth/sessions/current/refresh",
        headers=client_headers(**{"x-stack-refresh-token": one.refresh_token}),
    )
    known_error(refresh, 401, "REFRESH_TOKEN_NOT_FOUND_OR_EXPIRED")
    as_ada = client_headers(**{"x-stack-access-token": two.access_token})
    current = await api.delete(f"/auth/sessions/{two.refresh_token_id}?user_id=me", headers=as_ada)
    known_error(current, 400, "CANNOT_DELETE_CURRENT_SESSION")
    for session_id in (bobs.refresh_token_id, UNKNOWN_UUID):  # not hers, or none: 404 text
        response = await api.delete(f"/auth/sessions/{session_id}?user_id=me", headers=as_ada)
        assert (response.status_code, response.text) == (404, "Session not found.")
    no_query = await api.delete(f"/auth/sessions/{two.refresh_token_id}", headers=server_headers())
    known_error(no_query, 400, "SCHEMA_ERROR")
    assert [s.id for s in emu.sessions_of(ada.id)] == [two.refresh_token_id]
    assert emu.revoke_session(two.refresh_token_id) is True
    assert emu.revoke_session(two.refresh_token_id) is False


def test_python_api_teams_and_permissions(emu: Emulator) -> None:
    ada, bob = emu.create_user(email="ada@example.com"), emu.create_user(email="bob@example.com")
    team = emu.create_team("Docs", creator=ada.id, client_metadata={"a": 1})
    assert emu.get_team(team.id) is team
    assert team.client_metadata == {"a": 1}
    assert emu.team_permissions(team.id, ada.id, recursive=False) == ["team_admin"]
    emu.add_member(team.id, bob.id)
    with pytest.raises(KnownError, match="TEAM_MEMBERSHIP_ALREADY_EXISTS"):
        emu.add_member(team.id, bob.id)
    emu.define_permission("docs:read")
    emu.grant_team_permission(team.id, bob.id, "docs:read")
    assert "docs:read" in emu.team_permissions(team.id, bob.id)
    assert emu.revoke_team_permission(team.id, bob.id, "docs:read") is True
    assert emu.revoke_team_permission(team.id, bob.id, "docs:read") is False
    outsider = emu.create_user(email="eve@example.com")
    with pytest.raises(KnownError, match="TEAM_MEMBERSHIP_NOT_FOUND"):
        emu.grant_team_permission(team.id, outsider.id, "docs:read")
    with pytest.raises(KnownError, match="PERMISSION_NOT_FOUND"):
        emu.grant_project_permission(ada.id, "nope")
    with pytest.raises(KnownError, match="USER_NOT_FOUND"):
        emu.create_team("X", creator=UNKNOWN_UUID)
    assert emu.remove_member(team.id, bob.id) is True
    assert emu.team_permissions(team.id, bob.id) == []
    assert emu.delete_team(team.id) is True
    assert emu.delete_team(team.id) is False
    with pytest.raises(ValueError, match="exactly one"):
        emu.create_api_key(user_id=ada.id, team_id=UNKNOWN_UUID)
    with pytest.raises(KeyError):
        emu.revoke_api_key("no-such-key")


def test_reset_restores_teams_permissions_and_the_clock(emu: Emulator, clock: Clock) -> None:
    ada = emu.create_user(email="ada@example.com")
    emu.create_team("Docs", creator=ada.id)
    emu.advance_clock(3600)
    assert emu.now() == clock.now + 3600
    emu.reset()
    assert emu.project.teams == {}
    assert emu.project.permissions.team_grants == set()
    assert emu.now() == clock.now


def test_the_default_project_is_ready_for_the_example_app() -> None:
    emu = Emulator(default_seed())
    seeded = default_seed().projects[0]
    demo = next(u for u in emu.project.users.values() if u.primary_email == seeded.users[0].email)
    (team,) = emu.project.teams_of(demo.id)
    assert demo.selected_team_id == team.id
    assert "docs:delete" in emu.team_permissions(team.id, demo.id)
    assert "docs:read" in emu.team_permissions(team.id, demo.id)  # contained in docs:delete
    assert "$delete_team" in emu.team_permissions(team.id, demo.id)  # the creator's team_admin
    assert emu.project_permissions(demo.id) == ["admin"]
    assert emu.project.config.allow_user_api_keys
    assert emu.project.config.allow_team_api_keys
    assert isinstance(Seed.model_validate(default_seed().model_dump()), Seed)  # JSON-able
