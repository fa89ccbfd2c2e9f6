"""CPU spent in this process per upstream call of ``StackClient``, under concurrent callers.

Run with ``.venv/bin/python bench/upstream_cpu.py`` (``--help`` for options). It starts a
trivial HTTP/1.1 server in a child process on 127.0.0.1 (a canned ``/users/me`` answer, so the
server costs next to nothing and runs on the other core), then, for each variant, a fresh child
process that opens a ``StackClient`` and makes ``--calls`` calls of ``get_current_user`` from
``--concurrency`` tasks at once. The figure is the measuring process's own CPU time
(``time.process_time``) divided by the number of calls: what one upstream call costs the app,
whatever the wall clock says.

Variants (those whose packages are missing are skipped):

- ``default``            ``StackClient`` exactly as the library opens it (what it picks here)
- ``httpx``              httpx's own transport (httpcore) with the library's limits
                         (100 connections, 20 kept alive)
- ``httpx-pooled``       httpx's own transport, every connection kept alive (100/100)
- ``httpx-8``            httpx's own transport, at most 8 connections
- ``aiohttp``            the library's aiohttp session under the httpx API (``_transport.py``)
- ``httpx-aiohttp``      the ``httpx-aiohttp`` package's transport, for comparison
- ``bare-aiohttp``       calibration: ``aiohttp.ClientSession.get`` with no httpx at all

``--no-sniffio`` runs the httpx variants as if the ``sniffio`` package were not installed (a
failed import that searches ``sys.path``, as a real miss does); without the flag the httpx
variants run both ways when ``sniffio`` is installed. httpcore imports ``sniffio`` each time it
sets up a lock or a cancellation shield, several times per request, and Python does not cache a
failed import.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import platform
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

PROJECT_ID = "6f0c2a9e-4b7d-4e1a-9c3f-2d8b5e7a1f40"
VARIANTS = (
    "default",
    "httpx",
    "httpx-pooled",
    "httpx-8",
    "aiohttp",
    "httpx-aiohttp",
    "bare-aiohttp",
)
HTTPX_VARIANTS = ("httpx", "httpx-pooled", "httpx-8")
LIMITS = {"httpx": (100, 20), "httpx-pooled": (100, 100), "httpx-8": (8, 8)}
#: Every child process stops by itself after this many seconds, whatever happens.
CHILD_CAP_SECONDS = 300

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


# --- the upstream: a trivial keep-alive HTTP/1.1 server ------------------------------------------


def _canned_response() -> bytes:
    body = json.dumps(USER, separators=(",", ":")).encode()
    head = (
        "HTTP/1.1 200 OK\r\n"
        "content-type: application/json; charset=utf-8\r\n"
        "cache-control: no-store, max-age=0\r\n"
        "x-stack-request-id: 0b7a4bd6-1a40-4a9f-9a43-0d2d5b1e2f11\r\n"
        f"content-length: {len(body)}\r\n"
        "\r\n"
    )
    return head.encode() + body


class _Upstream(asyncio.Protocol):
    connections = 0
    response = b""

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
            else:
                self.transport.write(_Upstream.response)


async def _serve(fd: int) -> None:
    _Upstream.response = _canned_response()
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


class _HideSniffio(importlib.abc.MetaPathFinder):
    """Makes ``import sniffio`` fail the way it does when the package is not installed."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name == "sniffio" or name.startswith("sniffio."):
            # What a real miss costs: every sys.path entry is searched, then the import fails.
            importlib.machinery.PathFinder.find_spec("sniffio_is_not_installed", path)
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


