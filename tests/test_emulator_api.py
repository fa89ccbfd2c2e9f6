"""The emulator's HTTP API against the contract: check order, errors, endpoints, tokens, JWKS."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from fastapi_stack_auth.emulator import EMULATOR_HEADER, Emulator
from fastapi_stack_auth.emulator._keys import b64url
from tests.emulator_helpers import (
    ADMIN,
    BASE_URL,
    OTHER_PROJECT_ID,
    OTHER_SECRET,
    PROJECT_ID,
    PUBLISHABLE,
    SECRET,
    Clock,
    _b64,
    client_headers,
    jwt_parts,
    known_error,
    seed,
    server_headers,
)

pytest_plugins = ["tests.emulator_fixtures"]

CLAIMS = {
    "sub",
    "project_id",
    "branch_id",
    "refresh_token_id",
    "role",
    "name",
    "email",
    "email_verified",
    "selected_team_id",
    "signed_up_at",
    "is_anonymous",
    "is_restricted",
    "restricted_reason",
    "requires_totp_mfa",
    "iss",
    "iat",
    "aud",
    "exp",
}


async def sign_up(api: httpx.AsyncClient, email: str = "ada@example.com") -> dict[str, Any]:
    response = await api.post(
        "/auth/password/sign-up",
        headers=client_headers(),
        json={"email": email, "password": "correct-horse"},
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def signed_token(emu: Emulator, payload: dict[str, Any], aud: str) -> str:
    """A token signed with the emulator's own key for ``aud`` (to craft odd claims)."""
    key = emu.keys.signing_key(aud)
    head = b64url(json.dumps({"alg": "ES256", "kid": key.kid}).encode())
    body = b64url(json.dumps(payload).encode())
    return f"{head}.{body}.{b64url(key.sign(f'{head}.{body}'.encode()))}"


# --- §2.3: the order of auth checks ---------------------------------------------------------


async def test_key_without_access_type(api: httpx.AsyncClient) -> None:
    response = await api.get("/users/me", headers={"x-stack-secret-server-key": SECRET})
    known_error(response, 400, "PROJECT_KEY_WITHOUT_ACCESS_TYPE")


async def test_no_access_type_ignores_the_token(api: httpx.AsyncClient) -> None:
    response = await api.get("/users/me", headers={"x-stack-access-token": "garbage"})
    known_error(response, 400, "ACCESS_TYPE_REQUIRED")


async def test_invalid_access_type(api: httpx.AsyncClient) -> None:
    response = await api.get("/users/me", headers={"x-stack-access-type": "public"})
    known_error(response, 400, "INVALID_ACCESS_TYPE")


async def test_access_type_without_project(api: httpx.AsyncClient) -> None:
    response = await api.get("/users/me", headers={"x-stack-access-type": "client"})
    body = known_error(response, 400, "ACCESS_TYPE_WITHOUT_PROJECT_ID")
    assert body["details"] == {"request_type": "client"}


async def test_bad_token_hides_bad_key_and_bad_project(api: httpx.AsyncClient) -> None:
    wrong_key = server_headers(**{"x-stack-secret-server-key": "wrong"})
    response = await api.get("/users/me", headers={**wrong_key, "x-stack-access-token": "x.y.z"})
    known_error(response, 401, "UNPARSABLE_ACCESS_TOKEN")
    unknown = server_headers(**{"x-stack-project-id": "invalid", "x-stack-access-token": "nope"})
    known_error(await api.get("/users/me", headers=unknown), 401, "UNPARSABLE_ACCESS_TOKEN")


async def test_token_for_another_project(api: httpx.AsyncClient, emu: Emulator) -> None:
    user = emu.create_user(email="o@example.com", project_id=OTHER_PROJECT_ID)
    token = emu.sign_in(user.id, project_id=OTHER_PROJECT_ID).access_token
    response = await api.get("/users/me", headers=server_headers(**{"x-stack-access-token": token}))
    body = known_error(response, 401, "INVALID_PROJECT_FOR_ACCESS_TOKEN")
    assert body["details"] == {
        "expected_project_id": PROJECT_ID,
        "actual_project_id": OTHER_PROJECT_ID,
    }


