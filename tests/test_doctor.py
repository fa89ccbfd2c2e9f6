"""``python -m fastapi_stack_auth doctor``: against the emulator over loopback, a closed port, a
real Redis and a skewed clock; one line per check, exit code 0 only when none failed, and never
a secret in the output."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import re
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import httpx
import pytest

from fastapi_stack_auth.__main__ import main
from fastapi_stack_auth._doctor import CHECKS, doctor, run_checks
from fastapi_stack_auth._doctor_checks import Check, Context, Status
from fastapi_stack_auth._doctor_local import webhook_secret_problem
from fastapi_stack_auth.testing import EmulatedStack
from tests.redis_fixtures import RedisServer, free_port
from tests.servers import raw_server

pytest_plugins = ["fastapi_stack_auth.testing", "tests.redis_fixtures"]

NAMES = ["settings", *(check.name for check in CHECKS)]
LINE = re.compile(r"(PASS|FAIL|SKIP)  (\S+(?: \S+)*) {2,}(.*)")
SUMMARY = re.compile(r"\d+ passed, \d+ failed, \d+ skipped")
AFTER_API = ["clock", "project", "secret key", "publishable key", "jwks"]


def webhook_secret(size: int = 24) -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(size)).decode()


class Report:
    """What one run printed, read back line by line."""

    def __init__(self, code: int, text: str) -> None:
        self.code, self.text = code, text
        *lines, summary = text.splitlines()
        assert SUMMARY.fullmatch(summary), text
        self.lines: dict[str, tuple[str, str]] = {}
        for line in lines:
            match = LINE.fullmatch(line)
            assert match, f"not a report line: {line!r}"
            self.lines[match[2]] = (match[1], match[3])

    def status(self, name: str) -> str:
        return self.lines[name][0]

    def detail(self, name: str) -> str:
        return self.lines[name][1]

    def statuses(self) -> dict[str, str]:
        return {name: status for name, (status, _) in self.lines.items()}

    def assert_fails(self, name: str, detail_start: str) -> None:
        """The run failed on check ``name``, whose detail starts with ``detail_start``."""
        assert self.code == 1
        assert self.status(name) == "FAIL"
        assert self.detail(name).startswith(detail_start)

    def assert_hides(self, *values: str) -> None:
        for value in values:
            assert value not in self.text


async def run(**options: Any) -> Report:
    out = io.StringIO()
    code = await doctor(out=out, **options)
    return Report(code, out.getvalue())


@pytest.fixture
def env(stack_auth_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Set (or, with None, remove) STACK_* variables on top of the emulator's."""

    def set_vars(**values: str | None) -> None:
        for name, value in values.items():
            if value is None:
                monkeypatch.delenv(f"STACK_{name.upper()}", raising=False)
            else:
                monkeypatch.setenv(f"STACK_{name.upper()}", value)

    return set_vars


# --- against the emulator -------------------------------------------------------------------------


async def test_all_pass_one_line_per_check(
    stack_emulator: EmulatedStack, env: Callable[..., None], redis_url: str
) -> None:
    secret = webhook_secret()
    # A loaded machine may take more than the default 0.1 s for a PING now and then.
    env(cache_url=redis_url, cache_timeout="2", webhook_secret=secret)
    report = await run()
    assert report.code == 0
    assert list(report.lines) == NAMES
    assert set(report.statuses().values()) == {"PASS"}, report.text
    assert re.fullmatch(
        r"http://127\.0\.0\.1:\d+ answered in \d+ ms \(the local emulator.*", (report.detail("api"))
    )
    assert "6 ES256 keys, per audience: 2 normal (the project id), 2 :restricted, 2 :anon" in (
        report.detail("jwks")
    )
    assert report.text.endswith("9 passed, 0 failed, 0 skipped\n")
    key, publishable = stack_emulator.secret_server_key, stack_emulator.publishable_client_key
    assert publishable is not None
    report.assert_hides(key, publishable, secret, secret.removeprefix("whsec_"))


async def test_optional_settings_unset_are_skipped_not_failed(env: Callable[..., None]) -> None:
    env(publishable_client_key=None)
    report = await run()
    assert report.code == 0
    assert report.status("publishable key") == "SKIP"
    assert report.detail("redis") == "STACK_CACHE_URL is not set (no shared cache)"
    assert report.status("webhook secret") == "SKIP"
    assert report.text.endswith("6 passed, 0 failed, 3 skipped\n")


