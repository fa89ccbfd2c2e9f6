"""``Emulator``: one local Stack Auth (``Backend``), its Python API for tests and its ASGI app."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr

from . import _changes as changes
from ._app import EmulatorApp
from ._backend import DEFAULT_ACCESS_TOKEN_TTL
from ._emulator_authz import AuthorizationApi
from ._emulator_messaging import MessagingApi
from ._emulator_webhooks import WebhookApi
from ._errors import KnownError
from ._seed import Seed, SeedProject, default_seed
from ._store import Project, User, hash_password, new_id
from ._views import user_json
from ._webhooks import SVIX_RETRY_SCHEDULE, SVIX_TIMEOUT

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8102
DEFAULT_PUBLIC_URL = f"http://{DEFAULT_HOST}:{DEFAULT_PORT}"


@dataclass(frozen=True)
class Tokens:
    """What a sign-in hands out: an access token, its refresh token and the user id."""

    access_token: str
    refresh_token: str
    user_id: str
    refresh_token_id: str


class Emulator(AuthorizationApi, MessagingApi, WebhookApi):
    """A local, in-memory Stack Auth for development and tests. Never for production.

    ``Emulator()`` starts from the default seed (one project with fixed dev keys and a demo
    user); ``emulator.app`` is the ASGI app. ``public_url`` is the base URL clients use: it goes
    into every token's ``iss``, so it must match the ``STACK_API_URL`` the library is given.
    ``clock`` returns epoch seconds and drives every timestamp and expiry, so tests can mint
    expired tokens without waiting. ``latency`` (seconds, default 0) delays every answer of an
    API endpoint, as a distant Stack Auth would (for load tests); ``calls`` counts the requests
    each endpoint received, e.g. ``calls["GET /users/me"]``. ``advance_clock(seconds)`` moves the
    emulator's time forward, to expire tokens, sessions and API keys without waiting.

    Besides users and tokens, the Python API creates teams, members, permission definitions and
    grants, and API keys (``create_team``, ``grant_team_permission``, ``create_api_key``, ...;
    see ``AuthorizationApi``); where Stack would answer an error, it raises ``KnownError`` with
    Stack's code. Team invitations, connected accounts and ``send-email`` work too (see
    ``MessagingApi``): no mail leaves the emulator, ``sent_emails()`` shows it, and
    ``link_oauth_account`` links a provider account to a user.

    The signing keys are random per instance; ``key_seed`` derives them from that text instead
    (the same seed, the same keys). Browsers may call it from loopback origins and from
    ``cors_origins``, and requests must name a loopback host or one of ``allowed_hosts``.

    Changes send Stack's webhooks to the default project's ``webhook_endpoints`` (and to those
    added later, see ``WebhookApi``), signed with ``webhook_secret`` (random when omitted) and
    retried after each delay of ``webhook_retry_schedule`` (Svix's, 5 s to 10 h, by default)
    until answered 2xx within ``webhook_timeout`` seconds. Loading the seed sends nothing.
    """

    def __init__(
        self,
        seed: Seed | None = None,
        *,
        public_url: str = DEFAULT_PUBLIC_URL,
        access_token_ttl: int = DEFAULT_ACCESS_TOKEN_TTL,
        clock: Callable[[], float] = time.time,
        latency: float = 0.0,
        key_seed: str | None = None,
        cors_origins: Iterable[str] = (),
        allowed_hosts: Iterable[str] = (),
        webhook_endpoints: Iterable[str] = (),
        webhook_secret: str | SecretStr | None = None,
        webhook_retry_schedule: Iterable[float] = SVIX_RETRY_SCHEDULE,
        webhook_timeout: float = SVIX_TIMEOUT,
    ) -> None:
        super().__init__(
            public_url=public_url,
            access_token_ttl=access_token_ttl,
            clock=clock,
            latency=latency,
            key_seed=key_seed,
            cors_origins=cors_origins,
            allowed_hosts=allowed_hosts,
            webhook_secret=webhook_secret,
            webhook_retry_schedule=webhook_retry_schedule,
            webhook_timeout=webhook_timeout,
        )
        self.seed = seed if seed is not None else default_seed()
        self.reset()
        for url in webhook_endpoints:  # kept by reset()
            self.webhooks.add_endpoint(self.project_id, url, permanent=True)
        self.app = EmulatorApp(self)

    # --- seed ------------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget every change: back to the seed's projects, users, teams and permissions, and
        to the clock's own time (the signing keys stay). Pending webhooks are cancelled, the
        delivery log emptied, and only the endpoints given at start-up kept."""
        with self.lock:
            self.webhooks.reset()
            self.clock_offset = 0.0
            self.projects.clear()
            with self.webhooks.muted():
                for seed_project in self.seed.projects:
                    try:
                        self._load_project(seed_project)
                    except KnownError as exc:  # a seed naming what it does not define
                        message = f"seed of project {seed_project.id}: {exc.message}"
                        raise ValueError(message) from exc

    def _load_project(self, seed: SeedProject) -> None:
        project = self.projects[seed.id] = Project(
            id=seed.id,
            display_name=seed.display_name,
            publishable_client_keys=list(seed.publishable_client_keys),
            secret_server_keys=list(seed.secret_server_keys),
            super_secret_admin_keys=list(seed.super_secret_admin_keys),
            config=copy.deepcopy(seed.config),
        )
        perms = project.permissions
        for d in seed.team_permission_definitions:
            perms.define(d.id, "team", d.contained_permission_ids, d.description)
        for d in seed.project_permission_definitions:
            perms.define(d.id, "project", d.contained_permission_ids, d.description)
        perms.team_creator_defaults = list(seed.default_team_creator_permissions)
        perms.team_member_defaults = list(seed.default_team_member_permissions)
        perms.user_defaults = list(seed.default_project_permissions)
        for pid in (*perms.team_creator_defaults, *perms.team_member_defaults):
            perms.check_grantable(pid, "team")
        for user in seed.users:  # a seed user's fields are create_user's arguments
            fields = user.model_dump(exclude={"id", "project_permissions"})
            created = self.create_user(project_id=seed.id, user_id=user.id, **fields)
            for pid in user.project_permissions:
                perms.grant_project(created.id, pid)
        for team in seed.teams:
            fields = team.model_dump(exclude={"id", "display_name", "members"})
            row = self.create_team(team.display_name, team_id=team.id, project_id=seed.id, **fields)
            for member in team.members:
                project.add_member(row.id, member.user_id, creator=member.creator)
                for pid in member.permissions:
                    perms.grant_team(row.id, member.user_id, pid)
                if member.selected:
                    project.users[member.user_id].selected_team_id = row.id

    # --- the default project ---------------------------------------------------------------

    @property
    def project(self) -> Project:
        """The default (first seeded) project."""
        return self._project(None)

    @property
    def publishable_client_key(self) -> str | None:
        keys = self.seed.projects[0].publishable_client_keys
        return keys[0] if keys else None

    @property
    def secret_server_key(self) -> str:
        return self.seed.projects[0].secret_server_keys[0]

    # --- Python API: users and tokens -----------------------------------------------------

    def create_user(
        self,
        *,
        email: str | None = None,
        password: str | None = None,
        display_name: str | None = None,
        email_verified: bool = True,
        anonymous: bool = False,
        restricted_by_admin: bool = False,
        restricted_by_admin_reason: str | None = None,
        project_id: str | None = None,
        user_id: str | None = None,
        **fields: Any,
    ) -> User:
        """Create a user directly in the store (no HTTP). ``fields`` sets other ``User``
        attributes (``client_metadata``, ``server_metadata``, ...).

        A user with an ``email`` can sign in with it (and ``password``); ``anonymous`` users
        have no email; ``restricted_by_admin`` users get restricted tokens.
        """
        if anonymous and email is not None:
            raise ValueError("an anonymous user has no email")
        with self.lock:
            project = self._project(project_id)
            now = self.now_millis()
            user = User(
                id=user_id or new_id(),
                signed_up_at_millis=now,
                last_active_at_millis=now,
                primary_email=email,
                primary_email_verified=email_verified if email is not None else False,
                primary_email_auth_enabled=email is not None,
                display_name=display_name or None,
                password_hash=hash_password(password) if password is not None else None,
                is_anonymous=anonymous,
                restricted_by_admin=restricted_by_admin,
                restricted_by_admin_reason=restricted_by_admin_reason,
                **fields,
            )
            if user.id in project.users:
                raise ValueError(f"user {user.id!r} already exists")
            return changes.add_user(self.webhooks, project, user)

    def get_user(self, user_id: str, *, project_id: str | None = None) -> User | None:
        with self.lock:
            return self._project(project_id).users.get(user_id)

    def user_json(
        self, user_id: str, *, server: bool = True, project_id: str | None = None
    ) -> dict[str, Any]:
        """The user as ``GET /users/{id}`` (server) or ``/users/me`` (client) renders it."""
        with self.lock:
            project = self._project(project_id)
            return user_json(project.users[user_id], project, server=server)

    def delete_user(self, user_id: str, *, project_id: str | None = None) -> bool:
        """Delete a user with their sessions, memberships, permissions and API keys (their
        access tokens stay valid until ``exp``)."""
        with self.lock:
            return changes.delete_user(self.webhooks, self._project(project_id), user_id)

    def sign_in(
        self,
        user_id: str,
        *,
        project_id: str | None = None,
        issued_at: float | None = None,
        lifetime: int | None = None,
    ) -> Tokens:
        """Open a session for ``user_id`` (like ``POST /auth/sessions``) and mint its token.

        ``issued_at`` (epoch seconds, default now) and ``lifetime`` (default the emulator's)
        shape the access token: ``issued_at=emulator.now() - 3600`` gives an expired one.
        """
        with self.lock:
            project = self._project(project_id)
            if user_id not in project.users:
                raise KeyError(f"no user {user_id!r}")
            session = project.create_session(user_id, self.now_millis())
            token = self.mint_access_token(
                session, project=project, issued_at=issued_at, lifetime=lifetime
            )
            return Tokens(token, session.refresh_token, user_id, session.id)
