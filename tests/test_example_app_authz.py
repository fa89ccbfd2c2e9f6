"""The example app's authorization routes, served by uvicorn on 127.0.0.1 against the emulator
over loopback: a team permission, a project permission and an API key, as `make run` shows."""

from __future__ import annotations

import httpx

from fastapi_stack_auth.testing import EmulatedStack
from tests.servers import uvicorn_process

pytest_plugins = ["fastapi_stack_auth.testing"]


def test_example_apps_authorization_routes(stack_emulator: EmulatedStack) -> None:
    config = stack_emulator.emulator.project.config
    config.allow_user_api_keys = config.allow_team_api_keys = True
    owner = stack_emulator.create_user(display_name="Owner")
    member = stack_emulator.create_user(display_name="Member")
    team = stack_emulator.create_team(owner)
    stack_emulator.add_member(team, member)
    stack_emulator.grant_team_permission(owner, team, "docs:delete")
    stack_emulator.grant_project_permission(owner, "admin")
    user_key = stack_emulator.create_api_key(owner)
    team_key = stack_emulator.create_api_key(team.id)

    with (
        uvicorn_process("example_app.main:app", stack_emulator.env()) as server,
        httpx.Client(base_url=server.url, timeout=20) as client,
    ):
        doc = f"/teams/{team.id}/docs/readme"
        assert client.delete(doc, headers=owner.headers).json() == {
            "deleted": "readme",
            "team_id": team.id,
        }
        refused = client.delete(doc, headers=member.headers)  # a member without the permission
        assert (refused.status_code, refused.json()["code"]) == (403, "PERMISSION_REQUIRED")
        assert "docs:delete" in refused.json()["detail"]

        assert client.get("/admin/stats", headers=owner.headers).status_code == 200
        no_admin = client.get("/admin/stats", headers=member.headers)
        assert no_admin.status_code == 403
        assert client.get("/admin/stats").status_code == 401

        by_token = client.post("/ingest", headers=owner.headers).json()
        assert by_token == {"kind": "user", "user_id": owner.id, "team_id": None, "api_key": False}
        by_user_key = client.post("/ingest", headers={"x-stack-api-key": user_key}).json()
        assert by_user_key == {
            "kind": "user",
            "user_id": owner.id,
            "team_id": None,
            "api_key": True,
        }
        by_team_key = client.post("/ingest", headers={"Authorization": f"Bearer {team_key}"})
        assert by_team_key.json() == {
            "kind": "team",
            "user_id": None,
            "team_id": team.id,
            "api_key": True,
        }
        tampered = user_key[:-1] + ("1" if user_key[-1] == "0" else "0")  # its checksum breaks
        bad_key = client.post("/ingest", headers={"x-stack-api-key": tampered})
        assert bad_key.status_code == 401
    output = server.output.decode()
    for secret in (user_key, team_key, owner.access_token, stack_emulator.secret_server_key):
        assert secret not in output