async def _measure(variant: str, url: str, calls: int, concurrency: int) -> dict[str, Any]:
    import httpx

    from fastapi_stack_auth import StackAuthSettings, StackClient

    settings = StackAuthSettings(
        project_id=PROJECT_ID, secret_server_key="ssk_bench", api_url=url, http_timeout=30
    )
    session: Any = None
    transport: httpx.AsyncBaseTransport | None = None
    if variant in LIMITS:
        most, alive = LIMITS[variant]
        limits = httpx.Limits(max_connections=most, max_keepalive_connections=alive)
        transport = httpx.AsyncHTTPTransport(limits=limits)
    elif variant == "aiohttp":
        from fastapi_stack_auth._transport import AiohttpTransport

        transport = AiohttpTransport(max_connections=100)
    elif variant == "httpx-aiohttp":
        import aiohttp
        from httpx_aiohttp import AiohttpTransport as PackageTransport

        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100))
        transport = PackageTransport(client=session)
    elif variant == "bare-aiohttp":
        import aiohttp

        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100))

    headers = {
        "x-stack-access-type": "server",
        "x-stack-project-id": PROJECT_ID,
        "x-stack-secret-server-key": "ssk_bench",
        "x-stack-allow-anonymous-user": "true",
        "x-stack-allow-restricted-user": "true",
        "x-stack-access-token": "eyJhbGciOiJFUzI1NiJ9.e30.c2ln",
    }
    client = StackClient(settings, transport=transport)

    async def one_call() -> None:
        if variant == "bare-aiohttp":
            async with session.get(f"{url}/api/v1/users/me", headers=headers) as response:
                json.loads(await response.read())
        else:
            await client.get_current_user("eyJhbGciOiJFUzI1NiJ9.e30.c2ln")

    async def run(total: int) -> None:
        remaining = total

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                await one_call()

        await asyncio.gather(*(worker() for _ in range(concurrency)))

    async with client:
        await run(max(concurrency * 4, calls // 10))  # warm-up: connections, imports, caches
        cpu, wall = time.process_time(), time.perf_counter()
        await run(calls)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        http = client._http
        picked = type(http._transport).__name__ if http is not None else "?"
    if session is not None:
        await session.close()
    return {"cpu_us": cpu / calls * 1e6, "calls_per_s": calls / wall, "transport": picked}


def _child(variant: str, url: str, calls: int, concurrency: int, hide_sniffio: bool) -> None:
    if hide_sniffio:
        sys.modules.pop("sniffio", None)
        sys.meta_path.insert(0, _HideSniffio())
    result = asyncio.run(
        asyncio.wait_for(_measure(variant, url, calls, concurrency), CHILD_CAP_SECONDS)
    )
    print(json.dumps(result), flush=True)


# --- the driver ---------------------------------------------------------------------------------


def _connections(url: str) -> int:
    import httpx

    return int(httpx.get(f"{url}/_connections", timeout=10).text)


def _available(variant: str) -> bool:
    if variant == "httpx-aiohttp":
        return all(importlib.util.find_spec(m) for m in ("aiohttp", "httpx_aiohttp"))
    if variant in ("aiohttp", "bare-aiohttp"):
        return importlib.util.find_spec("aiohttp") is not None
    return True


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=4000, help="timed calls per variant")
    parser.add_argument("--concurrency", type=int, default=32, help="callers at once")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated")
    parser.add_argument("--no-sniffio", action="store_true", help="httpx variants without sniffio")
    parser.add_argument("--serve-fd", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--hide-sniffio", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.serve_fd is not None:
        asyncio.run(_serve(args.serve_fd))
        return 0
    if args.child:
        _child(args.child, args.url, args.calls, args.concurrency, args.hide_sniffio)
        return 0

    sniffio_installed = importlib.util.find_spec("sniffio") is not None
    import httpcore
    import httpx

    print(
        f"Upstream CPU per call of StackClient: {args.calls} calls, {args.concurrency} at once, "
        f"against a trivial server on 127.0.0.1 (Python {platform.python_version()}, httpx "
        f"{httpx.__version__}, httpcore {httpcore.__version__}, sniffio "
        f"{'installed' if sniffio_installed else 'NOT installed'}, {os.cpu_count()} cores)"
    )
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(256)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = subprocess.Popen(  # noqa: S603 - this very script
        [sys.executable, __file__, "--serve-fd", str(sock.fileno())],
        pass_fds=[sock.fileno()],
        stdin=subprocess.PIPE,
    )
    sock.close()
    print(f"{'variant':<30} {'CPU us/call':>12} {'calls/s':>9} {'connections':>12}")
    try:
        for variant in args.variants.split(","):
            if not _available(variant):
                print(f"{variant:<30} (skipped: not installed)")
                continue
            modes = [False]  # without sniffio installed, the httpx variants miss it for real
            if variant in HTTPX_VARIANTS and sniffio_installed:
                modes = [True] if args.no_sniffio else [True, False]
            for hide in modes:
                label = variant
                if variant in HTTPX_VARIANTS:
                    label += " without sniffio" if hide or not sniffio_installed else ""
                before = _connections(url)
                command = [sys.executable, __file__, "--child", variant, "--url", url]
                command += ["--calls", str(args.calls), "--concurrency", str(args.concurrency)]
                if hide:
                    command.append("--hide-sniffio")
                out = subprocess.run(  # noqa: S603 - this very script
                    command, capture_output=True, text=True, timeout=CHILD_CAP_SECONDS + 30
                )
                if out.returncode != 0:
                    print(f"{label:<30} FAILED\n{out.stderr}")
                    continue
                result = json.loads(out.stdout.strip().splitlines()[-1])
                opened = _connections(url) - before - 1  # minus our own count request
                if variant == "default":
                    label += f" ({result['transport']})"
                print(
                    f"{label:<30} {result['cpu_us']:>12.0f} {result['calls_per_s']:>9.0f} "
                    f"{opened:>12}",
                    flush=True,
                )
    finally:
        assert server.stdin is not None
        server.stdin.close()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
