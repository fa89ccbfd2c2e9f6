"""The demo page and /docs in a real browser: Debian's Chromium, driven by Playwright, on the
example app under uvicorn, signing in against the emulator over loopback, as ``make run`` serves
them. Nothing is mocked; a failing test leaves a screenshot in test-artefacts/."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
import pytest

from fastapi_stack_auth.testing import EmulatedStack, StackTestUser
from tests.browser_fixtures import ARTEFACTS, BrowserPage, DemoApp
from tests.emulator_helpers import jwt_parts

try:
    from playwright.sync_api import Page, Request, expect
except ImportError as exc:  # a collection error, so a failure: never a skip
    raise ImportError(
        "Playwright is not installed: `make test` installs it (the dev extra of pyproject.toml)"
    ) from exc

pytest_plugins = ["fastapi_stack_auth.testing", "tests.browser_fixtures"]

TOKENS_KEY = "fastapi-stack-auth-demo:tokens"


@dataclass
class Demo:
    """The demo page, driven as a person would: by its fields and buttons."""

    page: Page
    app: DemoApp

    def open(self) -> None:
        self.page.goto("/")
        expect(self.page.locator("body")).to_have_attribute("data-ready", "true")

    def sign_up(self, email: str, password: str) -> None:
        self._credentials(email, password)
        self.page.click("#sign-up")
        self._signed_in("sign-up", email)

    def sign_in(self, email: str, password: str) -> None:
        self._credentials(email, password)
        self.page.click("#sign-in")
        self._signed_in("sign-in", email)

    def sign_out(self) -> None:
        self.page.click("#sign-out")
        expect(self.page.locator("#stack-status")).to_have_text("sign-out: 200")
        expect(self.page.locator("#signed-out")).to_be_visible()

    def call(self, route: str) -> tuple[int, Any]:
        """Click the route's button; the status and JSON answer the page shows."""
        row = self.page.locator(f"#row-{route}")
        status = row.locator(".status")
        with self.page.expect_response(lambda r: urlsplit(r.url).netloc == self._netloc()):
            row.locator("button").click()
        expect(status).to_have_text(re.compile(r"^\d{3}$"))
        return int(status.inner_text()), json.loads(row.locator(".body").inner_text())

    def request_of(self, route: str) -> Request:
        """Click the route's button; the request the browser sent (headers included)."""
        with self.page.expect_request(lambda r: urlsplit(r.url).netloc == self._netloc()) as sent:
            self.page.locator(f"#row-{route} button").click()
        expect(self.page.locator(f"#row-{route} .status")).to_have_text(re.compile(r"^\d{3}$"))
        return sent.value

    def stored_tokens(self) -> dict[str, Any] | None:
        text = self.page.evaluate(f"localStorage.getItem({TOKENS_KEY!r})")
        return None if text is None else json.loads(text)

    def store_tokens(self, access_token: str, refresh_token: str) -> None:
        """Tokens as a previous visit left them in localStorage, then the page loaded anew."""
        tokens = json.dumps({"accessToken": access_token, "refreshToken": refresh_token})
        self.page.evaluate(f"localStorage.setItem({TOKENS_KEY!r}, {json.dumps(tokens)})")
        self.open()

    def cookie_mode(self) -> None:
        self.page.check("#cookie-mode")

    def stack_cookies(self) -> dict[str, Any]:
        """Stack's cookies in the browser, percent-decoded and parsed."""
        cookies = self.page.context.cookies()
        return {c["name"]: json.loads(unquote(c["value"])) for c in cookies if "stack" in c["name"]}

    def _credentials(self, email: str, password: str) -> None:
        self.page.fill("#email", email)
        self.page.fill("#password", password)

    def _signed_in(self, action: str, email: str) -> None:
        expect(self.page.locator("#stack-status")).to_have_text(f"{action}: 200")
        expect(self.page.locator("#user-email")).to_have_text(email)

    def _netloc(self) -> str:
        return urlsplit(self.app.url).netloc


@pytest.fixture
def demo(page: BrowserPage, demo_app: DemoApp, stack_emulator: EmulatedStack) -> Iterator[Demo]:
    """The demo page, open, against a freshly reset emulator; no script error on it."""
    driven = Demo(page.page, demo_app)
    driven.open()
    yield driven
    assert page.errors == []


def _only_local(page: BrowserPage, demo_app: DemoApp, stack: EmulatedStack) -> None:
    allowed = {urlsplit(demo_app.url).netloc, urlsplit(stack.url).netloc}
    outside = [
        url
        for url in page.requested_urls()
        if urlsplit(url).scheme not in ("data", "blob") and urlsplit(url).netloc not in allowed
    ]
    assert page.requests, "the page sent no request at all"
    assert outside == []


