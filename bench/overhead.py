"""Per-request overhead of fastapi-stack-auth, as a ratio to a no-op dependency.

Run with ``make bench`` (or ``.venv/bin/python bench/overhead.py``; ``--help`` for options).
Real in-process HTTP requests go through whole FastAPI apps that differ only in the dependency
of their one route (one app per variant, so routing costs the same). By default each request is
a raw ASGI call, the way a server hands it to the app (scope, receive, send); ``--driver httpx``
sends them with ``httpx.AsyncClient`` over ``ASGITransport`` instead. Every request carries the
same kind of ``Authorization: Bearer <jwt>`` header:

- ``noop``          the baseline: the route reads that header with FastAPI's own bearer
                    scheme, ``HTTPBearer(auto_error=False)``, which is how a plain app reads a
                    bearer token and gets the same /docs Authorize button as ``current_user``
- ``noop-header``   for reference: a dependency returning ``request.headers.get
                    ("authorization")``, the bare minimum (no scheme, no split, no model);
                    ``--baseline header`` makes it the baseline of the targets instead
- ``jwt-hit``       ``current_user`` in JWT mode, a token already verified (the token cache)
- ``jwt-first``     ``current_user`` in JWT mode, a token never seen before (full ES256 check;
                    the tokens are minted before timing starts)
- ``remote-hit``    ``current_user`` in remote mode, a token already verified (Stack itself is
                    mocked, and not called again once the cache holds the token)
- ``pyjwt-decode``  for calibration, when PyJWT is installed: the usual recipe, a bare
                    ``jwt.decode(..., algorithms=["ES256"], audience=..., issuer=...)`` per request
- ``team-user``     ``current_user`` in JWT mode, cached, on ``GET /teams/{team_id}/docs``: what
                    ``team-perm-hit`` adds to
- ``team-perm-hit`` the same route with ``require_team_permission("docs:read")`` instead, the
                    identity and the permission answer both cached
- ``proj-perm-hit`` ``GET /`` with ``require_project_permission("admin")``, both cached: what
                    it adds to ``jwt-hit``

The authorization targets are on what a cached check *adds*: per repetition, the permission
variant's time minus its ``current_user`` twin's (same path, same mode, same token), as a
ratio of the baseline's; the median of those is checked against 0.10x.

Batches of each variant are interleaved in a random order and repeated; the report gives, per
variant, the median microseconds per request and the median of the per-repetition ratios to
the baseline (with their interquartile range, the spread between repetitions), and the same
ratio to the other no-op. Nothing here talks to the network: the JWKS and ``/users/me`` are
answered by an in-process ``httpx.MockTransport``.

Two clocks time every batch: the CPU time of the benchmark's thread (``time.thread_time``) and
wall time. Every variant is pure CPU work on one thread (no I/O, no thread pool), so CPU time
is the same work without the time the OS gives other processes; on a shared machine wall-time
ratios drift with the neighbours' load. The targets are checked against the CPU-time ratios by
default (``--clock wall`` to check wall time instead); both are reported. The garbage
collector's time is recorded too, per variant (``gc us/req``).

Why raw ASGI by default: the client side of httpx costs more than the app itself per request,
which dilutes every ratio toward 1. Raw ASGI is the strict measure.

Then remote mode's cold path, which no in-process mock can measure: ``bench/upstream_cpu.py``
runs the app on httpx's default transport against a trivial server on 127.0.0.1, every
request with a new token (one upstream call each), and prints the app's CPU per upstream call
beside ``StackClient`` alone, a bare httpx client and, only if ``aiohttp`` happens to be
installed, a bare aiohttp session (``--cold-calls 0`` skips it). The last lines give each
target of issue 8 with PASS or FAIL.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import platform
import random
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import _common
import httpx
import upstream_cpu
from _common import PROJECT_ID, Caller, Headers, asgi_caller, request_headers, stack_claims
from fastapi import Depends, FastAPI, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from fastapi_stack_auth import (
    StackAuth,
    StackUser,
    TeamAccess,
    current_user,
    require_project_permission,
    require_team_permission,
)

API_URL = "https://stack.bench"
ISSUER = f"{API_URL}/api/v1/projects/{PROJECT_ID}"
#: Issue 8's targets: the most CPU time a variant may take, as a ratio to the baseline.
TARGETS = {
    "jwt-hit": (1.15, "cache hit, JWT mode"),
    "remote-hit": (1.15, "cache hit, remote mode"),
    "jwt-first": (3.5, "first sight of a token, JWT mode"),
}
#: Issue 10's targets: what a cached authorization check may add to ``current_user`` alone (the
#: variant named second), as a ratio to the baseline.
ADDED_TARGETS = {
    "team-perm-hit": ("team-user", 0.10, "cached team permission, added"),
    "proj-perm-hit": ("jwt-hit", 0.10, "cached project permission, added"),
}
TEAM_ID = "5b6c7d8e-9f0a-4b1c-8d2e-3f4a5b6c7d8e"
#: The path of the team variants: the team comes from the ``team_id`` path parameter.
TEAM_PATH = f"/teams/{TEAM_ID}/docs"
#: The two no-ops, by ``--baseline``: variant name and how it reads the header.
BASELINES = {
    "bearer": ("noop", "HTTPBearer(auto_error=False), FastAPI's bearer-token dependency"),
    "header": ("noop-header", 'a dependency returning request.headers.get("authorization")'),
}


class Signer(_common.Signer):
    """Tokens of this benchmark's project and user, signed with a fresh key."""

    def mint(self, sub: str) -> str:
        return self.sign(stack_claims(sub, ISSUER))


