"""Fidelity: for every response body and error in the contract's fixtures, the emulator answers
the equivalent request with the same status, headers, field names and JSON types (values may
differ). Fixtures of endpoints the emulator does not implement are listed, and checked to be
answered 404 rather than faked."""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from fastapi_stack_auth.emulator import Emulator, Seed
from fastapi_stack_auth.emulator._store import Team
from tests.emulator_helpers import jwt_parts

FIXTURES = Path(__file__).parent / "fixtures" / "stack-auth-api"
URL = "http://localhost:8102"
PID = "6f0c2a9e-4b7d-4e1a-9c3f-2d8b5e7a1f40"
NO_PASSWORDS = "0c0c0c0c-0000-4000-8000-000000000001"
LOCKED = "0c0c0c0c-0000-4000-8000-000000000002"
PCK, SSK = "pck_fidelity", "ssk_fidelity"
UNKNOWN_UUID = "9d2e4f6a-1b3c-4d5e-8f7a-6b5c4d3e2f1a"
TEAM_ID = "c4e7a9b1-2d3f-4a5b-9c6d-7e8f9a0b1c2d"
PASSWORD = "default-password"

#: Fixtures of endpoints the emulator does not implement (teams, memberships, permissions, API
#: keys) or of behaviour it does not emulate (the dev-only rate limiter), with a request that
#: must therefore be answered 404, not faked. ``None``: there is no endpoint to probe.
NOT_IMPLEMENTED: dict[str, tuple[str, str] | None] = {
    "api-key-check.team.CONSTRUCTED.json": ("POST", "/team-api-keys/check"),
    "api-key-check.user.json": ("POST", "/user-api-keys/check"),
    "api-key-create.user.json": ("POST", "/user-api-keys"),
    "project-permissions-list.json": ("GET", "/project-permissions"),
    "team-membership-create.json": ("POST", f"/team-memberships/{UNKNOWN_UUID}/{UNKNOWN_UUID}"),
    "team-permissions-list.json": ("GET", "/team-permissions"),
    "team-permissions-list.recursive.json": ("GET", "/team-permissions"),
    "team.client.json": ("GET", f"/teams/{UNKNOWN_UUID}"),
    "team.json": ("GET", f"/teams/{UNKNOWN_UUID}"),
    "teams-list.server.json": ("GET", "/teams"),
    "errors/API_KEY_EXPIRED.json": ("POST", "/user-api-keys/check"),
    "errors/API_KEY_NOT_FOUND.json": ("POST", "/user-api-keys/check"),
    "errors/API_KEY_REVOKED.json": ("POST", "/user-api-keys/check"),
    "errors/WRONG_API_KEY_TYPE.json": ("POST", "/team-api-keys/check"),
    "errors/PERMISSION_NOT_FOUND.json": ("POST", f"/team-permissions/{UNKNOWN_UUID}/x/y"),
    "errors/WRONG_PERMISSION_SCOPE.json": ("POST", f"/team-permissions/{UNKNOWN_UUID}/x/y"),
    "errors/TEAM_MEMBERSHIP_ALREADY_EXISTS.json": ("POST", "/team-memberships/a/b"),
    "errors/USER_AUTHENTICATION_REQUIRED.json": ("POST", "/teams"),
    "errors/plain/TEAMS_LIST_CLIENT_FORBIDDEN.json": ("GET", "/teams"),
    "errors/plain/USER_API_KEYS_DISABLED.json": ("POST", "/user-api-keys"),
    "errors-constructed/TEAM_NOT_FOUND.json": ("GET", f"/teams/{UNKNOWN_UUID}"),
    "errors-constructed/TEAM_PERMISSION_NOT_FOUND.json": ("DELETE", "/team-permissions/a/b/c"),
    "errors-constructed/RATE_LIMIT_DEV_ONLY_429.json": None,
}


