"""Listing and revoking a user's sessions: ``GET /auth/sessions?user_id=`` and
``DELETE /auth/sessions/{id}?user_id=`` (contract §7.4, §7.5)."""

from __future__ import annotations

from ._authz_errors import cannot_delete_current_session
from ._errors import PlainError
from ._http import Ctx, Reply, validate
from ._routes_common import own_user_only, param_problems, q_user_id_or_me, user_id
from ._views import session_json


def _user_id_query(ctx: Ctx, problems: list[str]) -> str | None:
    """The required ``user_id`` query (``me`` resolved), validated with ``problems``."""
    if "user_id" not in ctx.query:
        problems = [*problems, "query.user_id is a required field"]
    validate(ctx, {"user_id": q_user_id_or_me}, problems=problems)
    return user_id(ctx.need_auth, ctx.query["user_id"])


def list_sessions(ctx: Ctx) -> Reply:
    wanted = _user_id_query(ctx, [])
    auth = ctx.need_auth
    own_user_only(auth, wanted, "Client can only list sessions for their own user.")
    # Impersonation sessions are listed for admin access only.
    sessions = [
        s
        for s in auth.project.sessions.values()
        if s.user_id == wanted and (auth.access_type == "admin" or not s.is_impersonation)
    ]
    # Newest first; reversed before the stable sort, so sessions of one millisecond are too.
    sessions = sorted(reversed(sessions), key=lambda s: s.created_at_millis, reverse=True)
    current = auth.token.refresh_token_id if auth.token is not None else None
    items = [session_json(s, current_id=current) for s in sessions]
    return Reply(body={"items": items, "is_paginated": False})


def delete_session(ctx: Ctx) -> Reply:
    # The user_id query is validated but not used: a server deletes whoever's session it names.
    _user_id_query(ctx, param_problems(ctx, uuids=["id"]))
    auth = ctx.need_auth
    session = auth.project.sessions.get(ctx.params["id"])
    if session is None or (
        not auth.server and (auth.user is None or auth.user.id != session.user_id)
    ):
        raise PlainError(404, "Session not found.")
    if auth.token is not None and auth.token.refresh_token_id == session.id:
        raise cannot_delete_current_session()
    del auth.project.sessions[session.id]
    return Reply(body={"success": True})
