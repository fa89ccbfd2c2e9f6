"""Permissions as Stack keeps them (contract §9.4, §9.5): definitions with containment, direct
grants, and the listing -- direct grants expanded (when recursive) through the definitions,
sorted, then filtered by permission ID."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from . import _authz_errors as authz
from ._rows import PermissionDefinition, Scope

#: Team permissions every project has, in Stack's order; they contain nothing.
SYSTEM_TEAM_PERMISSIONS = (
    "$update_team",
    "$delete_team",
    "$read_members",
    "$remove_members",
    "$invite_members",
    "$manage_api_keys",
)
#: IDs a request may name; one starting with ``$`` must also be a system permission.
PERMISSION_ID = re.compile(r"\$?[a-z0-9_:]+")
#: IDs a definition may have (only the system ones start with ``$``).
CUSTOM_PERMISSION_ID = re.compile(r"[a-z0-9_:]+")


def is_permission_id(value: str) -> bool:
    """True for an ID Stack's schema accepts in a path or query (``permissionDefinitionId``)."""
    if PERMISSION_ID.fullmatch(value) is None:
        return False
    return not value.startswith("$") or value in SYSTEM_TEAM_PERMISSIONS


def stack_compare(a: str, b: str) -> int:
    """Stack's ``stringCompare``: upper-cased first (so ``$`` sorts before letters and case
    does not matter), then the raw strings in reverse as a tie-break."""
    upper_a, upper_b = a.upper(), b.upper()
    if upper_a != upper_b:
        return -1 if upper_a < upper_b else 1
    return (b > a) - (b < a)


def _compare_rows(a: tuple[str, ...], b: tuple[str, ...]) -> int:
    for x, y in zip(a, b, strict=True):
        if order := stack_compare(x, y):
            return order
    return 0


def default_definitions() -> dict[str, PermissionDefinition]:
    """What Stack defines in every new project (``apps/backend/src/lib/projects.tsx``)."""
    return {
        "team_member": PermissionDefinition(
            "team_member",
            "team",
            ("$invite_members", "$read_members"),
            "Default permission for team members",
        ),
        "team_admin": PermissionDefinition(
            "team_admin",
            "team",
            tuple(sorted(SYSTEM_TEAM_PERMISSIONS, key=functools.cmp_to_key(stack_compare))),
            "Default permission for team admins",
        ),
    }


def _expand(direct: Iterable[str], known: dict[str, tuple[str, ...]], recursive: bool) -> set[str]:
    """The permissions ``direct`` grants; a grant whose definition is gone counts for nothing."""
    pending, found = list(direct), set[str]()
    while pending:
        current = pending.pop()
        if current not in known or current in found:
            continue
        found.add(current)
        if recursive:
            pending.extend(known[current])
    return found