def shape(value: Any) -> Any:
    """Field names and JSON types, recursively (the first item stands for a list)."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return "string"


def assert_same_shape(actual: Any, expected: Any, where: str = "body") -> None:
    a, e = shape(actual), shape(expected)
    if isinstance(e, dict):
        assert isinstance(a, dict), f"{where}: {a} is not an object"
        assert sorted(a) == sorted(e), f"{where}: fields {sorted(a)} != {sorted(e)}"
        for key in e:
            assert_same_shape(actual[key], expected[key], f"{where}.{key}")
    elif isinstance(e, list):
        assert isinstance(a, list), f"{where}: {a} is not an array"
        if a and e:
            assert_same_shape(actual[0], expected[0], f"{where}[0]")
        assert bool(a) == bool(e), f"{where}: one array is empty, the other is not"
    else:
        assert a == e, f"{where}: {a} != {e}"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


# --- the emulator under test -------------------------------------------------------------------


class World:
    """An emulator laid out like the fixtures' world: users, a personal team, three projects."""

    def __init__(self, client: httpx.AsyncClient, emulator: Emulator) -> None:
        self.http = client
        self.emulator = emulator
        project = emulator.project
        team = project.add_team(
            Team(id=TEAM_ID, display_name="Personal", created_at_millis=emulator.now_millis())
        )
        self.user = emulator.create_user(
            email="default@example.com", password=PASSWORD, otp_auth_enabled=True
        )
        project.add_member(team.id, self.user.id)
        self.user.selected_team_id = team.id
        self.tokens = emulator.sign_in(self.user.id)

    def headers(self, access: str = "server", **extra: str) -> dict[str, str]:
        headers = {"x-stack-access-type": access, "x-stack-project-id": PID}
        headers[
            "x-stack-publishable-client-key" if access == "client" else "x-stack-secret-server-key"
        ] = PCK if access == "client" else SSK
        headers.update(extra)
        return headers

    def signed_in(self, access: str = "server", **extra: str) -> dict[str, str]:
        return self.headers(access, **{"x-stack-access-token": self.tokens.access_token, **extra})

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return await self.http.request(method, f"/api/v1{path}", **kwargs)


@pytest.fixture
async def world() -> AsyncIterator[World]:
    config = {"enabled_oauth_providers": ["github"]}
    seed = Seed.model_validate(
        {
            "projects": [
                {
                    "id": PID,
                    "publishable_client_keys": [PCK],
                    "secret_server_keys": [SSK],
                    "config": config,
                },
                {
                    "id": NO_PASSWORDS,
                    "secret_server_keys": [SSK],
                    "config": {"credential_enabled": False},
                },
                {
                    "id": LOCKED,
                    "publishable_client_keys": [PCK],
                    "secret_server_keys": [SSK],
                    "config": {"sign_up_enabled": False, "require_publishable_client_key": True},
                },
            ],
        }
    )
    emulator = Emulator(seed, public_url=URL)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=emulator.app), base_url=URL
    ) as client:
        yield World(client, emulator)


Probe = Callable[[World], Awaitable[httpx.Response]]


async def _list_anonymous(w: World) -> httpx.Response:
    anonymous = w.emulator.create_user(anonymous=True, display_name="Unique Anonymous Name")
    assert anonymous.is_anonymous
    return await w.request(
        "GET",
        "/users",
        params={"query": "Unique", "include_anonymous": "true"},
        headers=w.headers(),
    )


async def _list_users(w: World) -> httpx.Response:
    w.user.selected_team_id = None  # the fixture's listed user has no selected team
    return await w.request("GET", "/users", headers=w.headers())


async def _delete(w: World) -> httpx.Response:
    other = w.emulator.create_user(email="other@example.com")
    return await w.request("DELETE", f"/users/{other.id}", headers=w.headers())


def _sign_up_body() -> dict[str, str]:
    return {"email": f"new-{secrets.token_hex(4)}@example.com", "password": "long-enough"}


