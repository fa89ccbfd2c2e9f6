"""``StackAuth`` as wiring: settings read at startup, several projects on one app, lifespans."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import respx
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from fastapi_stack_auth import (
    StackAuth,
    StackAuthConfigError,
    StackUser,
    UserDependency,
    current_user,
)
from tests.apps import quickstart  # imported at collection, before any STACK_* is set
from tests.conftest import API_URL, PROJECT_ID, SECRET_KEY, USER_ID, mint_token, user_body

B_URL = "https://b.stack.test"
B_PROJECT = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
B_USER = "99999999-8888-4777-8666-555555555555"


def _env(monkeypatch: pytest.MonkeyPatch, prefix: str, project: str, url: str) -> None:
    monkeypatch.setenv(f"{prefix}PROJECT_ID", project)
    monkeypatch.setenv(f"{prefix}SECRET_SERVER_KEY", SECRET_KEY)
    monkeypatch.setenv(f"{prefix}API_URL", url)
    monkeypatch.setenv(f"{prefix}CHECK_KEYS_ON_STARTUP", "false")


def test_construction_reads_no_environment() -> None:
    stack = StackAuth()  # no STACK_* set (conftest clears them): still fine
    assert "not started" in repr(stack)
    with pytest.raises(StackAuthConfigError, match="STACK_PROJECT_ID is required"):
        _ = stack.settings


def test_settings_are_validated_when_the_app_starts() -> None:
    app = FastAPI()
    StackAuth().init_app(app)
    with (
        pytest.raises(StackAuthConfigError, match="STACK_PROJECT_ID is required"),
        TestClient(app),
    ):
        pass


def test_a_quickstart_app_imported_before_its_settings_exist(
    monkeypatch: pytest.MonkeyPatch, mock_api: respx.MockRouter
) -> None:
    _env(monkeypatch, "STACK_", PROJECT_ID, API_URL)
    mock_api.get("/users/me").respond(200, json=user_body())
    with TestClient(quickstart.app) as client:
        response = client.get("/me", headers={"Authorization": f"Bearer {mint_token()}"})
    assert response.status_code == 200, response.text
    assert response.json() == {"id": USER_ID}


def test_env_prefix_names_its_own_variables() -> None:
    with pytest.raises(StackAuthConfigError, match="STACK_B_PROJECT_ID is required"):
        _ = StackAuth(env_prefix="STACK_B_").settings


def _two_project_app(monkeypatch: pytest.MonkeyPatch) -> tuple[FastAPI, StackAuth, StackAuth]:
    _env(monkeypatch, "STACK_", PROJECT_ID, API_URL)
    _env(monkeypatch, "STACK_B_", B_PROJECT, B_URL)
    first, second = StackAuth(), StackAuth(env_prefix="STACK_B_")
    app = FastAPI()
    first.init_app(app)
    second.init_app(app)
    second.init_app(app)  # attaching twice changes nothing

    @app.get("/a")
    async def a(user: StackUser = Depends(current_user)) -> dict[str, str]:
        return {"id": user.id}

    @app.get("/b")
    async def b(user: StackUser = Depends(UserDependency(stack=second))) -> dict[str, str]:
        return {"id": user.id}

    return app, first, second


def test_two_projects_on_one_app_each_route_uses_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    app, first, second = _two_project_app(monkeypatch)
    token_a = mint_token()
    token_b = mint_token(sub=B_USER, project_id=B_PROJECT)
    with respx.mock(assert_all_called=False) as mock:
        me_a = mock.get(f"{API_URL}/api/v1/users/me").respond(200, json=user_body())
        me_b = mock.get(f"{B_URL}/api/v1/users/me").respond(200, json=user_body(id=B_USER))
        with TestClient(app) as client:
            assert app.state.stack_auth is first  # the second never replaces the default
            assert first.client is not second.client
            ok_a = client.get("/a", headers={"Authorization": f"Bearer {token_a}"})
            ok_b = client.get("/b", headers={"Authorization": f"Bearer {token_b}"})
            # A token of one project is refused by the other's routes, without a call.
            wrong_a = client.get("/a", headers={"Authorization": f"Bearer {token_b}"})
            wrong_b = client.get("/b", headers={"Authorization": f"Bearer {token_a}"})
    assert (ok_a.status_code, ok_a.json()) == (200, {"id": USER_ID})
    assert (ok_b.status_code, ok_b.json()) == (200, {"id": B_USER})
    for wrong in (wrong_a, wrong_b):
        assert wrong.status_code == 401
        assert wrong.json() == {
            "detail": "The access token was issued for another project",
            "code": "INVALID_TOKEN",
        }
    assert (me_a.call_count, me_b.call_count) == (1, 1)
    # Both closed with the app.
    assert not first.client.is_open
    assert not second.client.is_open


def test_the_apps_own_lifespan_runs_inside_every_instance(
    monkeypatch: pytest.MonkeyPatch, mock_api: respx.MockRouter
) -> None:
    _env(monkeypatch, "STACK_", PROJECT_ID, API_URL)
    _env(monkeypatch, "STACK_B_", B_PROJECT, B_URL)
    first, second = StackAuth(), StackAuth(env_prefix="STACK_B_")
    seen: list[Any] = []

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, str]]:
        seen.append((first.client.is_open, second.client.is_open))
        yield {"db": "connected"}
        seen.append((first.client.is_open, second.client.is_open))

    app = FastAPI(lifespan=lifespan)
    first.init_app(app)
    second.init_app(app)

    @app.get("/state")
    async def state_route(user: StackUser = Depends(current_user)) -> dict[str, Any]:
        return {"id": user.id}

    mock_api.get("/users/me").respond(200, json=user_body())
    with TestClient(app) as client:
        response = client.get("/state", headers={"Authorization": f"Bearer {mint_token()}"})
    assert response.status_code == 200
    assert seen == [(True, True), (True, True)]


def test_a_second_instance_never_attached_answers_500_naming_the_fix(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _env(monkeypatch, "STACK_", PROJECT_ID, API_URL)
    _env(monkeypatch, "STACK_B_", B_PROJECT, B_URL)
    first, stray = StackAuth(), StackAuth(env_prefix="STACK_B_")
    app = FastAPI()
    first.init_app(app)

    @app.get("/b")
    async def b(user: StackUser = Depends(UserDependency(stack=stray))) -> dict[str, str]:
        return {"id": user.id}

    token = mint_token(sub=B_USER, project_id=B_PROJECT)
    with TestClient(app) as client:
        response = client.get("/b", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 500
    assert response.json()["code"] == "SERVER_MISCONFIGURED"
    assert "init_app" in caplog.text