async def test_unknown_project_before_keys(api: httpx.AsyncClient) -> None:
    headers = server_headers(**{"x-stack-project-id": "invalid", "x-stack-secret-server-key": ""})
    body = known_error(
        await api.get("/users/me", headers=headers), 400, "CURRENT_PROJECT_NOT_FOUND"
    )
    assert body["details"] == {"project_id": "invalid"}


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({"x-stack-access-type": "server", "x-stack-project-id": PROJECT_ID}, 401,
         "SERVER_AUTHENTICATION_REQUIRED"),
        (server_headers(**{"x-stack-secret-server-key": ""}), 401,
         "SERVER_AUTHENTICATION_REQUIRED"),
        (server_headers(**{"x-stack-secret-server-key": OTHER_SECRET}), 401,
         "INVALID_SECRET_SERVER_KEY"),
        (client_headers(**{"x-stack-publishable-client-key": "pck_wrong"}), 401,
         "INVALID_PUBLISHABLE_CLIENT_KEY"),
        ({"x-stack-access-type": "admin", "x-stack-project-id": PROJECT_ID}, 401,
         "ADMIN_AUTHENTICATION_REQUIRED"),
        ({"x-stack-access-type": "admin", "x-stack-project-id": PROJECT_ID,
          "x-stack-super-secret-admin-key": "sak_wrong"}, 401, "INVALID_SUPER_SECRET_ADMIN_KEY"),
        (server_headers(**{"x-stack-branch-id": "dev"}), 400, "BRANCH_DOES_NOT_EXIST"),
        (client_headers(), 401, "INSUFFICIENT_ACCESS_TYPE"),
    ],
)  # fmt: skip
async def test_key_checks(
    api: httpx.AsyncClient, headers: dict[str, str], status: int, code: str
) -> None:
    body = known_error(await api.get("/users", headers=headers), status, code)
    if code in ("INVALID_SECRET_SERVER_KEY", "INVALID_PUBLISHABLE_CLIENT_KEY"):
        assert body["details"] == {"project_id": PROJECT_ID}
    if code == "INSUFFICIENT_ACCESS_TYPE":
        assert body["details"] == {
            "actual_access_type": "client",
            "allowed_access_types": ["server", "admin"],
        }


async def test_wrong_key_is_reported_before_the_branch(api: httpx.AsyncClient) -> None:
    headers = server_headers(**{"x-stack-secret-server-key": "bad", "x-stack-branch-id": "dev"})
    known_error(await api.get("/users", headers=headers), 401, "INVALID_SECRET_SERVER_KEY")


async def test_admin_key_gives_server_shapes(api: httpx.AsyncClient) -> None:
    headers = {
        "x-stack-access-type": "admin",
        "x-stack-project-id": PROJECT_ID,
        "x-stack-super-secret-admin-key": ADMIN,
    }
    response = await api.get("/users", headers=headers)
    assert response.status_code == 200
    assert response.json()["is_paginated"] is True


