"""Load test: the example app under uvicorn, many concurrent clients, many distinct tokens.

Run with ``make bench`` (after ``bench/overhead.py``) or ``.venv/bin/python bench/load.py``
(``--quick`` for a short run, ``--help`` for every option). Everything runs on 127.0.0.1 and
every request loop is bounded by a request count and a wall-clock cap.

Three processes:

- the Stack Auth emulator (``fastapi_stack_auth.emulator``, a child process), every API answer
  delayed by ``--latency-ms`` (20 ms: a distant Stack Auth). It mints the users' tokens through
  its Python API and counts the calls each endpoint receives;
- the example app (``example_app.main:app``) under ``uvicorn`` (a child process, on a socket
  bound before it starts), pointed at the emulator, restarted for each mode;
- this process: the load generator, a minimal HTTP/1.1 keep-alive client on raw asyncio
  streams (about a quarter of the app's CPU per request, so that the app, not the generator,
  is what is measured: the CPU share of all three is reported per phase).

Phases, each with its own tokens:

- ``remote-cold``  remote mode (the default), every request carries a token never seen before:
                   each one costs an upstream ``GET /users/me``;
- ``remote-warm``  the same tokens again, in random order: all cached, no upstream call;
- ``remote-burst`` fresh tokens, each sent by ``--burst`` clients at once: single-flight, one
                   upstream call per token, not one per request;
- ``jwt-cold`` / ``jwt-warm``  the same in JWT mode (``STACK_VERIFY=jwt``: ES256 checked
                   locally against the JWKS, loaded at startup and not asked again);
- ``rss``          ``--rss-tokens`` distinct tokens (100 000) through a fresh app per
                   ``STACK_CACHE_MAX_ENTRIES`` value in ``--rss-max-entries`` (the apps are
                   filled side by side); the app's peak RSS (``VmHWM``) shows the cache is
                   bounded by the setting. JWT mode by default; ``--rss-mode remote`` costs an
                   upstream call per token (several minutes) and then sends the first 1 000
                   tokens again: with a cap below the token count they were evicted (asked
                   upstream again), above it they are still cached.

Upstream calls are counted by the emulator; within one TTL window (``STACK_CACHE_TTL`` is set
above the run's length) they must equal the number of distinct tokens, whatever the number of
requests. ``--check`` exits 1 if a check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
USERS_ME = "GET /users/me"
JWKS = "GET /projects/{project_id}/.well-known/jwks.json"
#: Each child process stops by itself after this many seconds, whatever happens.
CHILD_CAP_SECONDS = 900
#: Output of the app that means a shutdown or a request went wrong.
BAD_OUTPUT = ("Traceback", "Unclosed", "Task was destroyed", "Exception in ASGI", "ERROR")
TICKS = os.sysconf("SC_CLK_TCK")


# --- the emulator, in a child process ----------------------------------------------------------


def emulator_child(latency_ms: float) -> None:
    """Serve the emulator; answer ``mint N`` and ``stats`` on stdin, one request per line."""
    signal.alarm(CHILD_CAP_SECONDS)  # stops by itself, whatever the parent does
    from fastapi_stack_auth.emulator import Emulator, EmulatorServer
    from fastapi_stack_auth.emulator._cli import app_environment

    emulator = Emulator(access_token_ttl=3600, latency=latency_ms / 1000)
    out = sys.stdout
    with EmulatorServer(emulator) as server:
        no_delay(getattr(server, "_socket", None))
        out.write(json.dumps({"url": server.url, "env": app_environment(emulator)}) + "\n")
        out.flush()
        for line in sys.stdin:
            command, _, arg = line.strip().partition(" ")
            if command == "mint":
                tokens = []
                for _ in range(int(arg)):
                    user = emulator.create_user(display_name="Load Test User")
                    tokens.append(emulator.sign_in(user.id).access_token)
                out.write("\n".join(tokens) + "\n")
            elif command == "stats":
                out.write(json.dumps(dict(emulator.calls)) + "\n")
            out.flush()


class EmulatorProcess:
    """The emulator child and its two commands."""

    def __init__(self, latency_ms: float) -> None:
        self.process = subprocess.Popen(  # noqa: S603 - this very script
            [sys.executable, __file__, "--emulator-child", "--latency-ms", str(latency_ms)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self._in: IO[str] = self.process.stdin
        self._out: IO[str] = self.process.stdout
        hello = json.loads(self._out.readline())
        self.url: str = hello["url"]
        self.env: dict[str, str] = hello["env"]
        self.pid = self.process.pid

    def mint(self, count: int) -> list[str]:
        self._in.write(f"mint {count}\n")
        self._in.flush()
        return [self._out.readline().strip() for _ in range(count)]

    def calls(self) -> Counter[str]:
        self._in.write("stats\n")
        self._in.flush()
        return Counter(json.loads(self._out.readline()))

    def close(self) -> None:
        self._in.close()  # the child's loop ends, its server stops
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# --- the app, under uvicorn in a child process ----------------------------------------------------


@dataclass
class App:
    url: str
    host: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path
    output: str = ""


def no_delay(sock: socket.socket | None) -> None:
    """``TCP_NODELAY`` on a listening socket, which Linux copies to every connection it accepts.

    asyncio sets it on the connections of a socket it made itself (``uvicorn --host --port``),
    not on those of a socket made with protocol 0 (the emulator's, until it sets it) or passed
    as ``uvicorn --fd`` (read back as AF_UNIX). Without it, a response written in two pieces
    (uvicorn's h11 sends the head, then the body) waits for the client's delayed ACK: about
    40 ms per request on a keep-alive connection, which is what the load test would measure.
    """
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    no_delay(sock)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    return sock


@contextmanager
def app_process(env: dict[str, str], workdir: Path, name: str) -> Iterator[App]:
    """``uvicorn example_app.main:app`` on a pre-bound loopback socket; stopped with SIGINT."""
    sock = _listening_socket()
    host, port = sock.getsockname()[:2]
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("STACK_")}
    child_env.update(env)
    log = workdir / f"{name}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(  # noqa: S603 - the venv's own python
            [
                sys.executable,
                "-m",
                "uvicorn",
                "example_app.main:app",
                "--fd",
                str(sock.fileno()),
                "--no-access-log",
                "--log-level",
                "warning",
                "--backlog",
                "1024",
            ],
            cwd=workdir,  # no .env of the developer's is read
            env={**child_env, "PYTHONPATH": str(ROOT)},
            pass_fds=[sock.fileno()],
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    sock.close()
    app = App(f"http://{host}:{port}", host, port, process, log)
    try:
        yield app
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        app.output = log.read_text(errors="replace")


def proc_status(pid: int) -> dict[str, int]:
    """``VmRSS`` and ``VmHWM`` (peak RSS) of ``pid``, in KiB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0])
    return values


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


