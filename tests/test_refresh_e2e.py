"""Silent refresh end to end: the library talks to the emulator over loopback HTTP, which runs
Stack's refresh grant (``POST /auth/oauth/token``) for real, in remote and JWT mode, with header
and cookie credentials; a session signed out through Stack's REST API cannot be refreshed."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from fastapi_stack_auth import StackAuth, StackUser, current_user
from fastapi_stack_auth._refresh import refresher_for
from fastapi_stack_auth._refresh_relay import REFRESHED_HEADER
from fastapi_stack_auth.emulator import Tokens
from fastapi_stack_auth.testing import EmulatedStack, StackTestUser
from tests.emulator_helpers import jwt_parts

pytest_plugins = ["fastapi_stack_auth.testing"]

ORIGIN = "https://app.example.com"


def build_app(stack: StackAuth) -> FastAPI:
    app = FastAPI()
    stack.init_app(app)

    @app.get("/me")
    async def me(user: StackUser = Depends(current_user)) -> dict[str, Any]:
        return {"id": user.id}

    @app.post("/notes")
    async def notes(user: StackUser = Depends(current_user)) -> dict[str, Any]:
        return {"id": user.id, "saved": True}

    return app


@pytest.fixture(params=["remote", "jwt"])
def mode(request: pytest.FixtureRequest) -> str:
    mode: str = request.param
    return mode


@pytest.fixture
def stack(stack_emulator: EmulatedStack, mode: str) -> StackAuth:
    return stack_emulator.stack_auth(
        verify=mode, silent_refresh=True, cookies=True, trusted_origins=ORIGIN
    )


@pytest.fixture
def client(stack: StackAuth) -> Iterator[TestClient]:
    with TestClient(build_app(stack)) as client:
        yield client


@pytest.fixture
def session(stack_emulator: EmulatedStack, stack_user: StackTestUser) -> Tokens:
    """A session of ``stack_user`` whose access token expired an hour ago."""
    return stack_emulator.sign_in(stack_user, issued_at=stack_emulator.emulator.now() - 3600)


def sdk_header(tokens: Tokens) -> dict[str, str]:
    body = {"accessToken": tokens.access_token, "refreshToken": tokens.refresh_token}
    return {"x-stack-auth": json.dumps(body)}


def js_cookie(value: Any) -> str:
    return json.dumps(value, separators=(",", ":")).replace('"', "%22").replace(",", "%2C")


def test_header_credentials_are_refreshed(
    client: TestClient, stack: StackAuth, stack_user: StackTestUser, session: Tokens
) -> None:
    response = client.get("/me", headers=sdk_header(session))
    assert response.status_code == 200, response.text
    assert response.json() == {"id": stack_user.id}
    new = response.headers[REFRESHED_HEADER]
    assert new != session.access_token
    assert jwt_parts(new)[1]["sub"] == stack_user.id
    assert jwt_parts(new)[1]["refresh_token_id"] == session.refresh_token_id
    # The new token works on its own; the old one with its refresh token is a cache hit.
    assert client.get("/me", headers={"x-stack-access-token": new}).status_code == 200
    again = client.get("/me", headers=sdk_header(session))
    assert again.headers[REFRESHED_HEADER] == new
    assert refresher_for(stack).grants == 1


def test_cookie_credentials_are_refreshed_and_the_cookie_updated(
    client: TestClient,
    stack: StackAuth,
    stack_emulator: EmulatedStack,
    stack_user: StackTestUser,
    session: Tokens,
) -> None:
    # What the browser SDK left behind on a plain-HTTP page: host-only cookies (the jar
    # names TestClient's host "testserver" so).
    host = "testserver.local"
    refresh = {"refresh_token": session.refresh_token, "updated_at_millis": 1767225600000}
    name = f"stack-refresh-{stack_emulator.project_id}--default"
    client.cookies.set(name, js_cookie(refresh), domain=host)
    pair = js_cookie([session.refresh_token, session.access_token])
    client.cookies.set("stack-access", pair, domain=host)

    response = client.post("/notes", headers={"Origin": ORIGIN})
    assert response.status_code == 200, response.text
    assert response.json() == {"id": stack_user.id, "saved": True}
    new = response.headers[REFRESHED_HEADER]
    assert response.headers["set-cookie"] == (
        f"stack-access=[%22{session.refresh_token}%22%2C%22{new}%22]; Path=/; Max-Age=86400; "
        "SameSite=Lax"
    )
    # The client's cookie jar took the update: the next request is an ordinary cache hit.
    assert client.cookies["stack-access"] == f"[%22{session.refresh_token}%22%2C%22{new}%22]"
    again = client.post("/notes", headers={"Origin": ORIGIN})
    assert again.status_code == 200
    assert REFRESHED_HEADER not in again.headers
    assert "set-cookie" not in again.headers
    assert refresher_for(stack).grants == 1
    # And a cross-site POST with the same cookies is refused before anything else.
    forged = client.post("/notes", headers={"Origin": "https://evil.example"})
    assert forged.status_code == 403
    assert forged.json()["code"] == "CROSS_SITE_REQUEST_REFUSED"


def test_a_signed_out_session_is_not_refreshed(
    client: TestClient, stack_emulator: EmulatedStack, stack_user: StackTestUser, session: Tokens
) -> None:
    # Signed out through Stack's REST API, as a frontend or an admin would.
    with httpx.Client(base_url=f"{stack_emulator.url}/api/v1") as stack_api:
        ended = stack_api.delete(
            f"/auth/sessions/{session.refresh_token_id}",
            params={"user_id": stack_user.id},
            headers=stack_emulator.server_headers(),
        )
    assert ended.status_code == 200, ended.text
    response = client.get("/me", headers=sdk_header(session))
    assert response.status_code == 401
    assert response.json()["code"] == "REFRESH_TOKEN_INVALID"
    assert REFRESHED_HEADER not in response.headers


def test_a_deleted_user_is_not_refreshed(
    client: TestClient, stack_emulator: EmulatedStack, stack_user: StackTestUser, session: Tokens
) -> None:
    stack_emulator.delete_user(stack_user)
    response = client.get("/me", headers=sdk_header(session))
    assert response.status_code == 401
    assert response.json()["code"] == "REFRESH_TOKEN_INVALID"


def test_a_refresh_token_of_another_session_is_refused(
    client: TestClient, stack_emulator: EmulatedStack, stack_user: StackTestUser, session: Tokens
) -> None:
    other = stack_emulator.sign_in(stack_user)
    mixed = Tokens(session.access_token, other.refresh_token, stack_user.id, other.refresh_token_id)
    response = client.get("/me", headers=sdk_header(mixed))
    assert response.status_code == 401
    assert response.json()["code"] == "INVALID_TOKEN"


def test_jwt_mode_without_a_secret_key_refreshes_as_a_client(
    stack_emulator: EmulatedStack, stack_user: StackTestUser, session: Tokens
) -> None:
    stack = stack_emulator.stack_auth(verify="jwt", secret_server_key=None, silent_refresh=True)
    with TestClient(build_app(stack)) as client:
        response = client.get("/me", headers=sdk_header(session))
    assert response.status_code == 200, response.text
    assert jwt_parts(response.headers[REFRESHED_HEADER])[1]["sub"] == stack_user.id


def test_no_token_in_the_logs(
    client: TestClient,
    stack_emulator: EmulatedStack,
    stack_user: StackTestUser,
    session: Tokens,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.DEBUG):
        new = client.get("/me", headers=sdk_header(session)).headers[REFRESHED_HEADER]
        stack_emulator.emulator.revoke_session(session.refresh_token_id)
        gone = stack_emulator.sign_in(stack_user, issued_at=stack_emulator.emulator.now() - 3600)
        stack_emulator.emulator.revoke_session(gone.refresh_token_id)
        assert client.get("/me", headers=sdk_header(gone)).status_code == 401
    assert caplog.records
    for secret in (new, session.access_token, session.refresh_token, gone.refresh_token):
        assert secret not in caplog.text