async def test_publishable_key_optional_unless_required(clock: Clock) -> None:
    for required, status in ((False, 200), (True, 401)):
        emu = Emulator(seed(require_publishable_client_key=required), public_url=BASE_URL)
        transport = httpx.ASGITransport(app=emu.app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
            for key in (None, "__stack_public_client__"):
                headers = {"x-stack-access-type": "client", "x-stack-project-id": PROJECT_ID}
                if key:
                    headers["x-stack-publishable-client-key"] = key
                response = await client.get("/api/v1/projects/current", headers=headers)
                assert response.status_code == status
                if required:
                    known_error(response, 401, "PUBLISHABLE_CLIENT_KEY_REQUIRED_FOR_PROJECT")


async def test_anonymous_and_restricted_need_the_allow_headers(
    api: httpx.AsyncClient, emu: Emulator
) -> None:
    anonymous = emu.sign_in(emu.create_user(anonymous=True).id).access_token
    restricted = emu.sign_in(
        emu.create_user(email="r@example.com", restricted_by_admin=True).id
    ).access_token

    async def me(token: str, **allow: str) -> httpx.Response:
        return await api.get(
            "/users/me", headers=server_headers(**{"x-stack-access-token": token, **allow})
        )

    known_error(await me(anonymous), 401, "ANONYMOUS_AUTHENTICATION_NOT_ALLOWED")
    allow_restricted = {"x-stack-allow-restricted-user": "true"}
    allow_anonymous = {"x-stack-allow-anonymous-user": "true"}
    known_error(
        await me(anonymous, **allow_restricted), 401, "ANONYMOUS_AUTHENTICATION_NOT_ALLOWED"
    )
    assert (await me(anonymous, **allow_anonymous)).json()["is_anonymous"] is True

    body = known_error(await me(restricted), 403, "RESTRICTED_USER_NOT_ALLOWED")
    assert body["details"] == {"restricted_reason": {"type": "restricted_by_administrator"}}
    known_error(
        await me(restricted, **{"x-stack-allow-anonymous-user": "yes"}),
        403,
        "RESTRICTED_USER_NOT_ALLOWED",
    )
    assert (await me(restricted, **allow_restricted)).json()["is_restricted"] is True
    assert (await me(restricted, **allow_anonymous)).json()["is_restricted"] is True


async def test_expired_token(api: httpx.AsyncClient, emu: Emulator, clock: Clock) -> None:
    tokens = emu.sign_in(emu.create_user(email="e@example.com").id)
    headers = server_headers(**{"x-stack-access-token": tokens.access_token})
    assert (await api.get("/users/me", headers=headers)).status_code == 200
    _, claims = jwt_parts(tokens.access_token)
    clock.now = claims["exp"]  # jose: expired once exp <= now
    body = known_error(await api.get("/users/me", headers=headers), 401, "ACCESS_TOKEN_EXPIRED")
    assert body["details"] == {
        "expired_at_millis": claims["exp"] * 1000,
        "project_id": PROJECT_ID,
        "user_id": tokens.user_id,
        "refresh_token_id": tokens.refresh_token_id,
    }


async def test_tampered_and_foreign_tokens_are_unparsable(
    api: httpx.AsyncClient, emu: Emulator
) -> None:
    token = emu.sign_in(emu.create_user(email="t@example.com").id).access_token
    head, payload, sig = token.split(".")
    claims = json.loads(_b64(payload))
    claims["sub"] = "00000000-0000-4000-8000-000000000000"
    forged = f"{head}.{b64url(json.dumps(claims).encode())}.{sig}"
    other = Emulator(seed(), public_url=BASE_URL)  # same project, other secret: other keys
    foreign = other.sign_in(other.create_user(email="f@example.com").id).access_token
    wrong_iss = signed_token(emu, {**claims, "iss": "https://api.stack-auth.com/x"}, PROJECT_ID)
    for bad in (forged, foreign, wrong_iss, "a.b", token[:-4] + "AAAA"):
        response = await api.get(
            "/users/me", headers=server_headers(**{"x-stack-access-token": bad})
        )
        known_error(response, 401, "UNPARSABLE_ACCESS_TOKEN")


async def test_inconsistent_token_is_a_500(api: httpx.AsyncClient, emu: Emulator) -> None:
    token = emu.sign_in(emu.create_user(email="c@example.com").id).access_token
    claims = jwt_parts(token)[1]
    bad = signed_token(emu, {**claims, "branch_id": "dev"}, PROJECT_ID)
    headers = server_headers(
        **{"x-stack-access-token": bad, "x-stack-override-error-status": "true"}
    )
    response = await api.get("/users/me", headers=headers)
    assert response.status_code == 500  # 5xx is never overridden
    assert response.headers["content-type"].startswith("text/plain")
    assert "x-stack-known-error" not in response.headers


async def test_deleted_users_token(api: httpx.AsyncClient, emu: Emulator) -> None:
    tokens = emu.sign_in(emu.create_user(email="d@example.com").id)
    emu.delete_user(tokens.user_id)
    headers = server_headers(**{"x-stack-access-token": tokens.access_token})
    known_error(
        await api.get("/users/me", headers=headers), 400, "CANNOT_GET_OWN_USER_WITHOUT_USER"
    )
    response = await api.post(
        "/auth/sessions/current/refresh",
        headers=client_headers(**{"x-stack-refresh-token": tokens.refresh_token}),
    )
    known_error(response, 401, "REFRESH_TOKEN_NOT_FOUND_OR_EXPIRED")


# --- §3: responses --------------------------------------------------------------------------


async def test_override_error_status(api: httpx.AsyncClient) -> None:
    headers = server_headers(
        **{"x-stack-access-token": "garbage", "x-stack-override-error-status": "true"}
    )
    response = await api.get("/users/me", headers=headers)
    assert response.status_code == 200
    assert response.headers["x-stack-actual-status"] == "401"
    assert response.headers["x-stack-known-error"] == "UNPARSABLE_ACCESS_TOKEN"
    ok = await api.get(
        "/projects/current", headers={**server_headers(), "x-stack-override-error-status": ""}
    )
    assert ok.status_code == 200
    assert "x-stack-actual-status" not in ok.headers


async def test_sdk_hexclave_header_spellings(api: httpx.AsyncClient) -> None:
    tokens = await sign_up(api)
    headers = {
        "X-Hexclave-Override-Error-Status": "true",
        "X-Hexclave-Project-Id": PROJECT_ID,
        "X-Hexclave-Access-Type": "client",
        "X-Hexclave-Publishable-Client-Key": PUBLISHABLE,
        "X-Hexclave-Access-Token": tokens["access_token"],
        "X-Hexclave-Allow-Anonymous-User": "true",
        "X-Hexclave-Client-Version": "js @stackframe/js@2.8.108",
        "X-Hexclave-Random-Nonce": "abc",
    }
    response = await api.get("/users/me", headers=headers)
    assert response.status_code == 200
    assert response.json()["id"] == tokens["user_id"]
    headers["X-Hexclave-Access-Token"] = "garbage"
    response = await api.get("/users/me", headers=headers)
    assert response.status_code == 200
    assert response.headers["x-hexclave-actual-status"] == "401"
    assert response.headers["x-hexclave-known-error"] == "UNPARSABLE_ACCESS_TOKEN"


async def test_every_response_says_it_is_an_emulator(api: httpx.AsyncClient) -> None:
    responses = [
        await api.get("/projects/current", headers=server_headers()),
        await api.get("/users", headers=client_headers()),
        await api.get("/no/such/path"),
        await api.get("/../../health"),
        await api.request("OPTIONS", "/users"),
    ]
    for response in responses:
        assert response.headers[EMULATOR_HEADER].startswith("fastapi-stack-auth/")
        assert response.headers["x-stack-request-id"]


async def test_unknown_path_and_method(api: httpx.AsyncClient) -> None:
    response = await api.get("/no/such/path", headers=server_headers())
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/plain")
    assert "x-stack-known-error" not in response.headers
    assert (await api.put("/users/me", headers=server_headers())).status_code == 405
    assert (await api.request("TRACE", "/users")).status_code == 405


async def test_body_parsing_errors(api: httpx.AsyncClient) -> None:
    for content_type, content in (("application/json", b"{nope"), ("text/xml", b"<a/>")):
        response = await api.post(
            "/auth/password/sign-in",
            headers={**client_headers(), "content-type": content_type},
            content=content,
        )
        known_error(response, 400, "BODY_PARSING_ERROR")


async def test_schema_errors(api: httpx.AsyncClient) -> None:
    body = known_error(
        await api.get("/users", params={"extra": "1"}, headers=server_headers()),
        400,
        "SCHEMA_ERROR",
    )
    assert body["details"] == {"message": body["error"]}
    assert "extra" in body["error"]
    known_error(await api.get("/users/not-a-uuid", headers=server_headers()), 400, "SCHEMA_ERROR")
    known_error(
        await api.get("/users", params={"limit": "0"}, headers=server_headers()),
        400,
        "SCHEMA_ERROR",
    )
    tokens = await sign_up(api)
    response = await api.patch(
        "/users/me",
        headers=client_headers(**{"x-stack-access-token": tokens["access_token"]}),
        json={"server_metadata": {"role": "admin"}},
    )
    known_error(response, 400, "SCHEMA_ERROR")


# --- users ---------------------------------------------------------------------------------


async def test_users_crud(api: httpx.AsyncClient) -> None:
    created = await api.post(
        "/users",
        headers=server_headers(),
        json={
            "display_name": "Ada",
            "primary_email": "ada@example.com",
            "server_metadata": {"a": 1},
        },
    )
    assert created.status_code == 201
    user = created.json()
    assert user["display_name"] == "Ada"
    assert user["server_metadata"] == {"a": 1}
    path = f"/users/{user['id']}"
    patched = await api.patch(path, headers=server_headers(), json={"display_name": ""})
    assert patched.status_code == 200
    assert patched.json()["display_name"] is None
    assert (await api.get(path, headers=server_headers())).json()["id"] == user["id"]
    deleted = await api.delete(path, headers=server_headers())
    assert deleted.status_code == 200
    assert deleted.json() == {"success": True}
    known_error(await api.get(path, headers=server_headers()), 404, "USER_NOT_FOUND")
    known_error(await api.delete(path, headers=server_headers()), 404, "USER_NOT_FOUND")


async def test_users_me_client_and_server_shapes(api: httpx.AsyncClient) -> None:
    tokens = await sign_up(api)
    token = {"x-stack-access-token": tokens["access_token"]}
    client = (await api.get("/users/me", headers=client_headers(**token))).json()
    server = (await api.get("/users/me", headers=server_headers(**token))).json()
    assert "server_metadata" not in client
    assert "server_metadata" in server
    assert set(server) - set(client) == {
        "country_code",
        "last_active_at_millis",
        "primary_email_auth_enabled",
        "restricted_by_admin_private_details",
        "risk_scores",
        "server_metadata",
    }
    patched = await api.patch(
        "/users/me", headers=client_headers(**token), json={"display_name": "Ada"}
    )
    assert patched.json()["display_name"] == "Ada"


async def test_list_users_filters_and_pages(
    api: httpx.AsyncClient, emu: Emulator, clock: Clock
) -> None:
    ids = []
    for i in range(5):
        clock.now += 1
        ids.append(emu.create_user(email=f"u{i}@example.com").id)
    emu.create_user(anonymous=True)
    restricted = emu.create_user(email="r@example.com", restricted_by_admin=True).id

    async def page(**params: str) -> dict[str, Any]:
        response = await api.get("/users", params=params, headers=server_headers())
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    everyone = await page()
    assert [u["id"] for u in everyone["items"]] == ids
    assert everyone["pagination"] == {"next_cursor": None}
    first = await page(limit="2")
    assert [u["id"] for u in first["items"]] == ids[:2]
    second = await page(limit="2", cursor=first["pagination"]["next_cursor"])
    assert [u["id"] for u in second["items"]] == ids[2:4]
    assert [u["id"] for u in (await page(desc="true", limit="1"))["items"]] == [ids[-1]]
    assert len((await page(include_restricted="true"))["items"]) == 6
    assert restricted in [u["id"] for u in (await page(include_restricted="true"))["items"]]
    assert len((await page(include_anonymous="true"))["items"]) == 7
    only = await page(include_anonymous="true", only_anonymous="true")
    assert [u["is_anonymous"] for u in only["items"]] == [True]
    assert [u["id"] for u in (await page(query="U3@EXAMPLE"))["items"]] == [ids[3]]
    response = await api.get("/users", params={"only_anonymous": "true"}, headers=server_headers())
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/plain")


async def test_client_user_deletion_is_off_by_default(api: httpx.AsyncClient) -> None:
    tokens = await sign_up(api)
    response = await api.delete(
        "/users/me", headers=client_headers(**{"x-stack-access-token": tokens["access_token"]})
    )
    assert response.status_code == 400
    assert "x-stack-known-error" not in response.headers


# --- sign-up, sign-in, sessions, refresh -------------------------------------------------------


async def test_sign_up_errors(api: httpx.AsyncClient) -> None:
    await sign_up(api, "taken@example.com")
    response = await api.post(
        "/auth/password/sign-up",
        headers=client_headers(),
        json={"email": "TAKEN@example.com", "password": "another-password"},
    )
    body = known_error(response, 409, "USER_EMAIL_ALREADY_EXISTS")
    assert body["details"]["would_work_if_email_was_verified"] is False
    response = await api.post(
        "/auth/password/sign-up",
        headers=client_headers(),
        json={"email": "s@example.com", "password": "short"},
    )
    assert known_error(response, 400, "PASSWORD_TOO_SHORT")["details"] == {"min_length": 8}
    response = await api.post(
        "/auth/password/sign-up",
        headers=client_headers(),
        json={"email": "not-an-email", "password": "long-enough"},
    )
    known_error(response, 400, "SCHEMA_ERROR")


@pytest.mark.parametrize(
    ("config", "code"),
    [({"sign_up_enabled": False}, "SIGN_UP_NOT_ENABLED"),
     ({"credential_enabled": False}, "PASSWORD_AUTHENTICATION_NOT_ENABLED")],
)  # fmt: skip
async def test_sign_up_turned_off(config: dict[str, bool], code: str) -> None:
    emu = Emulator(seed(**config), public_url=BASE_URL)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=emu.app), base_url=BASE_URL
    ) as c:
        response = await c.post(
            "/api/v1/auth/password/sign-up",
            headers=client_headers(),
            json={"email": "a@example.com", "password": "long-enough"},
        )
    known_error(response, 400, code)