# --- the load generator -----------------------------------------------------------------------


@dataclass
class Result:
    name: str
    requests: int
    distinct: int
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: int = 0
    upstream: int = 0
    app_cpu: float = 0.0
    generator_cpu: float = 0.0
    emulator_cpu: float = 0.0
    capped: bool = False

    @property
    def done(self) -> int:
        return len(self.latencies)

    def quantile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else 0.0


def request_bytes(token: str) -> bytes:
    return (
        "GET /me HTTP/1.1\r\nhost: 127.0.0.1\r\nuser-agent: load/1\r\n"
        f"authorization: Bearer {token}\r\n\r\n"
    ).encode()


async def drive(
    host: str, port: int, requests: Sequence[bytes], concurrency: int, cap: float, result: Result
) -> None:
    """Send ``requests`` in order over ``concurrency`` keep-alive connections, until all are
    answered or ``cap`` seconds have passed."""
    deadline = time.monotonic() + cap
    position = 0
    latencies, statuses = result.latencies, result.statuses

    async def client() -> None:
        nonlocal position
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while position < len(requests):
                if time.monotonic() > deadline:
                    result.capped = True
                    return
                request = requests[position]
                position += 1
                started = time.perf_counter()
                try:
                    writer.write(request)
                    head = await reader.readuntil(b"\r\n\r\n")
                    lowered = head.lower()
                    at = lowered.find(b"\r\ncontent-length:")
                    length = int(lowered[at + 17 : lowered.find(b"\r\n", at + 2)]) if at > 0 else 0
                    await reader.readexactly(length)
                except (OSError, asyncio.IncompleteReadError, ValueError):
                    result.errors += 1
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, port)
                    continue
                latencies.append(time.perf_counter() - started)
                statuses[int(head[9:12])] += 1
                if b"\r\nconnection: close" in lowered:
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, port)
        finally:
            writer.close()

    await asyncio.gather(*(client() for _ in range(concurrency)))


