"""Every Python example in the README runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ID, SECRET_KEY

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_examples() -> None:
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_example_runs(code: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STACK_PROJECT_ID", PROJECT_ID)
    monkeypatch.setenv("STACK_SECRET_SERVER_KEY", SECRET_KEY)
    monkeypatch.setenv("STACK_CHECK_KEYS_ON_STARTUP", "false")
    exec(compile(code, str(README), "exec"), {"__name__": "readme_example"})
