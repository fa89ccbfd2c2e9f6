"""Run the nox sessions a few at a time, each into its own log, and sum them up (make test).

    python scripts/nox_sessions.py [-j JOBS] [SESSION ...] [-- PYTEST_ARGS ...]

Without SESSION names it runs every session of noxfile.py, in the noxfile's order (longest
first); what follows `--` goes to the sessions that run pytest (e.g. `-- -k settings -x`).
Each session is a `nox -s <session>` process writing to .nox/logs/<session>.log; one line is
printed as each starts and ends. A failed session's log is printed whole as soon as it
ends (on CI, where CI is set, every session's log is), then a summary. The exit status is 1 if
any session failed (a failing pytest, no tests collected, a missing interpreter, ...).
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOGS = ROOT / ".nox" / "logs"
NOX = [sys.executable, "-m", "nox", "--noxfile", str(ROOT / "noxfile.py"), "--no-color"]
# "==== 412 passed, 2 skipped in 95.31s (0:01:35) ====", pytest's last line.
PYTEST_SUMMARY = re.compile(r"^=+ (.+ in [\d.]+s\b.*?) =+$")
NOX_ERROR = re.compile(r"^nox > (.*\b(?:failed|aborted)\b.*)$")

print_lock = threading.Lock()
children: set[subprocess.Popen[bytes]] = set()


@dataclass
class Outcome:
    session: str
    ok: bool
    seconds: float
    note: str
    log: Path


def say(text: str) -> None:
    with print_lock:
        print(text, flush=True)


def elapsed(seconds: float) -> str:
    return f"{int(seconds) // 60}m{int(seconds) % 60:02d}s"


def list_sessions(selected: list[str]) -> list[str]:
    args = [*NOX, "--list", "--json"]
    if selected:
        args += ["--sessions", *selected]
    out = subprocess.run(args, check=False, capture_output=True, text=True, cwd=ROOT)  # noqa: S603
    if out.returncode != 0:
        sys.exit(f"Listing the nox sessions failed:\n{out.stdout}{out.stderr}")
    return [s["session"] for s in json.loads(out.stdout)]


def note_from(log: Path, ok: bool) -> str:
    lines = log.read_text(errors="replace").splitlines()
    if ok:
        summaries = [m.group(1) for line in lines if (m := PYTEST_SUMMARY.match(line))]
        return summaries[-1] if summaries else ""
    errors = [m.group(1) for line in lines if (m := NOX_ERROR.match(line))]
    # "Command ... failed with exit code 5" says more than the "Session ... failed." after it.
    telling = [e for e in errors if not re.fullmatch(r"Session \S+ failed\.", e)] or errors
    note = telling[0] if telling else (lines[-1] if lines else "no output")
    return note if len(note) <= 200 else note[:197] + "..."


def show_log(outcome: Outcome) -> None:
    status = "passed" if outcome.ok else "FAILED"
    with print_lock:
        print(f"\n----- {outcome.session} {status}: its log ({outcome.log}) -----", flush=True)
        sys.stdout.write(outcome.log.read_text(errors="replace"))
        print(f"----- end of {outcome.session} -----\n", flush=True)


def run(session: str, posargs: list[str], verbose: bool) -> Outcome:
    log = LOGS / f"{session}.log"
    say(f"[{time.strftime('%H:%M:%S')}] start  {session}")
    started = time.monotonic()
    with log.open("wb") as out:
        proc = subprocess.Popen(  # noqa: S603 (our own nox command line)
            [*NOX, "--error-on-missing-interpreters", "--sessions", session, "--", *posargs],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so Ctrl-C can stop it whole
        )
        children.add(proc)
        code = proc.wait()
        children.discard(proc)
    outcome = Outcome(session, code == 0, time.monotonic() - started, "", log)
    outcome.note = note_from(log, outcome.ok)
    status = "ok    " if outcome.ok else "FAILED"
    say(
        f"[{time.strftime('%H:%M:%S')}] {status} {session} in {elapsed(outcome.seconds)}"
        f"{': ' + outcome.note if outcome.note else ''}"
    )
    if verbose or not outcome.ok:
        show_log(outcome)
    return outcome


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-j", "--jobs", type=int, default=2, help="sessions at a time (2)")
    parser.add_argument("sessions", nargs="*", help="nox sessions (default: all)")
    argv = sys.argv[1:]
    posargs: list[str] = []
    if "--" in argv:
        argv, posargs = argv[: argv.index("--")], argv[argv.index("--") + 1 :]
    args = parser.parse_args(argv)
    verbose = bool(os.environ.get("CI"))

    sessions = list_sessions(args.sessions)
    if not sessions:
        print("No nox session selected", file=sys.stderr)
        return 1
    LOGS.mkdir(parents=True, exist_ok=True)
    jobs = max(1, min(args.jobs, len(sessions)))
    say(f"{len(sessions)} nox sessions, {jobs} at a time: {' '.join(sessions)}")

    todo: queue.Queue[str] = queue.Queue()
    for session in sessions:
        todo.put(session)
    outcomes: list[Outcome] = []

    def worker() -> None:
        while True:
            try:
                session = todo.get_nowait()
            except queue.Empty:
                return
            outcomes.append(run(session, posargs, verbose))

    started = time.monotonic()
    threads = [threading.Thread(target=worker, daemon=True) for _ in range(jobs)]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            while thread.is_alive():
                thread.join(0.5)
    except KeyboardInterrupt:
        while not todo.empty():
            todo.get_nowait()
        for proc in list(children):
            os.killpg(proc.pid, signal.SIGINT)
        say("Interrupted: the running sessions were stopped")
        return 130

    failed = [o for o in outcomes if not o.ok]
    order = {s: i for i, s in enumerate(sessions)}
    print(f"\nnox sessions, {elapsed(time.monotonic() - started)} in all:")
    for o in sorted(outcomes, key=lambda o: order[o.session]):
        status = "ok    " if o.ok else "FAILED"
        print(f"  {status} {o.session:<12} {elapsed(o.seconds)}  {o.note}")
    if failed:
        print(f"\n{len(failed)} failed: {' '.join(o.session for o in failed)} (logs in {LOGS})")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
