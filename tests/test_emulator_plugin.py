"""The pytest plugin's authorization helpers and fixtures (``stack_team``, ``stack_api_key``,
``create_team``, ``grant_*_permission``, ``create_api_key``, ``advance_clock``), run the way an
app's test suite runs them: in a pytest of their own (pytester), over loopback HTTP."""

from __future__ import annotations

import os

import pytest

pytest_plugins = ["pytester"]

TESTS = """
import httpx

pytest_plugins = ["fastapi_stack_auth.testing"]


def get(stack, path, **params):
    response = httpx.get(f"{stack.url}/api/v1{path}", params=params, headers=stack.server_headers())
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


def check(stack, kind, key):
    return httpx.post(
        f"{stack.url}/api/v1/{kind}-api-keys/check",
        json={"api_key": key},
        headers=stack.server_headers(),
    )


def test_stack_team_is_owned_by_stack_user(stack_emulator, stack_user, stack_team):
    perms = get(stack_emulator, "/team-permissions", team_id=stack_team.id, user_id=stack_user.id)
    assert perms == ["team_admin"]
    assert get(stack_emulator, "/teams", user_id=stack_user.id) == [stack_team.id]


def test_grant_and_revoke_team_permissions(stack_emulator, stack_user, stack_team):
    other = stack_emulator.create_user()
    team = stack_emulator.create_team(owner=other, display_name="Other")
    stack_emulator.grant_team_permission(stack_user, team, "docs:delete")  # joins the team too
    query = dict(team_id=team.id, user_id=stack_user.id, recursive="true")
    assert "docs:delete" in get(stack_emulator, "/team-permissions", **query)
    assert "team_member" in get(stack_emulator, "/team-permissions", **query)
    stack_emulator.revoke_team_permission(stack_user, team, "docs:delete")
    assert "docs:delete" not in get(stack_emulator, "/team-permissions", **query)
    stack_emulator.grant_team_permission(stack_user, stack_team, "$manage_api_keys")
    stack_emulator.add_member(stack_team, other)
    assert set(get(stack_emulator, "/users", team_id=stack_team.id)) == {stack_user.id, other.id}


def test_grant_project_permission(stack_emulator, stack_user):
    stack_emulator.grant_project_permission(stack_user, "admin")
    assert get(stack_emulator, "/project-permissions", user_id=stack_user.id) == ["admin"]
    stack_emulator.revoke_project_permission(stack_user, "admin")
    assert get(stack_emulator, "/project-permissions", user_id=stack_user.id) == []


def test_stack_api_key(stack_emulator, stack_user, stack_api_key):
    response = check(stack_emulator, "user", stack_api_key)
    assert response.status_code == 200
    assert response.json()["user_id"] == stack_user.id
    stack_emulator.revoke_api_key(stack_api_key)
    assert check(stack_emulator, "user", stack_api_key).json()["code"] == "API_KEY_REVOKED"


def test_team_key_and_expiry(stack_emulator, stack_team):
    key = stack_emulator.create_api_key(stack_team, expires_in=60)
    assert check(stack_emulator, "team", key).json()["team_id"] == stack_team.id
    stack_emulator.advance_clock(61)
    assert check(stack_emulator, "team", key).json()["code"] == "API_KEY_EXPIRED"


def test_each_test_starts_from_the_seed(stack_emulator):
    assert get(stack_emulator, "/teams") == []
    assert abs(stack_emulator.emulator.now() - __import__("time").time()) < 60
"""


def test_the_plugins_authorization_helpers(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [n for n in os.environ if n.startswith("STACK_")]:
        monkeypatch.delenv(name)
    pytester.makepyfile(test_authorization=TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=6)