async def test_sign_in(api: httpx.AsyncClient) -> None:
    signed_up = await sign_up(api)
    response = await api.post(
        "/auth/password/sign-in",
        headers=client_headers(),
        json={"email": "ada@example.com", "password": "correct-horse"},
    )
    assert response.status_code == 200
    assert response.json()["user_id"] == signed_up["user_id"]
    for email, password in (("ada@example.com", "wrong-horse"), ("nobody@example.com", "x")):
        response = await api.post(
            "/auth/password/sign-in",
            headers=client_headers(),
            json={"email": email, "password": password},
        )
        known_error(response, 400, "EMAIL_PASSWORD_MISMATCH")


async def test_tokens_of_each_kind(api: httpx.AsyncClient, emu: Emulator) -> None:
    normal = await sign_up(api)
    anonymous = (await api.post("/auth/anonymous/sign-up", headers=client_headers())).json()
    restricted = emu.sign_in(emu.create_user(email="r@example.com", restricted_by_admin=True).id)
    expected = {
        normal["access_token"]: ("projects", PROJECT_ID),
        restricted.access_token: ("projects-restricted-users", f"{PROJECT_ID}:restricted"),
        anonymous["access_token"]: ("projects-anonymous-users", f"{PROJECT_ID}:anon"),
    }
    for token, (segment, aud) in expected.items():
        header, claims = jwt_parts(token)
        assert set(header) == {"alg", "kid"}
        assert header["alg"] == "ES256"
        assert len(header["kid"]) == 12
        assert set(claims) == CLAIMS
        assert claims["iss"] == f"{BASE_URL}/api/v1/{segment}/{PROJECT_ID}"
        assert claims["aud"] == aud
        assert claims["exp"] - claims["iat"] == 600
        assert claims["branch_id"] == "main"
        assert claims["role"] == "authenticated"
        assert claims["is_restricted"] == (claims["restricted_reason"] is not None)
    assert jwt_parts(anonymous["access_token"])[1]["restricted_reason"] == {"type": "anonymous"}
    assert len(normal["refresh_token"]) == 45
    assert set(normal["refresh_token"]) <= set("0123456789abcdefghjkmnpqrstvwxyz")


