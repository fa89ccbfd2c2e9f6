"""``stack.server.team_permissions`` and ``stack.server.project_permissions``.

``list`` asks with ``recursive=true`` unless told otherwise, the opposite of Stack's default.
Stack's ``recursive=false`` lists only the permissions granted directly, so a ``team_admin``
would not show ``$update_team``, which it contains: asking "may this user do X?" that way
gives false refusals. Pass ``recursive=False`` to manage grants: only a direct grant can be
revoked.
"""

from __future__ import annotations

import builtins

from ._base import Api, flag, items, parse, segment
from ._models import ProjectPermission, TeamPermission


class TeamPermissionsApi(Api):
    """Permissions users hold within teams (``/team-permissions``)."""

    async def list(
        self,
        *,
        team_id: str | None = None,
        user_id: str | None = None,
        permission_id: str | None = None,
        recursive: bool = True,
    ) -> builtins.list[TeamPermission]:
        """The permissions matching the filters; with ``recursive`` (the default) also those
        contained in a granted one. A team the user is not in, or no such team, gives ``[]``."""
        params = {"recursive": flag(recursive)}
        for name, value in (("team_id", team_id), ("user_id", user_id)):
            if value is not None:
                params[name] = value
        if permission_id is not None:  # Stack filters after expanding: contained ones match
            params["permission_id"] = permission_id
        body = await self._get("/team-permissions", params)
        return items(TeamPermission, body, "GET /team-permissions")

    async def has(self, team_id: str, user_id: str, permission_id: str) -> bool:
        """Whether ``user_id`` holds ``permission_id`` in ``team_id``, directly or contained
        (uncached: ``stack.permissions`` caches for request checks)."""
        found = await self.list(team_id=team_id, user_id=user_id, permission_id=permission_id)
        return any(p.id == permission_id for p in found)

    async def grant(self, team_id: str, user_id: str, permission_id: str) -> TeamPermission:
        """Grant ``permission_id`` to a member of the team; ``TeamMembershipNotFoundError``
        for a non-member, ``PermissionNotFoundError`` for an unknown permission."""
        path = f"/team-permissions/{segment(team_id)}/{segment(user_id)}/{segment(permission_id)}"
        body = await self._post(path)
        return parse(TeamPermission, body, "POST /team-permissions/{team_id}/{user_id}/{id}")

    async def revoke(self, team_id: str, user_id: str, permission_id: str) -> None:
        """Revoke a directly granted permission; ``PermissionNotFoundError`` if it was not
        granted directly (Stack answers that 401 ``TEAM_PERMISSION_NOT_FOUND``)."""
        path = f"/team-permissions/{segment(team_id)}/{segment(user_id)}/{segment(permission_id)}"
        await self._delete(path)


class ProjectPermissionsApi(Api):
    """Project-wide permissions of users (``/project-permissions``)."""

    async def list(
        self,
        *,
        user_id: str | None = None,
        permission_id: str | None = None,
        recursive: bool = True,
    ) -> builtins.list[ProjectPermission]:
        """The project permissions matching the filters; with ``recursive`` (the default) also
        those contained in a granted one."""
        params = {"recursive": flag(recursive)}
        if user_id is not None:
            params["user_id"] = user_id
        if permission_id is not None:
            params["permission_id"] = permission_id
        body = await self._get("/project-permissions", params)
        return items(ProjectPermission, body, "GET /project-permissions")

    async def has(self, user_id: str, permission_id: str) -> bool:
        """Whether ``user_id`` holds the project permission ``permission_id``, directly or
        contained (uncached)."""
        found = await self.list(user_id=user_id, permission_id=permission_id)
        return any(p.id == permission_id for p in found)

    async def grant(self, user_id: str, permission_id: str) -> ProjectPermission:
        """Grant the project permission; ``PermissionNotFoundError`` if it is not defined."""
        path = f"/project-permissions/{segment(user_id)}/{segment(permission_id)}"
        body = await self._post(path)
        return parse(ProjectPermission, body, "POST /project-permissions/{user_id}/{id}")

    async def revoke(self, user_id: str, permission_id: str) -> None:
        """Revoke a directly granted project permission; ``PermissionNotFoundError`` if it
        was not granted directly."""
        await self._delete(f"/project-permissions/{segment(user_id)}/{segment(permission_id)}")