SUCCESS: dict[str, tuple[int, Probe]] = {
    "users-me.client.json": (
        200,
        lambda w: w.request("GET", "/users/me", headers=w.signed_in("client")),
    ),
    "users-me.server.json": (200, lambda w: w.request("GET", "/users/me", headers=w.signed_in())),
    "user.server.json": (
        200,
        lambda w: w.request("GET", f"/users/{w.user.id}", headers=w.headers()),
    ),
    "users-list.server.json": (200, _list_users),
    "users-list.include-anonymous.server.json": (200, _list_anonymous),
    "user-create.server.json": (
        201,
        lambda w: w.request("POST", "/users", json={}, headers=w.headers()),
    ),
    "projects-current.json": (
        200,
        lambda w: w.request("GET", "/projects/current", headers=w.headers()),
    ),
    "delete-success.json": (200, _delete),
    "auth-password-sign-up.json": (
        200,
        lambda w: w.request(
            "POST", "/auth/password/sign-up", json=_sign_up_body(), headers=w.headers("client")
        ),
    ),
    "auth-password-sign-in.json": (
        200,
        lambda w: w.request(
            "POST",
            "/auth/password/sign-in",
            json={"email": "default@example.com", "password": PASSWORD},
            headers=w.headers("client"),
        ),
    ),
    "auth-anonymous-sign-up.json": (
        200,
        lambda w: w.request("POST", "/auth/anonymous/sign-up", headers=w.headers("client")),
    ),
    "auth-sessions-create.json": (
        200,
        lambda w: w.request(
            "POST", "/auth/sessions", json={"user_id": w.user.id}, headers=w.headers()
        ),
    ),
    "auth-sessions-current-refresh.json": (
        200,
        lambda w: w.request(
            "POST",
            "/auth/sessions/current/refresh",
            headers=w.headers("client", **{"x-stack-refresh-token": w.tokens.refresh_token}),
        ),
    ),
    "auth-oauth-token-refresh.UNCONFIRMED.json": (
        200,
        lambda w: w.request(
            "POST",
            "/auth/oauth/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": w.tokens.refresh_token,
                "client_id": PID,
                "client_secret": PCK,
            },
        ),
    ),
    "jwks.json": (200, lambda w: w.request("GET", f"/projects/{PID}/.well-known/jwks.json")),
    "jwks.include_restricted.json": (
        200,
        lambda w: w.request(
            "GET", f"/projects/{PID}/.well-known/jwks.json?include_restricted=true"
        ),
    ),
    "jwks.include_anonymous.json": (
        200,
        lambda w: w.request("GET", f"/projects/{PID}/.well-known/jwks.json?include_anonymous=true"),
    ),
}


@pytest.mark.parametrize("name", sorted(SUCCESS))
async def test_success_bodies(world: World, name: str) -> None:
    status, probe = SUCCESS[name]
    response = await probe(world)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    expected = fixture(name)
    assert_same_shape(response.json(), expected)
    if name.startswith("jwks"):
        assert len(response.json()["keys"]) == len(expected["keys"])
        assert response.headers["cache-control"] == "public, max-age=3600"


@pytest.mark.parametrize("kind", ["normal", "restricted", "anonymous"])
async def test_access_token_header_and_claims(world: World, kind: str) -> None:
    emulator = world.emulator
    if kind == "normal":
        user = emulator.create_user(email="n@example.com")
    elif kind == "restricted":
        user = emulator.create_user(
            email="r@example.com", display_name="Jane", restricted_by_admin=True
        )
    else:
        user = emulator.create_user(anonymous=True)
    header, claims = jwt_parts(emulator.sign_in(user.id).access_token)
    expected = fixture(f"tokens/access-token.{kind}.json")
    if kind == "normal":  # the fixture's normal user has a selected team
        claims["selected_team_id"] = TEAM_ID
    assert_same_shape(header, expected["header"], "header")
    assert_same_shape(claims, expected["payload"], "payload")
    assert list(claims) == list(expected["payload"])  # even the claim order


# --- errors ------------------------------------------------------------------------------------


async def _restricted(w: World) -> httpx.Response:
    w.emulator.project.config.require_email_verification = True
    user = w.emulator.create_user(email="jane@example.com", email_verified=False)
    token = w.emulator.sign_in(user.id).access_token
    return await w.request("GET", "/users/me", headers=w.headers(**{"x-stack-access-token": token}))


async def _anonymous(w: World) -> httpx.Response:
    token = w.emulator.sign_in(w.emulator.create_user(anonymous=True).id).access_token
    return await w.request("GET", "/users/me", headers=w.headers(**{"x-stack-access-token": token}))


async def _expired(w: World) -> httpx.Response:
    token = w.emulator.sign_in(w.user.id, issued_at=w.emulator.now() - 3600).access_token
    return await w.request("GET", "/users/me", headers=w.headers(**{"x-stack-access-token": token}))