def _forged(token: str, other: str) -> str:
    """``token`` with ``other``'s signature: well formed, right audience, not genuine."""
    return token.rpartition(".")[0] + "." + other.rpartition(".")[2]


def run_phase(
    name: str,
    app: App,
    emulator: EmulatorProcess,
    tokens: Sequence[str],
    *,
    distinct: int,
    concurrency: int,
    cap: float,
) -> Result:
    requests = [request_bytes(token) for token in tokens]
    result = Result(name, len(requests), distinct)
    calls_before = emulator.calls()[USERS_ME]
    app_cpu, emu_cpu = cpu_seconds(app.process.pid), cpu_seconds(emulator.pid)
    gen_cpu, started = time.process_time(), time.perf_counter()
    asyncio.run(drive(app.host, app.port, requests, concurrency, cap, result))
    result.seconds = time.perf_counter() - started
    result.generator_cpu = time.process_time() - gen_cpu
    result.app_cpu = cpu_seconds(app.process.pid) - app_cpu
    result.emulator_cpu = cpu_seconds(emulator.pid) - emu_cpu
    result.upstream = emulator.calls()[USERS_ME] - calls_before
    return result


def wait_ready(app: App) -> None:
    """One ``GET /`` answered: the lifespan (key check, JWKS) has run. Not a sleep: the socket
    was listening before uvicorn started, the request waits in its backlog."""
    result = Result("ready", 1, 0)
    request = f"GET / HTTP/1.1\r\nhost: {app.host}:{app.port}\r\n\r\n".encode()
    asyncio.run(drive(app.host, app.port, [request], 1, 60, result))
    if result.statuses.get(200) != 1:
        raise SystemExit(f"the app did not start; its output:\n{app.log.read_text()}")


# --- the run -------------------------------------------------------------------------------------


def _fmt_row(r: Result) -> str:
    rate = r.done / r.seconds if r.seconds else 0.0
    wall = r.seconds or 1.0
    bad = sum(n for status, n in r.statuses.items() if status != 200) + r.errors
    per_request = r.app_cpu / r.done * 1000 if r.done else 0.0
    return (
        f"{r.name:<13} {r.done:>8} {r.distinct:>8} {rate:>7.0f} {r.quantile(0.5):>7.1f} "
        f"{r.quantile(0.99):>7.1f} {r.upstream:>8} {per_request:>11.2f} {r.app_cpu / wall:>5.0%} "
        f"{r.emulator_cpu / wall:>5.0%} {r.generator_cpu / wall:>5.0%} {bad:>5}"
        + ("  (capped)" if r.capped else "")
    )


