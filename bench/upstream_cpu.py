"""Remote mode's cold path: the CPU the app spends per upstream call to Stack Auth.

Run with ``.venv/bin/python bench/upstream_cpu.py`` (``--help`` for options); ``bench/overhead.py``
(``make bench``) runs it too and prints its figures beside the per-request ratios. It starts a
trivial HTTP/1.1 server in a child process on 127.0.0.1 (canned ``/users/me`` and JWKS
answers, each written in one piece, so the server costs next to nothing and runs on the other
core), then, for each variant, a fresh child process that makes ``--calls`` calls from
``--concurrency`` tasks at once. The figure is the measuring process's own CPU time
(``time.process_time``, every thread) divided by the number of calls: what one upstream call
costs the app, whatever the wall clock says.

Variants (those whose packages are missing are skipped, and say so):

- ``app``           the whole cold path: a raw ASGI request through FastAPI to
                    ``Depends(current_user)`` in remote mode, carrying a token never seen
                    before, so the pipeline reads it, misses the cache, checks its signature
                    against the JWKS (loaded at startup) and asks Stack through ``StackClient``
                    on httpx's default transport
- ``client``        ``StackClient.get_current_user`` alone (our request building, retry wrapper
                    and JSON decoding around httpx), no FastAPI, no token checks, no model
- ``bare-httpx``    calibration: ``httpx.AsyncClient.get`` with the library's pool limits
                    (100 connections, 20 kept alive) and ``json.loads``, nothing of ours
- ``bare-aiohttp``  calibration, only when ``aiohttp`` happens to be installed (the library
                    does not use it): ``aiohttp.ClientSession.get`` and ``json.loads``

``app`` minus ``client`` is what FastAPI, the dependency, the token pre-checks, the cache and
the ``StackUser`` model add; ``client`` minus ``bare-httpx`` is ``StackClient``'s own share.
``bench/profile_cold.py`` breaks the ``app`` figure down further.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import platform
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from _common import PROJECT_ID, Signer, asgi_caller, request_headers, stack_claims

VARIANTS = ("app", "client", "bare-httpx", "bare-aiohttp")
#: Pool limits of ``StackClient`` (``_client.py``), given to the bare httpx client too.
MAX_CONNECTIONS, MAX_KEEPALIVE = 100, 20
#: Every child process stops by itself after this many seconds, whatever happens.
CHILD_CAP_SECONDS = 300
SCRIPT = os.path.abspath(__file__)

USER = {
    "id": "3f5c8e21-7a4b-4c9d-8e2f-1a6b3c4d5e6f",
    "primary_email": "bench@example.com",
    "primary_email_verified": True,
    "primary_email_auth_enabled": True,
    "display_name": "Bench User",
    "selected_team": None,
    "selected_team_id": None,
    "profile_image_url": None,
    "signed_up_at_millis": 1_767_225_600_000,
    "last_active_at_millis": 1_767_225_600_000,
    "has_password": True,
    "otp_auth_enabled": False,
    "passkey_auth_enabled": False,
    "client_metadata": None,
    "client_read_only_metadata": None,
    "server_metadata": None,
    "is_anonymous": False,
    "is_restricted": False,
    "restricted_reason": None,
    "oauth_providers": [],
    "auth_with_email": True,
    "requires_totp_mfa": False,
}
#: The project's one signing key, the same in every process of this benchmark.
SIGNER = Signer(secret=0x5EED_BE7C_0FF1CE_CAFE)
SERVER_HEADERS = {
    "x-stack-access-type": "server",
    "x-stack-project-id": PROJECT_ID,
    "x-stack-secret-server-key": "ssk_bench",
    "accept": "application/json",
}
USERS_ME_HEADERS = {
    "x-stack-allow-anonymous-user": "true",
    "x-stack-allow-restricted-user": "true",
}


# --- the upstream: a trivial keep-alive HTTP/1.1 server ------------------------------------------


def _canned_response(answer: Any, cache_control: str = "no-store, max-age=0") -> bytes:
    body = json.dumps(answer, separators=(",", ":")).encode()
    head = (
        "HTTP/1.1 200 OK\r\n"
        "content-type: application/json; charset=utf-8\r\n"
        f"cache-control: {cache_control}\r\n"
        "x-stack-request-id: 0b7a4bd6-1a40-4a9f-9a43-0d2d5b1e2f11\r\n"
        f"content-length: {len(body)}\r\n"
        "\r\n"
    )
    return head.encode() + body


class _Upstream(asyncio.Protocol):
    connections = 0
    response = b""
    jwks = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        _Upstream.connections += 1
        self.transport: Any = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head, self.buffer = self.buffer[:end], self.buffer[end + 4 :]
            if head.startswith(b"GET /_connections "):
                count = str(_Upstream.connections).encode()
                self.transport.write(
                    b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(count), count)
                )
            elif b"/.well-known/jwks.json" in head.split(b"\r\n", 1)[0]:
                self.transport.write(_Upstream.jwks)
            else:
                self.transport.write(_Upstream.response)


async def _serve(fd: int) -> None:
    _Upstream.response = _canned_response(USER)
    _Upstream.jwks = _canned_response(SIGNER.jwks(), "public, max-age=3600")
    sock = socket.socket(fileno=fd)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Upstream, sock=sock)
    stdin_closed = loop.create_future()

    def on_stdin() -> None:  # the parent closes our stdin to stop us
        if not os.read(sys.stdin.fileno(), 1024) and not stdin_closed.done():
            stdin_closed.set_result(None)

    loop.add_reader(sys.stdin.fileno(), on_stdin)
    async with server:
        await asyncio.wait_for(stdin_closed, CHILD_CAP_SECONDS)


# --- one variant, in its own process -------------------------------------------------------


def cold_tokens(url: str, count: int) -> list[str]:
    """``count`` distinct tokens of ``USER`` for the project, signed with the served key (remote
    mode checks the signature against the JWKS before it asks Stack)."""
    issuer = f"{url}/api/v1/projects/{PROJECT_ID}"
    return [SIGNER.sign(stack_claims(USER["id"], issuer)) for _ in range(count)]


async def _app_call(url: str) -> tuple[Any, Any]:
    """The ``app`` variant: a started ``StackAuth`` and a caller taking one fresh token."""
    from fastapi import Depends, FastAPI

    from fastapi_stack_auth import StackAuth, StackUser, current_user

    stack = StackAuth(
        project_id=PROJECT_ID,
        secret_server_key="ssk_bench",
        api_url=url,
        cache_ttl=3600,
        http_timeout=30,
        check_keys_on_startup=False,
    )
    app = FastAPI()
    stack.init_app(app)

    @app.get("/")
    async def protected(user: StackUser = Depends(current_user)) -> dict[str, bool]:
        return {"ok": user is not None}

    await stack.start()
    if not stack.jwks.loaded:  # else the signature pre-check would be skipped
        raise SystemExit("app: the JWKS did not load")
    call = asgi_caller(app)

    async def one(token: str) -> None:
        status = await call(request_headers(token))
        if status != 200:
            raise SystemExit(f"app: HTTP {status}")

    return stack, one


async def _measure(variant: str, url: str, calls: int, concurrency: int) -> dict[str, Any]:
    import httpx

    warmup = max(concurrency * 4, calls // 10)
    tokens = iter(cold_tokens(url, warmup + calls))
    closers: list[Any] = []
    if variant == "app":
        stack, one_call = await _app_call(url)
        closers.append(stack.stop)
    elif variant == "client":
        from fastapi_stack_auth import StackAuthSettings
        from fastapi_stack_auth._client import StackClient

        settings = StackAuthSettings(
            project_id=PROJECT_ID, secret_server_key="ssk_bench", api_url=url, http_timeout=30
        )
        client = StackClient(settings)
        await client.open()
        closers.append(client.aclose)

        async def one_call(token: str) -> None:
            await client.get_current_user(token)

    elif variant == "bare-httpx":
        http = httpx.AsyncClient(
            base_url=f"{url}/api/v1",
            headers=SERVER_HEADERS,
            timeout=30,
            limits=httpx.Limits(
                max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_KEEPALIVE
            ),
        )
        closers.append(http.aclose)

        async def one_call(token: str) -> None:
            response = await http.get(
                "/users/me", headers={**USERS_ME_HEADERS, "x-stack-access-token": token}
            )
            json.loads(response.content)

    elif variant == "bare-aiohttp":
        import aiohttp

        session = aiohttp.ClientSession(
            headers=SERVER_HEADERS, connector=aiohttp.TCPConnector(limit=MAX_CONNECTIONS)
        )
        closers.append(session.close)

        async def one_call(token: str) -> None:
            headers = {**USERS_ME_HEADERS, "x-stack-access-token": token}
            async with session.get(f"{url}/api/v1/users/me", headers=headers) as response:
                json.loads(await response.read())

    else:
        raise SystemExit(f"unknown variant {variant!r}")

    async def run(total: int) -> None:
        remaining = total

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                await one_call(next(tokens))

        await asyncio.gather(*(worker() for _ in range(concurrency)))

    await run(warmup)  # connections, imports, caches
    cpu, wall = time.process_time(), time.perf_counter()
    await run(calls)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    for close in reversed(closers):
        await close()
    return {"cpu_us": cpu / calls * 1e6, "calls_per_s": calls / wall}


def _child(variant: str, url: str, calls: int, concurrency: int) -> None:
    result = asyncio.run(
        asyncio.wait_for(_measure(variant, url, calls, concurrency), CHILD_CAP_SECONDS)
    )
    print(json.dumps(result), flush=True)


# --- the driver ---------------------------------------------------------------------------------


def available(variant: str) -> bool:
    if variant == "bare-aiohttp":
        return importlib.util.find_spec("aiohttp") is not None
    return True


class Upstream:
    """The trivial server, in a child process, and the count of connections it accepted."""

    def __init__(self, url: str) -> None:
        self.url = url

    def connections(self) -> int:
        import httpx

        return int(httpx.get(f"{self.url}/_connections", timeout=10).text)


@contextmanager
def upstream() -> Iterator[Upstream]:
    """Serve ``USER`` on a free loopback port from a child process until the block ends."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(256)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = subprocess.Popen(  # noqa: S603 - this very script
        [sys.executable, SCRIPT, "--serve-fd", str(sock.fileno())],
        pass_fds=[sock.fileno()],
        stdin=subprocess.PIPE,
    )
    sock.close()
    try:
        yield Upstream(url)
    finally:
        assert server.stdin is not None
        server.stdin.close()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def measure(
    variants: Sequence[str], calls: int, concurrency: int, server: Upstream
) -> dict[str, dict[str, Any]]:
    """Each available variant in a fresh child process: ``{variant: result}``, where a result
    has ``cpu_us`` (CPU per call), ``calls_per_s``, ``connections`` (opened by the variant)
    or ``skipped`` / ``failed`` (a reason)."""
    results: dict[str, dict[str, Any]] = {}
    for variant in variants:
        if not available(variant):
            results[variant] = {"skipped": "aiohttp is not installed"}
            continue
        before = server.connections()
        command = [sys.executable, SCRIPT, "--child", variant, "--url", server.url]
        command += ["--calls", str(calls), "--concurrency", str(concurrency)]
        out = subprocess.run(  # noqa: S603 - this very script
            command, capture_output=True, text=True, timeout=CHILD_CAP_SECONDS + 30
        )
        if out.returncode != 0:
            results[variant] = {"failed": out.stderr.strip().splitlines()[-1:] or ["?"]}
            continue
        result = json.loads(out.stdout.strip().splitlines()[-1])
        result["connections"] = server.connections() - before - 1  # minus our own count request
        results[variant] = result
    return results


