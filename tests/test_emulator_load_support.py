"""What the load test needs from the emulator: a simulated network delay and call counts."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from fastapi_stack_auth.emulator import Emulator
from fastapi_stack_auth.emulator._cli import build_parser, main
from fastapi_stack_auth.emulator._store import REFRESH_TOKEN_LENGTH, new_refresh_token


def _server_headers(emulator: Emulator, token: str) -> dict[str, str]:
    return {
        "x-stack-access-type": "server",
        "x-stack-project-id": emulator.project_id,
        "x-stack-secret-server-key": emulator.secret_server_key,
        "x-stack-access-token": token,
    }


async def test_calls_are_counted_per_endpoint() -> None:
    emulator = Emulator(public_url="http://localhost:8102")
    token = emulator.sign_in(emulator.create_user().id).access_token
    transport = httpx.ASGITransport(app=emulator.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost:8102") as api:
        for _ in range(3):
            response = await api.get("/api/v1/users/me", headers=_server_headers(emulator, token))
            assert response.status_code == 200
        other = emulator.create_user().id
        await api.get(f"/api/v1/users/{other}", headers=_server_headers(emulator, token))
        await api.get("/api/v1/nowhere")
        await api.get("/health")
    assert emulator.calls == {"GET /users/me": 3, "GET /users/{user_id}": 1}


async def test_latency_delays_every_api_answer_concurrently() -> None:
    emulator = Emulator(public_url="http://localhost:8102", latency=0.2)
    token = emulator.sign_in(emulator.create_user().id).access_token
    transport = httpx.ASGITransport(app=emulator.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost:8102") as api:
        started = time.monotonic()
        answers = await asyncio.gather(
            *(
                api.get("/api/v1/users/me", headers=_server_headers(emulator, token))
                for _ in range(5)
            )
        )
        elapsed = time.monotonic() - started
    assert [a.status_code for a in answers] == [200] * 5
    # Each answer waits 0.2 s, all at once: a slow network, not a slow (serial) server.
    assert 0.2 <= elapsed < 0.2 * 5


def test_latency_is_never_negative() -> None:
    with pytest.raises(ValueError, match="latency"):
        Emulator(latency=-1)
    assert build_parser().parse_args(["--latency-ms", "20"]).latency_ms == 20
    assert main(["--latency-ms", "-5"]) == 2


def test_refresh_tokens_keep_their_shape() -> None:
    tokens = {new_refresh_token() for _ in range(200)}
    assert len(tokens) == 200
    alphabet = set("0123456789abcdefghjkmnpqrstvwxyz")
    for token in tokens:
        assert len(token) == REFRESH_TOKEN_LENGTH
        assert set(token) <= alphabet
    # Every character of the alphabet turns up: the mapping is not stuck on a subset.
    assert set("".join(tokens)) == alphabet
