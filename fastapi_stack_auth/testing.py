"""Test helpers for apps that use fastapi-stack-auth: a local Stack Auth emulator as pytest
fixtures, users of every kind with valid tokens, and a ``StackAuth`` pointed at it.

Load the plugin in your ``conftest.py``::

    pytest_plugins = ["fastapi_stack_auth.testing"]

and use the fixtures::

    def test_me(stack_emulator):
        user = stack_emulator.create_user(display_name="Ada")
        app = create_app(stack_emulator.stack_auth())     # your app factory
        with TestClient(app) as client:
            response = client.get("/me", headers=user.headers)
        assert response.status_code == 200

Fixtures:

- ``stack_emulator``: an ``EmulatedStack`` served over HTTP on a free loopback port (one server
  per test session, reset to its seed before every test).
- ``stack_emulator_asgi``: the same, but in-process with no socket at all (``stack_auth()`` and
  ``settings()`` route the library's calls through an ASGI transport).
- ``stack_user``, ``stack_restricted_user``, ``stack_anonymous_user``: a ``StackTestUser`` of
  that kind on ``stack_emulator``, with a fresh access token.
- ``stack_auth_env``: ``STACK_*`` environment variables pointing at ``stack_emulator`` (for
  apps that build ``StackAuth()`` from the environment during the test).
- ``stack_team``: a team whose creator (a member with ``team_admin``) is ``stack_user``.
- ``stack_api_key``: a user API key of ``stack_user`` (the key itself, a ``str``).
- ``stack_webhook_signer``: sets ``STACK_WEBHOOK_SECRET`` to a test secret and signs webhook
  payloads with it (``body, headers = stack_webhook_signer({"type": ..., "data": ...})``).

Authorization in one line each: ``stack_emulator.create_team(owner=user)``,
``.grant_team_permission(user, team, "docs:delete")``, ``.grant_project_permission(user,
"admin")``, ``.create_api_key(user_or_team, expires_in=60)``, ``.advance_clock(61)``.

This module imports pytest; the rest of the library never imports it. It has no ``assert`` for
pytest to rewrite, so it can be imported before it is loaded as a plugin: PYTEST_DONT_REWRITE.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import pytest

from ._settings import StackAuthSettings
from ._stack import StackAuth
from .emulator import AuthorizationHelpers, Emulator, EmulatorServer, Seed, Team, Tokens
from .webhooks import new_webhook_secret, sign_webhook

#: Base URL of in-process emulators: ``.invalid`` never resolves, so nothing leaves the process.
IN_PROCESS_URL = "http://stack-auth-emulator.invalid"

__all__ = [
    "IN_PROCESS_URL",
    "WEBHOOK_TEST_SECRET",
    "EmulatedStack",
    "StackTestUser",
    "WebhookSigner",
    "stack_anonymous_user",
    "stack_api_key",
    "stack_auth_env",
    "stack_emulator",
    "stack_emulator_asgi",
    "stack_emulator_server",
    "stack_restricted_user",
    "stack_team",
    "stack_user",
    "stack_webhook_signer",
]


@dataclass(frozen=True)
class StackTestUser:
    """An emulator user with a signed-in session."""

    id: str
    kind: str  # "normal", "restricted" or "anonymous"
    email: str | None
    password: str | None
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        """``Authorization: Bearer <access token>``, for requests to your app."""
        return {"Authorization": f"Bearer {self.access_token}"}

    @property
    def stack_headers(self) -> dict[str, str]:
        """``x-stack-access-token: <access token>``, as Stack's frontends send it."""
        return {"x-stack-access-token": self.access_token}


