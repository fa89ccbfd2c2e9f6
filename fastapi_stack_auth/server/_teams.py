"""``stack.server.teams`` and ``stack.server.memberships``."""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator

from pydantic import JsonValue

from .._client import StackClient
from ..models import StackUser, Team
from ._base import UNSET, Api, Unset, fields, items, parse, segment
from ._models import TeamMembership
from ._users import DEFAULT_PAGE_SIZE, UsersApi


class TeamsApi(Api):
    """The project's teams (``/teams``), server view: ``server_metadata`` included."""

    async def get(self, team_id: str) -> Team:
        """The team ``team_id``; ``TeamNotFoundError`` if there is none."""
        body = await self._get(f"/teams/{segment(team_id)}")
        return parse(Team, body, "GET /teams/{team_id}")

    async def list(self, *, user_id: str | None = None) -> builtins.list[Team]:
        """The teams ``user_id`` is a member of (an unknown user has none), or with no
        ``user_id`` every team of the project; oldest first."""
        params = None if user_id is None else {"user_id": user_id}
        return items(Team, await self._get("/teams", params), "GET /teams")

    async def create(
        self,
        display_name: str,
        *,
        creator_user_id: str | None = None,
        profile_image_url: str | Unset | None = UNSET,
        client_metadata: JsonValue | Unset = UNSET,
        client_read_only_metadata: JsonValue | Unset = UNSET,
        server_metadata: JsonValue | Unset = UNSET,
    ) -> Team:
        """Create a team; ``creator_user_id`` becomes its first member, with ``team_admin``."""
        body = fields(
            display_name=display_name,
            creator_user_id=UNSET if creator_user_id is None else creator_user_id,
            profile_image_url=profile_image_url,
            client_metadata=client_metadata,
            client_read_only_metadata=client_read_only_metadata,
            server_metadata=server_metadata,
        )
        return parse(Team, await self._post("/teams", body), "POST /teams")

    async def update(
        self,
        team_id: str,
        *,
        display_name: str | Unset = UNSET,
        profile_image_url: str | Unset | None = UNSET,
        client_metadata: JsonValue | Unset = UNSET,
        client_read_only_metadata: JsonValue | Unset = UNSET,
        server_metadata: JsonValue | Unset = UNSET,
    ) -> Team:
        """Change the fields given (``None`` clears one) and return the updated team."""
        body = fields(
            display_name=display_name,
            profile_image_url=profile_image_url,
            client_metadata=client_metadata,
            client_read_only_metadata=client_read_only_metadata,
            server_metadata=server_metadata,
        )
        body_out = await self._patch(f"/teams/{segment(team_id)}", body)
        return parse(Team, body_out, "PATCH /teams/{team_id}")

    async def delete(self, team_id: str) -> None:
        """Delete the team (its memberships and team API keys go with it)."""
        await self._delete(f"/teams/{segment(team_id)}")


class MembershipsApi(Api):
    """Who is in which team. Stack has no membership object to read: ``members`` lists a
    team's users, ``teams_of`` a user's teams."""

    def __init__(self, client: StackClient, users: UsersApi, teams: TeamsApi) -> None:
        super().__init__(client)
        self._users = users
        self._teams = teams

    async def add(self, team_id: str, user_id: str) -> TeamMembership:
        """Add ``user_id`` to ``team_id`` with the project's default member permissions;
        ``TeamMembershipAlreadyExistsError`` if they are in it already."""
        body = await self._post(f"/team-memberships/{segment(team_id)}/{segment(user_id)}")
        return parse(TeamMembership, body, "POST /team-memberships/{team_id}/{user_id}")

    async def remove(self, team_id: str, user_id: str) -> None:
        """Remove ``user_id`` from ``team_id``; ``TeamMembershipNotFoundError`` if not in it."""
        await self._delete(f"/team-memberships/{segment(team_id)}/{segment(user_id)}")

    def members(
        self,
        team_id: str,
        *,
        include_anonymous: bool = False,
        include_restricted: bool = False,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> AsyncIterator[StackUser]:
        """The team's members, page by page as you iterate. Like ``users.list`` (which this
        is), anonymous and restricted members are left out unless asked for."""
        return self._users.list(
            team_id=team_id,
            include_anonymous=include_anonymous,
            include_restricted=include_restricted,
            page_size=page_size,
        )

    async def teams_of(self, user_id: str) -> list[Team]:
        """The teams ``user_id`` is a member of, oldest first."""
        return await self._teams.list(user_id=user_id)