async def test_access_token_lifetime_is_configurable() -> None:
    emu = Emulator(seed(), public_url=BASE_URL, access_token_ttl=30)
    _, claims = jwt_parts(emu.sign_in(emu.create_user(email="a@example.com").id).access_token)
    assert claims["exp"] - claims["iat"] == 30


async def test_anonymous_user_upgrades_on_sign_up(api: httpx.AsyncClient) -> None:
    anonymous = (await api.post("/auth/anonymous/sign-up", headers=client_headers())).json()
    response = await api.post(
        "/auth/password/sign-up",
        headers=client_headers(
            **{
                "x-stack-access-token": anonymous["access_token"],
                "x-stack-allow-anonymous-user": "true",
            }
        ),
        json={"email": "up@example.com", "password": "long-enough"},
    )
    assert response.status_code == 200
    assert response.json()["user_id"] == anonymous["user_id"]
    assert jwt_parts(response.json()["access_token"])[1]["is_anonymous"] is False


async def test_refresh_grant(api: httpx.AsyncClient) -> None:
    tokens = await sign_up(api)
    form = {
        "grant_type": "refresh_token",
        "refresh_token": tokens["refresh_token"],
        "client_id": PROJECT_ID,
        "client_secret": PUBLISHABLE,
    }
    response = await api.post("/auth/oauth/token", data=form)
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert "refresh_token" not in body
    assert jwt_parts(body["access_token"])[1]["sub"] == tokens["user_id"]
    assert response.headers["pragma"] == "no-cache"
    # JSON body, the sentinel and HTTP Basic work too; the refresh token is not rotated.
    sentinel = {
        **form,
        "client_secret": "__stack_public_client__",
        "client_id": f"{PROJECT_ID}#main",
    }
    assert (await api.post("/auth/oauth/token", json=sentinel)).status_code == 200
    basic = base64.b64encode(f"{PROJECT_ID}:{PUBLISHABLE}".encode()).decode()
    no_client = {k: v for k, v in form.items() if not k.startswith("client_")}
    response = await api.post(
        "/auth/oauth/token", data=no_client, headers={"authorization": f"Basic {basic}"}
    )
    assert response.status_code == 200

    bad_secret = await api.post("/auth/oauth/token", data={**form, "client_secret": "pck_wrong"})
    body = known_error(bad_secret, 400, "INVALID_OAUTH_CLIENT_ID_OR_SECRET")
    assert body["details"] == {"client_id": None}
    known_error(
        await api.post("/auth/oauth/token", data=no_client),
        400,
        "INVALID_OAUTH_CLIENT_ID_OR_SECRET",
    )
    bad_token = await api.post("/auth/oauth/token", data={**form, "refresh_token": "nope"})
    known_error(bad_token, 401, "REFRESH_TOKEN_NOT_FOUND_OR_EXPIRED")
    grant = await api.post("/auth/oauth/token", data={**form, "grant_type": "password"})
    assert grant.status_code == 400
    assert grant.json()["error"] == "unsupported_grant_type"


