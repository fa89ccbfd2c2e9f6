"""The doctor's Stack Auth checks, and what every check shares: one async function per check,
returning a status and a one-line detail that says what is wrong, whose fault it is and what
to do. Redis and the webhook secret are checked in ``_doctor_local``.

A detail never holds a key, token, secret or Redis password: it is built from our own words,
setting names, Stack's error codes, exception type names and host:port.
"""

from __future__ import annotations

import enum
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from ._client import StackClient
from ._exceptions import (
    PROJECT_CREDENTIAL_CODES,
    StackAPIError,
    StackAuthError,
    StackBadResponseError,
    StackUnavailableError,
)
from ._jwks import JwksCache
from ._settings import StackAuthSettings, env_name


class Status(str, enum.Enum):
    """How a check went; SKIP: not configured, or an earlier check it needs did not pass."""

    PASS = "PASS"
    FAIL = "FAIL"
    SKIP = "SKIP"


Outcome = tuple[Status, str]

#: Stack's ``Date`` header has whole seconds (and a server may cache it for a moment).
DATE_RESOLUTION = 1.0
_NOT_PRINTABLE = re.compile(r"[^\x20-\x7e]")


@dataclass(frozen=True)
class Exchange:
    """One HTTP exchange seen by ``RecordingTransport``: local wall-clock times of sending and of
    the response headers, the round trip (monotonic seconds) and the response headers."""

    sent_at: float
    received_at: float
    elapsed: float
    headers: httpx.Headers


class RecordingTransport(httpx.AsyncBaseTransport):
    """Hands each request to ``inner`` and keeps the last ``Exchange`` (the clock check reads
    Stack's ``Date``). Closing it leaves ``inner`` open: its owner closes it once."""

    def __init__(self, inner: httpx.AsyncBaseTransport, wall_clock: Callable[[], float]) -> None:
        self._inner = inner
        self._wall_clock = wall_clock
        self.last: Exchange | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        sent_at, started = self._wall_clock(), time.perf_counter()
        response = await self._inner.handle_async_request(request)
        elapsed = time.perf_counter() - started
        self.last = Exchange(sent_at, self._wall_clock(), elapsed, response.headers)
        return response

    async def aclose(self) -> None:
        return None


@dataclass
class Context:
    """What the checks share: the settings (the doctor's timeout, one attempt per call), a
    server-access client, one without the secret key (client access), and earlier answers."""

    settings: StackAuthSettings
    env_prefix: str
    timeout: float
    server: StackClient
    client_access: StackClient
    recorder: RecordingTransport
    webhook_secret: str | None
    wall_clock: Callable[[], float]
    probe: Exchange | None = None
    #: ``GET /projects/current`` with server access: the project, or what Stack answered.
    project: dict[str, Any] | StackAPIError | None = None

    def var(self, field: str) -> str:
        """The environment variable of setting ``field`` under this prefix."""
        return env_name(field, self.env_prefix)


@dataclass(frozen=True)
class Check:
    """A named check, and the checks that must have passed for it to run."""

    name: str
    run: Callable[[Context], Awaitable[Outcome]]
    needs: tuple[str, ...] = ()


# --- Stack Auth ---------------------------------------------------------------------------------


def _host_port(url: str) -> str:
    parsed = httpx.URL(url)
    return f"{parsed.host}:{parsed.port or (443 if parsed.scheme == 'https' else 80)}"


def _unavailable(ctx: Context, exc: StackUnavailableError) -> str:
    url = ctx.settings.api_url
    if exc.reason == "timed out":
        return (
            f"no answer from {url} within {ctx.timeout:g} s: check {ctx.var('api_url')}, the "
            "network and any proxy (or give --timeout more seconds)"
        )
    if exc.reason.startswith("HTTP "):
        return (
            f"{url} answered {exc.reason}: Stack Auth is down or overloaded, not your settings; "
            "try again in a few minutes"
        )
    return (
        f"cannot connect to {_host_port(url)} ({exc.reason}): is {ctx.var('api_url')} right, "
        "and is Stack Auth (or the emulator) running there?"
    )


