"""Helpers for the emulator's own tests: an in-process emulator with a settable clock."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import uvicorn

from fastapi_stack_auth.emulator import Seed
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
