"""Shared fixtures: an isolated environment, token minting and a respx-mocked Stack Auth."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import respx

from fastapi_stack_auth import StackAuth

if TYPE_CHECKING:
    from tests.jwt_helpers import JwksEndpoint, KeyRing

#: The built-wheel checks run only where nox's wheel session names a wheel to check.
collect_ignore = [] if os.environ.get("FASTAPI_STACK_AUTH_WHEEL") else ["test_wheel.py"]

FIXTURES = Path(__file__).parent / "fixtures" / "stack-auth-api"
API_URL = "https://stack.test"
PROJECT_ID = "6f0c2a9e-4b7d-4e1a-9c3f-2d8b5e7a1f40"
SECRET_KEY = "ssk_test_0123456789abcdef_SECRET"
PUBLISHABLE_KEY = "pck_test_0123456789abcdef_PUBLIC"
USER_ID = "3f5c8e21-7a4b-4c9d-8e2f-1a6b3c4d5e6f"


def fixture_json(name: str) -> Any:
    """A body from the Stack Auth contract's fixtures."""
    return json.loads((FIXTURES / name).read_text())


def fixture_response(name: str) -> httpx.Response:
    """A ``{status, headers, body}`` fixture of the contract as Stack's response (a text body
    as text, any other as JSON)."""
    data = fixture_json(name)
    body = data["body"]
    if isinstance(body, str):
        return httpx.Response(data["status"], headers=data["headers"], text=body)
    return httpx.Response(data["status"], headers=data["headers"], json=body)


async def eventually(predicate: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Poll ``predicate`` until it holds, failing after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            pytest.fail(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.005)


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def mint_token(
    *,
    sub: str = USER_ID,
    project_id: str = PROJECT_ID,
    kind: str = "normal",
    exp_in: float = 600,
    alg: str = "ES256",
    **claims: Any,
) -> str:
    """A token with the shape and claims of a Stack access token.

    Its signature is random: in remote mode only Stack (here respx or a fake server) judges it.
    """
    now = int(time.time())
    suffix = {"normal": "", "restricted": ":restricted", "anonymous": ":anon"}[kind]
    iss_path = {"normal": "projects", "restricted": "projects-restricted-users"}.get(
        kind, "projects-anonymous-users"
    )
    payload: dict[str, Any] = {
        "sub": sub,
        "project_id": project_id,
        "branch_id": "main",
        "refresh_token_id": str(uuid.uuid4()),
        "role": "authenticated",
        "name": None,
        "email": "user@example.com",
        "email_verified": kind == "normal",
        "selected_team_id": None,
        "signed_up_at": now - 3600,
        "is_anonymous": kind == "anonymous",
        "is_restricted": kind != "normal",
        "restricted_reason": None
        if kind == "normal"
        else {"type": "anonymous" if kind == "anonymous" else "email_not_verified"},
        "requires_totp_mfa": False,
        "iss": f"{API_URL}/api/v1/{iss_path}/{project_id}",
        "iat": now,
        "aud": project_id + suffix,
        "exp": int(now + exp_in),
        # A unique claim so two tokens minted in the same second differ.
        "jti": secrets.token_hex(8),
    }
    payload.update(claims)
    header = {"alg": alg, "kid": "dN6MEJ_40uJC"}
    signature = base64.urlsafe_b64encode(secrets.token_bytes(64)).rstrip(b"=").decode()
    return f"{_b64(header)}.{_b64(payload)}.{signature}"


def user_body(**overrides: Any) -> dict[str, Any]:
    """A server-access ``/users/me`` body (the contract's real one), with overrides."""
    body: dict[str, Any] = fixture_json("users-me.server.json")
    body.update(overrides)
    return body


def granted(request: httpx.Request) -> httpx.Response:
    """Stack's ``GET /team-permissions`` or ``/project-permissions`` granting whatever is asked."""
    params = request.url.params
    item = {"id": params["permission_id"], "user_id": params["user_id"]}
    if "team_id" in params:
        item["team_id"] = params["team_id"]
    return httpx.Response(200, json={"items": [item], "is_paginated": False})


def stack_error(status: int, code: str, message: str = "error", **details: Any) -> httpx.Response:
    """A Stack known-error response."""
    body: dict[str, Any] = {"code": code, "error": message}
    if details:
        body["details"] = details
    return httpx.Response(
        status,
        json=body,
        headers={"x-stack-known-error": code},
    )


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No STACK_* variable or .env file of the developer's leaks into a test."""
    for name in list(os.environ):
        if name.startswith("STACK_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def stack_settings() -> dict[str, Any]:
    """Keyword settings for a StackAuth pointed at the mocked API."""
    return {
        "project_id": PROJECT_ID,
        "secret_server_key": SECRET_KEY,
        "publishable_client_key": PUBLISHABLE_KEY,
        "api_url": API_URL,
        "check_keys_on_startup": False,
    }


@pytest.fixture
def mock_api() -> Iterator[respx.MockRouter]:
    """respx in front of the mocked Stack Auth; unmatched requests fail the test.

    The project's JWKS answers 404 unless a test serves one (the ``endpoint`` fixture): remote
    mode then runs without its local signature pre-check, so ``mint_token``'s random
    signatures reach the mocked ``/users/me``.
    """
    with respx.mock(base_url=f"{API_URL}/api/v1", assert_all_called=False) as router:
        router.get(f"/projects/{PROJECT_ID}/.well-known/jwks.json").respond(404)
        yield router


@pytest.fixture
def users_me(mock_api: respx.MockRouter) -> respx.Route:
    """Stack's ``GET /users/me`` through ``mock_api``, answering the default test user."""
    return mock_api.get("/users/me").respond(200, json=user_body())


@pytest.fixture
async def stack(
    stack_settings: dict[str, Any], mock_api: respx.MockRouter
) -> AsyncIterator[StackAuth]:
    """A started StackAuth talking to ``mock_api``."""
    async with StackAuth(**stack_settings) as started:
        yield started


@pytest.fixture
def token_factory() -> Callable[..., str]:
    """``mint_token`` as a fixture."""
    return mint_token


@pytest.fixture
def ring() -> KeyRing:
    """The signing keys of a fake project (JWT-mode tests)."""
    from tests.jwt_helpers import KeyRing  # jwt_helpers imports this module

    return KeyRing()


@pytest.fixture
def endpoint(ring: KeyRing, mock_api: respx.MockRouter) -> JwksEndpoint:
    """``ring``'s public keys served as the project's JWKS through ``mock_api``."""
    from tests.jwt_helpers import JwksEndpoint

    served = JwksEndpoint(ring)
    mock_api.get(f"/projects/{PROJECT_ID}/.well-known/jwks.json").mock(side_effect=served)
    return served
