"""What keeps web pages from scripting the emulator: CORS for loopback and listed origins only,
never for server or admin access; loopback ``Host`` only (DNS rebinding); per-process keys."""

from __future__ import annotations

import httpx
import pytest

from fastapi_stack_auth.emulator import Emulator, EmulatorServer
from fastapi_stack_auth.emulator._cli import build_parser
from tests.emulator_helpers import (
    ADMIN,
    BASE_URL,
    PROJECT_ID,
    client_headers,
    seed,
    server_headers,
)

pytest_plugins = ["tests.emulator_fixtures"]

LOOPBACK_ORIGINS = ["http://localhost:3000", "https://127.0.0.1", "http://[::1]:5173"]
FOREIGN_ORIGINS = [
    "https://evil.example",
    "http://localhost.evil.example",
    "http://127.0.0.1.evil.example:3000",
    "http://evil.example@localhost",
    "http://localhost:3000/page",
    "file://localhost",
    "null",
]
SECRET_HEADERS = [
    f"{prefix}-{name}"
    for prefix in ("x-stack", "x-hexclave")
    for name in ("secret-server-key", "super-secret-admin-key", "admin-access-token")
]


def preflight(origin: str, *headers: str) -> dict[str, str]:
    return {
        "origin": origin,
        "access-control-request-method": "GET",
        "access-control-request-headers": ", ".join(headers),
    }


@pytest.mark.parametrize("origin", LOOPBACK_ORIGINS)
async def test_cors_from_a_loopback_origin_is_allowed(api: httpx.AsyncClient, origin: str) -> None:
    response = await api.get("/projects/current", headers=client_headers(origin=origin))
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == origin
    assert response.headers["vary"] == "origin"
    assert "x-stack-known-error" in response.headers["access-control-expose-headers"]

    response = await api.options("/auth/oauth/token", headers=preflight(origin, "x-stack-foo"))
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == origin
    allowed = response.headers["access-control-allow-headers"]
    assert "x-hexclave-access-token" in allowed
    assert "x-stack-access-token" in allowed
    assert "x-stack-allow-restricted-user" not in allowed  # not on Stack's list either


@pytest.mark.parametrize("origin", FOREIGN_ORIGINS)
async def test_cors_from_another_origin_is_refused(api: httpx.AsyncClient, origin: str) -> None:
    for response in (
        await api.get("/projects/current", headers=client_headers(origin=origin)),
        await api.options("/users/me", headers=preflight(origin, "x-stack-access-type")),
    ):
        assert response.status_code == 200
        assert not any(name.startswith("access-control-") for name in response.headers)


async def test_cors_origins_given_explicitly_are_allowed() -> None:
    origin = "https://app.example.com"
    emu = Emulator(seed(), public_url=BASE_URL, cors_origins=[origin + "/"])
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=emu.app), base_url=f"{BASE_URL}/api/v1"
    ) as api:
        response = await api.get("/projects/current", headers=client_headers(origin=origin))
        assert response.headers["access-control-allow-origin"] == origin
        other = await api.get("/projects/current", headers=client_headers(origin="https://x.io"))
        assert "access-control-allow-origin" not in other.headers
    args = build_parser().parse_args(["--cors-origin", origin, "--cors-origin", "http://a.test"])
    assert args.cors_origin == [origin, "http://a.test"]


async def test_server_and_admin_access_never_get_cors(api: httpx.AsyncClient) -> None:
    origin = LOOPBACK_ORIGINS[0]
    admin = {
        "x-stack-access-type": "admin",
        "x-stack-project-id": PROJECT_ID,
        "x-stack-super-secret-admin-key": ADMIN,
    }
    hexclave_server = {
        **client_headers(),
        "x-hexclave-access-type": "server",
        "x-hexclave-secret-server-key": "k",
    }
    for headers in (server_headers(), admin, hexclave_server, {"x-stack-secret-server-key": "k"}):
        response = await api.get("/projects/current", headers={**headers, "origin": origin})
        assert "access-control-allow-origin" not in response.headers, headers
    # The same call with client access does get them.
    response = await api.get("/projects/current", headers=client_headers(origin=origin))
    assert response.headers["access-control-allow-origin"] == origin


async def test_preflight_never_allows_the_secret_key_headers(api: httpx.AsyncClient) -> None:
    response = await api.options(
        "/users", headers=preflight(LOOPBACK_ORIGINS[0], "x-stack-access-type", *SECRET_HEADERS)
    )
    allowed = {h.strip() for h in response.headers["access-control-allow-headers"].split(",")}
    assert "x-stack-access-type" in allowed
    assert not allowed & set(SECRET_HEADERS)


@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:8102", "127.0.0.1.evil.example", "", "[::2]:8102"]
)
async def test_a_non_loopback_host_is_refused(api: httpx.AsyncClient, host: str) -> None:
    for path in ("/projects/current", "/../../health"):
        headers = client_headers(host=host, origin=LOOPBACK_ORIGINS[0])
        response = await api.get(path, headers=headers)
        assert response.status_code == 421
        assert response.json()["code"] == "EMULATOR_HOST_NOT_ALLOWED"
        assert "--allow-remote" in response.json()["error"]
        assert "access-control-allow-origin" not in response.headers


@pytest.mark.parametrize(
    "host", ["localhost", "localhost:8102", "LOCALHOST:1", "127.0.0.1:9", "[::1]:8102", "[::1]"]
)
async def test_a_loopback_host_is_accepted(api: httpx.AsyncClient, host: str) -> None:
    response = await api.get("/projects/current", headers=client_headers(host=host))
    assert response.status_code == 200


async def test_allowed_hosts_are_accepted() -> None:
    emu = Emulator(seed(), public_url="http://stack.internal", allowed_hosts=["Stack.Internal"])
    transport = httpx.ASGITransport(app=emu.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://stack.internal") as http:
        assert (await http.get("/health")).status_code == 200
        assert (await http.get("/health", headers={"host": "other.internal"})).status_code == 421


def test_allow_remote_accepts_the_bind_and_public_hosts() -> None:
    public = "http://emulator.example:8102"
    for allow_remote, status in ((False, 421), (True, 200)):
        server = EmulatorServer(public_url=public, allow_remote=allow_remote)
        with server:
            for host in ("emulator.example:8102", "127.0.0.1"):
                response = httpx.get(f"{server.url}/health", headers={"host": host})
                assert response.status_code == (200 if host == "127.0.0.1" else status)


def test_signing_keys_are_random_unless_seeded() -> None:
    unseeded = [Emulator(seed()).jwks(PROJECT_ID) for _ in range(2)]
    assert unseeded[0] != unseeded[1]
    assert Emulator().jwks() != Emulator().jwks()  # the default seed too
    seeded = [Emulator(seed(), key_seed="fixed").jwks(PROJECT_ID) for _ in range(2)]
    assert seeded[0] == seeded[1]
    assert Emulator(seed(), key_seed="other").jwks(PROJECT_ID) != seeded[0]
    with pytest.raises(ValueError, match="seed"):
        Emulator(key_seed="")
    assert build_parser().parse_args(["--key-seed", "fixed"]).key_seed == "fixed"
