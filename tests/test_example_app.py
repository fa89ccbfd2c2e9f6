"""The example app served by a real uvicorn process on 127.0.0.1, against a Stack Auth stand-in
served over loopback too: nothing is mocked in either process."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.conftest import PROJECT_ID, SECRET_KEY, mint_token, user_body
from tests.servers import serve_in_thread, uvicorn_process

GOOD_TOKEN = mint_token()
DELETED_USER_TOKEN = mint_token()


def _known_error(status: int, code: str) -> JSONResponse:
    return JSONResponse(
        {"code": code, "error": f"{code} (upstream text)"},
        status_code=status,
        headers={"x-stack-known-error": code},
    )


def _keys_ok(request: Request) -> bool:
    return (
        request.headers.get("x-stack-access-type") == "server"
        and request.headers.get("x-stack-project-id") == PROJECT_ID
        and request.headers.get("x-stack-secret-server-key") == SECRET_KEY
    )


async def users_me(request: Request) -> JSONResponse:
    token = request.headers.get("x-stack-access-token")
    if token == GOOD_TOKEN:
        if not _keys_ok(request):
            return _known_error(401, "INVALID_SECRET_SERVER_KEY")
        return JSONResponse(user_body())
    if token == DELETED_USER_TOKEN:
        return _known_error(400, "CANNOT_GET_OWN_USER_WITHOUT_USER")
    return _known_error(401, "UNPARSABLE_ACCESS_TOKEN")


async def projects_current(request: Request) -> JSONResponse:
    if not _keys_ok(request):
        return _known_error(401, "INVALID_SECRET_SERVER_KEY")
    return JSONResponse({"id": PROJECT_ID, "display_name": "Test", "config": {}})


async def project_permissions(request: Request) -> JSONResponse:
    # The good token's user holds the project permission ``admin`` (the example's /admin).
    if not _keys_ok(request):
        return _known_error(401, "INVALID_SECRET_SERVER_KEY")
    user_id, wanted = request.query_params.get("user_id"), request.query_params.get("permission_id")
    held = [{"id": "admin", "user_id": user_id}] if user_id == user_body()["id"] else []
    return JSONResponse({"items": [p for p in held if p["id"] == wanted], "is_paginated": False})


stack_stand_in = Starlette(
    routes=[
        Route("/api/v1/users/me", users_me),
        Route("/api/v1/projects/current", projects_current),
        Route("/api/v1/project-permissions", project_permissions),
    ]
)


@pytest.fixture(scope="module")
def stack_url() -> Iterator[str]:
    with serve_in_thread(stack_stand_in) as url:
        yield url


def _env(stack_url: str, secret: str = SECRET_KEY) -> dict[str, str]:
    return {
        "STACK_PROJECT_ID": PROJECT_ID,
        "STACK_SECRET_SERVER_KEY": secret,
        "STACK_API_URL": stack_url,
    }


def test_example_app_under_uvicorn(stack_url: str) -> None:
    with (
        uvicorn_process("example_app.main:app", _env(stack_url)) as server,
        httpx.Client(base_url=server.url, timeout=20) as client,
    ):
        assert client.get("/public").json() == {"message": "Hello, world"}
        assert client.get("/").headers["content-type"].startswith("text/html")  # the demo page
        assert client.get("/hello").json() == {"message": "Hello, stranger"}

        response = client.get("/me")
        assert response.status_code == 401
        assert response.json()["code"] == "NOT_AUTHENTICATED"
        assert response.headers["www-authenticate"].startswith("Bearer")

        auth = {"Authorization": f"Bearer {GOOD_TOKEN}"}
        me = client.get("/me", headers=auth)
        assert me.status_code == 200
        assert me.json()["id"] == user_body()["id"]
        assert client.get("/hello", headers=auth).json()["message"].startswith("Hello, default")
        assert client.get("/admin/stats", headers=auth).status_code == 200
        assert client.get("/claims", headers=auth).json()["user_id"] == user_body()["id"]
        assert client.get("/admin/stats").status_code == 401

        bad = client.get("/me", headers={"x-stack-access-token": mint_token()})
        assert (bad.status_code, bad.json()["code"]) == (401, "INVALID_TOKEN")
        assert "upstream text" not in bad.text

        gone = client.get("/me", headers={"x-stack-access-token": DELETED_USER_TOKEN})
        assert (gone.status_code, gone.json()["code"]) == (401, "USER_NOT_FOUND")
    output = server.output.decode()
    assert "Application startup complete" in output
    # Neither the tokens nor the key ever reach the server's output.
    for secret in (GOOD_TOKEN, DELETED_USER_TOKEN, SECRET_KEY):
        assert secret not in output


def test_example_app_with_a_wrong_key(stack_url: str) -> None:
    with (
        uvicorn_process("example_app.main:app", _env(stack_url, "ssk_wrong_key")) as server,
        httpx.Client(base_url=server.url, timeout=20) as client,
    ):
        assert client.get("/public").status_code == 200  # public routes keep working
        response = client.get("/me", headers={"Authorization": f"Bearer {GOOD_TOKEN}"})
        assert (response.status_code, response.json()["code"]) == (500, "SERVER_MISCONFIGURED")
    output = server.output.decode()
    assert "STACK_SECRET_SERVER_KEY" in output  # the startup check and the request both name it
    assert "ssk_wrong_key" not in output


def test_example_app_without_settings_fails_naming_them() -> None:
    with uvicorn_process("example_app.main:app", {}) as server:
        server.process.wait(timeout=30)
    output = server.output.decode()
    assert server.process.returncode != 0
    assert "STACK_PROJECT_ID is required" in output