def _answer(exc: StackAPIError) -> str:
    return f"HTTP {exc.status_code} {exc.code or '(no error code)'}"


def _failure(ctx: Context, exc: StackAuthError, what: str) -> str:
    """The detail for a failed call that is not one of the cases a check knows."""
    if isinstance(exc, StackUnavailableError):
        return _unavailable(ctx, exc)
    if isinstance(exc, StackAPIError):
        return (
            f"Stack Auth answered {_answer(exc)} to {what}: check the {ctx.env_prefix}* "
            "settings against the dashboard"
        )
    # Our own words (an answer outside the contract, or a header h11 refused).
    return f"{what} failed: {exc}"


async def check_api(ctx: Context) -> Outcome:
    """A request without credentials, which Stack answers 400 ACCESS_TYPE_REQUIRED."""
    url, var = ctx.settings.api_url, ctx.var("api_url")
    not_stack = f"{var} must be the base URL of a Stack Auth API, e.g. https://api.stack-auth.com"
    try:
        await ctx.server.get_public("/projects/current")
    except StackAPIError as exc:
        if exc.code is None:
            plain = f"{url} answered HTTP {exc.status_code} without a Stack Auth error code"
            return Status.FAIL, f"{plain}: {not_stack}"
    except StackBadResponseError as exc:
        return Status.FAIL, f"{url} answered what Stack Auth would not ({exc}): {not_stack}"
    except StackAuthError as exc:
        return Status.FAIL, _failure(ctx, exc, "a request to Stack Auth")
    else:
        return (
            Status.FAIL,
            f"{url} answered a request without credentials with success: {not_stack}",
        )
    ctx.probe = probe = ctx.recorder.last
    if probe is None:  # cannot happen: every answer passes the recorder
        return Status.FAIL, "the answer was not recorded"
    emulator = (
        " (the local emulator: development only)" if "x-stack-emulator" in probe.headers else ""
    )
    return Status.PASS, f"{url} answered in {probe.elapsed * 1000:.0f} ms{emulator}"


async def check_clock(ctx: Context) -> Outcome:
    """The local clock against the ``Date`` of Stack's answer to the API check."""
    probe = ctx.probe
    try:
        stack_time = parsedate_to_datetime(probe.headers["date"]).timestamp() if probe else None
    except (KeyError, TypeError, ValueError, IndexError):
        stack_time = None
    if probe is None or stack_time is None:
        return Status.SKIP, "Stack Auth's answer had no readable Date header to compare with"
    sent, received = probe.sent_at, probe.received_at
    # The header is cut to the second: Stack's clock read about half a second later.
    offset = stack_time + DATE_RESOLUTION / 2 - (sent + received) / 2
    margin = DATE_RESOLUTION + (received - sent) / 2
    leeway, var = ctx.settings.jwt_leeway, ctx.var("jwt_leeway")
    ours = f"this machine's clock is {abs(offset):.1f} s {'behind' if offset > 0 else 'ahead of'}"
    if abs(offset) <= leeway + margin:
        return Status.PASS, f"{ours} Stack Auth's (+/-{margin:.1f} s), within {var}={leeway:g} s"
    return Status.FAIL, (
        f"{ours} Stack Auth's, more than {var}={leeway:g} s: token times (exp, iat) will be "
        "misjudged; synchronise this machine's clock (NTP: chrony or systemd-timesyncd)"
    )