def test_sign_up_call_sign_out_and_sign_in_again(
    demo: Demo, page: BrowserPage, stack_emulator: EmulatedStack
) -> None:
    demo.sign_up("ada@example.com", "password-ada-1")
    tokens = demo.stored_tokens()
    assert tokens is not None

    sent = demo.request_of("me").all_headers()
    assert json.loads(sent["x-stack-auth"]) == tokens  # as Stack's JS SDK sends it
    assert "cookie" not in sent
    status, me = demo.call("me")
    assert (status, me["email"]) == (200, "ada@example.com")
    assert demo.call("hello") == (200, {"message": "Hello, ada@example.com"})
    assert demo.call("public") == (200, {"message": "Hello, world"})

    demo.sign_out()
    assert demo.stored_tokens() is None
    # The session is gone at Stack too: its refresh token no longer works.
    refused = httpx.post(
        f"{stack_emulator.url}/api/v1/auth/sessions/current/refresh",
        headers={
            **stack_emulator.client_headers(),
            "x-stack-refresh-token": tokens["refreshToken"],
        },
    )
    assert refused.status_code == 401
    status, answer = demo.call("me")
    assert (status, answer["code"]) == (401, "NOT_AUTHENTICATED")
    assert demo.call("hello") == (200, {"message": "Hello, stranger"})

    demo.sign_in("ada@example.com", "password-ada-1")
    assert demo.call("me")[0] == 200
    _only_local(page, demo.app, stack_emulator)


def test_a_wrong_password_is_shown_and_nothing_is_stored(demo: Demo) -> None:
    demo.page.fill("#email", "nobody@example.com")
    demo.page.fill("#password", "not-the-password")
    demo.page.click("#sign-in")
    expect(demo.page.locator("#stack-status")).to_contain_text(
        "sign-in: 400 EMAIL_PASSWORD_MISMATCH"
    )
    assert demo.stored_tokens() is None
    expect(demo.page.locator("#signed-out")).to_be_visible()


def test_team_permission_admin_and_api_key_routes(
    demo: Demo, stack_emulator: EmulatedStack
) -> None:
    owner = stack_emulator.create_user(email="owner@example.com", display_name="Owner")
    team = stack_emulator.create_team(owner)
    stack_emulator.grant_team_permission(owner, team, "docs:delete")
    stack_emulator.grant_project_permission(owner, "admin")
    demo.store_tokens(owner.access_token, owner.refresh_token)

    demo.page.fill("#team-id", team.id)
    assert demo.call("team") == (200, {"deleted": "demo", "team_id": team.id})
    assert demo.call("admin") == (200, {"users_online": 1})

    demo.page.click("#create-key")  # a user API key, created at Stack from the page
    expect(demo.page.locator("#stack-status")).to_have_text("create API key: 200")
    key = demo.page.input_value("#api-key")
    assert key.startswith("sk_")
    sent = demo.request_of("ingest").all_headers()
    assert sent["x-stack-api-key"] == key
    assert "x-stack-auth" not in sent  # the key is the only credential sent
    assert demo.call("ingest") == (
        200,
        {"kind": "user", "user_id": owner.id, "team_id": None, "api_key": True},
    )
    for route in ("public", "hello", "me", "claims"):
        assert demo.call(route)[0] == 200
    ARTEFACTS.mkdir(parents=True, exist_ok=True)  # the picture in docs/demo.md
    demo.page.screenshot(path=str(ARTEFACTS / "demo.png"), full_page=True)

    demo.page.fill("#team-id", "")
    demo.page.fill("#api-key", "")
    member = stack_emulator.create_user(display_name="Member")
    stack_emulator.add_member(team, member)
    demo.store_tokens(member.access_token, member.refresh_token)
    demo.page.fill("#team-id", team.id)
    status, refused = demo.call("team")
    assert (status, refused["code"]) == (403, "PERMISSION_REQUIRED")
    assert demo.call("admin")[0] == 403


