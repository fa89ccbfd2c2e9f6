"""Where the CPU of remote mode's cold path goes: ours, FastAPI's, or httpx/httpcore's own.

Run with ``.venv/bin/python bench/profile_cold.py`` (``--help`` for options). Not part of
``make bench``: it explains the ``app`` figure of ``bench/upstream_cpu.py``. It starts the same
trivial upstream server, builds the same app (``Depends(current_user)``, remote mode, httpx's
default transport) in this process, then:

1. times the cold path without a profiler (``--calls`` fresh tokens, ``--concurrency`` at
   once; process CPU time per call);
2. times each pure-CPU step of ours alone, in a tight loop on the same inputs (thread CPU
   time, no I/O): header extraction, the token's digest, the unverified PyJWT reads, the
   claims and user models, ``build_request`` (URL and header merging), the deadline scope of
   the retry wrapper, the JSON decoding, the cache's single-flight task;
3. runs the cold path again under ``cProfile`` and splits its time by the package whose code
   ran (C functions are charged to the package that called them), and gives the inclusive
   share of our call sites. cProfile inflates code that makes many small Python calls, so
   its shares are scaled to the unprofiled total only as an estimate.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import anyio
import jwt
from _common import request_headers
from upstream_cpu import SIGNER, USER, _app_call, cold_tokens, upstream

from fastapi_stack_auth._cache import TokenCache, token_key
from fastapi_stack_auth._tokens import credential_from_headers, read_claims, read_header
from fastapi_stack_auth.models import StackUser

#: Package buckets, by a fragment of the code's file path (first match wins).
BUCKETS = (
    ("/fastapi_stack_auth/", "ours (fastapi_stack_auth)"),
    ("/jwt/", "PyJWT"),
    ("/pydantic", "pydantic"),
    ("/fastapi/", "FastAPI + Starlette"),
    ("/starlette/", "FastAPI + Starlette"),
    ("/httpx/", "httpx"),
    ("/httpcore/", "httpcore"),
    ("/h11/", "h11"),
    ("/anyio/", "anyio"),
    ("/sniffio/", "anyio"),
    ("/asyncio/", "asyncio event loop, sockets"),
    ("/selectors.py", "asyncio event loop, sockets"),
    ("/socket.py", "asyncio event loop, sockets"),
    ("/json/", "json"),
    ("bench/", "the benchmark's own driver"),
)
#: Our call sites, for inclusive times: (file fragment, function name, label).
CALL_SITES = (
    ("fastapi_stack_auth/_dependencies.py", "__call__", "current_user (whole dependency)"),
    ("fastapi_stack_auth/_cache.py", "_load", "cache miss task (verify + upstream call)"),
    ("fastapi_stack_auth/_verifiers.py", "verify", "RemoteVerifier.verify"),
    ("fastapi_stack_auth/_tokens.py", "read_header", "  read_header (PyJWT unverified header)"),
    ("jwt/api_jwt.py", "decode", "  jwt.decode (unverified + signature check)"),
    ("fastapi_stack_auth/_tokens.py", "read_claims", "  read_claims (TokenClaims model)"),
    ("fastapi_stack_auth/_verifiers.py", "_check_signature", "  _check_signature (JWKS, ES256)"),
    ("fastapi_stack_auth/_verifiers.py", "fetch_user", "  fetch_user (client + StackUser)"),
    ("fastapi_stack_auth/_client.py", "request", "    StackClient.request"),
    ("httpx/_client.py", "build_request", "      build_request (URL, headers)"),
    ("fastapi_stack_auth/_client.py", "_send", "      _send (retry wrapper + send)"),
    ("httpx/_client.py", "send", "        AsyncClient.send, head (httpx + httpcore)"),
    ("fastapi_stack_auth/_responses.py", "read_body", "        read_body (httpx + httpcore)"),
    ("httpx/_models.py", "aclose", "        Response.aclose (httpx + httpcore)"),
    ("fastapi_stack_auth/_responses.py", "decode", "      decode (status, JSON)"),
)


def bucket_of(filename: str) -> str:
    for fragment, name in BUCKETS:
        if fragment in filename:
            return name
    return "other stdlib / builtins" if filename.startswith(("~", "<")) else "other"


def by_package(stats: pstats.Stats) -> dict[str, float]:
    """Exclusive seconds per package; a C function's time goes to its callers' packages."""
    totals: dict[str, float] = defaultdict(float)
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    for (filename, _line, _name), (_cc, _nc, tottime, _ct, callers) in raw.items():
        if filename != "~":
            totals[bucket_of(filename)] += tottime
            continue
        spread = sum(entry[2] for entry in callers.values())
        if not spread:
            totals["other stdlib / builtins"] += tottime
            continue
        for (caller_file, _l, _n), entry in callers.items():
            share = tottime * entry[2] / spread
            if caller_file == "~":
                totals["other stdlib / builtins"] += share
            else:
                totals[bucket_of(caller_file)] += share
    return dict(totals)


def inclusive(stats: pstats.Stats) -> list[tuple[str, float]]:
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    rows = []
    for fragment, function, label in CALL_SITES:
        seconds = sum(
            value[3]
            for (filename, _line, name), value in raw.items()
            if name == function and filename.endswith(fragment)
        )
        rows.append((label, seconds))
    return rows


async def cold_run(call: Callable[[str], Any], tokens: list[str], concurrency: int) -> None:
    feed = iter(tokens)

    async def worker() -> None:
        for token in feed:
            await call(token)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


def per_call_us(step: Callable[[], Any], repeat: int) -> float:
    started = time.thread_time()
    for _ in range(repeat):
        step()
    return (time.thread_time() - started) / repeat * 1e6


async def steps(url: str, stack: Any, repeat: int) -> list[tuple[str, float]]:
    """Microseconds of each pure-CPU step of ours on the cold path, alone."""
    token = cold_tokens(url, 1)[0]
    headers = request_headers(token)
    payload = jwt.decode(token, options={"verify_signature": False})
    body = json.dumps(USER).encode()
    http = stack.client._http
    key = SIGNER.key.public_key()
    extra = {
        "x-stack-allow-anonymous-user": "true",
        "x-stack-allow-restricted-user": "true",
        "x-stack-access-token": token,
    }

    rows = [
        ("credential_from_headers", per_call_us(lambda: credential_from_headers(headers), repeat)),
        ("token_key (SHA-256)", per_call_us(lambda: token_key(token), repeat)),
        ("read_header (PyJWT)", per_call_us(lambda: read_header(token), repeat)),
        (
            "jwt.decode, unverified",
            per_call_us(
                lambda: jwt.decode(token, options={"verify_signature": False}),
                repeat,
            ),
        ),
        ("read_claims (TokenClaims)", per_call_us(lambda: read_claims(payload), repeat)),
        (
            "jwt.decode, signature only",
            per_call_us(
                lambda: jwt.decode(
                    token,
                    key,
                    algorithms=["ES256"],
                    options={"verify_exp": False, "verify_aud": False, "verify_iss": False},
                ),
                repeat,
            ),
        ),
        ("StackUser.model_validate", per_call_us(lambda: StackUser.model_validate(USER), repeat)),
        (
            "build_request (URL, headers)",
            per_call_us(lambda: http.build_request("GET", "/users/me", headers=extra), repeat),
        ),
        ("json.loads of the user", per_call_us(lambda: json.loads(body), repeat)),
    ]

    # The retry wrapper's per-attempt deadline: an anyio cancel scope around the send.
    async def nothing() -> None:
        return None

    started = time.thread_time()
    for _ in range(repeat):
        with anyio.fail_after(30):
            await nothing()
    scoped = time.thread_time() - started
    started = time.thread_time()
    for _ in range(repeat):
        await nothing()
    rows.append(("anyio.fail_after scope", (scoped - time.thread_time() + started) / repeat * 1e6))
    # The single-flight machinery of a miss: a task, a shield and a done callback.
    cache: TokenCache[int] = TokenCache(maxsize=10_000_000, ttl=3600)
    keys = [token_key(str(i)) for i in range(repeat)]

    async def loader() -> tuple[int, float]:
        return 1, time.time() + 3600

    started = time.thread_time()
    for key in keys:
        await cache.get_or_load(key, loader)
    with_cache = (time.thread_time() - started) / repeat * 1e6
    started = time.thread_time()
    for _ in keys:
        await loader()
    rows.append(
        ("cache miss: task + shield", with_cache - (time.thread_time() - started) / repeat * 1e6)
    )
    return rows


async def run(args: argparse.Namespace, url: str) -> None:
    stack, call = await _app_call(url)
    tokens = cold_tokens(url, 3 * args.calls + 4 * args.concurrency)
    warm, timed, profiled = (
        tokens[: 4 * args.concurrency],
        tokens[4 * args.concurrency : 4 * args.concurrency + args.calls],
        tokens[-args.calls :],
    )
    await cold_run(call, warm, args.concurrency)
    started = time.process_time()
    await cold_run(call, timed, args.concurrency)
    total_us = (time.process_time() - started) / args.calls * 1e6
    print(
        f"cold path, unprofiled: {total_us / 1000:.2f} ms CPU per call "
        f"({args.calls} calls, {args.concurrency} at once)\n"
    )
    print("our pure-CPU steps, each alone (us per call):")
    step_rows = await steps(url, stack, args.repeat)
    for label, us in step_rows:
        print(f"  {label:<34} {us:>8.1f}")
    ours = sum(us for _, us in step_rows)
    print(f"  {'sum':<34} {ours:>8.1f}  ({ours / total_us:.0%} of the cold path)\n")

    profile = cProfile.Profile()
    profile.enable()
    await cold_run(call, profiled, args.concurrency)
    profile.disable()
    await stack.stop()
    stats = pstats.Stats(profile)
    total = sum(value[2] for value in stats.stats.values())  # type: ignore[attr-defined]
    scale = total_us / total / 1000
    print(
        f"cProfile, self time by package (C calls charged to their caller's package); "
        f"ms per call scaled to the unprofiled {total_us / 1000:.2f} ms:"
    )
    for name, seconds in sorted(by_package(stats).items(), key=lambda kv: -kv[1]):
        print(f"  {name:<34} {seconds / total:>6.1%} {seconds * scale:>8.2f}")
    print("\ncProfile, inclusive time of call sites (coroutines: time while running):")
    for label, seconds in inclusive(stats):
        print(f"  {label:<44} {seconds / total:>6.1%} {seconds * scale:>8.2f}")
    if args.dump:
        stats.dump_stats(args.dump)
        print(f"\nprofile written to {args.dump}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=1000, help="cold calls per run")
    parser.add_argument("--concurrency", type=int, default=32, help="callers at once")
    parser.add_argument("--repeat", type=int, default=5000, help="loops per step timing")
    parser.add_argument("--dump", help="write the cProfile stats to this file")
    args = parser.parse_args()
    with upstream() as server:
        asyncio.run(run(args, server.url))
    return 0


if __name__ == "__main__":
    sys.exit(main())
