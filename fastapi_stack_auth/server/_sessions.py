"""``stack.server.sessions``: sign a user in from the server, list and revoke sessions."""

from __future__ import annotations

import builtins

from ._base import UNSET, Api, fields, items, parse, segment
from ._models import Session, SessionTokens


class SessionsApi(Api):
    """A user's sessions (``/auth/sessions``): one per refresh token."""

    async def create(
        self,
        user_id: str,
        *,
        expires_in_millis: int | None = None,
        is_impersonation: bool = False,
    ) -> SessionTokens:
        """Sign ``user_id`` in without credentials (for tests, support tools, impersonation):
        the new session's tokens. ``expires_in_millis`` bounds the refresh token (Stack's
        default is 365 days, its maximum 367); the access token lives 10 minutes regardless.

        Nothing in the tokens marks impersonation: ``is_impersonation`` only hides the session
        from non-admin session lists. ``UserNotFoundError`` for an unknown user.
        """
        body = fields(
            user_id=user_id,
            expires_in_millis=UNSET if expires_in_millis is None else expires_in_millis,
            is_impersonation=is_impersonation,
        )
        # 200, not 201: this is not a CRUD create.
        answer = await self._client.request("POST", "/auth/sessions", json_body=body, ok=(200,))
        return parse(SessionTokens, answer, "POST /auth/sessions")

    async def list(self, user_id: str) -> builtins.list[Session]:
        """The user's sessions, newest first (impersonation sessions are listed to admin access
        only, so never here); an unknown user has none."""
        body = await self._get("/auth/sessions", {"user_id": user_id})
        return items(Session, body, "GET /auth/sessions")

    async def revoke(self, session_id: str, *, user_id: str) -> None:
        """End a session: its refresh token stops working; access tokens already issued stay
        valid until they expire (at most 10 minutes)."""
        # Stack requires ``user_id`` here (a query schema shared with the list) but, with server
        # access, deletes the session whoever owns it.
        await self._delete(f"/auth/sessions/{segment(session_id)}", {"user_id": user_id})
