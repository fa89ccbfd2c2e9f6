"""End to end over real loopback: the library's dependencies in an app served by uvicorn, talking
HTTP to the emulator served by uvicorn, in remote and JWT verification modes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from fastapi_stack_auth import StackAuth, StackUser, current_user, full_user
from fastapi_stack_auth.emulator import Emulator, EmulatorServer
from fastapi_stack_auth.testing import EmulatedStack, StackTestUser
from tests.emulator_helpers import serve_app

pytest_plugins = ["fastapi_stack_auth.testing"]

MODES = ["remote", "jwt"]


def make_app(stack: StackAuth) -> FastAPI:
    app = FastAPI()
    stack.init_app(app)

    @app.get("/me")
    async def me(user: StackUser = Depends(current_user)) -> dict[str, Any]:
        return {"id": user.id, "email": user.primary_email, "name": user.display_name}

    @app.get("/full")
    async def full(user: StackUser = Depends(full_user)) -> dict[str, Any]:
        return {"id": user.id, "email": user.primary_email}

    return app


@pytest.fixture
def app_for(stack_emulator: EmulatedStack) -> Iterator[Any]:
    """``app_for(mode, **settings)``: the URL of an app served on loopback against the emulator."""
    stack = []

    def start(mode: str, **overrides: Any) -> str:
        context = serve_app(make_app(stack_emulator.stack_auth(verify=mode, **overrides)))
        stack.append(context)
        return context.__enter__()

    yield start
    for context in reversed(stack):
        context.__exit__(None, None, None)


def sign_up_over_http(stack_emulator: EmulatedStack, email: str) -> dict[str, Any]:
    response = httpx.post(
        f"{stack_emulator.url}/api/v1/auth/password/sign-up",
        headers=stack_emulator.client_headers(),
        json={"email": email, "password": "correct-horse-battery"},
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.parametrize("mode", MODES)
def test_sign_up_then_protected_route(
    stack_emulator: EmulatedStack, app_for: Any, mode: str
) -> None:
    url = app_for(mode)
    tokens = sign_up_over_http(stack_emulator, f"{mode}@example.com")
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    response = httpx.get(f"{url}/me", headers=bearer)
    assert response.status_code == 200, response.text
    assert response.json()["id"] == tokens["user_id"]
    assert response.json()["email"] == f"{mode}@example.com"
    # The x-stack-access-token spelling works as well, and the full profile too.
    stack_headers = {"x-stack-access-token": tokens["access_token"]}
    assert httpx.get(f"{url}/full", headers=stack_headers).json()["id"] == tokens["user_id"]
    assert httpx.get(f"{url}/me").status_code == 401


@pytest.mark.parametrize("mode", MODES)
def test_expired_token_is_401(stack_emulator: EmulatedStack, app_for: Any, mode: str) -> None:
    url = app_for(mode)
    user = stack_emulator.create_user()
    response = httpx.get(
        f"{url}/me", headers={"Authorization": f"Bearer {stack_emulator.expired_token(user)}"}
    )
    assert response.status_code == 401
    assert response.json()["code"] == "TOKEN_EXPIRED"


def test_expired_by_stack_is_401() -> None:
    """Stack (here the emulator, whose clock runs an hour ahead) says ACCESS_TOKEN_EXPIRED for a
    token the app still thinks is fresh: the app answers 401 TOKEN_EXPIRED."""
    emulator = Emulator()
    with EmulatorServer(emulator) as server:
        stack = EmulatedStack(emulator, server.url)
        user = stack.create_user()
        emulator.clock = lambda: __import__("time").time() + 3600
        with serve_app(make_app(stack.stack_auth())) as url:
            response = httpx.get(f"{url}/me", headers=user.headers)
    assert response.status_code == 401
    assert response.json()["code"] == "TOKEN_EXPIRED"


def test_deleted_user_is_401(stack_emulator: EmulatedStack, app_for: Any) -> None:
    url = app_for("remote")
    user = stack_emulator.create_user()
    stack_emulator.delete_user(user)
    response = httpx.get(f"{url}/me", headers=user.headers)
    assert response.status_code == 401
    assert response.json()["code"] == "USER_NOT_FOUND"


def test_deleted_user_in_jwt_mode(stack_emulator: EmulatedStack, app_for: Any) -> None:
    """JWT mode cannot see a deletion before ``exp`` (by design); ``full_user`` asks Stack."""
    url = app_for("jwt")
    user = stack_emulator.create_user()
    stack_emulator.delete_user(user)
    assert httpx.get(f"{url}/me", headers=user.headers).status_code == 200
    response = httpx.get(f"{url}/full", headers=user.headers)
    assert response.status_code == 401
    assert response.json()["code"] == "USER_NOT_FOUND"


@pytest.mark.parametrize(("mode", "route"), [("remote", "/me"), ("jwt", "/full")])
def test_wrong_server_key_is_500(
    stack_emulator: EmulatedStack, app_for: Any, mode: str, route: str
) -> None:
    url = app_for(mode, secret_server_key="ssk_not_the_right_key")
    user = stack_emulator.create_user()
    response = httpx.get(f"{url}{route}", headers=user.headers)
    assert response.status_code == 500
    assert response.json()["code"] == "SERVER_MISCONFIGURED"


@pytest.mark.parametrize("mode", MODES)
def test_emulator_stopped_is_503(mode: str) -> None:
    server = EmulatorServer().start()
    stack = EmulatedStack(server.emulator, server.url)
    user = stack.create_user()
    auth = stack.stack_auth(verify=mode, http_timeout=2)
    server.stop()  # before the app starts: no JWKS was ever loaded, no answer is cached
    with serve_app(make_app(auth)) as url:
        response = httpx.get(f"{url}/me", headers=user.headers)
    assert response.status_code == 503
    assert response.json()["code"] == "STACK_AUTH_UNAVAILABLE"
    assert response.headers["retry-after"].isdigit()


@pytest.mark.parametrize("mode", MODES)
def test_anonymous_and_restricted_users(
    stack_emulator: EmulatedStack,
    app_for: Any,
    mode: str,
    stack_anonymous_user: StackTestUser,
    stack_restricted_user: StackTestUser,
) -> None:
    strict = app_for(mode)
    for user in (stack_anonymous_user, stack_restricted_user):
        assert httpx.get(f"{strict}/me", headers=user.headers).status_code == 403
    lenient = app_for(mode, allow_anonymous=True, allow_restricted=True)
    for user in (stack_anonymous_user, stack_restricted_user):
        response = httpx.get(f"{lenient}/me", headers=user.headers)
        assert response.status_code == 200, response.text
        assert response.json()["id"] == user.id


def test_the_plugin_user_fixture(stack_user: StackTestUser, app_for: Any) -> None:
    response = httpx.get(f"{app_for('remote')}/me", headers=stack_user.headers)
    assert response.json() == {"id": stack_user.id, "email": stack_user.email, "name": "Test User"}


def test_stack_emulator_is_reset_between_tests(stack_emulator: EmulatedStack) -> None:
    assert stack_emulator.emulator.project.users == {}


def test_in_process_emulator(stack_emulator_asgi: EmulatedStack) -> None:
    user = stack_emulator_asgi.create_user(display_name="Ada")
    with TestClient(make_app(stack_emulator_asgi.stack_auth())) as client:
        response = client.get("/me", headers=user.headers)
        assert response.status_code == 200
        assert response.json()["name"] == "Ada"
        assert client.get("/me", headers={"Authorization": "Bearer x.y.z"}).status_code == 401


def test_env_fixture(stack_auth_env: dict[str, str], stack_emulator: EmulatedStack) -> None:
    settings = StackAuth().settings
    assert settings.api_url == stack_emulator.url == stack_auth_env["STACK_API_URL"]
    assert settings.project_id == stack_emulator.project_id
