"""The emulator's in-memory data: projects, users, sessions, and room for teams and permissions.

Everything lives in one ``Store`` guarded by one re-entrant lock: the HTTP handlers and the
Python API (tests creating users from another thread) both hold ``store.lock`` while they read or
change anything. Rows are plain dataclasses; their JSON views are in ``_views.py``.

Teams, memberships and permission grants are modelled (a user's ``selected_team`` is rendered
from them) so that the team and permission endpoints can be added without reshaping the store.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from ._errors import user_email_already_exists

#: Lower-case Crockford base32, the alphabet of Stack's refresh tokens.
_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"
REFRESH_TOKEN_LENGTH = 45
DEFAULT_SESSION_MILLIS = 365 * 24 * 3600 * 1000
_PBKDF2_ITERATIONS = 10_000
SYSTEM_TEAM_PERMISSIONS = (
    "$update_team",
    "$delete_team",
    "$read_members",
    "$remove_members",
    "$invite_members",
    "$manage_api_keys",
)


def new_id() -> str:
    """A fresh random UUID, as text."""
    return str(uuid.uuid4())


def new_refresh_token() -> str:
    """An opaque refresh token: 45 lower-case Crockford base32 characters (225 random bits)."""
    # One random byte per character, its low 5 bits (256 is a multiple of 32: uniform); 30 times
    # faster than secrets.choice per character, which load tests minting 100k sessions notice.
    return "".join(_CROCKFORD[b & 31] for b in secrets.token_bytes(REFRESH_TOKEN_LENGTH))


def hash_password(password: str) -> str:
    """A salted PBKDF2 hash (the emulator never keeps a password in the clear)."""
    salt = secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, _PBKDF2_ITERATIONS)
    return "$".join(
        (
            "pbkdf2_sha256",
            str(_PBKDF2_ITERATIONS),
            base64.b64encode(salt).decode(),
            base64.b64encode(digest).decode(),
        )
    )


def check_password(password: str, stored: str | None) -> bool:
    """True when ``password`` matches a hash made by ``hash_password``."""
    if stored is None:
        return False
    try:
        scheme, iterations, salt, digest = stored.split("$")
        if scheme != "pbkdf2_sha256":
            return False
        actual = hashlib.pbkdf2_hmac(
            "sha256", password.encode(), base64.b64decode(salt), int(iterations)
        )
    except ValueError:
        return False
    return hmac.compare_digest(actual, base64.b64decode(digest))


@dataclass
class ProjectConfig:
    """The part of a project's configuration the emulator acts on (and reports)."""

    sign_up_enabled: bool = True
    credential_enabled: bool = True
    magic_link_enabled: bool = False
    passkey_enabled: bool = False
    client_team_creation_enabled: bool = False
    client_user_deletion_enabled: bool = False
    allow_user_api_keys: bool = False
    allow_team_api_keys: bool = False
    enabled_oauth_providers: list[str] = field(default_factory=list)
    domains: list[dict[str, Any]] = field(default_factory=list)
    #: Users with an unverified primary email are restricted (``email_not_verified``).
    require_email_verification: bool = False
    #: Client access must send a valid publishable client key.
    require_publishable_client_key: bool = False


@dataclass
class User:
    """A user row (server view); ``is_restricted`` and friends are computed on read."""

    id: str
    signed_up_at_millis: int
    last_active_at_millis: int
    primary_email: str | None = None
    primary_email_verified: bool = False
    primary_email_auth_enabled: bool = False
    display_name: str | None = None
    profile_image_url: str | None = None
    password_hash: str | None = None
    otp_auth_enabled: bool = False
    passkey_auth_enabled: bool = False
    totp_secret_base64: str | None = None
    oauth_providers: list[dict[str, Any]] = field(default_factory=list)
    client_metadata: Any = None
    client_read_only_metadata: Any = None
    server_metadata: Any = None
    selected_team_id: str | None = None
    is_anonymous: bool = False
    restricted_by_admin: bool = False
    restricted_by_admin_reason: str | None = None
    restricted_by_admin_private_details: str | None = None
    country_code: str | None = None
    risk_scores: dict[str, Any] = field(
        default_factory=lambda: {"sign_up": {"bot": 0, "free_trial_abuse": 0}}
    )

    @property
    def has_password(self) -> bool:
        return self.password_hash is not None


@dataclass
class Session:
    """A refresh-token row; its ``id`` is the ``refresh_token_id`` claim."""

    id: str
    user_id: str
    refresh_token: str
    created_at_millis: int
    expires_at_millis: int
    last_used_at_millis: int
    is_impersonation: bool = False


@dataclass
class Team:
    """A team row (no team endpoints yet; used to render ``selected_team``)."""

    id: str
    display_name: str
    created_at_millis: int
    profile_image_url: str | None = None
    client_metadata: Any = None
    client_read_only_metadata: Any = None
    server_metadata: Any = None


@dataclass
class Membership:
    """A user's membership of a team, with the team permissions granted to it directly."""

    team_id: str
    user_id: str
    permission_ids: set[str] = field(default_factory=set)


@dataclass
class PermissionDefinition:
    """A permission a project defines, and the permissions it contains."""

    id: str
    scope: str  # "team" or "project"
    contained_permission_ids: tuple[str, ...] = ()


