"""Helpers for the emulator's own tests: an in-process emulator with a settable clock, and the
world of the contract's fixtures for the fidelity tests."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from fastapi_stack_auth.emulator import Emulator, Seed
from fastapi_stack_auth.emulator._server import bind_socket, url_of

PROJECT_ID = "6f0c2a9e-4b7d-4e1a-9c3f-2d8b5e7a1f40"
OTHER_PROJECT_ID = "0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d"
PUBLISHABLE = "pck_emulator_tests_publishable"
SECRET = "ssk_emulator_tests_secret"
ADMIN = "sak_emulator_tests_admin"
OTHER_SECRET = "ssk_emulator_tests_other_secret"
#: In-process emulators answer loopback hosts only (DNS-rebinding guard): a loopback URL.
BASE_URL = "http://localhost:8102"


class Clock:
    """A clock that tests move by hand (starts at the real time)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def seed(**config: Any) -> Seed:
    """Two projects: the main one (config overridable) and another one."""
    return Seed.model_validate(
        {
            "projects": [
                {
                    "id": PROJECT_ID,
                    "publishable_client_keys": [PUBLISHABLE],
                    "secret_server_keys": [SECRET],
                    "super_secret_admin_keys": [ADMIN],
                    "config": config,
                },
                {"id": OTHER_PROJECT_ID, "secret_server_keys": [OTHER_SECRET]},
            ],
        }
    )


def client_headers(**extra: str) -> dict[str, str]:
    return {
        "x-stack-access-type": "client",
        "x-stack-project-id": PROJECT_ID,
        "x-stack-publishable-client-key": PUBLISHABLE,
        **extra,
    }


def server_headers(**extra: str) -> dict[str, str]:
    return {
        "x-stack-access-type": "server",
        "x-stack-project-id": PROJECT_ID,
        "x-stack-secret-server-key": SECRET,
        **extra,
    }


def known_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """Assert ``response`` is Stack's known-error envelope for ``code``; returns the body."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["x-stack-known-error"] == code
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    body: dict[str, Any] = response.json()
    assert body["code"] == code
    assert isinstance(body["error"], str)
    assert body["error"]
    assert set(body) <= {"code", "details", "error"}
    assert response.text == json.dumps(body, indent=2, ensure_ascii=False)  # pretty-printed
    return body


def _b64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def jwt_parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The decoded header and payload of a JWT (unverified)."""
    header, payload, _ = token.split(".")
    return json.loads(_b64(header)), json.loads(_b64(payload))


@contextmanager
def serve_app(app: Any) -> Iterator[str]:
    """Serve an ASGI app (with its lifespan) on a free loopback port in a background thread.

    The socket listens before the thread starts, so the URL is usable at once; leaving the
    block runs the app's shutdown and closes the socket.
    """
    sock = bind_socket("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield url_of(sock)
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


# --- the world of the contract's fixtures (fidelity tests) ----------------------------------------

FIXTURES = Path(__file__).parent / "fixtures" / "stack-auth-api"
#: Projects besides the main one (``PROJECT_ID``): one without passwords, one locked down.
NO_PASSWORDS_PROJECT = "0c0c0c0c-0000-4000-8000-000000000001"
LOCKED_PROJECT = "0c0c0c0c-0000-4000-8000-000000000002"
FIXTURE_PCK, FIXTURE_SSK = "pck_fidelity", "ssk_fidelity"
UNKNOWN_UUID = "9d2e4f6a-1b3c-4d5e-8f7a-6b5c4d3e2f1a"
FIXTURE_TEAM_ID = "c4e7a9b1-2d3f-4a5b-9c6d-7e8f9a0b1c2d"
FIXTURE_PASSWORD = "default-password"


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


def assert_success_like(response: httpx.Response, status: int, expected: Any) -> None:
    """``response`` has ``status``, a JSON body and the shape of the fixture ``expected``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    assert_same_shape(response.json(), expected)


def assert_error_like(
    response: httpx.Response, expected: dict[str, Any], *, skip: set[str] | None = None
) -> None:
    """``response`` is the error of the fixture ``expected`` (``{status, headers, body}``): same
    status and headers, and for a known error the same code, key order and ``details`` shape
    (``skip``: details whose type may differ). A plain-text error has a text body."""
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
    details, expected_details = body.get("details", {}), expected["body"].get("details", {})
    assert sorted(details) == sorted(expected_details)
    for key in set(expected_details) - (skip or set()):
        assert_same_shape(details[key], expected_details[key], f"details.{key}")
    assert isinstance(body["error"], str)


class World:
    """An emulator laid out like the fixtures' world: a user who is a member of a personal team
    and selected it, three projects (the main one allows user and team API keys)."""

    def __init__(self, client: httpx.AsyncClient, emulator: Emulator) -> None:
        self.http = client
        self.emulator = emulator
        self.team = emulator.create_team("Personal", team_id=FIXTURE_TEAM_ID)
        self.user = emulator.create_user(
            email="default@example.com", password=FIXTURE_PASSWORD, otp_auth_enabled=True
        )
        emulator.add_member(self.team.id, self.user.id)  # with team_member
        self.user.selected_team_id = self.team.id
        self.tokens = emulator.sign_in(self.user.id)

    def headers(self, access: str = "server", **extra: str) -> dict[str, str]:
        headers = {"x-stack-access-type": access, "x-stack-project-id": PROJECT_ID}
        headers[
            "x-stack-publishable-client-key" if access == "client" else "x-stack-secret-server-key"
        ] = FIXTURE_PCK if access == "client" else FIXTURE_SSK
        headers.update(extra)
        return headers

    def signed_in(self, access: str = "server", **extra: str) -> dict[str, str]:
        return self.headers(access, **{"x-stack-access-token": self.tokens.access_token, **extra})

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return await self.http.request(method, f"/api/v1{path}", **kwargs)


def world_seed() -> Seed:
    """The projects of ``World``."""
    config = {
        "enabled_oauth_providers": ["github"],
        "allow_user_api_keys": True,
        "allow_team_api_keys": True,
    }
    return Seed.model_validate(
        {
            "projects": [
                {
                    "id": PROJECT_ID,
                    "publishable_client_keys": [FIXTURE_PCK],
                    "secret_server_keys": [FIXTURE_SSK],
                    "config": config,
                },
                {
                    "id": NO_PASSWORDS_PROJECT,
                    "secret_server_keys": [FIXTURE_SSK],
                    "config": {"credential_enabled": False},
                },
                {
                    "id": LOCKED_PROJECT,
                    "publishable_client_keys": [FIXTURE_PCK],
                    "secret_server_keys": [FIXTURE_SSK],
                    "config": {"sign_up_enabled": False, "require_publishable_client_key": True},
                },
            ],
        }
    )
