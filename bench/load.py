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
- ``permissions``  remote mode with ``STACK_PERMISSION_CACHE_TTL`` short (``--perm-ttl``):
                   ``--authz-users`` users, each a member of ``--authz-teams`` teams, call the
                   example app's ``DELETE /teams/{team_id}/docs/{doc_id}`` (team permission
                   ``docs:delete``, granted in half of the pairs) and ``GET /admin/stats``
                   (project permission ``admin``, granted to half of the users), every question
                   ``--authz-repeat`` times, shuffled, over ``--authz-windows`` TTL windows; each
                   window must take less than the TTL, and the next one starts once every
                   answer of the last has expired. Calls to ``GET /team-permissions`` and
                   ``GET /project-permissions`` must equal the distinct (user, team,
                   permission) and (user, permission) questions in each window, and every
                   answer must be the one its grant calls for (200 or 403);
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
TEAM_PERMISSIONS = "GET /team-permissions"
PROJECT_PERMISSIONS = "GET /project-permissions"
#: The example app's permission-guarded routes, and what they ask.
TEAM_PERMISSION, PROJECT_PERMISSION = "docs:delete", "admin"
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
            elif command == "authz":
                users, teams = (int(n) for n in arg.split())
                out.write(json.dumps(authz_world(emulator, users, teams)) + "\n")
            out.flush()


def authz_world(emulator: Any, users: int, teams: int) -> dict[str, Any]:
    """Users (one token each) who are all members of all the ``teams`` teams: user ``u`` holds
    ``docs:delete`` in team ``t`` when ``u + t`` is even, and the project permission ``admin``
    when ``u`` is even."""
    emulator.define_permission(TEAM_PERMISSION, scope="team")
    emulator.define_permission(PROJECT_PERMISSION, scope="project")
    people = [emulator.create_user(display_name="Load Test User") for _ in range(users)]
    groups = [emulator.create_team("Load Test Team") for _ in range(teams)]
    for u, person in enumerate(people):
        if u % 2 == 0:
            emulator.grant_project_permission(person.id, PROJECT_PERMISSION)
        for t, team in enumerate(groups):
            emulator.add_member(team.id, person.id)
            if (u + t) % 2 == 0:
                emulator.grant_team_permission(team.id, person.id, TEAM_PERMISSION)
    return {
        "tokens": [emulator.sign_in(person.id).access_token for person in people],
        "teams": [team.id for team in groups],
    }


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

    def authz(self, users: int, teams: int) -> tuple[list[str], list[str]]:
        """``authz_world`` in the child: the users' tokens and the team ids."""
        self._in.write(f"authz {users} {teams}\n")
        self._in.flush()
        world = json.loads(self._out.readline())
        return world["tokens"], world["teams"]

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
    #: The status of each request by its position, when asked for (``record=True``).
    answers: dict[int, int] | None = None

    @property
    def done(self) -> int:
        return len(self.latencies)

    def quantile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else 0.0


def request_bytes(token: str, method: str = "GET", path: str = "/me") -> bytes:
    return (
        f"{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nuser-agent: load/1\r\n"
        f"authorization: Bearer {token}\r\n\r\n"
    ).encode()