@pytest.mark.parametrize("mode", ["header", "cookies"])
def test_an_expired_access_token_is_refreshed_by_the_app(
    demo: Demo, stack_emulator: EmulatedStack, stack_user: StackTestUser, mode: str
) -> None:
    # A session whose access token expired an hour ago; its refresh token is still good.
    lifetime = stack_emulator.emulator.access_token_ttl
    issued_at = stack_emulator.emulator.now() - 3600 - lifetime
    session = stack_emulator.sign_in(stack_user, issued_at=issued_at)
    expired = session.access_token
    demo.store_tokens(expired, session.refresh_token)
    if mode == "cookies":
        demo.cookie_mode()
    expect(demo.page.locator("#token-expiry")).to_contain_text("(expired)")

    status, me = demo.call("me")
    assert (status, me.get("id")) == (200, stack_user.id)
    assert demo.page.get_attribute("#row-me", "data-refreshed") == "true"
    if mode == "cookies":
        refresh_token, access_token = demo.stack_cookies()["stack-access"]
        assert refresh_token == session.refresh_token
    else:
        stored = demo.stored_tokens()
        assert stored is not None
        assert stored["refreshToken"] == session.refresh_token
        access_token = stored["accessToken"]
    assert access_token != expired
    assert jwt_parts(access_token)[1]["exp"] > time.time()
    expect(demo.page.locator("#token-expiry")).not_to_contain_text("(expired)")
    assert demo.call("me")[0] == 200  # the new token is the one sent now


def test_cookie_mode_sends_stacks_cookies_and_no_header(
    demo: Demo, stack_emulator: EmulatedStack
) -> None:
    user = stack_emulator.create_user(email="grace@example.com", password="password-grace")
    team = stack_emulator.create_team(user)
    stack_emulator.grant_team_permission(user, team, "docs:delete")
    demo.cookie_mode()
    demo.sign_in("grace@example.com", "password-grace")

    assert demo.stored_tokens() is None  # the cookies are the only store
    cookies = demo.stack_cookies()
    refresh = cookies[f"stack-refresh-{stack_emulator.project_id}--default"]
    assert cookies["stack-access"][0] == refresh["refresh_token"]
    assert isinstance(refresh["updated_at_millis"], int)

    sent = demo.request_of("me").all_headers()
    assert "x-stack-auth" not in sent
    assert "authorization" not in sent
    assert "stack-access=" in sent["cookie"]
    status, me = demo.call("me")
    assert (status, me["email"]) == (200, "grace@example.com")
    # A request that changes something, with cookies only: the page's origin is trusted.
    demo.page.fill("#team-id", team.id)
    assert demo.call("team") == (200, {"deleted": "demo", "team_id": team.id})

    demo.sign_out()
    assert demo.stack_cookies() == {}
    assert demo.call("me")[0] == 401


def test_swagger_ui_authorize_and_try_it_out(
    page: BrowserPage, demo_app: DemoApp, stack_emulator: EmulatedStack, stack_user: StackTestUser
) -> None:
    docs = page.page
    docs.goto("/docs")
    docs.click("button.authorize")
    # The user scheme (StackAuth), not the one for tokens or API keys (StackAuthOrApiKey).
    schemes = docs.locator(".auth-container", has_text="StackAuth")
    scheme = schemes.filter(has_not_text="StackAuthOrApiKey")
    scheme.locator("input").fill(stack_user.access_token)
    scheme.locator("button.authorize").click()
    docs.click("button.btn-done")

    operation = docs.locator("#operations-default-me_me_get")
    operation.locator(".opblock-summary").click()
    operation.locator("button.try-out__btn").click()
    with docs.expect_response(lambda r: urlsplit(r.url).path == "/me") as answer:
        operation.locator("button.execute").click()
    assert answer.value.request.headers["authorization"] == f"Bearer {stack_user.access_token}"
    live = operation.locator(".live-responses-table .response .response-col_status")
    expect(live).to_have_text("200")
    body = operation.locator(".live-responses-table .response .response-col_description")
    expect(body).to_contain_text(stack_user.id)
    _only_local(page, demo_app, stack_emulator)
    assert page.errors == []


def test_the_docs_pages_name_no_other_site(demo_app: DemoApp) -> None:
    with httpx.Client(base_url=demo_app.url, timeout=20) as client:
        assert client.get("/redoc").status_code == 404  # ReDoc's page loads a logo from its CDN
        for path in ("/docs", "/"):
            html = client.get(path).text
            links = re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)["']""", html)
            assert links, path
            assert [link for link in links if not link.startswith(("/", "data:"))] == [], path
            assert "//" not in "".join(links), path
        for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "favicon.png"):
            assert client.get(f"/docs-assets/{asset}").status_code == 200


def test_the_page_config_is_public_values_only(demo_app: DemoApp) -> None:
    stack = demo_app.stack
    with httpx.Client(base_url=demo_app.url, timeout=20) as client:
        config = client.get("/demo/config.json")
        page = client.get("/")
    assert config.json() == {
        "api_url": stack.url,
        "project_id": stack.project_id,
        "publishable_client_key": stack.publishable_client_key,
        "cookies": True,
        "silent_refresh": True,
    }
    assert stack.secret_server_key not in config.text
    policy = page.headers["content-security-policy"]
    assert "script-src 'self';" in policy
    assert f"connect-src 'self' {stack.url};" in policy
    assert page.headers["content-type"].startswith("text/html")
