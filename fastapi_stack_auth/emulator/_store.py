"""The in-memory state: rows (projects, users, sessions, teams) and ``Backend``, which holds
them with the signing keys and the clock behind one re-entrant lock (the HTTP handlers and the
Python API, possibly on another thread, both hold it). JSON views are in ``_views.py``."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ._errors import user_email_already_exists
from ._keys import KeyRing
from ._tokens import AUDIENCE_KINDS, TokenSubject, audience, mint_access_token

#: Lower-case Crockford base32, the alphabet of Stack's refresh tokens.
_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"
REFRESH_TOKEN_LENGTH = 45
DEFAULT_SESSION_MILLIS = 365 * 24 * 3600 * 1000
_PBKDF2_ITERATIONS = 10_000
#: Stack's default access-token lifetime (``STACK_ACCESS_TOKEN_EXPIRATION_TIME``): 10 minutes.
DEFAULT_ACCESS_TOKEN_TTL = 600


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
    """The part of a project's configuration the emulator acts on and reports (seeds set it)."""

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
    #: ``(team_id, user_id)`` of every team membership.
    memberships: set[tuple[str, str]] = field(default_factory=set)

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
        """Delete a user with their sessions and memberships; False if unknown."""
        if self.users.pop(user_id, None) is None:
            return False
        self.revoke_sessions_of(user_id)
        self.memberships = {m for m in self.memberships if m[1] != user_id}
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

    # --- teams (no endpoints yet: they render ``selected_team``) --------------------------------

    def add_team(self, team: Team) -> Team:
        self.teams[team.id] = team
        return team

    def add_member(self, team_id: str, user_id: str) -> None:
        self.memberships.add((team_id, user_id))

    def is_member(self, team_id: str, user_id: str) -> bool:
        return (team_id, user_id) in self.memberships


class Backend:
    """The emulated Stack Auth that the HTTP routes act on: projects, signing keys, clock and
    settings, behind ``lock``. ``Emulator`` adds the Python API and the ASGI app."""

    def __init__(
        self,
        *,
        public_url: str,
        access_token_ttl: int,
        clock: Callable[[], float],
        latency: float,
        key_seed: str | None,
        cors_origins: Iterable[str],
        allowed_hosts: Iterable[str],
    ) -> None:
        if access_token_ttl < 1:
            raise ValueError("access_token_ttl must be at least 1 second")
        if not latency >= 0:
            raise ValueError("latency must be 0 or more seconds")
        self.lock = threading.RLock()
        self.projects: dict[str, Project] = {}
        self.public_url = public_url
        self.access_token_ttl = access_token_ttl
        self.clock = clock
        #: Seconds every API answer is delayed by (``asyncio.sleep``): a slow network.
        self.latency = latency
        #: Requests received per endpoint, keyed ``"METHOD /path pattern"`` (``/api/v1`` off).
        self.calls: Counter[str] = Counter()
        #: Random per instance unless ``key_seed`` is given (then derived from it).
        self.keys = KeyRing(key_seed)
        #: Browser origins allowed besides loopback ones (``scheme://host[:port]``).
        self.cors_origins = {origin.rstrip("/").lower() for origin in cors_origins}
        #: ``Host`` names accepted besides loopback ones (no port).
        self.allowed_hosts = {host.lower() for host in allowed_hosts}

    @property
    def public_url(self) -> str:
        """Base URL of the emulator as clients see it (no trailing slash): the tokens' issuer."""
        return self._public_url

    @public_url.setter
    def public_url(self, value: str) -> None:
        self._public_url = value.rstrip("/")

    @property
    def project_id(self) -> str:
        """The default (first) project."""
        return next(iter(self.projects))

    def now(self) -> float:
        """The emulator's current time, in epoch seconds."""
        return self.clock()

    def now_millis(self) -> int:
        return int(self.clock() * 1000)

    def mint_access_token(
        self,
        session: Session,
        *,
        project: Project,
        issued_at: float | None = None,
        lifetime: int | None = None,
    ) -> str:
        """A fresh access token for ``session`` (claims from the user as they are now)."""
        with self.lock:
            user = project.users[session.user_id]
            user.last_active_at_millis = session.last_used_at_millis = self.now_millis()
            subject = TokenSubject(
                user_id=user.id,
                name=user.display_name,
                email=user.primary_email,
                email_verified=user.primary_email_verified,
                selected_team_id=user.selected_team_id,
                signed_up_at_millis=user.signed_up_at_millis,
                is_anonymous=user.is_anonymous,
                restricted_reason=project.restricted_reason(user),
                requires_totp_mfa=user.totp_secret_base64 is not None,
            )
        return mint_access_token(
            self.keys,
            public_url=self.public_url,
            project_id=project.id,
            subject=subject,
            refresh_token_id=session.id,
            issued_at=int(self.clock() if issued_at is None else issued_at),
            lifetime=self.access_token_ttl if lifetime is None else lifetime,
        )

    def jwks(
        self,
        project_id: str | None = None,
        *,
        include_restricted: bool = False,
        include_anonymous: bool = False,
    ) -> dict[str, Any]:
        """The project's public JWKS, as ``/.well-known/jwks.json`` serves it."""
        pid = project_id or self.project_id
        kinds = AUDIENCE_KINDS[: 3 if include_anonymous else 2 if include_restricted else 1]
        keys = [key.public_jwk for kind in kinds for key in self.keys.keys_for(audience(pid, kind))]
        return {"keys": keys}
