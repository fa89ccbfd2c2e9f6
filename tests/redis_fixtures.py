"""A real Redis for the shared-cache tests (load with ``pytest_plugins``).

Each server is Debian's ``redis-server`` (``make test`` installs it when missing; set
``REDIS_SERVER`` to use another binary) run as a child process on a free port of 127.0.0.1,
with no persistence. It is ready when it prints "Ready to accept connections": its output is
read as it comes, no sleeps. A missing ``redis-server`` fails the tests, it never skips them.

Test modules import its helpers before pytest loads it as a plugin, so pytest cannot rewrite
its asserts (it has none that need it): PYTEST_DONT_REWRITE.
"""

from __future__ import annotations

import gc
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
import redis

READY = b"Ready to accept connections"
PORT_TAKEN = b"Address already in use"
#: Seconds a server may take to start or stop.
STARTUP_TIMEOUT = 20.0


def redis_server_binary() -> str:
    """The ``redis-server`` to run, or a test failure that says how to get one."""
    binary = os.environ.get("REDIS_SERVER") or shutil.which("redis-server")
    if binary is None:
        pytest.fail(
            "redis-server is not installed, and the shared-cache tests need a real one: "
            "run `make test` (it installs Debian's redis-server), or "
            "`apt-get install redis-server`, or set REDIS_SERVER to its path",
            pytrace=False,
        )
    return binary


def free_port() -> int:
    """A port of 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PortTakenError(RuntimeError):
    """Another process took the port between ``free_port`` and the server's bind."""


@dataclass
class RedisServer:
    """A running ``redis-server`` child process."""

    port: int
    args: tuple[str, ...]
    process: subprocess.Popen[bytes]
    workdir: str
    output: list[bytes] = field(default_factory=list)
    _reader: threading.Thread | None = None

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def client(self, password: str | None = None) -> redis.Redis:
        """A plain synchronous client for looking into the server (close it after use)."""
        return redis.Redis(host=self.host, port=self.port, password=password)

    def cached_values(self) -> dict[bytes, bytes]:
        """Every string value in the server by key: what the caches store, their per-subject
        index sets (sorted sets) left out."""
        with self.client() as client:
            keys = [key for key in client.scan_iter(match="*") if client.type(key) == b"string"]
            return {key: client.get(key) or b"" for key in keys}

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and wait for it; idempotent."""
        if self.running:
            self.process.terminate()
            try:
                self.process.wait(timeout=STARTUP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._close()

    def kill(self) -> None:
        """Kill the server at once (SIGKILL): a Redis that dies mid-run."""
        if self.running:
            self.process.kill()
            self.process.wait()
        self._close()

    def restart(self) -> None:
        """Start a fresh server on the same port and with the same arguments."""
        self.stop()
        started = _start(self.port, self.args)
        self.process, self.workdir = started.process, started.workdir
        self.output, self._reader = started.output, started._reader

    def _close(self) -> None:
        if self._reader is not None:
            self._reader.join(timeout=STARTUP_TIMEOUT)
            self._reader = None
        if self.process.stdout is not None:
            self.process.stdout.close()
        shutil.rmtree(self.workdir, ignore_errors=True)


def _start(port: int, args: tuple[str, ...]) -> RedisServer:
    workdir = tempfile.mkdtemp(prefix="redis-test-")
    # An argument list, no shell: --save "" is a real empty argument (no snapshots).
    command = [
        redis_server_binary(),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--daemonize",
        "no",
        "--dir",
        workdir,
        "--logfile",
        "",
        "--loglevel",
        "notice",
        *args,
    ]
    process = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    server = RedisServer(port=port, args=args, process=process, workdir=workdir)
    ready = threading.Event()

    def read() -> None:
        # Reads until the process exits, so its pipe never fills up; wakes the starter up on
        # readiness or on exit.
        assert process.stdout is not None
        for line in process.stdout:
            server.output.append(line)
            if READY in line:
                ready.set()
        ready.set()

    server._reader = threading.Thread(target=read, name=f"redis-{port}-output", daemon=True)
    server._reader.start()
    if not ready.wait(timeout=STARTUP_TIMEOUT) or not server.running:
        server.stop()
        output = b"".join(server.output)
        if PORT_TAKEN in output:
            raise PortTakenError(port)
        pytest.fail(
            f"redis-server did not start on 127.0.0.1:{port}:\n{output.decode(errors='replace')}",
            pytrace=False,
        )
    return server


def start_redis(*args: str) -> RedisServer:
    """Start ``redis-server`` (with extra ``args``, e.g. ``--requirepass``) on a free port;
    tries a second port if another process took the first one meanwhile."""
    try:
        return _start(free_port(), args)
    except PortTakenError:
        return _start(free_port(), args)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One Redis for the whole session (for tests that do not break it)."""
    server = start_redis()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session's Redis, emptied for this test."""
    with redis_server.client() as client:
        client.flushall()
    return redis_server.url


@pytest.fixture
def redis_factory() -> Iterator[Callable[..., RedisServer]]:
    """Start Redis servers of this test's own (to kill, pause or lock); stopped after it."""
    started: list[RedisServer] = []

    def start(*args: str) -> RedisServer:
        server = start_redis(*args)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def nothing_left_unclosed() -> Iterator[None]:
    """Fail the test if a socket, transport or Redis client was garbage-collected unclosed."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        yield
        gc.collect()
    unclosed = [
        str(w.message)
        for w in caught
        if issubclass(w.category, ResourceWarning) or "unclosed" in str(w.message).lower()
    ]
    assert not unclosed