HEADER = (
    f"{'phase':<13} {'requests':>8} {'distinct':>8} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} "
    f"{'upstream':>8} {'app CPU/req':>11} {'app':>5} {'emu':>5} {'gen':>5} {'!200':>5}"
)


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency-ms", type=float, default=20.0, help="emulator delay per call")
    parser.add_argument("--concurrency", type=int, default=64, help="clients at once")
    parser.add_argument("--tokens", type=int, default=4000, help="distinct tokens, cold phases")
    parser.add_argument("--warm", type=int, default=20000, help="requests of the warm phases")
    parser.add_argument("--burst-tokens", type=int, default=1000, help="tokens of remote-burst")
    parser.add_argument("--burst", type=int, default=8, help="clients sending each burst token")
    parser.add_argument("--rss-tokens", type=int, default=100_000, help="tokens of the RSS runs")
    parser.add_argument(
        "--rss-max-entries",
        default="10000,100000",
        help="STACK_CACHE_MAX_ENTRIES values for the RSS runs (comma-separated; '' skips them)",
    )
    parser.add_argument(
        "--rss-mode",
        choices=("jwt", "remote"),
        default="jwt",
        help="verification mode of the RSS runs (remote: 20 ms and an upstream call per token)",
    )
    parser.add_argument("--cap", type=float, default=120.0, help="wall-clock cap per phase, s")
    parser.add_argument(
        "--rss-cap", type=float, default=600.0, help="wall-clock cap of the RSS fill, s"
    )
    parser.add_argument("--quick", action="store_true", help="small counts: a smoke run")
    parser.add_argument("--check", action="store_true", help="exit 1 if a check fails")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--emulator-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.emulator_child:
        emulator_child(args.latency_ms)
        return 0
    if args.quick:
        args.tokens, args.warm, args.burst_tokens, args.rss_tokens = 500, 2000, 200, 12_000
        if args.rss_max_entries == "10000,100000":
            args.rss_max_entries = "2000,20000"
    rng = random.Random(args.seed)  # noqa: S311 - shuffling requests, not secrets
    failures: list[str] = []
    ttl = "3600"  # one TTL window for the whole run (tokens live 3600 s too)

    def check(ok: bool, what: str) -> str:
        if not ok:
            failures.append(what)
        return "ok" if ok else "FAILED"

    emulator = EmulatorProcess(args.latency_ms)
    workdir = Path(tempfile.mkdtemp(prefix="stack-auth-load-"))
    try:
        import httpcore
        import httpx
        import uvicorn

        print(
            f"fastapi-stack-auth load test: example app under uvicorn {uvicorn.__version__} "
            f"(Python {platform.python_version()}, {os.cpu_count()} cores, load average "
            f"{load_average()}); calls to Stack Auth: httpx {httpx.__version__} over httpcore "
            f"{httpcore.__version__}; emulator latency {args.latency_ms:g} ms; "
            f"{args.concurrency} concurrent clients"
        )
        started = time.perf_counter()
        rss_runs = [int(v) for v in args.rss_max_entries.split(",") if v.strip()]
        need = 2 * args.tokens + args.burst_tokens + (args.rss_tokens if rss_runs else 0)
        minted = time.perf_counter()
        pool = emulator.mint(need)
        print(f"minted {need} tokens (one user each) in {time.perf_counter() - minted:.1f} s")
        cold, pool = pool[: args.tokens], pool[args.tokens :]
        burst_tokens, pool = pool[: args.burst_tokens], pool[args.burst_tokens :]
        jwt_cold, pool = pool[: args.tokens], pool[args.tokens :]
        rss_tokens = pool[: args.rss_tokens]
        common = {**emulator.env, "STACK_CACHE_TTL": ttl}

        print(
            "\nreq/s and latency as the clients see them; upstream = GET /users/me calls the "
            "emulator received;\napp CPU/req = the app's CPU milliseconds per request; "
            "app/emu/gen = CPU of the app, the emulator\nand this load generator, as a share "
            "of one core\n"
        )
        print(HEADER)
        results: list[Result] = []
        burst = [token for token in burst_tokens for _ in range(args.burst)]
        with app_process(common, workdir, "remote") as app:
            wait_ready(app)
            warm = [rng.choice(cold) for _ in range(args.warm)]
            for name, tokens, distinct in (
                ("remote-cold", cold, len(cold)),
                ("remote-warm", warm, len(cold)),
                ("remote-burst", burst, len(burst_tokens)),
            ):
                result = run_phase(
                    name,
                    app,
                    emulator,
                    tokens,
                    distinct=distinct,
                    concurrency=args.concurrency,
                    cap=args.cap,
                )
                results.append(result)
                print(_fmt_row(result), flush=True)
            # A forged-token flood: each token has the shape, audience and future exp of a real
            # one but another token's signature; each is sent 20 times. With the project's
            # JWKS loaded, remote mode refuses them without asking Stack.
            forged = [_forged(a, b) for a, b in itertools.pairwise(cold[:51])]
            flood = [token for token in forged for _ in range(20)]
            rng.shuffle(flood)
            forged_result = run_phase(
                "remote-forged",
                app,
                emulator,
                flood,
                distinct=len(forged),
                concurrency=args.concurrency,
                cap=args.cap,
            )
            print(_fmt_row(forged_result), flush=True)
        remote_output = app.output
        jwks_before = emulator.calls()[JWKS]
        with app_process({**common, "STACK_VERIFY": "jwt"}, workdir, "jwt") as app:
            wait_ready(app)
            # The key sets are loaded at startup (a refresh asks for several sets at once).
            jwks_startup = emulator.calls()[JWKS] - jwks_before
            warm = [rng.choice(jwt_cold) for _ in range(args.warm)]
            for name, tokens in (("jwt-cold", jwt_cold), ("jwt-warm", warm)):
                result = run_phase(
                    name,
                    app,
                    emulator,
                    tokens,
                    distinct=len(jwt_cold),
                    concurrency=args.concurrency,
                    cap=args.cap,
                )
                results.append(result)
                print(_fmt_row(result), flush=True)
        jwt_output = app.output
        jwks_serving = emulator.calls()[JWKS] - jwks_before - jwks_startup

        print("\nChecks:")
        r = {x.name: x for x in results}
        all_ok = all(x.statuses.get(200, 0) == x.requests and not x.errors for x in results)
        print(f"  every request answered 200, none capped: {check(all_ok, 'answers')}")
        remote = [r["remote-cold"], r["remote-warm"], r["remote-burst"]]
        asked = sum(x.upstream for x in remote)
        sent = sum(x.done for x in remote)
        tokens_seen = len(cold) + len(burst_tokens)
        print(
            f"  remote mode: {sent} requests, {tokens_seen} distinct tokens, {asked} upstream "
            f"calls: {check(asked == tokens_seen, 'remote upstream calls')}"
        )
        f = forged_result
        refused = f.statuses.get(401, 0) == f.requests
        print(
            f"  forged-token flood: {f.done} requests, {f.distinct} distinct forged tokens, "
            f"{f.upstream} upstream calls (at most 1 per distinct token per window), all 401: "
            f"{check(refused and f.upstream <= f.distinct, 'forged flood')}"
        )
        burst_r = r["remote-burst"]
        print(
            f"  remote-burst: {burst_r.done} requests ({args.burst} at once per token), "
            f"{burst_r.distinct} tokens, {burst_r.upstream} upstream calls: "
            f"{check(burst_r.upstream == burst_r.distinct, 'burst single-flight')}"
        )
        jwt_asked = r["jwt-cold"].upstream + r["jwt-warm"].upstream
        print(
            f"  JWT mode: {jwt_asked} calls to /users/me; JWKS requests: {jwks_startup} at "
            f"startup, {jwks_serving} while serving: "
            f"{check(jwt_asked == 0 and jwks_startup > 0 and not jwks_serving, 'jwt upstream')}"
        )
        for label, output in (("remote", remote_output), ("jwt", jwt_output)):
            bad = [line for line in output.splitlines() if _bad(line)]
            print(f"  {label} app output clean on shutdown: {check(not bad, label + ' output')}")
            for line in bad[:5]:
                print(f"    {line}")

        if rss_runs:
            rss_report(args, rss_runs, rss_tokens, emulator, workdir, common, check)
        print(f"\nTotal {time.perf_counter() - started:.0f} s; load average {load_average()}.")
    finally:
        emulator.close()
    if failures:
        print("FAILED: " + ", ".join(failures))
    return 1 if failures and args.check else 0


