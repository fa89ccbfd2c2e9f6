"""The emulator's project permissions (contract §9.5), clients listing permissions, and
permission definitions, teams and grants from a seed or the command line."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from fastapi_stack_auth.emulator import Emulator, Seed
from fastapi_stack_auth.emulator._cli import build_parser
from tests.emulator_helpers import UNKNOWN_UUID, client_headers, known_error, seed, server_headers

pytest_plugins = ["tests.emulator_fixtures"]


async def listed(api: httpx.AsyncClient, path: str, **query: str) -> list[dict[str, Any]]:
    response = await api.get(path, params=query, headers=server_headers())
    assert response.status_code == 200, response.text
    assert response.json()["is_paginated"] is False
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_project_permissions(api: httpx.AsyncClient, emu: Emulator) -> None:
    ada, bob = emu.create_user(email="ada@example.com"), emu.create_user(email="bob@example.com")
    emu.define_permission("read", scope="project")
    emu.define_permission("admin", scope="project", contains=["read"])
    granted = await api.post(
        f"/project-permissions/{ada.id}/admin", json={}, headers=server_headers()
    )
    assert (granted.status_code, granted.json()) == (201, {"id": "admin", "user_id": ada.id})
    emu.grant_project_permission(bob.id, "read")
    assert await listed(api, "/project-permissions", user_id=ada.id) == [
        {"id": "admin", "user_id": ada.id}
    ]
    full = await listed(api, "/project-permissions", user_id=ada.id, recursive="true")
    assert [i["id"] for i in full] == ["admin", "read"]
    everyone = await listed(api, "/project-permissions", permission_id="read", recursive="true")
    assert sorted(i["user_id"] for i in everyone) == sorted([ada.id, bob.id])
    refused = await api.delete(f"/project-permissions/{ada.id}/read", headers=server_headers())
    known_error(refused, 404, "PERMISSION_NOT_FOUND")  # contained, not granted directly
    revoked = await api.delete(f"/project-permissions/{ada.id}/admin", headers=server_headers())
    assert revoked.json() == {"success": True}
    assert await listed(api, "/project-permissions", user_id=ada.id) == []


async def test_project_grant_errors(api: httpx.AsyncClient, emu: Emulator) -> None:
    ada = emu.create_user(email="ada@example.com")

    async def grant(user_id: str, permission: str) -> httpx.Response:
        return await api.post(
            f"/project-permissions/{user_id}/{permission}", json={}, headers=server_headers()
        )

    known_error(await grant(UNKNOWN_UUID, "team_admin"), 404, "USER_NOT_FOUND")
    known_error(await grant(ada.id, "nope"), 404, "PERMISSION_NOT_FOUND")
    known_error(await grant(ada.id, "$update_team"), 404, "PERMISSION_NOT_FOUND")
    details = known_error(await grant(ada.id, "team_admin"), 404, "WRONG_PERMISSION_SCOPE")[
        "details"
    ]
    assert (details["expected_scope"], details["actual_scope"]) == ("project", "team")
    known_error(await grant("nope", "team_admin"), 400, "SCHEMA_ERROR")


@pytest.mark.parametrize("path", ["/team-permissions", "/project-permissions"])
async def test_clients_list_only_their_own(
    path: str, api: httpx.AsyncClient, emu: Emulator
) -> None:
    ada, bob = emu.create_user(email="ada@example.com"), emu.create_user(email="bob@example.com")
    emu.create_team("Docs", creator=ada.id)
    as_ada = client_headers(**{"x-stack-access-token": emu.sign_in(ada.id).access_token})
    for query in ("?user_id=me", f"?user_id={ada.id}"):
        assert (await api.get(path + query, headers=as_ada)).status_code == 200
    for query in ("", f"?user_id={bob.id}"):
        refused = await api.get(path + query, headers=as_ada)
        assert refused.status_code == 403
        assert refused.text.startswith("Client can only list permissions for their own user.")
    no_user = await api.get(path + "?user_id=me", headers=client_headers())
    known_error(no_user, 400, "CANNOT_GET_OWN_USER_WITHOUT_USER")


def test_seeded_definitions_teams_grants_and_defaults() -> None:
    ada_id, team_id = "ada00000-0000-4000-8000-000000000001", "7ea00000-0000-4000-8000-000000000001"
    data = seed().model_dump()
    data["projects"][0].update(
        team_permission_definitions=[
            {"id": "docs:read"},
            {"id": "docs:all", "contained_permission_ids": ["docs:read"]},
        ],
        project_permission_definitions=[{"id": "admin"}, {"id": "beta"}],
        default_team_member_permissions=["docs:read"],
        default_project_permissions=["beta"],
        users=[{"id": ada_id, "email": "ada@example.com", "project_permissions": ["admin"]}],
        teams=[
            {
                "id": team_id,
                "display_name": "Docs",
                "members": [{"user_id": ada_id, "permissions": ["docs:all"], "selected": True}],
            }
        ],
    )
    emu = Emulator(Seed.model_validate(data))
    assert emu.team_permissions(team_id, ada_id, recursive=False) == ["docs:all", "docs:read"]
    assert emu.project_permissions(ada_id) == ["admin", "beta"]  # beta: every new user's
    assert emu.get_user(ada_id).selected_team_id == team_id  # type: ignore[union-attr]
    newcomer = emu.create_user(email="new@example.com")
    assert emu.project_permissions(newcomer.id) == ["beta"]
    emu.revoke_project_permission(ada_id, "admin")
    emu.reset()
    assert emu.project_permissions(ada_id) == ["admin", "beta"]
    data["projects"][0]["team_permission_definitions"] = [
        {"id": "a", "contained_permission_ids": ["b"]}
    ]
    with pytest.raises(ValueError, match="'b', no team permission"):
        Emulator(Seed.model_validate(data))
    data["projects"][0]["team_permission_definitions"] = []
    data["projects"][0]["default_team_creator_permissions"] = ["nope"]
    with pytest.raises(ValueError, match="nope"):
        Emulator(Seed.model_validate(data))


async def test_sign_up_grants_the_default_project_permissions() -> None:
    data = seed().model_dump()
    data["projects"][0].update(
        project_permission_definitions=[{"id": "beta"}], default_project_permissions=["beta"]
    )
    emu = Emulator(Seed.model_validate(data))
    transport = httpx.ASGITransport(app=emu.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost/api/v1") as api:
        body = {"email": "ada@example.com", "password": "correct-horse"}
        signed_up = await api.post("/auth/password/sign-up", json=body, headers=client_headers())
        user_id = signed_up.json()["user_id"]
        assert await listed(api, "/project-permissions", user_id=user_id) == [
            {"id": "beta", "user_id": user_id}
        ]


def test_command_line_definitions() -> None:
    parser = build_parser()
    args = parser.parse_args(
        [
            "--team-permission",
            "docs:read",
            "--team-permission",
            "docs:admin=docs:read,$read_members",
            "--project-permission",
            "billing",
        ]
    )
    emu = Emulator(
        Seed.model_validate(seed().model_dump()).with_definitions(
            team=args.team_permission, project=args.project_permission
        )
    )
    admin = emu.permission_definition("docs:admin")
    assert admin is not None
    assert (admin.scope, admin.contained_permission_ids) == ("team", ("$read_members", "docs:read"))
    assert emu.permission_definition("billing").scope == "project"  # type: ignore[union-attr]
    with pytest.raises(SystemExit):
        parser.parse_args(["--team-permission", "Docs:Read"])
