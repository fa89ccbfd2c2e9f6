"""One-line authorization helpers of the pytest plugin's ``EmulatedStack``: teams, permission
grants, API keys and the clock, taking users and teams as objects with an ``id`` or as IDs."""

from __future__ import annotations

from typing import Literal, Protocol

from ._emulator import Emulator
from ._rows import Team


class HasId(Protocol):
    """A user or team as tests hold them (``StackTestUser``, ``Team``, ``User``)."""

    @property
    def id(self) -> str: ...


def _id(thing: HasId | str) -> str:
    return thing if isinstance(thing, str) else thing.id


class AuthorizationHelpers:
    """Teams, permissions, API keys and time in one line each, on ``self.emulator``'s default
    project. Permissions a test grants are defined on the fly when the project does not define
    them (containing nothing)."""

    emulator: Emulator

    def create_team(
        self, owner: HasId | str | None = None, *, display_name: str = "Test Team"
    ) -> Team:
        """A team; ``owner`` (if any) is its creator, a member with ``team_admin``."""
        return self.emulator.create_team(display_name, creator=_id(owner) if owner else None)

    def add_member(self, team: HasId | str, user: HasId | str) -> None:
        """Add ``user`` to ``team`` with the default member permissions (``team_member``)."""
        self.emulator.add_member(_id(team), _id(user))

    def grant_team_permission(self, user: HasId | str, team: HasId | str, permission: str) -> None:
        """Grant ``permission`` in ``team`` to ``user``, adding them to the team first if they
        are not a member; an undefined permission is first defined (containing nothing)."""
        self._define(permission, "team")
        if not self.emulator.project.is_member(_id(team), _id(user)):
            self.add_member(team, user)
        self.emulator.grant_team_permission(_id(team), _id(user), permission)

    def revoke_team_permission(self, user: HasId | str, team: HasId | str, permission: str) -> None:
        """Revoke a directly granted team permission."""
        self.emulator.revoke_team_permission(_id(team), _id(user), permission)

    def grant_project_permission(self, user: HasId | str, permission: str) -> None:
        """Grant a project permission; an undefined one is first defined (containing nothing)."""
        self._define(permission, "project")
        self.emulator.grant_project_permission(_id(user), permission)

    def revoke_project_permission(self, user: HasId | str, permission: str) -> None:
        """Revoke a directly granted project permission."""
        self.emulator.revoke_project_permission(_id(user), permission)

    def _define(self, permission: str, scope: Literal["team", "project"]) -> None:
        known = permission.startswith("$") or self.emulator.permission_definition(permission)
        if not known:
            self.emulator.define_permission(permission, scope=scope)

    def create_api_key(self, owner: HasId | str, *, expires_in: float | None = None) -> str:
        """A new API key of a user or a team (the key itself), valid ``expires_in`` seconds of
        the emulator's clock (``None``: forever; see ``advance_clock``)."""
        owner_id = _id(owner)
        is_team = isinstance(owner, Team) or (
            isinstance(owner, str) and self.emulator.get_team(owner) is not None
        )
        key = self.emulator.create_api_key(
            user_id=None if is_team else owner_id,
            team_id=owner_id if is_team else None,
            description="test key",
            expires_in=expires_in,
        )
        return key.value

    def revoke_api_key(self, key: str) -> None:
        """Revoke an API key (by its value or its ID)."""
        self.emulator.revoke_api_key(key)

    def advance_clock(self, seconds: float) -> None:
        """Move the emulator's time forward: its tokens, sessions and API keys expire without
        waiting (the library's own clock does not move; ``reset`` undoes it)."""
        self.emulator.advance_clock(seconds)