def rss_report(
    args: argparse.Namespace,
    runs: list[int],
    tokens: list[str],
    emulator: EmulatorProcess,
    workdir: Path,
    common: dict[str, str],
    check: Any,
) -> None:
    """One app per cap, all filled at once (each on its own core as far as there are cores),
    then the first 1000 tokens again, one app after the other."""
    print(
        f"\nPeak RSS of the app after {len(tokens)} distinct tokens in {args.rss_mode} mode "
        f"(one app per cap, filled side by side), then the first 1000 again:"
    )
    print(
        f"{'STACK_CACHE_MAX_ENTRIES':>23} {'tokens':>7} {'req/s':>7} {'RSS start':>10} "
        f"{'peak RSS':>9} {'RSS end':>8} {'re-asked':>9}"
    )
    requests = [request_bytes(token) for token in tokens]
    again = tokens[:1000]
    with ExitStack() as stack:
        apps = {}
        for cap in runs:
            env = {**common, "STACK_VERIFY": args.rss_mode, "STACK_CACHE_MAX_ENTRIES": str(cap)}
            apps[cap] = stack.enter_context(app_process(env, workdir, f"rss-{cap}"))
        for app in apps.values():
            wait_ready(app)
        start = {cap: proc_status(app.process.pid)["VmRSS"] for cap, app in apps.items()}
        fills = {cap: Result(f"rss-{cap}", len(tokens), len(tokens)) for cap in runs}

        async def fill(cap: int, app: App) -> None:
            began = time.perf_counter()
            await drive(app.host, app.port, requests, args.concurrency, args.rss_cap, fills[cap])
            fills[cap].seconds = time.perf_counter() - began

        async def fill_all() -> None:
            await asyncio.gather(*(fill(cap, app) for cap, app in apps.items()))

        asyncio.run(fill_all())
        status = {cap: proc_status(app.process.pid) for cap, app in apps.items()}
        repeats = {}
        for cap, app in apps.items():
            repeats[cap] = run_phase(
                "rss-again",
                app,
                emulator,
                again,
                distinct=len(again),
                concurrency=args.concurrency,
                cap=args.cap,
            )
    for cap in runs:
        fill_result, repeat = fills[cap], repeats[cap]
        answered = fill_result.statuses.get(200, 0)
        ok = (
            answered == fill_result.done
            and repeat.statuses.get(200) == len(again)
            and not fill_result.errors + repeat.errors
        )
        check(ok, f"rss {cap} answers")
        check(not fill_result.capped, f"rss {cap} within --rss-cap")
        # JWT mode asks nobody: an evicted token is verified again locally, unseen here.
        reasked = "n/a" if args.rss_mode == "jwt" else str(repeat.upstream)
        print(
            f"{cap:>23} {fill_result.done:>7} {fill_result.done / fill_result.seconds:>7.0f} "
            f"{start[cap] / 1024:>8.0f} M {status[cap]['VmHWM'] / 1024:>7.0f} M "
            f"{status[cap]['VmRSS'] / 1024:>6.0f} M {reasked:>9}"
            + ("" if ok else "  (not every answer was 200)")
            + (f"  (capped at {args.rss_cap:g} s)" if fill_result.capped else "")
        )
        if args.rss_mode == "remote":
            expected = len(again) if cap < fill_result.done else 0
            check(repeat.upstream == expected, f"rss {cap} re-asked")
    if len(runs) >= 2:
        low, high = min(runs), max(runs)
        bounded = status[low]["VmHWM"] < status[high]["VmHWM"]
        saved = (status[high]["VmHWM"] - status[low]["VmHWM"]) / 1024
        print(
            f"  a cap of {low} keeps the peak RSS below a cap of {high}: "
            f"{check(bounded, 'rss bounded')} ({saved:.0f} MiB less)"
        )
    bad = [line for app in apps.values() for line in app.output.splitlines() if _bad(line)]
    print(f"  RSS apps' output clean on shutdown: {check(not bad, 'rss output')}")
    for line in bad[:5]:
        print(f"    {line}")


def _bad(line: str) -> bool:
    return any(marker in line for marker in BAD_OUTPUT)


if __name__ == "__main__":
    sys.exit(main())