def _default_permissions() -> dict[str, PermissionDefinition]:
    return {
        "team_admin": PermissionDefinition("team_admin", "team", SYSTEM_TEAM_PERMISSIONS),
        "team_member": PermissionDefinition(
            "team_member", "team", ("$read_members", "$invite_members")
        ),
    }


@dataclass
class Project:
    """A project and everything in it."""

    id: str
    display_name: str
    publishable_client_keys: list[str]
    secret_server_keys: list[str]
    super_secret_admin_keys: list[str] = field(default_factory=list)
    config: ProjectConfig = field(default_factory=ProjectConfig)
    users: dict[str, User] = field(default_factory=dict)
    sessions: dict[str, Session] = field(default_factory=dict)
    teams: dict[str, Team] = field(default_factory=dict)
    memberships: dict[tuple[str, str], Membership] = field(default_factory=dict)
    permission_definitions: dict[str, PermissionDefinition] = field(
        default_factory=_default_permissions
    )
    #: Project permissions granted directly, by user id.
    project_permissions: dict[str, set[str]] = field(default_factory=dict)

    # --- users ----------------------------------------------------------------------------

    def restricted_reason(self, user: User) -> str | None:
        """Why ``user`` is restricted right now (``None``: not restricted)."""
        if user.is_anonymous:
            return "anonymous"
        if self.config.require_email_verification and not user.primary_email_verified:
            return "email_not_verified"
        if user.restricted_by_admin:
            return "restricted_by_administrator"
        return None

    def user_by_auth_email(self, email: str) -> User | None:
        """The user who signs in with ``email`` (compared case-insensitively)."""
        wanted = email.casefold()
        for user in self.users.values():
            if (
                user.primary_email_auth_enabled
                and user.primary_email is not None
                and user.primary_email.casefold() == wanted
            ):
                return user
        return None

    def check_auth_email_free(self, email: str | None, *, for_user: str | None = None) -> None:
        """Raise ``USER_EMAIL_ALREADY_EXISTS`` when another user signs in with ``email``."""
        if email is None:
            return
        other = self.user_by_auth_email(email)
        if other is not None and other.id != for_user:
            raise user_email_already_exists(email)

    def add_user(self, user: User) -> User:
        if user.primary_email_auth_enabled:
            self.check_auth_email_free(user.primary_email)
        self.users[user.id] = user
        return user

    def delete_user(self, user_id: str) -> bool:
        """Delete a user with their sessions, memberships and grants; False if unknown."""
        if self.users.pop(user_id, None) is None:
            return False
        for session_id in [s.id for s in self.sessions.values() if s.user_id == user_id]:
            del self.sessions[session_id]
        for key in [k for k in self.memberships if k[1] == user_id]:
            del self.memberships[key]
        self.project_permissions.pop(user_id, None)
        return True

    # --- sessions -------------------------------------------------------------------------

    def create_session(
        self,
        user_id: str,
        now_millis: int,
        *,
        expires_in_millis: int = DEFAULT_SESSION_MILLIS,
        is_impersonation: bool = False,
    ) -> Session:
        session = Session(
            id=new_id(),
            user_id=user_id,
            refresh_token=new_refresh_token(),
            created_at_millis=now_millis,
            expires_at_millis=now_millis + expires_in_millis,
            last_used_at_millis=now_millis,
            is_impersonation=is_impersonation,
        )
        self.sessions[session.id] = session
        return session

    def session_by_refresh_token(self, token: str, now_millis: int) -> Session | None:
        """The live session of ``token`` (``None`` if unknown, expired or its user is gone)."""
        for session in self.sessions.values():
            if hmac.compare_digest(session.refresh_token.encode(), token.encode()):
                if session.expires_at_millis <= now_millis or session.user_id not in self.users:
                    return None
                return session
        return None

    def revoke_sessions_of(self, user_id: str) -> None:
        for session_id in [s.id for s in self.sessions.values() if s.user_id == user_id]:
            del self.sessions[session_id]

    # --- teams (store only, no endpoints yet) -----------------------------------------------

    def add_team(self, team: Team) -> Team:
        self.teams[team.id] = team
        return team

    def add_member(self, team_id: str, user_id: str, permission_ids: set[str]) -> Membership:
        membership = Membership(team_id, user_id, set(permission_ids))
        self.memberships[(team_id, user_id)] = membership
        return membership

    def is_member(self, team_id: str, user_id: str) -> bool:
        return (team_id, user_id) in self.memberships


class Store:
    """All projects of one emulator, behind one lock."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.lock = threading.RLock()
        self.projects: dict[str, Project] = {}
        self._clock = clock

    def now_millis(self) -> int:
        return int(self._clock() * 1000)

    @contextmanager
    def locked(self) -> Iterator[Store]:
        with self.lock:
            yield self

    def add_project(self, project: Project) -> Project:
        with self.lock:
            if project.id in self.projects:
                raise ValueError(f"project {project.id!r} already exists")
            self.projects[project.id] = project
            return project

    def project(self, project_id: str) -> Project | None:
        with self.lock:
            return self.projects.get(project_id)