def fake_stack(signer: Signer, user_id: str) -> httpx.MockTransport:
    """Stack Auth's JWKS, ``/users/me`` and the permission lists (every permission asked is
    held), in process."""
    user = {
        "id": user_id,
        "primary_email": "bench@example.com",
        "primary_email_verified": True,
        "display_name": "Bench User",
        "signed_up_at_millis": 1_767_225_600_000,
        "is_anonymous": False,
        "is_restricted": False,
    }

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/.well-known/jwks.json"):
            return httpx.Response(
                200, json=signer.jwks(), headers={"cache-control": "public, max-age=3600"}
            )
        if request.url.path == "/api/v1/users/me":
            return httpx.Response(200, json=user)
        if request.url.path in ("/api/v1/team-permissions", "/api/v1/project-permissions"):
            query = request.url.params
            item = {"id": query["permission_id"], "user_id": query["user_id"]}
            if "team_id" in query:
                item["team_id"] = query["team_id"]
            return httpx.Response(200, json={"items": [item], "is_paginated": False})
        return httpx.Response(404, text="not found")

    return httpx.MockTransport(handle)


def header_noop_app() -> FastAPI:
    """A dependency that reads the same header and nothing else."""
    app = FastAPI()

    async def read_header(request: Request) -> str | None:
        return request.headers.get("authorization")

    @app.get("/")
    async def noop(token: str | None = Depends(read_header)) -> dict[str, bool]:
        return {"ok": token is not None}

    return app


def bearer_noop_app() -> FastAPI:
    """The same route reading the token with FastAPI's ``HTTPBearer``, as a plain app would."""
    app = FastAPI()
    bearer = HTTPBearer(auto_error=False)

    @app.get("/")
    async def noop(
        credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
    ) -> dict[str, bool]:
        return {"ok": credentials is not None}

    return app


def protected_app(stack: StackAuth) -> FastAPI:
    """The same route behind ``Depends(current_user)``, as an app would write it."""
    app = FastAPI()
    stack.init_app(app)

    @app.get("/")
    async def protected(user: StackUser = Depends(current_user)) -> dict[str, bool]:
        return {"ok": user is not None}

    return app


def team_user_app(stack: StackAuth) -> FastAPI:
    """``current_user`` on a team path: the twin ``team_permission_app`` is compared with."""
    app = FastAPI()
    stack.init_app(app)

    @app.get("/teams/{team_id}/docs")
    async def docs(user: StackUser = Depends(current_user)) -> dict[str, bool]:
        return {"ok": user is not None}

    return app


def team_permission_app(stack: StackAuth) -> FastAPI:
    """The same route behind ``require_team_permission``, the team read from the path."""
    app = FastAPI()
    stack.init_app(app)
    read_docs = require_team_permission("docs:read")

    @app.get("/teams/{team_id}/docs")
    async def docs(access: TeamAccess = Depends(read_docs)) -> dict[str, bool]:
        return {"ok": access is not None}

    return app


