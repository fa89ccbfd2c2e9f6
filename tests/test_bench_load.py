"""The load test's permission phase, small: the example app under uvicorn asks the emulator
(both child processes, over loopback) once per distinct question per TTL window."""

from __future__ import annotations

import argparse
import importlib.util
import random
import sys
from pathlib import Path
from types import ModuleType

BENCH = Path(__file__).resolve().parent.parent / "bench"


def load_module() -> ModuleType:
    """``bench/load.py``, which is a script, not a package module."""
    spec = importlib.util.spec_from_file_location("bench_load", BENCH / "load.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


def test_permission_calls_are_the_distinct_questions_per_ttl_window(tmp_path: Path) -> None:
    load = load_module()
    args = argparse.Namespace(
        authz_users=4,
        authz_teams=3,
        authz_repeat=4,
        authz_windows=2,
        perm_ttl=1.0,
        concurrency=16,
        cap=30.0,
    )
    emulator = load.EmulatorProcess(latency_ms=0)
    try:
        common = {**emulator.env, "STACK_CACHE_TTL": "3600"}
        windows, output = load.permission_phase(args, emulator, tmp_path, common, random.Random(1))
    finally:
        emulator.close()
    assert [w.number for w in windows] == [1, 2]
    for window in windows:
        # 4 x 3 team questions and 4 project questions, each asked 4 times: one call each.
        assert window.requests == (12 + 4) * 4
        assert (window.team_calls, window.project_calls) == (12, 4), window
        assert (window.wrong, window.unanswered) == (0, 0), window
        assert window.seconds < args.perm_ttl, window  # else an answer could expire within it
    # The users' tokens are cached for STACK_CACHE_TTL: checked in the first window only.
    assert [w.identity_calls for w in windows] == [4, 0]
    assert not [line for line in output.splitlines() if load._bad(line)]
