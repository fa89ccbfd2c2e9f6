"""The emulator's command line, its banner and seed file, and the ``make run`` launcher."""

from __future__ import annotations

import json
import os
import queue
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from example_app.dev import _apply_defaults, browser_settings, stack_settings_present
from fastapi_stack_auth.emulator import (
    DEFAULT_PROJECT_ID,
    DEFAULT_SECRET_SERVER_KEY,
    DEMO_EMAIL,
    DEMO_PASSWORD,
    DEMO_TEAM_ID,
    Emulator,
    EmulatorServer,
    Seed,
    is_loopback,
)
from fastapi_stack_auth.emulator._cli import banner, main
from fastapi_stack_auth.testing import EmulatedStack

ROOT = Path(__file__).resolve().parent.parent


def test_loopback_addresses() -> None:
    for host in ("127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"):
        assert is_loopback(host), host
    for host in ("0.0.0.0", "::", "192.168.1.10", "example.com"):
        assert not is_loopback(host), host


def test_refuses_a_non_loopback_address(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--host", "0.0.0.0", "--port", "0"]) == 2
    assert "--allow-remote" in capsys.readouterr().err


def _run_curl(line: str) -> httpx.Response:
    """Send what a printed ``curl`` line sends (its -X, -H and -d options and its URL)."""
    words = shlex.split(line)
    assert words[0] == "curl"
    method, headers, data, url = "GET", {}, None, words[-1]
    for option, value in zip(words[1:-1:2], words[2:-1:2], strict=True):
        if option == "-X":
            method = value
        elif option == "-H":
            name, _, header_value = value.partition(": ")
            headers[name] = header_value
        else:
            assert option == "-d"
            data = value
    return httpx.request(method, url, headers=headers, content=data)


def test_banner() -> None:
    emulator = Emulator(public_url="http://127.0.0.1:8102")
    text = banner(emulator, app_url="http://127.0.0.1:8000", app_route="/me", ttl=600)
    assert "FOR LOCAL DEVELOPMENT AND TESTS ONLY" in text
    for value in (DEFAULT_PROJECT_ID, DEFAULT_SECRET_SERVER_KEY, DEMO_EMAIL, DEMO_PASSWORD):
        assert value in text
    assert "export STACK_API_URL=http://127.0.0.1:8102" in text
    # The bare token has a line of its own, the only one that starts with "ey" (for grep/sed).
    lines = text.splitlines()
    (token,) = [line for line in lines if line.startswith("ey")]
    assert re.fullmatch(r"[\w-]+\.[\w-]+\.[\w-]+", token)
    assert f"Authorization: Bearer {token}' http://127.0.0.1:8000/me" in text
    curls = [line.strip() for line in lines if line.strip().startswith("curl ")]
    who, sign_in = (next(c for c in curls if path in c) for path in ("/users/me", "/sign-in"))
    with EmulatorServer(emulator, public_url="http://127.0.0.1:8102") as server:
        # The printed lines work as pasted (pointed at this test's port).
        def run(line: str) -> httpx.Response:
            return _run_curl(line.replace("http://127.0.0.1:8102", server.url))

        # The token and the "who is it" curl line: the demo user.
        assert run(who).json()["primary_email"] == DEMO_EMAIL
        stack = EmulatedStack(emulator, server.url)
        response = httpx.get(f"{server.url}/api/v1/users/me", headers=stack.server_headers(token))
        assert response.json()["primary_email"] == DEMO_EMAIL
        # The sign-in curl line: a password sign-in that hands out a new token.
        signed_in = run(sign_in)
        assert signed_in.status_code == 200, signed_in.text
        assert signed_in.json()["user_id"] == response.json()["id"]
        assert signed_in.json()["access_token"] != token


def test_banner_shows_the_demo_team_an_api_key_and_authorization_curls() -> None:
    emulator = Emulator(public_url="http://127.0.0.1:8102")
    text = banner(emulator, app_url="http://127.0.0.1:8000", app_route="/me", ttl=600)
    lines = text.splitlines()
    assert DEMO_TEAM_ID in lines  # alone on its line
    (key,) = [line for line in lines if line.startswith("sk_")]
    assert len(key) == 102
    (token,) = [line for line in lines if line.startswith("ey")]
    curls = [line.strip() for line in lines if line.strip().startswith("curl ")]
    bearer = f"-H 'Authorization: Bearer {token}'"
    assert f"curl -X DELETE {bearer} http://127.0.0.1:8000/teams/{DEMO_TEAM_ID}/docs/demo" in curls
    assert f"curl {bearer} http://127.0.0.1:8000/admin/stats" in curls
    assert f"curl -X POST -H 'x-stack-api-key: {key}' http://127.0.0.1:8000/ingest" in curls
    # What those routes ask Stack about holds for the demo user and the printed key.
    with EmulatorServer(emulator, public_url="http://127.0.0.1:8102") as server:
        stack = EmulatedStack(emulator, server.url)
        api = f"{server.url}/api/v1"
        user_id = emulator.project.user_by_auth_email(DEMO_EMAIL).id  # type: ignore[union-attr]
        checked = httpx.post(
            f"{api}/user-api-keys/check", json={"api_key": key}, headers=stack.server_headers()
        )
        assert checked.json()["user_id"] == user_id
        query = {"team_id": DEMO_TEAM_ID, "user_id": "me", "recursive": "true"}
        query["permission_id"] = "docs:delete"
        team = httpx.get(
            f"{api}/team-permissions", params=query, headers=stack.server_headers(token)
        )
        assert len(team.json()["items"]) == 1
        query = {"user_id": "me", "permission_id": "admin", "recursive": "true"}
        admin = httpx.get(
            f"{api}/project-permissions", params=query, headers=stack.server_headers(token)
        )
        assert len(admin.json()["items"]) == 1
    # Without an app: the team and the key, no app curls.
    plain = banner(Emulator(), ttl=600)
    assert DEMO_TEAM_ID in plain.splitlines()
    assert "/ingest" not in plain


def test_permission_flags_reach_the_default_project(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--port", "0", "--team-permission", "a=missing"]) == 2
    assert "'a' contains 'missing'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--project-permission", "Not:Valid"])
    assert "not a permission ID" in capsys.readouterr().err