def project_permission_app(stack: StackAuth) -> FastAPI:
    """``GET /`` behind ``require_project_permission``: the twin of ``protected_app``."""
    app = FastAPI()
    stack.init_app(app)
    admin = require_project_permission("admin")

    @app.get("/")
    async def protected(user: StackUser = Depends(admin)) -> dict[str, bool]:
        return {"ok": user is not None}

    return app


def pyjwt_app(signer: Signer) -> FastAPI | None:
    """The usual recipe, for calibration: PyJWT decodes and verifies every request."""
    try:
        import jwt
    except ImportError:
        return None
    key = signer.key.public_key()
    app = FastAPI()

    async def decode(request: Request) -> dict[str, Any]:
        token = request.headers["authorization"].removeprefix("Bearer ")
        claims: dict[str, Any] = jwt.decode(
            token, key, algorithms=["ES256"], audience=PROJECT_ID, issuer=ISSUER
        )
        return claims

    @app.get("/")
    async def protected(claims: dict[str, Any] = Depends(decode)) -> dict[str, bool]:
        return {"ok": bool(claims)}

    return app


def httpx_caller(app: FastAPI, path: str = "/") -> Caller:
    """One GET ``path`` through ``app`` with ``httpx.AsyncClient`` over ``ASGITransport``."""
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench")

    async def call(headers: Headers) -> int:
        return (await client.get(path, headers=headers[1:])).status_code

    return call


class Samples:
    """Per-batch microseconds per request of one variant: CPU, wall and garbage collection."""

    def __init__(self) -> None:
        self.cpu: list[float] = []
        self.wall: list[float] = []
        self.gc: list[float] = []


class GcTimer:
    """Seconds spent in the garbage collector (``gc.callbacks``), as a running total."""

    def __init__(self) -> None:
        self.total = 0.0
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.total += time.perf_counter() - self._started


async def run(args: argparse.Namespace) -> dict[str, Samples]:
    repetitions, batch = args.repetitions, args.batch
    signer = Signer()
    user_id = str(uuid.uuid4())
    transport = fake_stack(signer, user_id)
    common: dict[str, Any] = {
        "project_id": PROJECT_ID,
        "secret_server_key": "ssk_bench",
        "api_url": API_URL,
        "check_keys_on_startup": False,
        "cache_ttl": 3600,
    }
    stacks = {
        "jwt-hit": StackAuth(**common, verify="jwt", transport=transport),
        "jwt-first": StackAuth(**common, verify="jwt", transport=transport),
        "remote-hit": StackAuth(**common, verify="remote", transport=transport),
        # Permission answers live an hour: every timed check is a hit (the warm-up asks once).
        **{
            name: StackAuth(**common, verify="jwt", permission_cache_ttl=3600, transport=transport)
            for name in ("team-user", "team-perm-hit", "proj-perm-hit")
        },
    }
    for stack in stacks.values():
        await stack.start()
    apps = {
        "noop": bearer_noop_app(),
        "noop-header": header_noop_app(),
        **{name: protected_app(stacks[name]) for name in ("jwt-hit", "jwt-first", "remote-hit")},
        "team-user": team_user_app(stacks["team-user"]),
        "team-perm-hit": team_permission_app(stacks["team-perm-hit"]),
        "proj-perm-hit": project_permission_app(stacks["proj-perm-hit"]),
    }
    calibration = pyjwt_app(signer)
    if calibration is not None:
        apps["pyjwt-decode"] = calibration
    make_caller = asgi_caller if args.driver == "asgi" else httpx_caller
    paths = {"team-user": TEAM_PATH, "team-perm-hit": TEAM_PATH}
    callers = {name: make_caller(app, paths.get(name, "/")) for name, app in apps.items()}

    hit_headers = request_headers(signer.mint(user_id))
    # Fresh tokens for every first-sight request of the whole run, minted before timing.
    fresh = iter([request_headers(signer.mint(user_id)) for _ in range((repetitions + 1) * batch)])
    headers_for: dict[str, Callable[[], Headers]] = {
        name: (lambda: next(fresh)) if name == "jwt-first" else (lambda: hit_headers)
        for name in callers
    }

    gc_timer = GcTimer()
    gc.callbacks.append(gc_timer)
    results: dict[str, Samples] = {name: Samples() for name in callers}

    async def timed(name: str) -> None:
        call, next_headers = callers[name], headers_for[name]
        gc_before = gc_timer.total
        wall, cpu = time.perf_counter(), time.thread_time()
        for _ in range(batch):
            status = await call(next_headers())
            if status != 200:
                raise SystemExit(f"{name}: HTTP {status}")
        cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
        samples = results[name]
        samples.cpu.append(cpu / batch * 1e6)
        samples.wall.append(wall / batch * 1e6)
        samples.gc.append((gc_timer.total - gc_before) / batch * 1e6)

    for name in callers:  # warm-up: first JWKS use, the cache entries of the hit variants
        await timed(name)
    results.update({name: Samples() for name in callers})  # forget the warm-up
    rng = random.Random(args.seed)  # noqa: S311 - shuffling batches, not secrets
    names = list(callers)
    for _ in range(repetitions):
        rng.shuffle(names)
        for name in names:
            await timed(name)

    gc.callbacks.remove(gc_timer)
    for stack in stacks.values():
        await stack.stop()
    return results


