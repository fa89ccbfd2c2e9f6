"""The example app stops cleanly mid-load: a real uvicorn process, a real (emulated) Stack Auth
that holds every ``/users/me`` call until the test lets it go, and SIGINT or SIGTERM while
requests wait on it.

Nothing here sleeps to synchronise: the emulator reports each held call, uvicorn's own log
line says when it has begun its graceful shutdown, and only then are the calls released.
"""

from __future__ import annotations

import asyncio
import http.client
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from fastapi_stack_auth.emulator import Emulator
from fastapi_stack_auth.emulator._cli import app_environment
from tests.servers import ROOT, listening_socket, serve_in_thread, url_of

IN_FLIGHT = 6
#: Bounds every wait of this test, so a regression fails it instead of hanging it.
TIMEOUT = 30
BAD_OUTPUT = ("Traceback", "Unclosed", "Task was destroyed", "ERROR", "Exception")


class Gate:
    """An ASGI wrapper around the emulator that holds ``GET /api/v1/users/me`` until opened."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.held = 0
        self.arrived = threading.Condition()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._open: asyncio.Event | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/api/v1/users/me":
            if self._open is None:
                self._loop, self._open = asyncio.get_running_loop(), asyncio.Event()
            with self.arrived:
                self.held += 1
                self.arrived.notify_all()
            await self._open.wait()
        await self.app(scope, receive, send)

    def wait_for(self, count: int) -> None:
        with self.arrived:
            assert self.arrived.wait_for(lambda: self.held >= count, TIMEOUT), self.held

    def open(self) -> None:
        assert self._loop is not None
        assert self._open is not None
        self._loop.call_soon_threadsafe(self._open.set)


class AppProcess:
    """``uvicorn example_app.main:app`` whose output is read line by line as it comes."""

    def __init__(self, env: dict[str, str]) -> None:
        self.sock = listening_socket()
        self.url = url_of(self.sock)
        fd = self.sock.fileno()
        child_env = {k: v for k, v in os.environ.items() if not k.startswith("STACK_")}
        # ResourceWarnings (unclosed clients or sockets) are shown.
        child_env.update(env, PYTHONWARNINGS="default")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "example_app.main:app", "--fd", str(fd)],
            cwd=ROOT,
            env=child_env,
            pass_fds=[fd],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._seen = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._seen:
                self.lines.append(line.rstrip("\n"))
                self._seen.notify_all()

    def wait_for_line(self, text: str) -> None:
        with self._seen:
            found = self._seen.wait_for(lambda: any(text in x for x in self.lines), TIMEOUT)
        assert found, f"no {text!r} in the app's output:\n" + self.output

    @property
    def output(self) -> str:
        with self._seen:
            return "\n".join(self.lines)

    def stop(self) -> int:
        try:
            code = self.process.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self._reader.join(TIMEOUT)
        self.sock.close()
        return code


@contextmanager
def gated_emulator() -> Iterator[tuple[Emulator, Gate, str]]:
    emulator = Emulator()
    gate = Gate(emulator.app)
    with serve_in_thread(gate) as url:
        emulator.public_url = url  # the tokens' issuer
        try:
            yield emulator, gate, url
        finally:
            if gate._open is not None:
                gate.open()  # never leave a held request behind


def _get(url: str, token: str) -> httpx.Response | Exception:
    try:
        with httpx.Client(base_url=url, timeout=TIMEOUT) as client:
            return client.get("/me", headers={"Authorization": f"Bearer {token}"})
    except httpx.HTTPError as exc:
        return exc


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_app_shuts_down_cleanly_with_requests_in_flight(sig: signal.Signals) -> None:
    with gated_emulator() as (emulator, gate, _):
        users = [emulator.create_user() for _ in range(IN_FLIGHT)]
        tokens = [emulator.sign_in(user.id).access_token for user in users]
        app = AppProcess(app_environment(emulator))
        signalled = False
        try:
            # An idle keep-alive connection: the server must close it when it stops.
            host, port = app.sock.getsockname()[:2]
            idle = http.client.HTTPConnection(host, port, timeout=TIMEOUT)
            idle.request("GET", "/")
            first = idle.getresponse()
            assert first.status == 200  # the lifespan has run
            first.read()
            with ThreadPoolExecutor(IN_FLIGHT) as pool:
                futures = [pool.submit(_get, app.url, token) for token in tokens]
                gate.wait_for(IN_FLIGHT)  # every request waits on Stack Auth now
                app.process.send_signal(sig)
                signalled = True
                app.wait_for_line("Waiting for connections to close")
                # The idle connection is closed at once; the busy ones are still served.
                assert idle.sock is not None
                assert idle.sock.recv(1) == b""
                gate.open()
                answers = [future.result(timeout=TIMEOUT) for future in futures]
            idle.close()
        finally:
            if gate._open is not None:
                gate.open()
            if not signalled:
                app.process.send_signal(signal.SIGINT)
            code = app.stop()

    output = app.output
    for answer in answers:
        # 503 would be acceptable too (Stack Auth gone while shutting down); a reset is not.
        assert isinstance(answer, httpx.Response), f"{answer!r}\n{output}"
        assert answer.status_code in (200, 503), answer.text
    # Here every call gets its answer: uvicorn waits for in-flight requests, and the shared
    # client is closed only after them (lifespan shutdown).
    assert [a.status_code for a in answers if isinstance(a, httpx.Response)] == [200] * IN_FLIGHT
    assert emulator.calls["GET /users/me"] == IN_FLIGHT
    # uvicorn re-raises the signal it caught once it has shut down: SIGINT ends as a handled
    # KeyboardInterrupt (exit 0), SIGTERM as a process ended by SIGTERM, after the same
    # graceful shutdown.
    assert code == (0 if sig == signal.SIGINT else -signal.SIGTERM), output
    assert "Application shutdown complete." in output
    assert "Finished server process" in output
    bad = [line for line in output.splitlines() if any(b in line for b in BAD_OUTPUT)]
    assert not bad, output
    print(output)
