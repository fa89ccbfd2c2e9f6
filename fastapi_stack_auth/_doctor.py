"""``python -m fastapi_stack_auth doctor``: the current settings checked against Stack Auth,
Redis and the webhook secret format, one line per check; exit code 0 only when none failed.

The checks are in ``_doctor_checks`` (Stack Auth) and ``_doctor_local`` (Redis, webhooks);
this module reads the settings, runs the checks in order and prints the report.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import httpx
from pydantic import SecretStr
from pydantic_settings import BaseSettings

from ._client import StackClient
from ._doctor_checks import (
    Check,
    Context,
    RecordingTransport,
    Status,
    check_api,
    check_clock,
    check_jwks,
    check_project,
    check_publishable_key,
    check_secret_key,
)
from ._doctor_local import check_redis, check_webhook_secret
from ._exceptions import StackAuthConfigError
from ._settings import ENV_PREFIX, StackAuthSettings, load_settings

#: In the order they run and print; a check whose ``needs`` did not all pass is skipped.
CHECKS: tuple[Check, ...] = (
    Check("api", check_api),
    Check("clock", check_clock, ("api",)),
    Check("project", check_project, ("api",)),
    Check("secret key", check_secret_key, ("project",)),
    Check("publishable key", check_publishable_key, ("project",)),
    Check("jwks", check_jwks, ("project",)),
    Check("redis", check_redis),
    Check("webhook secret", check_webhook_secret),
)


@dataclass(frozen=True)
class CheckResult:
    """One line of the report."""

    name: str
    status: Status
    detail: str


class _WebhookSettings(BaseSettings):
    # Read as StackAuthSettings reads its fields: the prefix, then .env; never printed.
    model_config = StackAuthSettings.model_config

    webhook_secret: SecretStr | None = None


def _read_webhook_secret(env_prefix: str) -> str | None:
    value = _WebhookSettings(_env_prefix=env_prefix).webhook_secret  # type: ignore[call-arg]
    return None if value is None else value.get_secret_value()


async def run_checks(ctx: Context, checks: Sequence[Check] = CHECKS) -> list[CheckResult]:
    """Run ``checks`` in order. An unexpected exception is a failure naming its type only (its
    message could quote a setting)."""
    results: dict[str, CheckResult] = {}
    for check in checks:
        blocked = [name for name in check.needs if results[name].status is not Status.PASS]
        if blocked:
            results[check.name] = CheckResult(
                check.name, Status.SKIP, f"not checked: {blocked[0]} did not pass"
            )
            continue
        try:
            status, detail = await check.run(ctx)
        except Exception as exc:
            status, detail = Status.FAIL, f"unexpected {type(exc).__name__}: please report it"
        results[check.name] = CheckResult(check.name, status, detail)
    return list(results.values())


def _settings_line(settings: StackAuthSettings, env_prefix: str) -> CheckResult:
    source = f"{env_prefix}* variables" + (" and .env" if Path(".env").is_file() else "")
    return CheckResult(
        "settings",
        Status.PASS,
        f"project {settings.project_id}, verify={settings.verify} (from {source})",
    )


async def diagnose(
    env_prefix: str = ENV_PREFIX,
    *,
    timeout: float | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    wall_clock: Callable[[], float] = time.time,
) -> list[CheckResult]:
    """Every check's result, the settings first. Settings that do not load are one failing
    line naming the variables. ``timeout`` (default: the http_timeout setting) bounds each
    call, made once; ``transport`` and ``wall_clock`` are there for tests."""
    try:
        settings = load_settings(env_prefix)
        webhook_secret = _read_webhook_secret(env_prefix)
    except StackAuthConfigError as exc:
        return [CheckResult("settings", Status.FAIL, str(exc))]
    except (ValueError, OSError) as exc:  # e.g. a .env that is not UTF-8; the type only
        detail = (
            f"could not read the settings ({type(exc).__name__}): check the environment and .env"
        )
        return [CheckResult("settings", Status.FAIL, detail)]
    seconds = timeout or settings.http_timeout
    # One attempt per call, within the doctor's timeout: a diagnosis, not a retried request.
    probing = settings.model_copy(
        update={"http_timeout": seconds, "request_deadline": seconds, "max_attempts": 1}
    )
    without_secret = probing.model_copy(update={"secret_server_key": None})
    inner = transport or httpx.AsyncHTTPTransport()
    recorder = RecordingTransport(inner, wall_clock)
    try:
        async with (
            StackClient(probing, transport=recorder) as server,
            StackClient(without_secret, transport=recorder) as client_access,
        ):
            ctx = Context(
                settings=probing,
                env_prefix=env_prefix,
                timeout=seconds,
                server=server,
                client_access=client_access,
                recorder=recorder,
                webhook_secret=webhook_secret,
                wall_clock=wall_clock,
            )
            return [_settings_line(settings, env_prefix), *await run_checks(ctx)]
    finally:
        if transport is None:
            await inner.aclose()


def passed(results: Sequence[CheckResult]) -> bool:
    """True when no check failed (a skipped one is not a failure)."""
    return all(result.status is not Status.FAIL for result in results)


def render(results: Sequence[CheckResult]) -> str:
    """The report: one aligned line per check (plain ASCII status), then a summary line."""
    width = max(len(result.name) for result in results)
    lines = [
        f"{result.status.value}  {result.name.ljust(width)}  {' '.join(result.detail.split())}"
        for result in results
    ]
    counts = {status: sum(r.status is status for r in results) for status in Status}
    lines.append(
        f"{counts[Status.PASS]} passed, {counts[Status.FAIL]} failed, {counts[Status.SKIP]} skipped"
    )
    return "\n".join(lines) + "\n"


def render_json(results: Sequence[CheckResult]) -> str:
    """The report as one JSON object: ``ok`` and the ``checks`` in order."""
    checks = [{"name": r.name, "status": r.status.value, "detail": r.detail} for r in results]
    return json.dumps({"ok": passed(results), "checks": checks}, indent=2) + "\n"


async def doctor(
    env_prefix: str = ENV_PREFIX,
    *,
    timeout: float | None = None,
    as_json: bool = False,
    out: TextIO,
    transport: httpx.AsyncBaseTransport | None = None,
    wall_clock: Callable[[], float] = time.time,
) -> int:
    """Run the checks, print the report to ``out``; the exit code (0: none failed, 1: some)."""
    results = await diagnose(
        env_prefix, timeout=timeout, transport=transport, wall_clock=wall_clock
    )
    out.write(render_json(results) if as_json else render(results))
    return 0 if passed(results) else 1