def _ratios(samples: list[float], base: list[float]) -> list[float]:
    return sorted(s / b for s, b in zip(samples, base, strict=True))


def _quartiles(values: list[float]) -> tuple[float, float, float]:
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q2, q3


def report(results: dict[str, Samples], args: argparse.Namespace) -> dict[str, float]:
    """Print the table; returns each variant's ratio to the baseline on the checked clock."""
    base_name, base_how = BASELINES[args.baseline]
    other_name = next(name for name, _ in BASELINES.values() if name != base_name)
    base, other = results[base_name], results[other_name]
    print(
        f"fastapi-stack-auth overhead, {args.driver} driver: {args.repetitions} interleaved "
        f"repetitions x {args.batch} requests per variant (Python {platform.python_version()}, "
        f"{platform.machine()}, load average {load_average()})"
    )
    print(f"baseline {base_name}: {base_how}")
    print(
        f"ratio: median of the per-repetition ratios to {base_name} [interquartile range]; "
        f"targets checked on {args.clock} time"
    )
    print(
        f"{'variant':<13} {'cpu us/req':>10} {'cpu ratio':>10} {'[p25 - p75]':>14} "
        f"{'wall ratio':>10} {f'/{other_name}':>12} {'gc us/req':>10}   target"
    )
    checked: dict[str, float] = {}
    for name, samples in results.items():
        low, cpu_ratio, high = _quartiles(_ratios(samples.cpu, base.cpu))
        wall_ratio = statistics.median(_ratios(samples.wall, base.wall))
        other_ratio = statistics.median(
            _ratios(
                samples.cpu if args.clock == "cpu" else samples.wall,
                other.cpu if args.clock == "cpu" else other.wall,
            )
        )
        checked[name] = cpu_ratio if args.clock == "cpu" else wall_ratio
        target = TARGETS.get(name)
        print(
            f"{name:<13} {statistics.median(samples.cpu):>10.1f} {cpu_ratio:>9.2f}x "
            f"{f'[{low:.2f} - {high:.2f}]':>14} {wall_ratio:>9.2f}x {other_ratio:>11.2f}x "
            f"{statistics.fmean(samples.gc):>10.1f}   "
            + (f"<= {target[0]:.2f}" if target is not None else "")
        )
    if "pyjwt-decode" not in results:
        print("(pyjwt-decode skipped: PyJWT is not installed)")
    return checked


def report_added(results: dict[str, Samples], args: argparse.Namespace) -> dict[str, float]:
    """Print what each cached authorization check adds to its ``current_user`` twin, as a ratio
    of the baseline; returns the medians on the checked clock."""
    base_name = BASELINES[args.baseline][0]
    base = results[base_name]
    print(
        f"\nAuthorization on top of current_user, both cached: per repetition (variant - twin) / "
        f"{base_name}, median [interquartile range]"
    )
    print(f"{'variant':<14} {'twin':<10} {'cpu added':>10} {'[p25 - p75]':>14} {'wall added':>11}")
    added: dict[str, float] = {}
    for name, (twin, target, _) in ADDED_TARGETS.items():
        samples, other = results[name], results[twin]
        per_rep = {
            clock: sorted(
                (s - t) / b
                for s, t, b in zip(
                    getattr(samples, clock),
                    getattr(other, clock),
                    getattr(base, clock),
                    strict=True,
                )
            )
            for clock in ("cpu", "wall")
        }
        low, cpu_added, high = _quartiles(per_rep["cpu"])
        wall_added = statistics.median(per_rep["wall"])
        added[name] = cpu_added if args.clock == "cpu" else wall_added
        print(
            f"{name:<14} {twin:<10} {cpu_added:>+9.3f}x {f'[{low:+.3f} - {high:+.3f}]':>14} "
            f"{wall_added:>+10.3f}x   <= {target:.2f}"
        )
    return added


