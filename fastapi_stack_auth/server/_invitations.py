"""``stack.server.invitations``: invite people to teams by email, list, revoke and accept."""

from __future__ import annotations

import builtins
from collections.abc import Mapping

from .._exceptions import StackBadResponseError
from ._base import Api, items, segment
from ._models import TeamInvitation


class InvitationsApi(Api):
    """Team invitations (``/team-invitations``): a one-time link sent by email, valid 7 days."""

    async def send(self, team_id: str, email: str, *, callback_url: str) -> str:
        """Email ``email`` an invitation to ``team_id`` and return the invitation's id. The link
        is ``callback_url?code=...``; ``callback_url`` must be on a trusted domain of the
        project (``RedirectUrlNotAllowedError`` otherwise)."""
        body = {"team_id": team_id, "email": email, "callback_url": callback_url}
        answer = await self._post("/team-invitations/send-code", body)
        invitation_id = answer.get("id") if isinstance(answer, Mapping) else None
        if not isinstance(invitation_id, str):
            raise StackBadResponseError("POST /team-invitations/send-code: no invitation id")
        return invitation_id

    async def list(
        self, *, team_id: str | None = None, user_id: str | None = None
    ) -> builtins.list[TeamInvitation]:
        """The pending invitations to ``team_id``, or those addressed to a verified email of
        ``user_id`` (give exactly one)."""
        if (team_id is None) == (user_id is None):
            raise ValueError("give exactly one of team_id and user_id")
        params = {"team_id": team_id} if team_id is not None else {"user_id": str(user_id)}
        body = await self._get("/team-invitations", params)
        return items(TeamInvitation, body, "GET /team-invitations")

    async def revoke(self, invitation_id: str, *, team_id: str) -> None:
        """Withdraw an invitation of ``team_id``: its link stops working."""
        path = f"/team-invitations/{segment(invitation_id)}"
        await self._delete(path, {"team_id": team_id})

    async def accept(self, invitation_id: str, *, user_id: str) -> None:
        """Accept the invitation for ``user_id``, who must have a verified email equal to its
        recipient (``TeamInvitationError`` otherwise); already a member is no error."""
        path = f"/team-invitations/{segment(invitation_id)}/accept"
        await self._post(path, params={"user_id": user_id})
