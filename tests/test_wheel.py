"""The built wheel, installed in a clean venv: what it holds, its metadata, its entry points.

Run by ``nox -s wheel`` (part of ``make test``), which builds the wheel, installs it with the
``[testing,redis]`` extras in a fresh venv and runs the suite from a copy of the tests outside
the repository, with ``FASTAPI_STACK_AUTH_WHEEL`` naming the wheel. Anywhere else (an editable
install of the source tree) there is no wheel to check: ``tests/conftest.py`` does not collect
this module then (not collected rather than skipped: a test run reports no skips).
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from importlib import metadata, resources
from pathlib import Path

import pytest

import fastapi_stack_auth

WHEEL = os.environ["FASTAPI_STACK_AUTH_WHEEL"]

pytest_plugins = ["pytester"]

DISTRIBUTION = "fastapi-stack-auth"
PACKAGE = "fastapi_stack_auth"
NOT_SHIPPED = {"tests", "bench", "example_app", "docs", "scripts"}


def wheel_names() -> list[str]:
    with zipfile.ZipFile(WHEEL) as wheel:
        return wheel.namelist()


def test_the_package_is_imported_from_the_venv_not_a_source_tree() -> None:
    purelib = Path(sysconfig.get_paths()["purelib"]).resolve()
    assert sys.prefix != sys.base_prefix, "not running in a venv"
    assert Path(fastapi_stack_auth.__file__).resolve().parent == purelib / PACKAGE
    on_path = [Path(p).resolve() for p in sys.path]
    shadowing = [p for p in on_path if (p / PACKAGE).is_dir() and p != purelib]
    assert not shadowing, f"a source tree is on sys.path: {shadowing}"


def test_the_wheel_is_typed() -> None:
    assert f"{PACKAGE}/py.typed" in wheel_names()
    assert resources.files(PACKAGE).joinpath("py.typed").is_file()


def test_the_wheel_holds_the_package_and_its_metadata_only() -> None:
    names = wheel_names()
    dist_info = f"{PACKAGE}-{fastapi_stack_auth.__version__}.dist-info"
    assert {name.split("/", 1)[0] for name in names} == {PACKAGE, dist_info}
    shipped = [n for n in names if NOT_SHIPPED & set(n.split("/")[:-1])]
    assert not shipped, f"the wheel ships tests, bench, examples or docs: {shipped}"
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert f"{PACKAGE}/emulator/__main__.py" in names
    assert f"{PACKAGE}/testing.py" in names


def test_the_metadata() -> None:
    meta = metadata.metadata(DISTRIBUTION)
    assert meta["Version"] == fastapi_stack_auth.__version__  # one version, from _version.py
    assert meta["Requires-Python"] == ">=3.10"
    assert meta["License-Expression"] == "MIT"
    classifiers = meta.get_all("Classifier") or []
    assert "Typing :: Typed" in classifiers
    assert "Framework :: FastAPI" in classifiers
    running = f"Programming Language :: Python :: {sys.version_info[0]}.{sys.version_info[1]}"
    assert running in classifiers, "this Python is tested but not declared"
    assert {"testing", "redis"} <= set(meta.get_all("Provides-Extra") or [])
    urls = {u.split(",", 1)[0] for u in meta.get_all("Project-URL") or []}
    assert {"Homepage", "Documentation", "Changelog", "Issues"} <= urls


def test_the_emulator_runs_from_the_install() -> None:
    result = subprocess.run(
        [sys.executable, "-m", f"{PACKAGE}.emulator", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage:")


PLUGIN_PROJECT_TEST = """
from fastapi import FastAPI
from fastapi.testclient import TestClient

from fastapi_stack_auth import CurrentUser, StackAuth

stack = StackAuth()
app = FastAPI()
stack.init_app(app)


@app.get("/me")
async def me(user: CurrentUser) -> dict[str, str]:
    return {"id": user.id}


def test_a_user_of_the_emulator_gets_in(stack_auth_env, stack_user):
    with TestClient(app) as client:
        assert client.get("/me", headers=stack_user.headers).json() == {"id": stack_user.id}
        assert client.get("/me").status_code == 401


def test_the_emulator_fixture(stack_emulator):
    user = stack_emulator.create_user(display_name="Ada")
    assert user.kind == "normal"
    assert user.access_token
"""


def test_the_pytest_plugin_in_a_project_of_its_own(pytester: pytest.Pytester) -> None:
    pytester.makeconftest('pytest_plugins = ["fastapi_stack_auth.testing"]\n')
    pytester.makepyfile(test_plugin_project=PLUGIN_PROJECT_TEST)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
