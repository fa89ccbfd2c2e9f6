"""``/team-invitations`` (contract §9.10): send, list, revoke, and accept by code or by ID.
Accepting adds the membership with its webhooks, like ``POST /team-memberships``."""

from __future__ import annotations

from typing import Any

from . import _errors as err
from . import _invitation_flow as flow
from . import _messaging_errors as merr
from ._crypto import REFRESH_TOKEN_LENGTH
from ._errors import PlainError
from ._http import Ctx, FieldCheck, Reply, f_email, f_str, f_uuid, q_uuid, validate
from ._invitations import Invitation
from ._routes_common import (
    me,
    own_user_only,
    param_problems,
    q_user_id_or_me,
    require_granted,
    require_team_permission,
    signed_in,
)
from ._routes_common import user_id as resolve_user_id
from ._store import Project, User


def _f_code(value: Any) -> str | None:
    """A code is a random string of a refresh token's form (``_crypto.new_refresh_token``)."""
    if not isinstance(value, str):
        return "must be a string"
    length = REFRESH_TOKEN_LENGTH
    return None if len(value) == length else f"must be exactly {length} characters"


def send_code(ctx: Ctx) -> Reply:
    fields: dict[str, FieldCheck] = {
        "team_id": f_uuid(),
        "email": f_email(),
        "callback_url": f_str(),
    }
    body = validate(ctx, body=fields, required=tuple(fields))
    auth = ctx.need_auth
    if not auth.server:
        require_granted(auth.project, body["team_id"], signed_in(auth), "$invite_members")
    invitation = flow.send_invitation(
        auth.project,
        team_id=body["team_id"],
        email=body["email"],
        callback_url=body["callback_url"],
        now_millis=ctx.backend.now_millis(),
    )
    return Reply(body={"success": True, "id": invitation.id})


def list_invitations(ctx: Ctx) -> Reply:
    validate(ctx, {"team_id": q_uuid, "user_id": q_user_id_or_me})
    auth, now = ctx.need_auth, ctx.backend.now_millis()
    project, team_id, wanted = auth.project, ctx.query.get("team_id"), ctx.query.get("user_id")
    if (team_id is None) == (wanted is None):
        raise PlainError(400, "Exactly one of team_id or user_id must be provided")
    found: list[Invitation]
    if team_id is not None:
        if auth.server:
            project.team_or_404(team_id)
        else:
            user = me(auth)
            for permission in ("$read_members", "$invite_members"):
                require_team_permission(project, team_id, user, permission)
        found = flow.of_team(project, team_id, now)
    else:
        uid = resolve_user_id(auth, wanted)
        own_user_only(auth, uid, "Client can only list invitations for their own user.")
        found = flow.for_user(project, project.user_or_404(str(uid)), now)
    items = [flow.invitation_json(project, i) for i in found]
    return Reply(body={"items": items, "is_paginated": False})


def revoke_invitation(ctx: Ctx) -> Reply:
    validate(ctx, {"team_id": q_uuid}, uuid_param="id")
    auth, team_id = ctx.need_auth, ctx.query.get("team_id")
    if team_id is None:
        raise PlainError(400, "team_id is required")
    project = auth.project
    if auth.server:
        project.team_or_404(team_id)
    else:
        require_team_permission(project, team_id, me(auth), "$remove_members")
    invitation = project.invitations.get(ctx.params["id"])
    if invitation is None or invitation.team_id != team_id:
        raise PlainError(404, "Team invitation not found")
    project.invitations.remove(invitation.id)
    return Reply(body={"success": True})


def _accept(ctx: Ctx, project: Project, invitation: Invitation, user_id: str) -> None:
    flow.accept(ctx.backend.webhooks, project, invitation, user_id, ctx.backend.now_millis())


def _code_and_user(ctx: Ctx) -> tuple[Invitation, User]:
    """The code's invitation (code errors first, as Stack), then the signed-in user, who must
    not be restricted."""
    body = validate(ctx, body={"code": _f_code}, required=("code",))
    auth = ctx.need_auth
    invitation = flow.by_code(auth.project, body["code"], ctx.backend.now_millis())
    user = signed_in(auth)
    flow.check_not_restricted(auth.project, user)
    return invitation, user


def accept_by_code(ctx: Ctx) -> Reply:
    invitation, user = _code_and_user(ctx)
    _accept(ctx, ctx.need_auth.project, invitation, user.id)
    return Reply(body={})


def check_code(ctx: Ctx) -> Reply:
    body = validate(ctx, body={"code": _f_code}, required=("code",))
    flow.by_code(ctx.need_auth.project, body["code"], ctx.backend.now_millis())
    return Reply(body={"is_code_valid": True})


def code_details(ctx: Ctx) -> Reply:
    invitation, _ = _code_and_user(ctx)
    team = ctx.need_auth.project.team_or_404(invitation.team_id)
    return Reply(body={"team_id": team.id, "team_display_name": team.display_name})


def accept_by_id(ctx: Ctx) -> Reply:
    problems = param_problems(ctx, uuids=["id"])
    validate(ctx, {"user_id": q_user_id_or_me}, problems=problems)
    auth, wanted = ctx.need_auth, ctx.query.get("user_id")
    if wanted is None:
        raise PlainError(400, "user_id is required")
    project = auth.project
    if auth.server:
        user_id = str(resolve_user_id(auth, wanted))
    else:  # a client accepts for itself only, and not while restricted
        user = me(auth)
        if wanted not in ("me", user.id):
            raise err.cannot_get_own_user_without_user()
        flow.check_not_restricted(project, user)
        user_id = user.id
    invitation = project.invitations.get(ctx.params["id"])
    if invitation is None or not invitation.pending(ctx.backend.now_millis()):
        raise merr.verification_code_not_found()
    # The user needs a verified email equal to the recipient (else: not found, as in Stack).
    user_row = project.users.get(user_id)
    if (
        user_row is None
        or not user_row.primary_email_verified
        or user_row.primary_email != invitation.recipient_email
    ):
        raise merr.verification_code_not_found()
    _accept(ctx, project, invitation, user_id)
    return Reply(body={})