async def check_project(ctx: Context) -> Outcome:
    """``GET /projects/current`` with server access; Stack checks the project before the key."""
    pid = ctx.settings.project_id
    try:
        body = await ctx.server.get_current_project()
    except StackAPIError as exc:
        ctx.project = exc
        if PROJECT_CREDENTIAL_CODES.get(exc.code or "") == "STACK_SECRET_SERVER_KEY":
            return Status.PASS, f"{pid} exists (Stack Auth checks it before the secret key)"
        if exc.code == "CURRENT_PROJECT_NOT_FOUND":
            return Status.FAIL, (
                f"Stack Auth has no project {pid} (code {exc.code}): copy "
                f"{ctx.var('project_id')} again from the dashboard (Project Settings), and check "
                f"that {ctx.var('api_url')} is the deployment that hosts it"
            )
        return Status.FAIL, _failure(ctx, exc, "GET /projects/current")
    except StackAuthError as exc:
        return Status.FAIL, _failure(ctx, exc, "GET /projects/current")
    ctx.project = body
    name = _NOT_PRINTABLE.sub("", str(body.get("display_name") or ""))[:60]
    return Status.PASS, f"{pid} exists" + (f' ("{name}")' if name else "")


async def check_secret_key(ctx: Context) -> Outcome:
    """What Stack said of the secret key in the project check's call."""
    var = ctx.var("secret_server_key")
    if ctx.settings.secret_server_key is None:
        return Status.SKIP, f"{var} is not set (JWT mode needs it only for full profiles)"
    if isinstance(ctx.project, StackAPIError):
        return Status.FAIL, (
            f"{var} was refused by Stack Auth (code {ctx.project.code}): copy it again from the "
            "dashboard (Project Keys); it may be revoked, expired or another project's"
        )
    return Status.PASS, "accepted by Stack Auth (GET /projects/current, server access)"


async def check_publishable_key(ctx: Context) -> Outcome:
    """``GET /projects/current`` with client access: only the publishable key is sent."""
    var = ctx.var("publishable_client_key")
    if ctx.settings.publishable_client_key is None:
        return Status.SKIP, f"{var} is not set (server-side calls do not need it)"
    try:
        await ctx.client_access.request(
            "GET", "/projects/current", headers={"x-stack-access-type": "client"}, ok=(200,)
        )
    except StackAPIError as exc:
        if PROJECT_CREDENTIAL_CODES.get(exc.code or "") == "STACK_PUBLISHABLE_CLIENT_KEY":
            return Status.FAIL, (
                f"{var} was refused by Stack Auth (code {exc.code}): copy it again from the "
                "dashboard (Project Keys), or unset it (server-side calls do not need it)"
            )
        return Status.FAIL, _failure(ctx, exc, "GET /projects/current with client access")
    except StackAuthError as exc:
        return Status.FAIL, _failure(ctx, exc, "GET /projects/current with client access")
    return Status.PASS, "accepted by Stack Auth (GET /projects/current, client access)"


async def check_jwks(ctx: Context) -> Outcome:
    """The project's three key sets, as ``JwksCache`` loads them, counted per audience."""
    s, pid = ctx.settings, ctx.settings.project_id
    cache = JwksCache(ctx.server, pid)
    try:
        await cache.load()
    except StackBadResponseError as exc:
        return Status.FAIL, f"Stack Auth's JWKS is unusable ({exc}): JWT mode cannot verify tokens"
    except StackAuthError as exc:
        return Status.FAIL, _failure(ctx, exc, f"GET /projects/{pid}/.well-known/jwks.json")
    finally:
        await cache.aclose()
    count = Counter(cache.audience_of(kid) for kid in cache.kids)
    normal, restricted, anon = (count[pid + suffix] for suffix in ("", ":restricted", ":anon"))
    detail = (
        f"{len(cache.kids)} ES256 keys, per audience: {normal} normal (the project id), "
        f"{restricted} :restricted, {anon} :anon"
    )
    allowed = [
        (s.allow_restricted, restricted, "restricted"),
        (s.allow_anonymous, anon, "anonymous"),
    ]
    for allow, keys, kind in allowed:
        if s.verify == "jwt" and allow and keys == 0:
            return Status.FAIL, f"{detail}: no key for the {kind} users this app lets in"
    return Status.PASS, detail
