"""The version matrix and the release checks; ``make test`` runs every session here.

Why nox: its sessions are plain Python (no ini dialect to learn), it finds interpreters on
``PATH`` and through pyenv, and it needs no configuration file besides this one.

Sessions (``nox -l``):

- ``tests-3.10`` ... ``tests-3.13``: the whole suite on each version in the classifiers of
  pyproject.toml (the single list of supported versions), against an editable install.
- ``wheel``: build the sdist and the wheel, ``twine check --strict`` them, install the wheel
  with its ``[testing,redis]`` extras into a clean venv and run the suite against that install
  from a directory outside the repository (``tests/test_wheel.py`` checks the artefact itself).
- ``lint``: ruff (check and format) and ``mypy --strict``, once.
- ``docs``: ``mkdocs build --strict``, once.

A missing interpreter fails its session, naming the version (never a silent skip). Locally the
session venvs are reused between runs (a second ``make test`` skips the downloads); on CI
(``CI`` set) every venv is built afresh. ``scripts/nox_sessions.py`` runs the sessions two at a
time for ``make test``; ``nox -s <session> -- <pytest args>`` runs one by hand.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import nox
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

nox.needs_version = ">=2024.4.15"

ROOT = Path(__file__).resolve().parent
PACKAGE = "fastapi_stack_auth"
PYPROJECT = nox.project.load_toml(ROOT / "pyproject.toml")
# 3.10 ... 3.13, from the "Programming Language :: Python :: 3.x" classifiers.
PYTHONS: list[str] = nox.project.python_versions(PYPROJECT)
LATEST = PYTHONS[-1]
LINTED = [p for p in (PACKAGE, "example_app", "tests", "bench") if (ROOT / p).exists()]
# Tools in the dev extra that the test venvs do not need (lint and docs install them).
TOOLS = {"mypy", "ruff", "mkdocs-material", "nox", "build", "twine"}
# The extras the wheel is tested with.
WHEEL_EXTRAS = "testing,redis"

nox.options.error_on_missing_interpreters = True
nox.options.reuse_existing_virtualenvs = not os.environ.get("CI")
if hasattr(nox.options, "download_python"):  # nox >= 2025.2: never fetch a Python silently
    nox.options.download_python = "never"


def _pyenv_on_path() -> None:
    """Put pyenv's interpreters on PATH for the versions PATH does not give.

    A pyenv *shim* for python3.X is on PATH but fails unless that version is selected, so it
    does not count; the newest installed 3.X.* under ``$PYENV_ROOT/versions`` is used instead.
    """
    root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    paths = os.environ.get("PATH", "").split(os.pathsep)
    for version in PYTHONS:
        found = shutil.which(f"python{version}")
        if found and "shims" not in Path(found).parts:
            continue
        candidates = sorted(
            root.glob(f"versions/{version}.*/bin/python{version}"),
            key=lambda p: [int(x) if x.isdigit() else -1 for x in p.parts[-3].split(".")],
        )
        if candidates:
            paths.insert(0, str(candidates[-1].parent))
    os.environ["PATH"] = os.pathsep.join(paths)


_pyenv_on_path()


def _dev_extra() -> tuple[list[str], list[Requirement]]:
    """The dev extra of pyproject.toml: (the package's own extras it names, the rest)."""
    extras: list[str] = []
    others: list[Requirement] = []
    for line in PYPROJECT["project"]["optional-dependencies"]["dev"]:
        req = Requirement(line)
        if canonicalize_name(req.name) == canonicalize_name(PYPROJECT["project"]["name"]):
            extras.extend(sorted(req.extras))
        else:
            others.append(req)
    return extras, others


def _test_requirements() -> list[str]:
    """What the suite needs besides the package: the dev extra minus lint/docs/release tools."""
    _, others = _dev_extra()
    return [
        str(r)
        for r in others
        if canonicalize_name(r.name) not in TOOLS and not r.name.startswith("types-")
    ]


def _dev_requirements(*names: str) -> list[str]:
    """These packages with the version bounds the dev extra gives them."""
    _, others = _dev_extra()
    found = [str(r) for r in others if canonicalize_name(r.name) in names]
    if len(found) != len(names):
        raise RuntimeError(f"pyproject.toml's dev extra must list each of {names}")
    return found


def _install(session: nox.Session, *args: str) -> None:
    """session.install, skipped in a reused venv that already holds exactly this.

    The install is editable, so only pyproject.toml (dependencies) and the version can make it
    stale: they are part of the stamp. A fresh venv (always, on CI) has no stamp.
    """
    inputs = [(ROOT / "pyproject.toml").read_bytes(), (ROOT / PACKAGE / "_version.py").read_bytes()]
    key = hashlib.sha256(b"\0".join([*inputs, *(a.encode() for a in args)])).hexdigest()[:16]
    venv = Path(session.virtualenv.location)
    stamp = venv / f".installed-{key}"
    if stamp.exists():
        session.log(f"Reused venv already up to date ({stamp.name})")
        return
    for old in venv.glob(".installed-*"):
        old.unlink()
    session.install(*args)
    stamp.touch()


def _pytest_args(session: nox.Session, *default: str) -> list[str]:
    # No .pytest_cache: parallel sessions share the working tree.
    return ["-p", "no:cacheprovider", *(session.posargs or default)]


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """The whole test suite on one Python version (an editable install)."""
    extras, _ = _dev_extra()
    _install(session, "-e", f".[{','.join(extras)}]", *_test_requirements())
    session.run("python", "-m", "pytest", *_pytest_args(session))


@nox.session(venv_backend="none")
def wheel(session: nox.Session) -> None:
    """Build, check and install the artefacts, then run the suite against the installed wheel.

    No nox venv: build and twine get a venv of their own, and the wheel a clean one holding
    only itself, its [testing,redis] extras and the test tools, so nothing else is on PATH.
    """
    python = shutil.which(f"python{LATEST}")
    if python is None:
        session.error(f"Python interpreter {LATEST} not found (on PATH or under pyenv)")
    tmp = Path(tempfile.mkdtemp(prefix="fastapi-stack-auth-wheel-"))  # outside the repository
    try:
        dist, tools, venv, project = (tmp / d for d in ("dist", "tools", "venv", "project"))
        pip = ("-m", "pip", "install", "--quiet", "--disable-pip-version-check")

        session.run(python, "-m", "venv", str(tools))
        tools_python = str(tools / "bin" / "python")
        session.run(tools_python, *pip, *_dev_requirements("build", "twine"))
        # The sdist first, then the wheel built from the sdist: a file missing from the sdist
        # is missing from the wheel too.
        session.run(tools_python, "-m", "build", "--outdir", str(dist), str(ROOT))
        (sdist,) = dist.glob("*.tar.gz")
        (wheel_file,) = dist.glob("*.whl")
        session.run(tools_python, "-m", "twine", "check", "--strict", str(sdist), str(wheel_file))

        session.run(python, "-m", "venv", str(venv))
        python_in_venv = str(venv / "bin" / "python")
        session.run(python_in_venv, *pip, f"{wheel_file}[{WHEEL_EXTRAS}]", *_test_requirements())
        session.run(python_in_venv, "-m", "pip", "check", "--disable-pip-version-check")

        # The tests and what they read (README, docs, example app, pytest settings in
        # pyproject.toml), but not the package: it must come from the venv's site-packages.
        def ignore(directory: str, names: list[str]) -> set[str]:
            skipped = {n for n in names if n == "__pycache__"}
            if Path(directory) == ROOT:
                local = {PACKAGE, "dist", "build", "site"}
                skipped |= {n for n in names if n.startswith(".") or n in local}
            return skipped

        shutil.copytree(ROOT, project, ignore=ignore)
        env = {
            "PATH": os.pathsep.join([str(venv / "bin"), os.environ.get("PATH", "")]),
            "VIRTUAL_ENV": str(venv),
            "PYTHONPATH": "",  # empty means unset
            "FASTAPI_STACK_AUTH_WHEEL": str(wheel_file),
        }
        with session.chdir(project):
            session.run(
                python_in_venv,
                "-c",
                f"import sys, {PACKAGE} as p; print(p.__file__); "
                f"sys.exit(not p.__file__.startswith(sys.prefix))",
                env=env,
            )
            session.run(python_in_venv, "-m", f"{PACKAGE}.emulator", "--help", env=env)
            session.run(python_in_venv, "-m", "pytest", *_pytest_args(session, "tests"), env=env)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@nox.session(python=LATEST)
def lint(session: nox.Session) -> None:
    """ruff check, ruff format --check and mypy --strict."""
    extras, others = _dev_extra()
    tools = [str(r) for r in others if r.name in {"mypy", "ruff"} or r.name.startswith("types-")]
    _install(session, "-e", f".[{','.join(extras)}]", *tools)
    session.run("ruff", "check", *LINTED)
    session.run("ruff", "format", "--check", *LINTED)
    session.run("mypy", "--strict", PACKAGE)


@nox.session(python=LATEST)
def docs(session: nox.Session) -> None:
    """mkdocs build --strict (the site goes to a temporary directory)."""
    _, others = _dev_extra()
    _install(session, *[str(r) for r in others if r.name.startswith("mkdocs")])
    site = Path(session.create_tmp()) / "site"
    session.run("mkdocs", "build", "--strict", "--site-dir", str(site))
