"""Every Python example in the README runs as written, and the testing example passes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.conftest import PROJECT_ID, SECRET_KEY

pytest_plugins = ["pytester"]

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
TESTING_EXAMPLE = next(b for b in BLOCKS if "def test_me(stack_emulator)" in b)


def test_readme_has_examples() -> None:
    assert len(BLOCKS) >= 6


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_example_runs(code: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STACK_PROJECT_ID", PROJECT_ID)
    monkeypatch.setenv("STACK_SECRET_SERVER_KEY", SECRET_KEY)
    monkeypatch.setenv("STACK_CHECK_KEYS_ON_STARTUP", "false")
    namespace: dict[str, object] = {"__name__": "readme_example"}
    exec(compile(code, str(README), "exec"), namespace)
    app = namespace.get("app")
    if isinstance(app, FastAPI):
        # The app builds its routes and its OpenAPI schema (what /docs shows).
        assert TestClient(app).get("/openapi.json").status_code == 200


def test_readme_testing_example_passes(pytester: pytest.Pytester) -> None:
    pytester.makeconftest('pytest_plugins = ["fastapi_stack_auth.testing"]\n')
    pytester.makepyfile(test_readme_example=TESTING_EXAMPLE)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