async def _other_project_token(w: World) -> httpx.Response:
    user = w.emulator.create_user(email="x@example.com", project_id=NO_PASSWORDS)
    token = w.emulator.sign_in(user.id, project_id=NO_PASSWORDS).access_token
    return await w.request("GET", "/users/me", headers=w.headers(**{"x-stack-access-token": token}))


async def _deleted_refresh(w: World) -> httpx.Response:
    w.emulator.delete_user(w.user.id)
    return await w.request(
        "POST",
        "/auth/sessions/current/refresh",
        headers=w.headers("client", **{"x-stack-refresh-token": w.tokens.refresh_token}),
    )


async def _email_taken(w: World) -> httpx.Response:
    body = {"email": "default@example.com", "password": "long-enough"}
    return await w.request("POST", "/auth/password/sign-up", json=body, headers=w.headers("client"))


def _project_headers(project: str, access: str = "client", **extra: str) -> dict[str, str]:
    return {"x-stack-access-type": access, "x-stack-project-id": project, **extra}


ERRORS: dict[str, Probe] = {
    "errors/ACCESS_TYPE_REQUIRED.json": lambda w: w.request("GET", "/users/me"),
    "errors/ACCESS_TYPE_WITHOUT_PROJECT_ID.json": lambda w: w.request(
        "GET", "/users/me", headers={"x-stack-access-type": "client"}
    ),
    "errors/ANONYMOUS_AUTHENTICATION_NOT_ALLOWED.json": _anonymous,
    "errors/BRANCH_DOES_NOT_EXIST.json": lambda w: w.request(
        "GET", "/users/me", headers=w.headers(**{"x-stack-branch-id": "invalid-branch"})
    ),
    "errors/CANNOT_GET_OWN_USER_WITHOUT_USER.json": lambda w: w.request(
        "GET", "/users/me", headers=w.headers()
    ),
    "errors/CURRENT_PROJECT_NOT_FOUND.json": lambda w: w.request(
        "GET", "/users/me", headers=w.headers(**{"x-stack-project-id": "invalid"})
    ),
    "errors/EMAIL_PASSWORD_MISMATCH.json": lambda w: w.request(
        "POST",
        "/auth/password/sign-in",
        json={"email": "default@example.com", "password": "wrong"},
        headers=w.headers("client"),
    ),
    "errors/INSUFFICIENT_ACCESS_TYPE.json": lambda w: w.request(
        "GET", "/users", headers=w.headers("client")
    ),
    "errors/INVALID_OAUTH_CLIENT_ID_OR_SECRET.json": lambda w: w.request(
        "POST",
        "/auth/oauth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": "x",
            "client_id": "internal#does-not-exist",
            "client_secret": "x",
        },
    ),
    "errors/INVALID_PUBLISHABLE_CLIENT_KEY.json": lambda w: w.request(
        "GET",
        "/projects/current",
        headers=w.headers("client", **{"x-stack-publishable-client-key": "wrong"}),
    ),
    "errors/PASSWORD_AUTHENTICATION_NOT_ENABLED.json": lambda w: w.request(
        "POST",
        "/auth/password/sign-up",
        json=_sign_up_body(),
        headers=_project_headers(NO_PASSWORDS),
    ),
    "errors/PUBLISHABLE_CLIENT_KEY_REQUIRED_FOR_PROJECT.json": lambda w: w.request(
        "GET", "/projects/current", headers=_project_headers(LOCKED)
    ),
    "errors/REFRESH_TOKEN_NOT_FOUND_OR_EXPIRED.json": _deleted_refresh,
    "errors/SCHEMA_ERROR.json": lambda w: w.request(
        "GET", "/users?extra=param", headers=w.headers()
    ),
    "errors/SERVER_AUTHENTICATION_REQUIRED.json": lambda w: w.request(
        "GET", "/users", headers=w.headers(**{"x-stack-secret-server-key": ""})
    ),
    "errors/SIGN_UP_NOT_ENABLED.json": lambda w: w.request(
        "POST",
        "/auth/password/sign-up",
        json=_sign_up_body(),
        headers=_project_headers(LOCKED, **{"x-stack-publishable-client-key": PCK}),
    ),
    "errors/TEAM_MEMBERSHIP_NOT_FOUND.json": lambda w: w.request(
        "PATCH", f"/users/{w.user.id}", json={"selected_team_id": UNKNOWN_UUID}, headers=w.headers()
    ),
    "errors/UNPARSABLE_ACCESS_TOKEN.json": lambda w: w.request(
        "GET", "/users/me", headers=w.headers(**{"x-stack-access-token": "not-a-token"})
    ),
    "errors/USER_EMAIL_ALREADY_EXISTS.json": _email_taken,
    "errors/USER_NOT_FOUND.json": lambda w: w.request(
        "GET", f"/users/{UNKNOWN_UUID}", headers=w.headers()
    ),
    "errors/plain/CLIENT_USER_DELETION_DISABLED.json": lambda w: w.request(
        "DELETE", "/users/me", headers=w.signed_in("client")
    ),
    "errors/plain/ONLY_ANONYMOUS_REQUIRES_INCLUDE_ANONYMOUS.json": lambda w: w.request(
        "GET", "/users?only_anonymous=true", headers=w.headers()
    ),
    "errors-constructed/ACCESS_TOKEN_EXPIRED.json": _expired,
    "errors-constructed/INVALID_ACCESS_TYPE.json": lambda w: w.request(
        "GET", "/users/me", headers={"x-stack-access-type": "public"}
    ),
    "errors-constructed/INVALID_PROJECT_FOR_ACCESS_TOKEN.json": _other_project_token,
    "errors-constructed/INVALID_SECRET_SERVER_KEY.json": lambda w: w.request(
        "GET", "/users", headers=w.headers(**{"x-stack-secret-server-key": "wrong"})
    ),
    "errors-constructed/OVERRIDE_ERROR_STATUS.UNPARSABLE_ACCESS_TOKEN.json": lambda w: w.request(
        "GET",
        "/users/me",
        headers=w.headers(
            **{"x-stack-access-token": "bad", "x-stack-override-error-status": "true"}
        ),
    ),
    "errors-constructed/PROJECT_KEY_WITHOUT_ACCESS_TYPE.json": lambda w: w.request(
        "GET", "/users/me", headers={"x-stack-secret-server-key": SSK}
    ),
    "errors-constructed/RESTRICTED_USER_NOT_ALLOWED.json": _restricted,
    "errors-constructed/USER_ID_DOES_NOT_EXIST.json": lambda w: w.request(
        "POST", "/auth/sessions", json={"user_id": UNKNOWN_UUID}, headers=w.headers()
    ),
}