@dataclass
class Permissions:
    """A project's permission definitions, default grants and direct grants."""

    definitions: dict[str, PermissionDefinition] = field(default_factory=default_definitions)
    #: Team permissions granted to a team's creator and to each member added later.
    team_creator_defaults: list[str] = field(default_factory=lambda: ["team_admin"])
    team_member_defaults: list[str] = field(default_factory=lambda: ["team_member"])
    #: Project permissions every new user is granted (Stack's ``defaultPermissions.signUp``).
    user_defaults: list[str] = field(default_factory=list)
    #: Direct grants: ``(team_id, user_id, permission_id)`` and ``(user_id, permission_id)``.
    team_grants: set[tuple[str, str, str]] = field(default_factory=set)
    project_grants: set[tuple[str, str]] = field(default_factory=set)

    def known(self, scope: Scope) -> dict[str, tuple[str, ...]]:
        """The definitions of ``scope`` (the system ones included for teams): ID -> contained."""
        found = {
            d.id: d.contained_permission_ids for d in self.definitions.values() if d.scope == scope
        }
        if scope == "team":
            found.update((pid, ()) for pid in SYSTEM_TEAM_PERMISSIONS)
        return found

    def define(
        self,
        permission_id: str,
        scope: Scope,
        contains: Iterable[str] = (),
        description: str | None = None,
    ) -> PermissionDefinition:
        """Define (or redefine) a permission; what it contains must be defined in its scope."""
        if CUSTOM_PERMISSION_ID.fullmatch(permission_id) is None:
            raise ValueError(f"invalid permission ID {permission_id!r}: use [a-z0-9_:]")
        existing = self.definitions.get(permission_id)
        if existing is not None and existing.scope != scope:
            raise ValueError(f"{permission_id!r} is already a {existing.scope} permission")
        known = self.known(scope)
        contained = tuple(sorted(set(contains), key=functools.cmp_to_key(stack_compare)))
        for pid in contained:
            if pid not in known:
                raise ValueError(f"{permission_id!r} contains {pid!r}, no {scope} permission")
        definition = PermissionDefinition(permission_id, scope, contained, description)
        self.definitions[permission_id] = definition
        return definition

    def check_grantable(self, permission_id: str, scope: Scope) -> None:
        """``PERMISSION_NOT_FOUND`` or ``WRONG_PERMISSION_SCOPE`` unless it can be granted."""
        definition = self.definitions.get(permission_id)
        if definition is None:
            if scope == "team" and permission_id in SYSTEM_TEAM_PERMISSIONS:
                return
            raise authz.permission_not_found(permission_id)
        if definition.scope != scope:
            raise authz.wrong_permission_scope(permission_id, scope, definition.scope)

    # --- team permissions ------------------------------------------------------------------

    def grant_team(self, team_id: str, user_id: str, permission_id: str) -> None:
        self.check_grantable(permission_id, "team")
        self.team_grants.add((team_id, user_id, permission_id))

    def revoke_team(self, team_id: str, user_id: str, permission_id: str) -> bool:
        """Revoke a direct grant; False when there is none (or its definition is gone)."""
        grant = (team_id, user_id, permission_id)
        if grant not in self.team_grants or permission_id not in self.known("team"):
            return False
        self.team_grants.discard(grant)
        return True

    def list_team(
        self,
        *,
        team_id: str | None = None,
        user_id: str | None = None,
        permission_id: str | None = None,
        recursive: bool = False,
    ) -> list[tuple[str, str, str]]:
        """``(team_id, user_id, permission_id)`` rows as ``GET /team-permissions`` lists them."""
        groups: dict[tuple[str, str], list[str]] = {}
        for team, user, pid in self.team_grants:
            if (team_id is None or team == team_id) and (user_id is None or user == user_id):
                groups.setdefault((team, user), []).append(pid)
        known = self.known("team")
        rows = [
            (team, user, pid)
            for (team, user), direct in groups.items()
            for pid in _expand(direct, known, recursive)
        ]
        rows.sort(key=functools.cmp_to_key(_compare_rows))
        return [row for row in rows if permission_id is None or row[2] == permission_id]

    # --- project permissions -------------------------------------------------------------------

    def grant_project(self, user_id: str, permission_id: str) -> None:
        self.check_grantable(permission_id, "project")
        self.project_grants.add((user_id, permission_id))

    def revoke_project(self, user_id: str, permission_id: str) -> bool:
        grant = (user_id, permission_id)
        if grant not in self.project_grants or permission_id not in self.known("project"):
            return False
        self.project_grants.discard(grant)
        return True

    def list_project(
        self,
        *,
        user_id: str | None = None,
        permission_id: str | None = None,
        recursive: bool = False,
    ) -> list[tuple[str, str]]:
        """``(user_id, permission_id)`` rows as ``GET /project-permissions`` lists them."""
        groups: dict[str, list[str]] = {}
        for user, pid in self.project_grants:
            if user_id is None or user == user_id:
                groups.setdefault(user, []).append(pid)
        known = self.known("project")
        rows = [
            (user, pid)
            for user, direct in groups.items()
            for pid in _expand(direct, known, recursive)
        ]
        rows.sort(key=functools.cmp_to_key(_compare_rows))
        return [row for row in rows if permission_id is None or row[1] == permission_id]

    # --- cascades ------------------------------------------------------------------------------

    def forget(self, *, team_id: str | None = None, user_id: str | None = None) -> None:
        """Drop the grants of a team, of a user, or of one membership (both given)."""

        def gone(team: str | None, user: str) -> bool:
            team_match = team_id is None or team == team_id
            user_match = user_id is None or user == user_id
            return team_match and user_match

        self.team_grants = {g for g in self.team_grants if not gone(g[0], g[1])}
        if team_id is None and user_id is not None:
            self.project_grants = {g for g in self.project_grants if g[0] != user_id}
