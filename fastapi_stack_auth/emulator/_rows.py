"""The rows the emulator stores: a project's configuration, users, sessions, teams, permission
definitions and API keys. Plain data; ``Project`` (``_store.py``) relates them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Scope = Literal["team", "project"]
ApiKeyType = Literal["user", "team"]


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
    #: Callback URLs (team invitations) may be on loopback hosts besides ``domains``.
    allow_localhost: bool = True
    #: The project sends mail through Stack's shared email server: ``POST /emails/send-email``
    #: answers ``REQUIRES_CUSTOM_EMAIL_SERVER``.
    shared_email_server: bool = False


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
    """A team row."""

    id: str
    display_name: str
    created_at_millis: int
    profile_image_url: str | None = None
    client_metadata: Any = None
    client_read_only_metadata: Any = None
    server_metadata: Any = None


@dataclass(frozen=True)
class PermissionDefinition:
    """A team or project permission and the permissions it contains (Stack's ``rbac``)."""

    id: str
    scope: Scope
    contained_permission_ids: tuple[str, ...] = ()
    description: str | None = None


@dataclass
class ApiKey:
    """A user or team API key. The key itself is not kept: only its SHA-256 and last four
    characters, as much as Stack ever shows again."""

    id: str
    type: ApiKeyType
    #: The user's ID for a user key, the team's for a team key.
    owner_id: str
    description: str
    created_at_millis: int
    digest: bytes = field(repr=False)
    last_four: str
    is_public: bool = False
    expires_at_millis: int | None = None
    manually_revoked_at_millis: int | None = None