def versions() -> str:
    import httpcore
    import httpx

    return f"httpx {httpx.__version__}, httpcore {httpcore.__version__}"


def format_row(variant: str, result: dict[str, Any]) -> str:
    if "skipped" in result:
        return f"{variant:<14} (row skipped: {result['skipped']})"
    if "failed" in result:
        return f"{variant:<14} FAILED: {result['failed'][0]}"
    return (
        f"{variant:<14} {result['cpu_us'] / 1000:>12.2f} {result['calls_per_s']:>9.0f} "
        f"{result['connections']:>12}"
    )


HEADER = f"{'variant':<14} {'CPU ms/call':>12} {'calls/s':>9} {'connections':>12}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000, help="timed calls per variant")
    parser.add_argument("--concurrency", type=int, default=32, help="callers at once")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated")
    parser.add_argument("--serve-fd", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.serve_fd is not None:
        asyncio.run(_serve(args.serve_fd))
        return 0
    if args.child:
        _child(args.child, args.url, args.calls, args.concurrency)
        return 0

    print(
        f"CPU per upstream call: {args.calls} calls, {args.concurrency} at once, against a "
        f"trivial server on 127.0.0.1 (Python {platform.python_version()}, {versions()}, "
        f"{os.cpu_count()} cores)"
    )
    print(HEADER)
    with upstream() as server:
        results = measure(args.variants.split(","), args.calls, args.concurrency, server)
    for variant, result in results.items():
        print(format_row(variant, result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
