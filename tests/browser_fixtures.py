"""Fixtures for the real-browser tests (load with ``pytest_plugins``, after
``fastapi_stack_auth.testing``): Debian's Chromium driven by Playwright, and the example app
served by uvicorn against the session's emulator, both over loopback.

- ``browser``: one headless Chromium for the module (``CHROMIUM`` names the binary; default:
  ``chromium`` on ``PATH``). Playwright's own browser download is never used.
- ``demo_app``: ``example_app.main:app`` in a uvicorn child process with the settings
  ``make run`` gives it (``example_app.dev.browser_settings``: cookies, silent refresh, its own
  origin trusted).
- ``page``: a fresh browser context and page per test, on the app's URL. When the test fails,
  a screenshot and the page's console go to ``test-artefacts/`` (``TEST_ARTEFACTS`` moves it).

A missing Playwright or Chromium fails the test, naming the fix (``make test`` installs both):
these tests are never skipped.

The test module imports names from here too, so pytest must not rewrite it (it has no
``assert``): PYTEST_DONT_REWRITE.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from example_app.dev import browser_settings
from fastapi_stack_auth.emulator import EmulatorServer
from fastapi_stack_auth.testing import EmulatedStack
from tests.servers import ROOT, listening_socket, url_of

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Request

#: Headless Chromium as root in a container, with no network: no sandbox (root), no GPU, and
#: none of the background calls Chromium makes to Google's services on its own.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
#: Milliseconds Playwright waits for anything before failing the test.
TIMEOUT_MS = 10_000
ARTEFACTS = Path(os.environ.get("TEST_ARTEFACTS") or ROOT / "test-artefacts")
_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


def chromium_executable() -> str:
    """The Chromium binary to drive: ``CHROMIUM``, else ``chromium`` on ``PATH``."""
    named = os.environ.get("CHROMIUM")
    found = named or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found or not (shutil.which(found) or Path(found).is_file()):
        pytest.fail(
            f"No Chromium found ({'CHROMIUM=' + named if named else 'chromium is not on PATH'}):"
            " `make test` (or `make chromium`) installs Debian's chromium package; elsewhere set"
            " CHROMIUM to a Chromium or Chrome binary.",
            pytrace=False,
        )
    return found


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Chromium for every test of the module."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(
            "Playwright is not installed: `make test` installs it (the dev extra of "
            "pyproject.toml: pip install -e '.[dev]').",
            pytrace=False,
        )
    executable = chromium_executable()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@dataclass
class DemoApp:
    """The example app under uvicorn, and the emulator it is wired to."""

    url: str
    stack: EmulatedStack
    process: subprocess.Popen[bytes]
    output: bytes = field(default=b"")


@pytest.fixture(scope="module")
def demo_app(stack_emulator_server: EmulatorServer) -> Iterator[DemoApp]:
    """``example_app.main:app`` served by uvicorn on 127.0.0.1, as ``make run`` configures it."""
    stack = EmulatedStack(stack_emulator_server.emulator, stack_emulator_server.url)
    sock = listening_socket()
    url = url_of(sock)
    env = {k: v for k, v in os.environ.items() if not k.startswith("STACK_")}
    env.update(stack.env())
    env.update(browser_settings("127.0.0.1", sock.getsockname()[1]))
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "example_app.main:app", "--fd", str(sock.fileno())],
        cwd=ROOT,
        env=env,
        pass_fds=[sock.fileno()],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    app = DemoApp(url=url, stack=stack, process=process)
    try:
        yield app
    finally:
        process.send_signal(signal.SIGINT)
        try:
            app.output, _ = process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            app.output, _ = process.communicate()
        sock.close()


@dataclass
class BrowserPage:
    """A page of a fresh browser context, and what it did: every request it sent and every
    error its scripts raised."""

    page: Page
    requests: list[Request] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)

    def requested_urls(self) -> list[str]:
        return [request.url for request in self.requests]


@pytest.fixture
def page(
    browser: Browser, demo_app: DemoApp, request: pytest.FixtureRequest
) -> Iterator[BrowserPage]:
    """A page in a context of its own (no cookies or storage from another test)."""
    context = browser.new_context(base_url=demo_app.url)
    context.set_default_timeout(TIMEOUT_MS)
    recorded = BrowserPage(context.new_page())
    recorded.page.on("request", lambda sent: recorded.requests.append(sent))
    recorded.page.on("pageerror", lambda error: recorded.errors.append(str(error)))
    recorded.page.on("console", lambda msg: recorded.console.append(f"{msg.type}: {msg.text}"))
    try:
        yield recorded
    finally:
        reports = request.node.stash.get(_REPORTS, {})
        if any(report.failed for report in reports.values()):
            _save_artefacts(request.node.name, recorded)
        context.close()


def _save_artefacts(test_name: str, recorded: BrowserPage) -> None:
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"[^\w.-]+", "_", test_name)
    recorded.page.screenshot(path=str(ARTEFACTS / f"{stem}.png"), full_page=True)
    lines = [
        *(f"request: {url}" for url in recorded.requested_urls()),
        *recorded.console,
        *(f"page error: {error}" for error in recorded.errors),
    ]
    (ARTEFACTS / f"{stem}.log").write_text("\n".join(lines) + "\n")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Any:
    """Keep each phase's report on the test item, for ``page`` to see whether the test failed."""
    report = yield
    item.stash.setdefault(_REPORTS, {})[report.when] = report
    return report
