"""Real servers on loopback for tests: an ASGI app in a thread, an app in a uvicorn process, or
a raw asyncio stream handler in the test's own event loop (to send what no HTTP server would).

Each listening socket is bound and listening *before* the server starts, so a client can
connect at once: the kernel queues the connection until the server accepts it. No polling,
no sleeps.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn

ROOT = Path(__file__).resolve().parent.parent


def listening_socket() -> socket.socket:
    """A TCP socket bound to a free port on 127.0.0.1, already listening."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{host}:{port}"


@contextmanager
def serve_in_thread(app: Any) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a background thread; yields its base URL."""
    sock = listening_socket()
    config = uvicorn.Config(app, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])))
    thread.start()
    try:
        yield url_of(sock)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@dataclass
class UvicornProcess:
    """A running ``uvicorn`` child process and what it printed once stopped."""

    url: str
    process: subprocess.Popen[bytes]
    output: bytes = field(default=b"")


@contextmanager
def uvicorn_process(app_path: str, env: Mapping[str, str]) -> Iterator[UvicornProcess]:
    """Run ``uvicorn app_path`` in a child process on a pre-bound loopback socket."""
    sock = listening_socket()
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("STACK_")}
    child_env.update(env)
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", app_path, "--fd", str(sock.fileno())],
        cwd=ROOT,
        env=child_env,
        pass_fds=[sock.fileno()],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    running = UvicornProcess(url=url_of(sock), process=process)
    try:
        yield running
    finally:
        process.send_signal(signal.SIGINT)
        try:
            running.output, _ = process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            running.output, _ = process.communicate()
        sock.close()


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def raw_server(handler: Handler) -> AsyncIterator[str]:
    """Serve raw bytes with ``handler`` on 127.0.0.1 in the running loop; yields its base URL."""
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()


async def read_request(reader: asyncio.StreamReader) -> tuple[str, dict[str, str], bytes]:
    """One HTTP/1.1 request: its request line, headers (lower-cased names) and body."""
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
    line, *fields = head.split("\r\n")[:-2]
    headers = {}
    for field_line in fields:
        name, _, value = field_line.partition(":")
        headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return line, headers, body


def http_response(status: int, body: bytes, *headers: str) -> bytes:
    """An HTTP/1.1 response with a Content-Length and any extra ``name: value`` headers."""
    head = [f"HTTP/1.1 {status} X", f"content-length: {len(body)}", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body