async def test_sessions(api: httpx.AsyncClient, emu: Emulator) -> None:
    user = emu.create_user(email="s@example.com")
    response = await api.post("/auth/sessions", headers=server_headers(), json={"user_id": user.id})
    assert response.status_code == 200
    session = response.json()
    refresh = await api.post(
        "/auth/sessions/current/refresh",
        headers=client_headers(**{"x-stack-refresh-token": session["refresh_token"]}),
    )
    assert refresh.status_code == 200
    assert set(refresh.json()) == {"access_token"}
    known_error(
        await api.post("/auth/sessions/current/refresh", headers=client_headers()),
        400,
        "SCHEMA_ERROR",
    )
    signed_in = {"x-stack-access-token": session["access_token"]}
    out = await api.delete("/auth/sessions/current", headers=client_headers(**signed_in))
    assert out.json() == {"success": True}
    again = await api.delete("/auth/sessions/current", headers=client_headers(**signed_in))
    known_error(again, 401, "REFRESH_TOKEN_NOT_FOUND_OR_EXPIRED")
    known_error(
        await api.delete("/auth/sessions/current", headers=client_headers()),
        401,
        "ACCESS_TOKEN_EXPIRED",
    )
    unknown = await api.post(
        "/auth/sessions",
        headers=server_headers(),
        json={"user_id": "9d2e4f6a-1b3c-4d5e-8f7a-6b5c4d3e2f1a"},
    )
    known_error(unknown, 400, "USER_ID_DOES_NOT_EXIST")


