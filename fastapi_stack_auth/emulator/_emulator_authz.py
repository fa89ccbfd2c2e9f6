"""The Python API of teams, permissions, API keys and sessions (``Emulator`` inherits it): direct
changes to the store, with the checks and errors of the matching HTTP endpoints."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from . import _changes as changes
from ._backend import Backend
from ._rows import ApiKey, ApiKeyType, PermissionDefinition, Scope, Session, Team
from ._store import new_id


@dataclass(frozen=True)
class IssuedApiKey:
    """A new API key: its ID and its value, the only copy of the key there is."""

    id: str
    value: str = field(repr=False)
    type: ApiKeyType
    owner_id: str
    expires_at_millis: int | None


class AuthorizationApi(Backend):
    """Teams, memberships, permissions, API keys and sessions, without HTTP.

    Every method takes ``project_id`` (default: the first project). Where Stack would answer an
    error, they raise the emulator's ``KnownError`` with Stack's code (``USER_NOT_FOUND``,
    ``TEAM_MEMBERSHIP_NOT_FOUND``, ``PERMISSION_NOT_FOUND``, ...). A change sends the webhooks
    its HTTP endpoint sends.
    """

    # --- teams and members -----------------------------------------------------------------

    def create_team(
        self,
        display_name: str = "Team",
        *,
        creator: str | None = None,
        team_id: str | None = None,
        project_id: str | None = None,
        **fields: Any,
    ) -> Team:
        """Create a team; ``creator`` (a user ID) becomes a member with the creator's default
        permissions (``team_admin``). ``fields`` sets metadata and ``profile_image_url``."""
        with self.lock:
            project = self._project(project_id)
            team = Team(
                id=team_id or new_id(),
                display_name=display_name,
                created_at_millis=self.now_millis(),
                **fields,
            )
            if team.id in project.teams:
                raise ValueError(f"team {team.id!r} already exists")
            changes.add_team(self.webhooks, project, team, creator_user_id=creator)
            return team

    def get_team(self, team_id: str, *, project_id: str | None = None) -> Team | None:
        with self.lock:
            return self._project(project_id).teams.get(team_id)

    def delete_team(self, team_id: str, *, project_id: str | None = None) -> bool:
        """Delete a team with its memberships, permissions and API keys; False if unknown."""
        with self.lock:
            return changes.delete_team(self.webhooks, self._project(project_id), team_id)

    def add_member(self, team_id: str, user_id: str, *, project_id: str | None = None) -> None:
        """Add a member, with the default member permissions (``team_member``)."""
        with self.lock:
            changes.add_member(self.webhooks, self._project(project_id), team_id, user_id)

    def remove_member(self, team_id: str, user_id: str, *, project_id: str | None = None) -> bool:
        """End a membership and the permissions that came with it; False if there was none."""
        with self.lock:
            project = self._project(project_id)
            return changes.remove_member(self.webhooks, project, team_id, user_id)

    # --- permissions -----------------------------------------------------------------------------

    def define_permission(
        self,
        permission_id: str,
        *,
        scope: Scope = "team",
        contains: Iterable[str] = (),
        description: str | None = None,
        project_id: str | None = None,
    ) -> PermissionDefinition:
        """Define (or redefine) a team or project permission and what it contains (defined
        permissions of the same scope, or system ``$...`` ones for a team permission)."""
        with self.lock:
            perms = self._project(project_id).permissions
            return perms.define(permission_id, scope, contains, description)

    def permission_definition(
        self, permission_id: str, *, project_id: str | None = None
    ) -> PermissionDefinition | None:
        with self.lock:
            return self._project(project_id).permissions.definitions.get(permission_id)

    def grant_team_permission(
        self, team_id: str, user_id: str, permission_id: str, *, project_id: str | None = None
    ) -> None:
        """Grant a team permission to a member (as ``POST /team-permissions/...``)."""
        with self.lock:
            project = self._project(project_id)
            project.check_member(team_id, user_id)
            changes.grant_team_permission(self.webhooks, project, team_id, user_id, permission_id)

    def revoke_team_permission(
        self, team_id: str, user_id: str, permission_id: str, *, project_id: str | None = None
    ) -> bool:
        """Revoke a directly granted team permission; False if it was not granted directly."""
        with self.lock:
            project = self._project(project_id)
            return changes.revoke_team_permission(
                self.webhooks, project, team_id, user_id, permission_id
            )

    def team_permissions(
        self,
        team_id: str,
        user_id: str,
        *,
        recursive: bool = True,
        project_id: str | None = None,
    ) -> list[str]:
        """The member's team permissions in Stack's order (contained ones too, by default)."""
        with self.lock:
            perms = self._project(project_id).permissions
            rows = perms.list_team(team_id=team_id, user_id=user_id, recursive=recursive)
            return [pid for _, _, pid in rows]

    def grant_project_permission(
        self, user_id: str, permission_id: str, *, project_id: str | None = None
    ) -> None:
        """Grant a project permission (as ``POST /project-permissions/...``)."""
        with self.lock:
            project = self._project(project_id)
            project.user_or_404(user_id)
            changes.grant_project_permission(self.webhooks, project, user_id, permission_id)

    def revoke_project_permission(
        self, user_id: str, permission_id: str, *, project_id: str | None = None
    ) -> bool:
        with self.lock:
            project = self._project(project_id)
            return changes.revoke_project_permission(self.webhooks, project, user_id, permission_id)

    def project_permissions(
        self, user_id: str, *, recursive: bool = True, project_id: str | None = None
    ) -> list[str]:
        """The user's project permissions in Stack's order (contained ones too, by default)."""
        with self.lock:
            perms = self._project(project_id).permissions
            return [pid for _, pid in perms.list_project(user_id=user_id, recursive=recursive)]

    # --- API keys ---------------------------------------------------------------------------

    def create_api_key(
        self,
        *,
        user_id: str | None = None,
        team_id: str | None = None,
        description: str = "",
        expires_in: float | None = None,
        is_public: bool = False,
        project_id: str | None = None,
    ) -> IssuedApiKey:
        """A new key of a user or a team (exactly one of them). ``expires_in`` seconds from the
        emulator's clock (``advance_clock`` past it, and the key is expired; 0 or less: already
        expired); ``None``: it never expires. The project's ``allow_*_api_keys`` do not apply."""
        if (user_id is None) == (team_id is None):
            raise ValueError("give exactly one of user_id and team_id")
        kind: ApiKeyType = "user" if user_id is not None else "team"
        owner = user_id or team_id or ""
        with self.lock:
            project = self._project(project_id)
            (project.user_or_404 if kind == "user" else project.team_or_404)(owner)
            now = self.now_millis()
            expires = None
            if expires_in is not None:
                expires = now + math.floor(expires_in * 1000)
                if expires_in <= 0:  # Stack expires a key once the time is *past* its expiry
                    expires = min(expires, now - 1)
            key, value = project.api_keys.create(
                kind,
                owner,
                now_millis=now,
                description=description,
                expires_at_millis=expires,
                is_public=is_public,
            )
            return IssuedApiKey(key.id, value, kind, owner, expires)

    def api_key(self, key: str, *, project_id: str | None = None) -> ApiKey | None:
        """A key's row by its ID or its value (looked up by digest)."""
        with self.lock:
            keys = self._project(project_id).api_keys
            return keys.by_id.get(key) or keys.find(key)

    def revoke_api_key(self, key: str, *, project_id: str | None = None) -> None:
        """Revoke a key, named by its ID or its value (``KeyError`` if unknown)."""
        with self.lock:
            row = self.api_key(key, project_id=project_id)
            if row is None:
                raise KeyError("no such API key")
            self._project(project_id).api_keys.revoke(row.id, self.now_millis())

    # --- sessions --------------------------------------------------------------------------------

    def sessions_of(self, user_id: str, *, project_id: str | None = None) -> list[Session]:
        """The user's sessions (refresh tokens), newest first."""
        with self.lock:
            sessions = self._project(project_id).sessions.values()
            mine = [s for s in sessions if s.user_id == user_id]
            return sorted(reversed(mine), key=lambda s: s.created_at_millis, reverse=True)

    def revoke_session(self, session_id: str, *, project_id: str | None = None) -> bool:
        """End a session (its refresh token stops working; access tokens live until ``exp``)."""
        with self.lock:
            return self._project(project_id).sessions.pop(session_id, None) is not None