def test_seed_file(tmp_path: Path) -> None:
    path = tmp_path / "seed.json"
    path.write_text(
        json.dumps(
            {
                "projects": [
                    {
                        "id": "internal",
                        "secret_server_keys": ["ssk_1"],
                        "config": {"require_email_verification": True},
                        "users": [
                            {
                                "email": "a@example.com",
                                "password": "pw-123456",
                                "display_name": "A",
                            },
                            {"email": "b@example.com", "email_verified": False},
                            {"anonymous": True},
                        ],
                    }
                ],
            }
        )
    )
    emulator = Emulator(Seed.from_file(path))
    assert emulator.project_id == "internal"
    users = sorted(emulator.project.users.values(), key=lambda u: u.primary_email or "~")
    assert [emulator.project.restricted_reason(u) for u in users] == [
        None,
        "email_not_verified",
        "anonymous",
    ]
    for bad in ({"x": 1}, {"config": {"sign_up_enabled": False, "x": 1}}):
        path.write_text(json.dumps({"projects": [{"id": "p", "secret_server_keys": ["k"], **bad}]}))
        with pytest.raises(ValidationError):
            Seed.from_file(path)


def test_real_settings_are_detected(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    assert stack_settings_present({}, env_file) == (False, [])
    env_file.write_text("STACK_PROJECT_ID=p\n")
    assert stack_settings_present({}, env_file) == (False, ["STACK_PROJECT_ID"])
    assert stack_settings_present({"STACK_SECRET_SERVER_KEY": "k"}, env_file)[0] is True
    assert stack_settings_present({"STACK_VERIFY": "jwt"}, env_file)[0] is True


# --- the launcher as a real process, stopped with SIGINT (Ctrl-C) -----------------------------


class Child:
    """A child process whose merged output is read line by line in a thread."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path) -> None:
        self.process = subprocess.Popen(
            args,
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def wait_for(self, pattern: str, timeout: float = 30) -> re.Match[str]:
        """Block until a line matches ``pattern`` (fails at EOF or after ``timeout``)."""
        deadline = time.monotonic() + timeout
        while True:
            line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            if line is None:
                raise AssertionError(
                    "exited before printing " + pattern + "\n" + "".join(self.output)
                )
            self.output.append(line)
            match = re.search(pattern, line)
            if match:
                return match

    def rest(self) -> str:
        while (line := self.lines.get(timeout=30)) is not None:
            self.output.append(line)
        return "".join(self.output)


@contextmanager
def child(args: list[str], **env: str) -> Iterator[Child]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("STACK_")}
    clean.update(env, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    proc = Child([sys.executable, *args], clean, cwd=Path(__file__).parent)  # no .env there
    try:
        yield proc
    finally:
        if proc.process.poll() is None:
            proc.process.kill()
            proc.process.wait()


def refused(url: str) -> bool:
    host, port = url.removeprefix("http://").split(":")
    with socket.socket() as sock:
        return sock.connect_ex((host, int(port))) != 0


def test_make_run_launcher_with_emulator_and_ctrl_c() -> None:
    with child(["-m", "example_app.dev", "--port", "0", "--emulator-port", "0"]) as proc:
        api = proc.wait_for(r"API URL \(STACK_API_URL\)\s+(http://\S+)").group(1)
        token = proc.wait_for(r"Authorization: Bearer ([\w.-]+)' (http://\S+)/me")
        app = token.group(2)
        proc.wait_for(r"Application startup complete")
        response = httpx.get(f"{app}/me", headers={"Authorization": f"Bearer {token.group(1)}"})
        assert response.status_code == 200, response.text
        assert response.json()["email"] == DEMO_EMAIL
        assert httpx.get(f"{app}/me").status_code == 401
        assert httpx.get(f"{api}/health").headers["x-stack-emulator"]

        proc.process.send_signal(signal.SIGINT)
        assert proc.process.wait(timeout=30) == 0
        output = proc.rest()
    assert "Stack Auth emulator stopped." in output
    assert "Traceback" not in output
    assert refused(api)
    assert refused(app)


def test_make_run_launcher_with_real_settings() -> None:
    """With STACK_PROJECT_ID/STACK_SECRET_SERVER_KEY set, only the app runs, against them."""
    with EmulatorServer() as upstream:  # stands in for a real Stack Auth project
        stack = EmulatedStack(upstream.emulator, upstream.url)
        user = stack.create_user()
        with child(["-m", "example_app.dev", "--port", "0"], **stack.env()) as proc:
            proc.wait_for("Using your Stack Auth project")
            app = proc.wait_for(r"Uvicorn running on (http://\S+)").group(1)
            response = httpx.get(f"{app}/me", headers=user.headers)
            assert response.status_code == 200, response.text
            assert response.json()["id"] == user.id
            proc.process.send_signal(signal.SIGINT)
            assert proc.process.wait(timeout=30) == 0
            output = proc.rest()
    assert "STACK AUTH EMULATOR" not in output
    assert "Traceback" not in output


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_emulator_command_stops_on_a_signal(signum: int) -> None:
    origin = "https://app.example"
    args = ["--port", "0", "--key-seed", "k", "--cors-origin", origin]
    with child(["-m", "fastapi_stack_auth.emulator", *args]) as proc:
        api = proc.wait_for(r"API URL \(STACK_API_URL\)\s+(http://\S+)").group(1)
        proc.wait_for("Ctrl-C stops everything")
        assert httpx.get(f"{api}/health").status_code == 200
        # --key-seed and --cors-origin reach the emulator.
        jwks = httpx.get(f"{api}/api/v1/projects/{DEFAULT_PROJECT_ID}/.well-known/jwks.json")
        assert jwks.json() == Emulator(key_seed="k").jwks()
        current = httpx.get(f"{api}/api/v1/projects/current", headers={"origin": origin})
        assert current.headers["access-control-allow-origin"] == origin
        proc.process.send_signal(signum)
        assert proc.process.wait(timeout=30) == 0
        output = proc.rest()
    assert "Stack Auth emulator stopped." in output
    assert "Traceback" not in output
    assert refused(api)


# --- without uvicorn (it is only in the [testing] extra) --------------------------------------

#: Python code that makes ``import uvicorn`` fail, as on an install without the extra.
NO_UVICORN = "import sys; sys.modules['uvicorn'] = None; "


def run_without_uvicorn(code: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", NO_UVICORN + code],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_the_command_without_uvicorn_says_what_to_install() -> None:
    result = run_without_uvicorn(
        "import runpy; runpy.run_module('fastapi_stack_auth.emulator', run_name='__main__')"
    )
    assert result.returncode != 0
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert "pip install 'fastapi-stack-auth[testing]'" in line
    assert "Traceback" not in result.stderr


def test_the_emulator_works_in_process_without_uvicorn() -> None:
    result = run_without_uvicorn(
        "import asyncio, httpx\n"
        "from fastapi_stack_auth.emulator import Emulator, EmulatorServer\n"
        "async def main():\n"
        "    emulator = Emulator(public_url='http://localhost')\n"
        "    transport = httpx.ASGITransport(app=emulator.app)\n"
        "    async with httpx.AsyncClient(transport=transport, base_url='http://localhost') as c:\n"
        "        print((await c.get('/health')).status_code)\n"
        "asyncio.run(main())\n"
        "try:\n"
        "    EmulatorServer().start()\n"
        "except RuntimeError as exc:\n"
        "    print(exc)\n"
    )
    assert result.returncode == 0, result.stderr
    status, message = result.stdout.splitlines()
    assert status == "200"
    assert "pip install 'fastapi-stack-auth[testing]'" in message


def test_make_run_gives_the_app_the_demo_pages_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert browser_settings("127.0.0.1", 8000) == {
        "STACK_COOKIES": "true",
        "STACK_SILENT_REFRESH": "true",
        "STACK_TRUSTED_ORIGINS": "http://127.0.0.1:8000,http://localhost:8000",
    }
    assert browser_settings("::1", 9000)["STACK_TRUSTED_ORIGINS"] == "http://[::1]:9000"
    # A value set in the environment or in .env wins over make run's.
    env_file = tmp_path / ".env"
    env_file.write_text("STACK_SILENT_REFRESH=false\n")
    monkeypatch.setenv("STACK_COOKIES", "false")
    monkeypatch.setenv("STACK_TRUSTED_ORIGINS", "")  # so that monkeypatch removes it again
    monkeypatch.delenv("STACK_TRUSTED_ORIGINS")
    _apply_defaults(browser_settings("127.0.0.1", 8000), env_file)
    assert os.environ["STACK_COOKIES"] == "false"
    assert "STACK_SILENT_REFRESH" not in os.environ
    assert os.environ["STACK_TRUSTED_ORIGINS"].startswith("http://127.0.0.1:8000")