class EmulatedStack(AuthorizationHelpers):
    """A running emulator and everything a test needs from it (teams, permissions and API keys:
    see ``AuthorizationHelpers``)."""

    def __init__(
        self, emulator: Emulator, url: str, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.emulator = emulator
        #: The value for ``STACK_API_URL``.
        self.url = url
        #: Set for in-process emulators: pass it to ``StackAuth(transport=...)``.
        self.transport = transport

    @property
    def project_id(self) -> str:
        return self.emulator.project_id

    @property
    def publishable_client_key(self) -> str | None:
        return self.emulator.publishable_client_key

    @property
    def secret_server_key(self) -> str:
        return self.emulator.secret_server_key

    # --- configuring the library ---------------------------------------------------------------

    def env(self) -> dict[str, str]:
        """``STACK_*`` environment variables that point the library at this emulator."""
        env = {
            "STACK_API_URL": self.url,
            "STACK_PROJECT_ID": self.project_id,
            "STACK_SECRET_SERVER_KEY": self.secret_server_key,
        }
        if self.publishable_client_key is not None:
            env["STACK_PUBLISHABLE_CLIENT_KEY"] = self.publishable_client_key
        return env

    def settings(self, **overrides: Any) -> StackAuthSettings:
        """``StackAuthSettings`` for this emulator; ``overrides`` win (e.g. ``verify="jwt"``)."""
        values: dict[str, Any] = {
            "api_url": self.url,
            "project_id": self.project_id,
            "secret_server_key": self.secret_server_key,
            "publishable_client_key": self.publishable_client_key,
        }
        values.update(overrides)
        return StackAuthSettings(**values)

    def stack_auth(self, **overrides: Any) -> StackAuth:
        """A ``StackAuth`` that talks to this emulator (``overrides`` as in ``settings``)."""
        return StackAuth(self.settings(**overrides), transport=self.transport)

    # --- users and tokens -----------------------------------------------------------------------

    def create_user(
        self,
        *,
        email: str | None = None,
        password: str | None = None,
        display_name: str | None = None,
        restricted: bool = False,
        anonymous: bool = False,
        email_verified: bool = True,
        **fields: Any,
    ) -> StackTestUser:
        """Create a user and sign them in.

        ``anonymous=True`` makes an anonymous user (no email); ``restricted=True`` a user
        restricted by an administrator (their tokens have the ``:restricted`` audience). A
        normal user gets a unique email and password unless given. ``fields`` sets other user
        attributes (``client_metadata``, ``server_metadata``, ...).
        """
        if anonymous:
            kind = "anonymous"
        elif restricted:
            kind = "restricted"
        else:
            kind = "normal"
        if not anonymous:
            email = email or f"user-{secrets.token_hex(6)}@example.com"
            password = password or f"password-{secrets.token_hex(6)}"
        user = self.emulator.create_user(
            email=email,
            password=password,
            display_name=display_name,
            email_verified=email_verified,
            anonymous=anonymous,
            restricted_by_admin=restricted,
            **fields,
        )
        tokens = self.emulator.sign_in(user.id)
        return StackTestUser(
            id=user.id,
            kind=kind,
            email=email,
            password=password,
            access_token=tokens.access_token,
            refresh_token=tokens.refresh_token,
        )

    def sign_in(self, user: StackTestUser | str, **options: Any) -> Tokens:
        """A new session for ``user``; ``issued_at``/``lifetime`` shape its access token."""
        return self.emulator.sign_in(user if isinstance(user, str) else user.id, **options)

    def expired_token(self, user: StackTestUser | str) -> str:
        """A correctly signed access token of ``user`` that expired an hour ago."""
        lifetime = self.emulator.access_token_ttl
        issued_at = self.emulator.now() - 3600 - lifetime
        return self.sign_in(user, issued_at=issued_at).access_token

    def delete_user(self, user: StackTestUser | str) -> None:
        """Delete ``user`` (their access tokens keep their signature until ``exp``)."""
        self.emulator.delete_user(user if isinstance(user, str) else user.id)

    def reset(self) -> None:
        """Back to the seed: the seeded users only, no sessions, the clock's own time."""
        self.emulator.reset()

    # --- talking to the emulator directly -----------------------------------------------------

    def client_headers(self, access_token: str | None = None) -> dict[str, str]:
        """Headers of a client-access call to the emulator (as a frontend makes it)."""
        headers = {"x-stack-access-type": "client", "x-stack-project-id": self.project_id}
        if self.publishable_client_key is not None:
            headers["x-stack-publishable-client-key"] = self.publishable_client_key
        if access_token is not None:
            headers["x-stack-access-token"] = access_token
        return headers

    def server_headers(self, access_token: str | None = None) -> dict[str, str]:
        """Headers of a server-access call to the emulator."""
        headers = {
            "x-stack-access-type": "server",
            "x-stack-project-id": self.project_id,
            "x-stack-secret-server-key": self.secret_server_key,
        }
        if access_token is not None:
            headers["x-stack-access-token"] = access_token
        return headers


# --- the pytest plugin --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def stack_emulator_server() -> Iterator[EmulatorServer]:
    """One emulator served on ``127.0.0.1`` (a free port) for the whole test session."""
    with EmulatorServer(Emulator(Seed.model_validate(_TEST_SEED))) as server:
        yield server


@pytest.fixture
def stack_emulator(stack_emulator_server: EmulatorServer) -> EmulatedStack:
    """The session's emulator over loopback HTTP, reset to its seed for this test."""
    stack_emulator_server.emulator.reset()
    return EmulatedStack(stack_emulator_server.emulator, stack_emulator_server.url)


@pytest.fixture
def stack_emulator_asgi() -> EmulatedStack:
    """A fresh in-process emulator: no socket, the library reaches it through an ASGI
    transport (``stack_auth()`` wires it; for ``settings()`` pass ``transport`` yourself)."""
    emulator = Emulator(
        Seed.model_validate(_TEST_SEED),
        public_url=IN_PROCESS_URL,
        allowed_hosts=[httpx.URL(IN_PROCESS_URL).host],
    )
    return EmulatedStack(emulator, IN_PROCESS_URL, httpx.ASGITransport(app=emulator.app))


@pytest.fixture
def stack_user(stack_emulator: EmulatedStack) -> StackTestUser:
    """A normal, signed-in user on ``stack_emulator``."""
    return stack_emulator.create_user(display_name="Test User")


@pytest.fixture
def stack_restricted_user(stack_emulator: EmulatedStack) -> StackTestUser:
    """A restricted (``restricted_by_administrator``) signed-in user on ``stack_emulator``."""
    return stack_emulator.create_user(display_name="Restricted User", restricted=True)


@pytest.fixture
def stack_anonymous_user(stack_emulator: EmulatedStack) -> StackTestUser:
    """An anonymous signed-in user on ``stack_emulator``."""
    return stack_emulator.create_user(anonymous=True)


@pytest.fixture
def stack_auth_env(
    stack_emulator: EmulatedStack, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """Set ``STACK_*`` environment variables to ``stack_emulator`` for this test."""
    env = stack_emulator.env()
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def stack_team(stack_emulator: EmulatedStack, stack_user: StackTestUser) -> Team:
    """A team on ``stack_emulator`` whose creator (with ``team_admin``) is ``stack_user``."""
    return stack_emulator.create_team(stack_user)


@pytest.fixture
def stack_api_key(stack_emulator: EmulatedStack, stack_user: StackTestUser) -> str:
    """A user API key of ``stack_user`` that does not expire (the key itself)."""
    return stack_emulator.create_api_key(stack_user)


#: The test seed: a project with random keys (fresh per session), user and team API keys
#: allowed, no users.
_TEST_SEED: dict[str, Any] = {
    "projects": [
        {
            "id": "7e57ab1e-7e57-4000-8000-000000000002",
            "display_name": "fastapi-stack-auth tests",
            "publishable_client_keys": [f"pck_test_{secrets.token_hex(16)}"],
            "secret_server_keys": [f"ssk_test_{secrets.token_hex(16)}"],
            "super_secret_admin_keys": [f"sak_test_{secrets.token_hex(16)}"],
            "config": {"allow_user_api_keys": True, "allow_team_api_keys": True},
        }
    ]
}


# --- webhooks -----------------------------------------------------------------------------------

#: The webhook signing secret of ``stack_webhook_signer``: random, one per test session (an app
#: built once at import keeps the secret it read first).
WEBHOOK_TEST_SECRET = new_webhook_secret()


@dataclass(frozen=True)
class WebhookSigner:
    """Signs webhook payloads with ``secret`` as Stack's sender (Svix) does."""

    secret: str = field(repr=False)

    def __call__(
        self,
        payload: Mapping[str, Any] | str | bytes,
        *,
        msg_id: str | None = None,
        timestamp: float | datetime | None = None,
    ) -> tuple[bytes, dict[str, str]]:
        """The body and headers of a signed delivery of ``payload`` (a ``{"type", "data"}``
        mapping, or the exact body): ``client.post(url, content=body, headers=headers)``.
        Reuse ``msg_id`` to send a redelivery."""
        return sign_webhook(payload, self.secret, msg_id=msg_id, timestamp=timestamp)


@pytest.fixture
def stack_webhook_signer(monkeypatch: pytest.MonkeyPatch) -> WebhookSigner:
    """Set ``STACK_WEBHOOK_SECRET`` to ``WEBHOOK_TEST_SECRET`` for this test and sign with it."""
    monkeypatch.setenv("STACK_WEBHOOK_SECRET", WEBHOOK_TEST_SECRET)
    return WebhookSigner(WEBHOOK_TEST_SECRET)