#: Where the emulator knowingly differs in a type: the fixture comes from the OAuth *authorize*
#: route, whose details carry the client id; on the token route (the one emulated) it is null.
TYPE_EXCEPTIONS = {"errors/INVALID_OAUTH_CLIENT_ID_OR_SECRET.json": {"client_id"}}


@pytest.mark.parametrize("name", sorted(ERRORS))
async def test_error_bodies(world: World, name: str) -> None:
    expected = fixture(name)
    response = await ERRORS[name](world)
    assert response.status_code == expected["status"], response.text
    for header, value in expected["headers"].items():
        assert response.headers.get(header) == value, header
    if "x-stack-known-error" not in expected["headers"]:
        assert "x-stack-known-error" not in response.headers
        assert isinstance(expected["body"], str)
        assert response.text
        return
    body = response.json()
    assert list(body) == ["code", *(["details"] if "details" in expected["body"] else []), "error"]
    assert body["code"] == expected["body"]["code"]
    skip = TYPE_EXCEPTIONS.get(name, set())
    details, expected_details = body.get("details", {}), expected["body"].get("details", {})
    assert sorted(details) == sorted(expected_details)
    for key in set(expected_details) - skip:
        assert_same_shape(details[key], expected_details[key], f"details.{key}")
    assert isinstance(body["error"], str)


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
        if "tokens" not in path.parts
    }
    covered = set(SUCCESS) | set(ERRORS) | set(NOT_IMPLEMENTED)
    assert names - covered == set(), "fixtures with no fidelity check"
    assert covered - names == set(), "checks of fixtures that do not exist"