async def test_password_change_ends_every_session(api: httpx.AsyncClient) -> None:
    tokens = await sign_up(api)
    await api.patch(
        f"/users/{tokens['user_id']}", headers=server_headers(), json={"password": "new-password"}
    )
    response = await api.post(
        "/auth/sessions/current/refresh",
        headers=client_headers(**{"x-stack-refresh-token": tokens["refresh_token"]}),
    )
    known_error(response, 401, "REFRESH_TOKEN_NOT_FOUND_OR_EXPIRED")


# --- JWKS ------------------------------------------------------------------------------------


def _public_key(jwk: dict[str, str]) -> ec.EllipticCurvePublicKey:
    x, y = (int.from_bytes(_b64(jwk[c]), "big") for c in ("x", "y"))
    return ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()


async def test_jwks(api: httpx.AsyncClient, emu: Emulator) -> None:
    path = f"/projects/{PROJECT_ID}/.well-known/jwks.json"
    sets = {}
    for params, count in (
        ({}, 2),
        ({"include_restricted": "true"}, 4),
        ({"include_anonymous": "true"}, 6),
    ):
        response = await api.get(path, params=params)
        assert response.status_code == 200
        assert response.headers["cache-control"] == "public, max-age=3600"
        keys = response.json()["keys"]
        assert len(keys) == count == len({k["kid"] for k in keys})
        sets[count] = keys
    assert sets[6][:4] == sets[4]
    assert sets[4][:2] == sets[2]
    # The first key of each audience signs that audience's tokens, and verifies them.
    tokens = [
        emu.sign_in(emu.create_user(email="n@example.com").id).access_token,
        emu.sign_in(
            emu.create_user(email="r@example.com", restricted_by_admin=True).id
        ).access_token,
        emu.sign_in(emu.create_user(anonymous=True).id).access_token,
    ]
    for index, token in zip((0, 2, 4), tokens, strict=False):
        header, _ = jwt_parts(token)
        jwk = sets[6][index]
        assert header["kid"] == jwk["kid"]
        signature = _b64(token.split(".")[2])
        der = encode_dss_signature(
            int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        )
        _public_key(jwk).verify(der, token.rsplit(".", 1)[0].encode(), ec.ECDSA(hashes.SHA256()))


