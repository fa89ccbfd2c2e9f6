"""Fidelity of teams, memberships, permissions, API keys and session listing: for each of their
fixtures, the emulator answers the equivalent request with the same status, headers, field names
and JSON types. Fixtures of endpoints the emulator does not implement are checked to be answered
404 rather than faked, and every fixture of the contract is accounted for (here or in
``test_emulator_fidelity.py``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from tests.emulator_helpers import (
    FIXTURE_TEAM_ID,
    FIXTURES,
    NO_PASSWORDS_PROJECT,
    UNKNOWN_UUID,
    World,
    assert_error_like,
    assert_success_like,
    fixture,
)
from tests.test_emulator_fidelity import ERRORS as USER_ERRORS
from tests.test_emulator_fidelity import SUCCESS as USER_SUCCESS
from tests.test_emulator_messaging import MESSAGING_ERRORS, MESSAGING_SUCCESS
from tests.test_emulator_messaging import NOT_YET_COPIED as MESSAGING_NOT_YET_COPIED

pytest_plugins = ["tests.emulator_fixtures"]

TEAM = FIXTURE_TEAM_ID
Probe = Callable[[World], Awaitable[httpx.Response]]

#: Fixtures of the contract (``fixtures/`` of ``stack-auth-api``) not yet copied into
#: ``tests/fixtures``: verbatim copies, used until the files are there.
NOT_YET_COPIED: dict[str, Any] = {
    "sessions-list.server.CONSTRUCTED.json": {
        "is_paginated": False,
        "items": [
            {
                "created_at": 1767229260000,
                "id": "0b1c2d3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e",
                "is_current_session": False,
                "is_impersonation": False,
                "last_used_at": 1767229260000,
                "user_id": "3f5c8e21-7a4b-4c9d-8e2f-1a6b3c4d5e6f",
            },
            {
                "created_at": 1767225600000,
                "id": "e1d2c3b4-a5f6-4e7d-8c9b-0a1b2c3d4e5f",
                "is_current_session": False,
                "is_impersonation": False,
                "last_used_at": 1767229200000,
                "last_used_at_end_user_ip_info": {
                    "cityName": "San Francisco",
                    "countryCode": "US",
                    "ip": "203.0.113.7",
                    "latitude": 37.7749,
                    "longitude": -122.4194,
                    "regionCode": "CA",
                    "tzIdentifier": "America/Los_Angeles",
                },
                "user_id": "3f5c8e21-7a4b-4c9d-8e2f-1a6b3c4d5e6f",
            },
        ],
    },
    "errors/TEAM_PERMISSION_REQUIRED.json": {
        "status": 401,
        "headers": {
            "content-type": "application/json; charset=utf-8",
            "x-stack-known-error": "TEAM_PERMISSION_REQUIRED",
        },
        "body": {
            "code": "TEAM_PERMISSION_REQUIRED",
            "details": {
                "permission_id": "$read_members",
                "team_id": "5b6c7d8e-9f0a-4b1c-8d2e-3f4a5b6c7d8e",
                "user_id": "3f5c8e21-7a4b-4c9d-8e2f-1a6b3c4d5e6f",
            },
            "error": (
                "User 3f5c8e21-7a4b-4c9d-8e2f-1a6b3c4d5e6f does not have permission "
                "$read_members in team 5b6c7d8e-9f0a-4b1c-8d2e-3f4a5b6c7d8e."
            ),
        },
    },
    "errors/CANNOT_DELETE_CURRENT_SESSION.json": {
        "status": 400,
        "headers": {
            "content-type": "application/json; charset=utf-8",
            "x-stack-known-error": "CANNOT_DELETE_CURRENT_SESSION",
        },
        "body": {
            "code": "CANNOT_DELETE_CURRENT_SESSION",
            "error": "Cannot delete the current session.",
        },
    },
    "errors/plain/SESSIONS_LIST_CLIENT_FORBIDDEN.json": {
        "status": 403,
        "headers": {"content-type": "text/plain; charset=utf-8"},
        "body": "Client can only list sessions for their own user.",
    },
}


def expected(name: str) -> Any:
    """The fixture: the file in ``tests/fixtures`` once copied there, else its copy above."""
    return fixture(name) if (FIXTURES / name).exists() else NOT_YET_COPIED[name]


# --- probes ---------------------------------------------------------------------------------


async def _add_member(w: World) -> httpx.Response:
    other = w.emulator.create_user(email="other@example.com")
    return await w.request(
        "POST", f"/team-memberships/{TEAM}/{other.id}", json={}, headers=w.headers()
    )


def _team_permissions(recursive: bool) -> Probe:
    query = f"team_id={TEAM}&user_id=me" + ("&recursive=true" if recursive else "")
    return lambda w: w.request("GET", f"/team-permissions?{query}", headers=w.signed_in())


async def _project_permissions(w: World) -> httpx.Response:
    w.emulator.define_permission("parent", scope="project")
    w.emulator.grant_project_permission(w.user.id, "parent")
    return await w.request("GET", "/project-permissions?user_id=me", headers=w.signed_in())


async def _create_user_key(w: World) -> httpx.Response:
    body = {
        "user_id": w.user.id,
        "description": "Test Expiring User API Key",
        "expires_at_millis": w.emulator.now_millis() + 3_600_000,
    }
    return await w.request("POST", "/user-api-keys", json=body, headers=w.headers())


def _check(kind: str, owner: str, *, expires_in: float | None = None, then: str = "") -> Probe:
    """Create a key of ``owner`` (``user``/``team``), maybe revoke or expire it, check it."""

    async def probe(w: World) -> httpx.Response:
        ids = {"user_id": w.user.id} if owner == "user" else {"team_id": TEAM}
        key = w.emulator.create_api_key(**ids, description="Test key", expires_in=expires_in)
        if then == "revoke":
            w.emulator.revoke_api_key(key.id)
        elif then == "expire":
            w.emulator.advance_clock(61)
        body = {"api_key": key.value}
        return await w.request("POST", f"/{kind}-api-keys/check", json=body, headers=w.headers())

    return probe


async def _wrong_scope(w: World) -> httpx.Response:
    w.emulator.define_permission("p1", scope="project")
    path = f"/team-permissions/{TEAM}/{w.user.id}/p1"
    return await w.request("POST", path, json={}, headers=w.headers())


async def _other_users_sessions(w: World) -> httpx.Response:
    other = w.emulator.create_user(email="other@example.com")
    path = f"/auth/sessions?user_id={other.id}"
    return await w.request("GET", path, headers=w.signed_in("client"))


SUCCESS: dict[str, tuple[int, Probe]] = {
    "teams-list.server.json": (
        200,
        lambda w: w.request("GET", f"/teams?user_id={w.user.id}", headers=w.headers()),
    ),
    "team.json": (200, lambda w: w.request("GET", f"/teams/{TEAM}", headers=w.headers())),
    "team.client.json": (
        200,
        lambda w: w.request("GET", f"/teams/{TEAM}", headers=w.signed_in("client")),
    ),
    "team-membership-create.json": (201, _add_member),
    "team-permissions-list.json": (200, _team_permissions(recursive=False)),
    "team-permissions-list.recursive.json": (200, _team_permissions(recursive=True)),
    "project-permissions-list.json": (200, _project_permissions),
    "api-key-create.user.json": (200, _create_user_key),
    "api-key-check.user.json": (200, _check("user", "user", expires_in=3600)),
    "api-key-check.team.CONSTRUCTED.json": (200, _check("team", "team")),
    "sessions-list.server.CONSTRUCTED.json": (
        200,
        lambda w: w.request("GET", f"/auth/sessions?user_id={w.user.id}", headers=w.headers()),
    ),
}

ERRORS: dict[str, Probe] = {
    "errors/API_KEY_EXPIRED.json": _check("user", "user", expires_in=60, then="expire"),
    "errors/API_KEY_NOT_FOUND.json": lambda w: w.request(
        "POST", "/user-api-keys/check", json={"api_key": "not-a-key"}, headers=w.headers()
    ),
    "errors/API_KEY_REVOKED.json": _check("user", "user", then="revoke"),
    "errors/WRONG_API_KEY_TYPE.json": _check("user", "team"),
    "errors/PERMISSION_NOT_FOUND.json": lambda w: w.request(
        "POST", f"/team-permissions/{TEAM}/{w.user.id}/does_not_exist", json={}, headers=w.headers()
    ),
    "errors/WRONG_PERMISSION_SCOPE.json": _wrong_scope,
    "errors/TEAM_MEMBERSHIP_ALREADY_EXISTS.json": lambda w: w.request(
        "POST", f"/team-memberships/{TEAM}/{w.user.id}", json={}, headers=w.headers()
    ),
    "errors/USER_AUTHENTICATION_REQUIRED.json": lambda w: w.request(
        "POST", "/teams", json={"display_name": "New Team"}, headers=w.headers("client")
    ),
    "errors/TEAM_PERMISSION_REQUIRED.json": lambda w: w.request(
        "PATCH", f"/teams/{TEAM}", json={"display_name": "x"}, headers=w.signed_in("client")
    ),
    "errors/CANNOT_DELETE_CURRENT_SESSION.json": lambda w: w.request(
        "DELETE",
        f"/auth/sessions/{w.tokens.refresh_token_id}?user_id=me",
        headers=w.signed_in("client"),
    ),
    "errors/plain/TEAMS_LIST_CLIENT_FORBIDDEN.json": lambda w: w.request(
        "GET", "/teams", headers=w.signed_in("client")
    ),
    "errors/plain/SESSIONS_LIST_CLIENT_FORBIDDEN.json": _other_users_sessions,
    "errors/plain/USER_API_KEYS_DISABLED.json": lambda w: w.request(
        "POST",
        "/user-api-keys",
        json={"user_id": UNKNOWN_UUID, "description": "x", "expires_at_millis": None},
        headers=w.headers(**{"x-stack-project-id": NO_PASSWORDS_PROJECT}),
    ),
    "errors-constructed/TEAM_NOT_FOUND.json": lambda w: w.request(
        "GET", f"/teams/{UNKNOWN_UUID}", headers=w.headers()
    ),
    "errors-constructed/TEAM_PERMISSION_NOT_FOUND.json": lambda w: w.request(
        "DELETE", f"/team-permissions/{TEAM}/{w.user.id}/team_admin", headers=w.headers()
    ),
}

#: Fixtures of endpoints the emulator does not implement (member profiles) or of behaviour it
#: does not emulate (the dev-only rate limiter), with a request that must therefore be answered
#: 404, not faked. ``None``: there is no endpoint to probe. Invitations, connected accounts and
#: e-mail are emulated: tests/test_emulator_messaging.py checks their fixtures.
NOT_IMPLEMENTED: dict[str, tuple[str, str] | None] = {
    "team-member-profiles-list.client.json": ("GET", "/team-member-profiles"),
    "errors/plain/TEAM_MEMBER_PROFILES_TEAM_ID_REQUIRED.json": ("GET", "/team-member-profiles"),
    "errors-constructed/RATE_LIMIT_DEV_ONLY_429.json": None,
}


@pytest.mark.parametrize("name", sorted(SUCCESS))
async def test_success_bodies(world: World, name: str) -> None:
    status, probe = SUCCESS[name]
    assert_success_like(await probe(world), status, expected(name))


@pytest.mark.parametrize("name", sorted(ERRORS))
async def test_error_bodies(world: World, name: str) -> None:
    response = await ERRORS[name](world)
    assert_error_like(response, expected(name))
    if isinstance(expected(name)["body"], str):  # Stack's plain-text errors, word for word
        assert response.text == expected(name)["body"]


@pytest.mark.parametrize("name", sorted(NOT_IMPLEMENTED))
async def test_not_implemented_endpoints_are_not_faked(world: World, name: str) -> None:
    probe = NOT_IMPLEMENTED[name]
    if probe is None:  # the dev-only rate limiter: never a 429, however many requests
        for _ in range(120):
            response = await world.request("GET", "/projects/current", headers=world.headers())
            assert response.status_code == 200
        return
    method, path = probe
    response = await world.request(method, path, headers=world.headers(), json={})
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/plain")


def test_every_fixture_is_accounted_for() -> None:
    names = {
        str(path.relative_to(FIXTURES))
        for path in FIXTURES.rglob("*.json")
        if not {"tokens", "webhooks"} & set(path.parts)
    }
    covered = set(USER_SUCCESS) | set(USER_ERRORS)
    covered |= set(SUCCESS) | set(ERRORS) | set(NOT_IMPLEMENTED)
    covered |= set(MESSAGING_SUCCESS) | set(MESSAGING_ERRORS)
    assert names - covered == set(), "fixtures with no fidelity check"
    not_copied = set(NOT_YET_COPIED) | set(MESSAGING_NOT_YET_COPIED)
    not_copied |= {n for n in NOT_IMPLEMENTED if not (FIXTURES / n).exists()}
    assert covered - names <= not_copied, "checks of fixtures that do not exist"
    assert set(NOT_YET_COPIED) <= set(SUCCESS) | set(ERRORS)