async def drive(
    host: str, port: int, requests: Sequence[bytes], concurrency: int, cap: float, result: Result
) -> None:
    """Send ``requests`` in order over ``concurrency`` keep-alive connections, until all are
    answered or ``cap`` seconds have passed."""
    deadline = time.monotonic() + cap
    position = 0
    latencies, statuses, answers = result.latencies, result.statuses, result.answers

    async def client() -> None:
        nonlocal position
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while position < len(requests):
                if time.monotonic() > deadline:
                    result.capped = True
                    return
                index = position
                request = requests[index]
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
                status = int(head[9:12])
                statuses[status] += 1
                if answers is not None:
                    answers[index] = status
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
    parser.add_argument("--authz-users", type=int, default=16, help="users, permission phase")
    parser.add_argument("--authz-teams", type=int, default=12, help="teams, permission phase")
    parser.add_argument(
        "--authz-repeat", type=int, default=5, help="requests per question per window"
    )
    parser.add_argument("--authz-windows", type=int, default=3, help="TTL windows (at least 2)")
    parser.add_argument(
        "--perm-ttl",
        type=float,
        default=10.0,
        help="STACK_PERMISSION_CACHE_TTL of the permission phase, s (longer than a window)",
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
        args.authz_users, args.authz_teams, args.authz_repeat = 12, 8, 5
        args.authz_windows, args.perm_ttl = 2, 4.0
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

        windows, output = permission_phase(args, emulator, workdir, common, rng)
        permission_report(windows, output, args, check)
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


# --- permission checks: upstream calls per TTL window -----------------------------------------


@dataclass
class Window:
    """One TTL window of the permission phase."""

    number: int
    requests: int
    #: Distinct (user, team, docs:delete) and (user, admin) questions: the calls expected.
    team_questions: int
    project_questions: int
    seconds: float
    team_calls: int
    project_calls: int
    identity_calls: int
    #: Answers other than the one the grant calls for, and requests never answered.
    wrong: int
    unanswered: int
    app_cpu: float


def permission_requests(
    tokens: Sequence[str], teams: Sequence[str], repeat: int, rng: random.Random
) -> tuple[list[bytes], list[int]]:
    """Every (user, team, ``docs:delete``) and (user, ``admin``) question ``repeat`` times, in
    random order, and the status each must get (``authz_world``'s grants)."""
    asked: list[tuple[bytes, int]] = []
    for u, token in enumerate(tokens):
        for t, team in enumerate(teams):
            delete = request_bytes(token, "DELETE", f"/teams/{team}/docs/{u}")
            asked += [(delete, 200 if (u + t) % 2 == 0 else 403)] * repeat
        stats = request_bytes(token, "GET", "/admin/stats")
        asked += [(stats, 200 if u % 2 == 0 else 403)] * repeat
    rng.shuffle(asked)
    return [request for request, _ in asked], [status for _, status in asked]


def permission_phase(
    args: argparse.Namespace,
    emulator: EmulatorProcess,
    workdir: Path,
    common: dict[str, str],
    rng: random.Random,
) -> tuple[list[Window], str]:
    """The example app in remote mode with ``STACK_PERMISSION_CACHE_TTL=--perm-ttl``, asked
    the same questions in each of ``--authz-windows`` windows; returns the windows and the
    app's output."""
    tokens, teams = emulator.authz(args.authz_users, args.authz_teams)
    env = {**common, "STACK_PERMISSION_CACHE_TTL": f"{args.perm_ttl:g}"}
    windows: list[Window] = []
    with app_process(env, workdir, "permissions") as app:
        wait_ready(app)
        expired_at = 0.0
        for number in range(1, args.authz_windows + 1):
            # Nothing announces that a cached answer expired: the next window waits until
            # every answer of the last one has (each lives the TTL from when it was loaded,
            # at the latest when the last response was read), with a margin.
            pause = expired_at - time.time()
            if pause > 0:
                time.sleep(pause)
            requests, expected = permission_requests(tokens, teams, args.authz_repeat, rng)
            result = Result(f"permissions-{number}", len(requests), 0, answers={})
            before, cpu = emulator.calls(), cpu_seconds(app.process.pid)
            started = time.perf_counter()
            asyncio.run(drive(app.host, app.port, requests, args.concurrency, args.cap, result))
            seconds = time.perf_counter() - started
            expired_at = time.time() + args.perm_ttl + 0.25
            app_cpu = cpu_seconds(app.process.pid) - cpu
            calls = emulator.calls() - before
            answers = result.answers or {}
            windows.append(
                Window(
                    number=number,
                    requests=len(requests),
                    team_questions=len(tokens) * len(teams),
                    project_questions=len(tokens),
                    seconds=seconds,
                    team_calls=calls[TEAM_PERMISSIONS],
                    project_calls=calls[PROJECT_PERMISSIONS],
                    identity_calls=calls[USERS_ME],
                    wrong=sum(answers.get(i, want) != want for i, want in enumerate(expected)),
                    unanswered=len(requests) - len(answers),
                    app_cpu=app_cpu,
                )
            )
    return windows, app.output


def permission_report(
    windows: list[Window], output: str, args: argparse.Namespace, check: Any
) -> None:
    """The permission phase's table and checks."""
    print(
        f"\nPermission checks: {args.authz_users} users x {args.authz_teams} teams "
        f"({TEAM_PERMISSION}) and {args.authz_users} users ({PROJECT_PERMISSION}), each "
        f"question {args.authz_repeat} times per window, STACK_PERMISSION_CACHE_TTL="
        f"{args.perm_ttl:g} s; upstream = calls the emulator received during the window"
    )
    print(
        f"{'window':>6} {'requests':>8} {'seconds':>7} {'team questions':>14} {'team calls':>10} "
        f"{'project q.':>10} {'project calls':>13} {'/users/me':>9} {'app CPU/req':>11} "
        f"{'wrong':>5}"
    )
    for w in windows:
        print(
            f"{w.number:>6} {w.requests:>8} {w.seconds:>7.2f} {w.team_questions:>14} "
            f"{w.team_calls:>10} {w.project_questions:>10} {w.project_calls:>13} "
            f"{w.identity_calls:>9} {w.app_cpu / max(w.requests, 1) * 1000:>11.2f} "
            f"{w.wrong + w.unanswered:>5}"
        )
    expected = sum(w.team_questions + w.project_questions for w in windows)
    actual = sum(w.team_calls + w.project_calls for w in windows)
    counted = all(
        w.team_calls == w.team_questions and w.project_calls == w.project_questions for w in windows
    )
    print(
        f"  upstream calls for permission checks = distinct questions per TTL window: "
        f"expected {expected}, actual {actual} over {len(windows)} windows: "
        f"{check(counted and len(windows) >= 2, 'permission calls per window')}"
    )
    fits = all(w.seconds < args.perm_ttl for w in windows)
    print(
        f"  each window shorter than the TTL ({args.perm_ttl:g} s), so no answer expired "
        f"within one: {check(fits, 'permission windows within the TTL')}"
        + ("" if fits else " (the machine is too slow for these counts: raise --perm-ttl)")
    )
    right = not any(w.wrong or w.unanswered for w in windows)
    print(
        f"  every answer is the one its grant calls for (200 or 403): "
        f"{check(right, 'permission answers')}"
    )
    bad = [line for line in output.splitlines() if _bad(line)]
    print(f"  permissions app output clean on shutdown: {check(not bad, 'permissions output')}")
    for line in bad[:5]:
        print(f"    {line}")


def _bad(line: str) -> bool:
    return any(marker in line for marker in BAD_OUTPUT)


if __name__ == "__main__":
    sys.exit(main())