async def test_jwt_mode_without_a_secret_key(env: Callable[..., None]) -> None:
    env(verify="jwt", secret_server_key=None)
    report = await run()
    assert report.code == 0
    assert report.detail("project").endswith("exists (Stack Auth checks it before the secret key)")
    assert report.lines["secret key"] == (
        "SKIP",
        "STACK_SECRET_SERVER_KEY is not set (JWT mode needs it only for full profiles)",
    )
    assert report.status("jwks") == "PASS"


async def test_wrong_secret_key(stack_emulator: EmulatedStack, env: Callable[..., None]) -> None:
    wrong = f"ssk_test_{secrets.token_hex(16)}"
    env(secret_server_key=wrong)
    report = await run()
    report.assert_fails(
        "secret key",
        "STACK_SECRET_SERVER_KEY was refused by Stack Auth (code INVALID_SECRET_SERVER_KEY): "
        "copy it again from the dashboard",
    )
    others = {name: status for name, status in report.statuses().items() if name != "secret key"}
    assert set(others.values()) == {"PASS", "SKIP"}
    assert report.status("project") == "PASS"
    assert report.status("jwks") == "PASS"
    report.assert_hides(wrong, stack_emulator.secret_server_key)


async def test_wrong_publishable_key(env: Callable[..., None]) -> None:
    wrong = f"pck_test_{secrets.token_hex(16)}"
    env(publishable_client_key=wrong)
    report = await run()
    assert report.code == 1
    assert report.status("publishable key") == "FAIL"
    assert "STACK_PUBLISHABLE_CLIENT_KEY was refused by Stack Auth (code " in (
        report.detail("publishable key")
    )
    assert report.status("secret key") == "PASS"
    report.assert_hides(wrong)


async def test_wrong_project_id_skips_what_needs_the_project(env: Callable[..., None]) -> None:
    project_id = str(uuid.uuid4())
    env(project_id=project_id)
    report = await run()
    report.assert_fails(
        "project",
        f"Stack Auth has no project {project_id} (code CURRENT_PROJECT_NOT_FOUND): copy "
        "STACK_PROJECT_ID again",
    )
    assert report.status("api") == report.status("clock") == "PASS"
    for name in ("secret key", "publishable key", "jwks"):
        assert report.lines[name] == ("SKIP", "not checked: project did not pass")


async def test_closed_port(stack_emulator: EmulatedStack, env: Callable[..., None]) -> None:
    port = free_port()
    env(api_url=f"http://127.0.0.1:{port}")
    report = await run()
    report.assert_fails(
        "api", f"cannot connect to 127.0.0.1:{port} (ConnectError): is STACK_API_URL right"
    )
    for name in AFTER_API:
        assert report.status(name) == "SKIP", name
    assert report.detail("clock") == "not checked: api did not pass"
    assert report.detail("jwks") == "not checked: project did not pass"
    report.assert_hides(stack_emulator.secret_server_key)


async def test_unset_project_id_is_one_failing_line() -> None:
    report = await run()
    assert report.code == 1
    assert list(report.lines) == ["settings"]
    assert report.status("settings") == "FAIL"
    assert "STACK_PROJECT_ID is required but not set" in report.detail("settings")


async def test_an_unreadable_dotenv_is_one_failing_line(tmp_path: Path) -> None:
    (tmp_path / ".env").write_bytes(b"STACK_PROJECT_ID=\xff\xfe\n")
    report = await run()
    assert report.code == 1
    assert report.lines == {
        "settings": (
            "FAIL",
            "could not read the settings (UnicodeDecodeError): check the environment and .env",
        )
    }


