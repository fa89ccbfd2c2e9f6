"""``Project``: one project's state in memory (users, sessions, teams, memberships, permissions,
API keys, invitations, linked OAuth accounts and the outbox) and the rules that keep it
consistent (cascades, Stack's order of checks). The rows are in ``_rows.py``, ``Backend`` (all
projects, keys, clock, lock) in ``_backend.py`` and the JSON views in ``_views.py``."""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field

from ._api_keys import ApiKeys
from ._authz_errors import team_membership_already_exists, team_not_found
from ._crypto import (
    REFRESH_TOKEN_LENGTH,
    check_password,
    hash_password,
    new_id,
    new_refresh_token,
)
from ._errors import team_membership_not_found, user_email_already_exists, user_not_found
from ._invitations import Invitations
from ._oauth_links import OAuthLinks
from ._outbox import Outbox
from ._rbac import Permissions
from ._rows import ApiKey, PermissionDefinition, ProjectConfig, Session, Team, User

DEFAULT_SESSION_MILLIS = 365 * 24 * 3600 * 1000

__all__ = [  # the rows and helpers live in their own modules; importable from here too
    "DEFAULT_SESSION_MILLIS",
    "REFRESH_TOKEN_LENGTH",
    "ApiKey",
    "PermissionDefinition",
    "Project",
    "ProjectConfig",
    "Session",
    "Team",
    "User",
    "check_password",
    "hash_password",
    "new_id",
    "new_refresh_token",
]


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
    permissions: Permissions = field(default_factory=Permissions)
    api_keys: ApiKeys = field(default_factory=ApiKeys)
    #: Team invitations (Stack's verification codes), linked OAuth accounts, sent email.
    invitations: Invitations = field(default_factory=Invitations)
    oauth_links: OAuthLinks = field(default_factory=OAuthLinks)
    outbox: Outbox = field(default_factory=Outbox)

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
        """Store a new user and grant the project's default permissions (as every sign-up)."""
        if user.primary_email_auth_enabled:
            self.check_auth_email_free(user.primary_email)
        for permission_id in self.permissions.user_defaults:
            self.permissions.check_grantable(permission_id, "project")
        self.users[user.id] = user
        for permission_id in self.permissions.user_defaults:
            self.permissions.grant_project(user.id, permission_id)
        return user

    def delete_user(self, user_id: str) -> bool:
        """Delete a user with everything of theirs (sessions, memberships, permissions, API
        keys); False if unknown. Their access tokens stay valid until ``exp``."""
        if self.users.pop(user_id, None) is None:
            return False
        self.revoke_sessions_of(user_id)
        self.memberships = {m for m in self.memberships if m[1] != user_id}
        self.permissions.forget(user_id=user_id)
        self.api_keys.forget_owner("user", user_id)
        self.oauth_links.forget_user(user_id)
        return True

    def user_or_404(self, user_id: str) -> User:
        """The user, or ``USER_NOT_FOUND``."""
        user = self.users.get(user_id)
        if user is None:
            raise user_not_found()
        return user

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

    # --- teams and memberships --------------------------------------------------------------

    def add_team(self, team: Team, *, creator_user_id: str | None = None) -> Team:
        """Store a team; its creator (if any) becomes a member with the creator permissions."""
        if creator_user_id is not None:
            self.user_or_404(creator_user_id)
        self.teams[team.id] = team
        if creator_user_id is not None:
            self.add_member(team.id, creator_user_id, creator=True)
        return team

    def team_or_404(self, team_id: str) -> Team:
        """The team, or ``TEAM_NOT_FOUND``."""
        team = self.teams.get(team_id)
        if team is None:
            raise team_not_found(team_id)
        return team

    def delete_team(self, team_id: str) -> bool:
        """Delete a team with its memberships, permissions and API keys; False if unknown."""
        if self.teams.pop(team_id, None) is None:
            return False
        for _, user_id in [m for m in self.memberships if m[0] == team_id]:
            self.remove_member(team_id, user_id)
        self.permissions.forget(team_id=team_id)
        self.api_keys.forget_owner("team", team_id)
        return True

    def teams_of(self, user_id: str | None) -> list[Team]:
        """The teams ``user_id`` is in (every team for ``None``), oldest first."""
        teams = [t for t in self.teams.values() if user_id is None or self.is_member(t.id, user_id)]
        return sorted(teams, key=lambda t: t.created_at_millis)

    def add_member(self, team_id: str, user_id: str, *, creator: bool = False) -> list[str]:
        """Add a member in Stack's order of checks (``USER_NOT_FOUND``, ``TEAM_NOT_FOUND``,
        ``TEAM_MEMBERSHIP_ALREADY_EXISTS``) and grant the default member (or creator)
        permissions; returns the IDs of those permissions."""
        self.user_or_404(user_id)
        self.team_or_404(team_id)
        if self.is_member(team_id, user_id):
            raise team_membership_already_exists()
        perms = self.permissions
        defaults = perms.team_creator_defaults if creator else perms.team_member_defaults
        for permission_id in defaults:
            perms.check_grantable(permission_id, "team")
        self.memberships.add((team_id, user_id))
        for permission_id in defaults:
            perms.grant_team(team_id, user_id, permission_id)
        return list(defaults)

    def check_member(self, team_id: str, user_id: str) -> None:
        """``USER_NOT_FOUND`` or ``TEAM_MEMBERSHIP_NOT_FOUND`` unless ``user_id`` is a member."""
        self.user_or_404(user_id)
        if not self.is_member(team_id, user_id):
            raise team_membership_not_found(team_id, user_id)

    def remove_member(self, team_id: str, user_id: str) -> bool:
        """End a membership and its permissions (and the user's selection of the team)."""
        if not self.is_member(team_id, user_id):
            return False
        self.memberships.discard((team_id, user_id))
        self.permissions.forget(team_id=team_id, user_id=user_id)
        user = self.users.get(user_id)
        if user is not None and user.selected_team_id == team_id:
            user.selected_team_id = None
        return True

    def is_member(self, team_id: str, user_id: str) -> bool:
        return (team_id, user_id) in self.memberships
