"""The emulator's modules import each other without a cycle, and nothing of the library but its
version: every import counts, at the top, under TYPE_CHECKING or inside a function."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import fastapi_stack_auth.emulator

#: The installed package's sources (the repository's, or the wheel's in nox's wheel session).
PACKAGE = Path(fastapi_stack_auth.emulator.__file__).resolve().parent


def imports_of(path: Path) -> set[str]:
    """Modules of ``fastapi_stack_auth`` that ``path`` imports, as dotted names."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                base = node.module or ""
            else:  # relative to fastapi_stack_auth.emulator
                parent = ["fastapi_stack_auth", "emulator"][: 3 - node.level]
                base = ".".join([*parent, *([node.module] if node.module else [])])
            if node.module is None:  # from . import _errors
                found |= {f"{base}.{alias.name}" for alias in node.names}
            else:
                found.add(base)
    return {name for name in found if name.startswith("fastapi_stack_auth")}


def graph() -> dict[str, set[str]]:
    modules = {f"fastapi_stack_auth.emulator.{p.stem}": p for p in PACKAGE.glob("*.py")}
    modules["fastapi_stack_auth.emulator"] = modules.pop("fastapi_stack_auth.emulator.__init__")
    return {name: imports_of(path) for name, path in modules.items()}


def test_the_modules_form_a_dag() -> None:
    emulator = {
        name: {m for m in deps if m.startswith("fastapi_stack_auth.emulator.")}
        for name, deps in graph().items()
    }
    order = list(graphlib.TopologicalSorter(emulator).static_order())  # CycleError otherwise
    assert set(order) >= set(emulator)


def test_only_the_version_of_the_library() -> None:
    outside = {
        module
        for deps in graph().values()
        for module in deps
        if not module.startswith("fastapi_stack_auth.emulator")
    }
    assert outside == {"fastapi_stack_auth._version"}