def cold_path(calls: int, concurrency: int) -> dict[str, dict[str, Any]]:
    """Remote mode's cold path on httpx's default transport (``bench/upstream_cpu.py``)."""
    print(
        f"\nRemote mode's cold path: CPU per upstream call, {calls} calls, {concurrency} at once, "
        f"against a trivial server on 127.0.0.1 ({upstream_cpu.versions()}); each variant in "
        "its own process (see bench/upstream_cpu.py)"
    )
    print(upstream_cpu.HEADER)
    with upstream_cpu.upstream() as server:
        results = upstream_cpu.measure(upstream_cpu.VARIANTS, calls, concurrency, server)
    for variant, result in results.items():
        print(upstream_cpu.format_row(variant, result))
    return results


def verdicts(
    checked: dict[str, float],
    added: dict[str, float],
    cold: dict[str, dict[str, Any]] | None,
    args: argparse.Namespace,
) -> bool:
    """One line per target of issues 8 and 10, PASS or FAIL; True when all pass."""
    base_name = BASELINES[args.baseline][0]
    print(f"\nTargets (issues 8 and 10; {args.clock} time, ratio to {base_name}):")
    ok = True
    for name, (target, what) in TARGETS.items():
        passed = checked[name] <= target
        ok = ok and passed
        print(
            f"  {'PASS' if passed else 'FAIL'}  {what:<34} {checked[name]:>5.2f}x <= "
            f"{target:.2f}x  ({name})"
        )
    for name, (twin, target, what) in ADDED_TARGETS.items():
        passed = added[name] <= target
        ok = ok and passed
        print(
            f"  {'PASS' if passed else 'FAIL'}  {what:<34} {added[name]:>+6.3f}x <= "
            f"{target:.2f}x  ({name} - {twin})"
        )
    if cold is not None:
        app = cold.get("app", {})
        if "cpu_us" not in app:
            print(f"  FAIL  remote cold path: not measured ({app})")
            return False
        others = ", ".join(
            f"{variant} {result['cpu_us'] / 1000:.2f} ms"
            if "cpu_us" in result
            else f"{variant} skipped ({result.get('skipped') or result.get('failed')})"
            for variant, result in cold.items()
            if variant != "app"
        )
        print(
            f"  INFO  remote cold path: {app['cpu_us'] / 1000:.2f} ms of app CPU per upstream "
            f"call (httpx default transport; no numeric target). Beside it: {others}"
        )
    return ok


def load_average() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repetitions", type=int, default=101)
    parser.add_argument("--batch", type=int, default=100, help="requests per timed batch")
    parser.add_argument("--driver", choices=("asgi", "httpx"), default="asgi")
    parser.add_argument(
        "--baseline",
        choices=tuple(BASELINES),
        default="bearer",
        help="the no-op the targets are relative to (both no-ops are always run)",
    )
    parser.add_argument(
        "--clock",
        choices=("cpu", "wall"),
        default="cpu",
        help="the time the targets are checked against (both are reported)",
    )
    parser.add_argument(
        "--cold-calls",
        type=int,
        default=2000,
        help="upstream calls per variant of the cold-path measurement (0 skips it)",
    )
    parser.add_argument(
        "--cold-concurrency", type=int, default=32, help="cold-path callers at once"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    args = parser.parse_args()
    results = asyncio.run(run(args))
    checked = report(results, args)
    added = report_added(results, args)
    cold = cold_path(args.cold_calls, args.cold_concurrency) if args.cold_calls > 0 else None
    ok = verdicts(checked, added, cold, args)
    if args.check and not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