async def test_jwks_errors_and_alias(api: httpx.AsyncClient) -> None:
    path = f"/projects/{PROJECT_ID}/.well-known/jwks.json"
    known_error(await api.get(path, params={"include_anonymous": "yes"}), 400, "SCHEMA_ERROR")
    known_error(await api.get(path, params={"other": "1"}), 400, "SCHEMA_ERROR")
    missing = await api.get("/projects/nope/.well-known/jwks.json")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("text/plain")
    alias = await api.get(f"/projects-anonymous-users/{PROJECT_ID}/.well-known/jwks.json")
    assert alias.status_code == 307
    assert alias.headers["location"] == f"{BASE_URL}/api/v1{path}?include_anonymous=true"


async def test_projects_current(api: httpx.AsyncClient) -> None:
    for headers in (client_headers(), server_headers()):
        body = (await api.get("/projects/current", headers=headers)).json()
        assert body["id"] == PROJECT_ID
        assert body["config"]["credential_enabled"] is True


async def test_secret_key_of_another_project_is_rejected(api: httpx.AsyncClient) -> None:
    headers = server_headers(**{"x-stack-secret-server-key": OTHER_SECRET})
    known_error(
        await api.get("/projects/current", headers=headers), 401, "INVALID_SECRET_SERVER_KEY"
    )
    assert SECRET != OTHER_SECRET