async def test_another_env_prefix_and_json(
    stack_emulator: EmulatedStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in stack_emulator.env().items():
        monkeypatch.setenv(name.replace("STACK_", "MYAPP_"), value)
    monkeypatch.setenv("MYAPP_SECRET_SERVER_KEY", "ssk_not_the_key")
    out = io.StringIO()
    code = await doctor("MYAPP_", as_json=True, out=out)
    report = json.loads(out.getvalue())
    assert code == 1
    assert report["ok"] is False
    checks = {check["name"]: check for check in report["checks"]}
    assert list(checks) == NAMES
    assert checks["settings"]["status"] == "PASS"
    assert checks["secret key"]["status"] == "FAIL"
    assert checks["secret key"]["detail"].startswith("MYAPP_SECRET_SERVER_KEY was refused")
    assert "ssk_not_the_key" not in out.getvalue()


async def test_settings_from_dotenv(stack_emulator: EmulatedStack, tmp_path: Path) -> None:
    secret = webhook_secret()
    lines = [f"{name}={value}" for name, value in stack_emulator.env().items()]
    (tmp_path / ".env").write_text("\n".join([*lines, f"STACK_WEBHOOK_SECRET={secret}"]) + "\n")
    report = await run()  # the tests run in tmp_path
    assert report.code == 0
    assert report.detail("settings").endswith("(from STACK_* variables and .env)")
    assert report.status("webhook secret") == "PASS"
    report.assert_hides(secret, stack_emulator.secret_server_key)


# --- the clock ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("skew", "words"), [(120.0, "ahead of"), (-120.0, "behind")])
async def test_skewed_clock(env: Callable[..., None], skew: float, words: str) -> None:
    report = await run(wall_clock=lambda: time.time() + skew)
    assert report.code == 1
    assert report.status("clock") == "FAIL"
    detail = report.detail("clock")
    assert re.match(rf"this machine's clock is 1[12]\d\.\d s {words} Stack Auth's", detail)
    assert "more than STACK_JWT_LEEWAY=5 s" in detail
    assert {report.status(name) for name in NAMES if name != "clock"} <= {"PASS", "SKIP"}


async def test_clock_within_the_configured_leeway(env: Callable[..., None]) -> None:
    env(jwt_leeway="60")
    report = await run(wall_clock=lambda: time.time() + 30)
    assert report.code == 0
    assert report.status("clock") == "PASS"
    assert re.match(r"this machine's clock is (29|30|31)\.\d s ahead of", report.detail("clock"))
    assert report.detail("clock").endswith("within STACK_JWT_LEEWAY=60 s")


# --- Redis ----------------------------------------------------------------------------------------


async def test_redis_with_a_password(
    env: Callable[..., None], redis_factory: Callable[..., RedisServer]
) -> None:
    password = secrets.token_hex(12)
    server = redis_factory("--requirepass", password)
    env(cache_url=f"redis://:{password}@127.0.0.1:{server.port}/0", cache_timeout="2")
    report = await run()
    assert report.code == 0
    assert re.fullmatch(
        rf"Redis at 127\.0\.0\.1:{server.port} answered PING in \d+\.\d ms", report.detail("redis")
    )
    wrong = secrets.token_hex(12)
    env(cache_url=f"redis://:{wrong}@127.0.0.1:{server.port}/0")
    report = await run()
    assert report.code == 1
    assert report.detail("redis") == (
        f"Redis at 127.0.0.1:{server.port} refused the credentials in STACK_CACHE_URL "
        "(AuthenticationError)"
    )
    report.assert_hides(password, wrong)


async def test_redis_on_a_closed_port(env: Callable[..., None]) -> None:
    port, password = free_port(), secrets.token_hex(12)
    env(cache_url=f"redis://:{password}@127.0.0.1:{port}/0")
    report = await run()
    report.assert_fails("redis", f"cannot use Redis at 127.0.0.1:{port} (")
    assert report.detail("redis").endswith("is it running, and is STACK_CACHE_URL right?")
    assert {report.status(name) for name in NAMES if name != "redis"} <= {"PASS", "SKIP"}
    report.assert_hides(password)


async def test_redis_slower_than_the_cache_timeout(
    env: Callable[..., None], redis_url: str
) -> None:
    env(cache_url=redis_url, cache_timeout="0.000001")
    report = await run()
    assert report.code == 1
    assert "to answer PING, over STACK_CACHE_TIMEOUT=1e-06 s" in report.detail("redis")


# --- the webhook secret ---------------------------------------------------------------------------


async def test_several_webhook_secrets(env: Callable[..., None]) -> None:
    first, second = webhook_secret(), webhook_secret(32).rstrip("=")
    env(webhook_secret=f"{first}, {second}")
    report = await run()
    assert report.lines["webhook secret"] == (
        "PASS",
        "2 secrets are well-formed (whsec_ + base64 key)",
    )
    report.assert_hides(first, second)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (webhook_secret().removeprefix("whsec_"), "does not start with whsec_"),
        (webhook_secret().replace("whsec_", "whsec_-_"), "is not standard base64 after whsec_"),
        (webhook_secret()[:-1], "holds a 23-byte key, Svix's are 24 to 75 (cut off"),
        (webhook_secret()[:-3], "has a base64 part of an impossible length"),
        (webhook_secret(80), "holds a 80-byte key, Svix's are 24 to 75 (two run together?)"),
    ],
    ids=["no prefix", "base64url", "cut off", "impossible length", "too long"],
)
async def test_malformed_webhook_secret(env: Callable[..., None], value: str, problem: str) -> None:
    good = webhook_secret()
    env(webhook_secret=f"{good} {value}")
    report = await run()
    report.assert_fails("webhook secret", f"STACK_WEBHOOK_SECRET (secret 2 of 2) {problem}")
    report.assert_hides(good, value)
    assert webhook_secret_problem(value) is not None
    assert webhook_secret_problem(good) is None


