"""Every ```python block of README.md and docs/**/*.md runs as written.

- A block whose first line names a file (``# main.py``, ``# conftest.py``, ``# test_main.py``)
  is that file. The named files of one page are written side by side into an empty directory
  and, when one of them is a ``test_*.py`` module, pytest runs them in a subprocess with no
  ``STACK_*`` variable set: every test must pass.
- Every other block, and every named file that is not a test module, is executed with
  ``STACK_*`` pointing at the emulator of ``fastapi_stack_auth.testing``. When it defines a
  FastAPI ``app``, the app starts (its lifespan runs) and serves its OpenAPI schema.
- A ```json block must parse; one with ``projects`` must be a valid emulator seed.
- A block right after a ``<!-- no-test -->`` line is not run. Keep those rare.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from fastapi_stack_auth.emulator import Seed

pytest_plugins = ["pytester", "fastapi_stack_auth.testing"]

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
BLOCK = re.compile(
    r"(?P<skip><!-- no-test -->\n\s*)?^```(?P<lang>python|json)\n(?P<code>.*?)^```$", re.M | re.S
)
FILE_NAME = re.compile(r"# (?P<name>[\w/]+\.py)\n")


@dataclass(frozen=True)
class Block:
    page: Path
    line: int
    lang: str
    code: str
    skip: bool

    @property
    def file_name(self) -> str | None:
        match = FILE_NAME.match(self.code)
        return match["name"] if match else None

    @property
    def is_test_module(self) -> bool:
        return Path(self.file_name or "").name.startswith("test_")

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def _blocks(page: Path) -> list[Block]:
    text = page.read_text()
    return [
        Block(page, text.count("\n", 0, m.start("code")), m["lang"], m["code"], bool(m["skip"]))
        for m in BLOCK.finditer(text)
    ]


ALL = [block for page in PAGES for block in _blocks(page)]
PYTHON = [b for b in ALL if b.lang == "python" and not b.skip]
SNIPPETS = [b for b in PYTHON if not b.is_test_module]
TEST_PAGES = sorted({b.page for b in PYTHON if b.is_test_module})


def test_the_docs_have_examples() -> None:
    assert len(PYTHON) >= 15
    assert TEST_PAGES, "no page shows a test module"
    for page in PAGES:  # an indented fence would escape the pattern above: none is
        fences = page.read_text().count("```python")
        assert fences == sum(b.lang == "python" for b in ALL if b.page == page), page
    skipped = [b.id for b in ALL if b.skip]
    assert len(skipped) <= 3, f"too many <!-- no-test --> blocks: {skipped}"


def test_readme_links_to_docs_resolve() -> None:
    # mkdocs --strict checks the links inside docs/; the README is outside the site.
    links = re.findall(r"\]\((docs/[^)#]+)", (ROOT / "README.md").read_text())
    assert links
    assert [link for link in links if not (ROOT / link).is_file()] == []


def test_every_example_test_is_run() -> None:
    # A block with test functions but no "# test_*.py" first line would only be defined, never
    # run: name it as a test module.
    unnamed = [b.id for b in PYTHON if "def test_" in b.code and not b.is_test_module]
    assert not unnamed


@pytest.mark.parametrize("block", [b for b in ALL if b.lang == "json"], ids=lambda b: b.id)
def test_json_example_parses(block: Block) -> None:
    data = json.loads(block.code)
    if isinstance(data, dict) and "projects" in data:  # an emulator seed
        Seed.model_validate(data)


@pytest.mark.parametrize("block", SNIPPETS, ids=lambda b: b.id)
def test_example_runs(
    block: Block,
    stack_auth_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.chdir(tmp_path)  # no developer's .env
    for name, value in stack_auth_env.items():  # a second project, for env_prefix="STACK_B_"
        monkeypatch.setenv(name.replace("STACK_", "STACK_B_", 1), value)
    namespace: dict[str, object] = {"__name__": "docs_example"}
    exec(compile(block.code, block.id, "exec"), namespace)
    app = namespace.get("app")
    if isinstance(app, FastAPI):
        with TestClient(app) as client:  # the lifespan runs: settings load, the app starts
            assert client.get("/openapi.json").status_code == 200


@pytest.mark.parametrize("page", TEST_PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_example_tests_pass(
    page: Path, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [n for n in os.environ if n.startswith("STACK_")]:
        monkeypatch.delenv(name)
    for block in PYTHON:
        if block.page == page and block.file_name is not None:
            path = pytester.path / block.file_name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(block.code)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) > 0
    unwanted = {"failed", "errors", "error", "skipped", "xfailed"} & outcomes.keys()
    assert not unwanted, "\n".join(result.outlines)
