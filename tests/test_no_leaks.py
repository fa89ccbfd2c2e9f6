"""No token, secret key or cookie in any log line (any logger, any level), repr or error body."""

from __future__ import annotations

import contextlib
import json
import logging
from typing import Any

import httpx
import pytest
import respx
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from fastapi_stack_auth import StackAuth, StackUser, current_user
from tests.conftest import (
    PUBLISHABLE_KEY,
    SECRET_KEY,
    fixture_response,
    mint_token,
    user_body,
)

COOKIE = "stack-refresh-secretcookievalue"


UPSTREAM = [
    httpx.Response(200, json=user_body()),
    fixture_response("errors/UNPARSABLE_ACCESS_TOKEN.json"),
    fixture_response("errors-constructed/ACCESS_TOKEN_EXPIRED.json"),
    fixture_response("errors/CANNOT_GET_OWN_USER_WITHOUT_USER.json"),
    fixture_response("errors-constructed/INVALID_SECRET_SERVER_KEY.json"),
    fixture_response("errors/SCHEMA_ERROR.json"),
    httpx.Response(503, text="down"),
    httpx.Response(200, text="not json"),
    httpx.ConnectError("refused"),
    httpx.ReadTimeout("slow"),
]


def test_nothing_secret_reaches_logs_or_bodies(
    stack_settings: dict[str, Any], mock_api: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    stack = StackAuth(**{**stack_settings, "check_keys_on_startup": True})
    app = FastAPI()
    stack.init_app(app)

    @app.get("/me")
    async def me(user: StackUser = Depends(current_user)) -> str:
        return user.id

    mock_api.get("/projects/current").mock(
        return_value=fixture_response("errors-constructed/INVALID_SECRET_SERVER_KEY.json")
    )
    route = mock_api.get("/users/me")
    tokens: list[str] = []
    bodies: list[str] = []
    with caplog.at_level(logging.DEBUG), TestClient(app) as client:
        for upstream in UPSTREAM:
            if isinstance(upstream, Exception):
                route.mock(side_effect=upstream)
            else:
                route.mock(return_value=upstream)
            for shape in ("bearer", "header", "sdk"):
                token = mint_token()
                tokens.append(token)
                headers = {
                    "bearer": {"Authorization": f"Bearer {token}"},
                    "header": {"x-stack-access-token": token},
                    "sdk": {
                        "x-stack-auth": json.dumps(
                            {"accessToken": token, "refreshToken": "rt_secret"}
                        )
                    },
                }[shape]
                response = client.get("/me", headers={**headers, "Cookie": COOKIE})
                bodies.append(response.text + str(response.headers))
        # Malformed credentials must not be echoed either.
        for bad in ("x" * 20 + ".secretpart", '{"accessToken": "secret-in-json"', "[" * 3000):
            response = client.get("/me", headers={"x-stack-auth": bad})
            bodies.append(response.text + str(response.headers))

    assert any(r.levelno >= logging.ERROR for r in caplog.records)  # logging did happen
    text = caplog.text + "\n".join(r.getMessage() for r in caplog.records)
    everything = text + "\n".join(bodies)
    for secret in [*tokens, SECRET_KEY, PUBLISHABLE_KEY, COOKIE, "rt_secret"]:
        assert secret not in everything
    assert "secret-in-json" not in everything
    assert "secretpart" not in everything


async def test_nothing_secret_in_logs_over_a_real_socket(caplog: pytest.LogCaptureFixture) -> None:
    """respx replaces httpx's transport, so httpcore and h11 never log there: this test goes
    through them, over loopback, at DEBUG level."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    from tests.conftest import PROJECT_ID
    from tests.servers import serve_in_thread

    good = mint_token()

    async def users_me(request: Request) -> Response:
        if request.headers.get("x-stack-access-token") == good:
            return JSONResponse(user_body())
        if request.headers.get("x-stack-access-token", "").endswith("x"):
            return Response("upstream exploded", status_code=500)
        return JSONResponse(
            {"code": "UNPARSABLE_ACCESS_TOKEN", "error": "bad"},
            status_code=401,
            headers={"x-stack-known-error": "UNPARSABLE_ACCESS_TOKEN"},
        )

    async def current(request: Request) -> Response:
        return JSONResponse({"id": PROJECT_ID})

    stand_in = Starlette(
        routes=[Route("/api/v1/users/me", users_me), Route("/api/v1/projects/current", current)]
    )
    tokens = [good, mint_token(), mint_token()[:-1] + "x"]
    with serve_in_thread(stand_in) as url, caplog.at_level(logging.DEBUG):
        async with StackAuth(
            project_id=PROJECT_ID,
            secret_server_key=SECRET_KEY + "\n",  # stripped, never sent or logged
            publishable_client_key=PUBLISHABLE_KEY,
            api_url=url,
        ) as stack:
            for token in tokens:
                with contextlib.suppress(Exception):
                    await stack.authenticate(token)
    names = {r.name for r in caplog.records}
    assert "httpcore.http11" in names or "httpcore.connection" in names  # httpcore did log
    text = caplog.text + "\n".join(str(r.__dict__) for r in caplog.records)
    for secret in [*tokens, SECRET_KEY, PUBLISHABLE_KEY]:
        assert secret not in text