async def test_an_empty_webhook_secret_is_unset(env: Callable[..., None]) -> None:
    env(webhook_secret=" , ")
    report = await run()
    assert report.code == 0
    assert report.status("webhook secret") == "SKIP"


# --- what is not Stack Auth -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("response", "detail"),
    [
        (httpx.Response(404, text="Not found"), "answered HTTP 404 without a Stack Auth error"),
        (httpx.Response(503), "answered HTTP 503: Stack Auth is down or overloaded"),
        (httpx.Response(301, headers={"location": "/x"}), "answered what Stack Auth would not"),
    ],
)
async def test_not_a_stack_api(
    env: Callable[..., None], response: httpx.Response, detail: str
) -> None:
    env(api_url="https://stack.test")
    report = await run(transport=httpx.MockTransport(lambda request: response))
    assert report.code == 1
    assert detail in report.detail("api")
    assert report.status("project") == "SKIP"


async def test_no_answer_within_the_timeout(env: Callable[..., None]) -> None:
    done = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await done.wait()
        writer.close()

    async with raw_server(silent) as url:
        env(api_url=url)
        try:
            report = await run(timeout=0.2)
        finally:
            done.set()
    assert report.code == 1
    assert report.detail("api").startswith(f"no answer from {url} within 0.2 s")


async def test_an_unexpected_error_names_its_type_only(stack_emulator: EmulatedStack) -> None:
    async def broken(ctx: Context) -> tuple[Status, str]:
        raise RuntimeError(stack_emulator.secret_server_key)

    async def fine(ctx: Context) -> tuple[Status, str]:
        return Status.PASS, "fine"

    checks = [Check("a", broken), Check("b", fine, ("a",)), Check("c", fine)]
    results = await run_checks(cast(Context, None), checks)
    assert [(r.name, r.status, r.detail) for r in results] == [
        ("a", Status.FAIL, "unexpected RuntimeError: please report it"),
        ("b", Status.SKIP, "not checked: a did not pass"),
        ("c", Status.PASS, "fine"),
    ]


# --- the command line -----------------------------------------------------------------------------


def _cli(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("STACK_")}
    child_env.update(env)
    return subprocess.run(
        [sys.executable, "-m", "fastapi_stack_auth", "doctor"],
        env=child_env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_command_line(stack_emulator: EmulatedStack, tmp_path: Path) -> None:
    done = _cli(stack_emulator.env(), tmp_path)
    assert (done.returncode, done.stderr) == (0, "")
    report = Report(done.returncode, done.stdout)
    assert list(report.lines) == NAMES
    assert report.statuses()["api"] == "PASS"
    assert stack_emulator.secret_server_key not in done.stdout

    done = _cli({}, tmp_path)
    assert (done.returncode, done.stderr) == (1, "")
    assert done.stdout.startswith("FAIL  settings  Stack Auth settings are missing or invalid: ")


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in ([], ["doctor", "--timeout", "0"], ["cure"]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
    assert "--timeout: must be more than 0" in capsys.readouterr().err


def test_main_returns_the_exit_code(
    env: Callable[..., None], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["doctor", "--timeout", "3"]) == 0
    env(secret_server_key="ssk_wrong")
    assert main(["doctor", "--json"]) == 1
    outputs = capsys.readouterr().out
    assert outputs.count('"ok": ') == 1
    assert "ssk_wrong" not in outputs
