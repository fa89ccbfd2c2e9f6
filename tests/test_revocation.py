"""What each verification mode sees after a change on Stack's side (issue 9.5), against the
emulator over loopback. The table in docs/verification.md is this test, in words.

Each case: a user signs in, a route sees them (so the token is cached), the change happens on
Stack's side, the caches' time runs out (cleared by hand, no waiting), and the same access token
is sent again. Sign-out and a password change end the *sessions* (refresh tokens): Stack keeps
accepting an access token already issued until its ``exp``, and so does every mode here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from fastapi_stack_auth import StackAuth, StackUser, current_user, full_user
from fastapi_stack_auth.testing import EmulatedStack, StackTestUser

pytest_plugins = ["fastapi_stack_auth.testing"]


def _server(stack: EmulatedStack) -> httpx.Client:
    return httpx.Client(
        base_url=f"{stack.url}/api/v1",
        headers={
            "x-stack-access-type": "server",
            "x-stack-project-id": stack.project_id,
            "x-stack-secret-server-key": stack.secret_server_key,
        },
    )


def _client_call(stack: EmulatedStack) -> httpx.Client:
    headers = {"x-stack-access-type": "client", "x-stack-project-id": stack.project_id}
    if stack.publishable_client_key:
        headers["x-stack-publishable-client-key"] = stack.publishable_client_key
    return httpx.Client(base_url=f"{stack.url}/api/v1", headers=headers)


def _delete(stack: EmulatedStack, user: StackTestUser) -> None:
    with _server(stack) as api:
        assert api.delete(f"/users/{user.id}").status_code == 200


def _restrict(stack: EmulatedStack, user: StackTestUser) -> None:
    with _server(stack) as api:
        body = {"restricted_by_admin": True, "restricted_by_admin_reason": "abuse"}
        assert api.patch(f"/users/{user.id}", json=body).status_code == 200


def _sign_out(stack: EmulatedStack, user: StackTestUser) -> None:
    with _client_call(stack) as api:
        response = api.delete(
            "/auth/sessions/current", headers={"x-stack-access-token": user.access_token}
        )
        assert response.status_code == 200


def _change_password(stack: EmulatedStack, user: StackTestUser) -> None:
    with _server(stack) as api:
        response = api.patch(f"/users/{user.id}", json={"password": "a-new-password-1"})
        assert response.status_code == 200


EVENTS: dict[str, Callable[[EmulatedStack, StackTestUser], None]] = {
    "deleted": _delete,
    "restricted by admin": _restrict,
    "signed out": _sign_out,
    "password changed": _change_password,
}

#: (event, mode) -> (current_user, full_user) statuses once the caches' time ran out. A 200
#: here lasts until the access token's exp (10 minutes by default), never longer.
EXPECTED: dict[tuple[str, str], tuple[int, int]] = {
    ("deleted", "remote"): (401, 401),
    ("deleted", "jwt"): (200, 401),
    ("restricted by admin", "remote"): (403, 403),
    ("restricted by admin", "jwt"): (200, 403),
    ("signed out", "remote"): (200, 200),
    ("signed out", "jwt"): (200, 200),
    ("password changed", "remote"): (200, 200),
    ("password changed", "jwt"): (200, 200),
}


def _app(stack: StackAuth) -> FastAPI:
    app = FastAPI()
    stack.init_app(app)

    @app.get("/me")
    async def me(user: StackUser = Depends(current_user)) -> dict[str, Any]:
        return {"id": user.id}

    @app.get("/full")
    async def full(user: StackUser = Depends(full_user)) -> dict[str, Any]:
        return {"id": user.id}

    return app


@pytest.mark.parametrize("mode", ["remote", "jwt"])
@pytest.mark.parametrize("event", list(EVENTS))
def test_what_each_mode_sees_after_a_change_on_stacks_side(
    stack_emulator: EmulatedStack, event: str, mode: str
) -> None:
    user = stack_emulator.create_user(password="a-password-1")
    stack = stack_emulator.stack_auth(verify=mode)
    with TestClient(_app(stack)) as client:
        headers = user.headers
        assert client.get("/me", headers=headers).status_code == 200
        assert client.get("/full", headers=headers).status_code == 200
        EVENTS[event](stack_emulator, user)
        # Within the cache's time, every mode still answers from what it verified.
        assert client.get("/me", headers=headers).status_code == 200
        stack.pipeline.cache.clear()
        stack.pipeline.profiles.clear()
        me = client.get("/me", headers=headers)
        full = client.get("/full", headers=headers)
    assert (me.status_code, full.status_code) == EXPECTED[(event, mode)], (me.text, full.text)


@pytest.mark.parametrize("event", ["signed out", "password changed"])
def test_a_session_ended_on_stack_cannot_be_refreshed(
    stack_emulator: EmulatedStack, event: str
) -> None:
    user = stack_emulator.create_user(password="a-password-1")
    EVENTS[event](stack_emulator, user)
    with _client_call(stack_emulator) as api:
        response = api.post(
            "/auth/sessions/current/refresh",
            headers={"x-stack-refresh-token": user.refresh_token},
        )
    assert response.status_code == 401
    assert response.json()["code"] == "REFRESH_TOKEN_NOT_FOUND_OR_EXPIRED"
