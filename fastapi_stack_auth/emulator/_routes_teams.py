"""``/teams`` and ``/team-memberships`` (contract §9.2, §9.3)."""

from __future__ import annotations

import copy
from typing import Any

from . import _changes as changes
from . import _webhook_events as events
from ._errors import PlainError
from ._http import Ctx, FieldCheck, Reply, f_json, f_str, validate
from ._routes_common import (
    me,
    own_user_only,
    param_problems,
    q_user_id_or_me,
    require_team_permission,
    signed_in,
    user_id,
)
from ._store import Project, Team, new_id
from ._views import team_json

_CLIENT_FIELDS: dict[str, FieldCheck] = {
    "display_name": f_str(),
    "profile_image_url": f_str(nullable=True),
    "client_metadata": f_json,
}
_SERVER_FIELDS: dict[str, FieldCheck] = {
    **_CLIENT_FIELDS,
    "client_read_only_metadata": f_json,
    "server_metadata": f_json,
}
_CREATOR: dict[str, FieldCheck] = {
    "creator_user_id": lambda v: q_user_id_or_me(v) if isinstance(v, str) else "must be a string"
}


def _apply(team: Team, body: dict[str, Any]) -> None:
    for name in _SERVER_FIELDS:
        if name in body:
            setattr(team, name, copy.deepcopy(body[name]))


def list_teams(ctx: Ctx) -> Reply:
    validate(ctx, {"user_id": q_user_id_or_me})
    auth = ctx.need_auth
    wanted = user_id(auth, ctx.query.get("user_id"))
    own_user_only(
        auth,
        wanted,
        "Client can only list teams for their own user."
        ' user_id must be either "me" or the ID of the current user',
    )
    # An unknown user is in no team: an empty list, not an error.
    teams = auth.project.teams_of(wanted)
    items = [team_json(team, server=auth.server) for team in teams]
    return Reply(body={"items": items, "is_paginated": False})


def get_team(ctx: Ctx) -> Reply:
    validate(ctx, problems=param_problems(ctx, uuids=["team_id"]))
    auth, team_id = ctx.need_auth, ctx.params["team_id"]
    if not auth.server:  # members only; a missing team looks like a missing membership
        auth.project.check_member(team_id, signed_in(auth).id)
    return Reply(body=team_json(auth.project.team_or_404(team_id), server=auth.server))


def create_team(ctx: Ctx) -> Reply:
    auth = ctx.need_auth
    fields = {**(_SERVER_FIELDS if auth.server else _CLIENT_FIELDS), **_CREATOR}
    body = validate(ctx, body=fields, required=("display_name",))
    creator = user_id(auth, body.get("creator_user_id"))
    if not auth.server:
        user = signed_in(auth)
        if not auth.project.config.client_team_creation_enabled:
            raise PlainError(403, "Client team creation is disabled for this project")
        if creator is None:
            creator = user.id
        elif creator != user.id:
            raise PlainError(
                403,
                "You cannot create a team as a user that is not yourself. "
                "Make sure you set the creator_user_id to 'me'.",
            )
    now = ctx.backend.now_millis()
    team = Team(id=new_id(), display_name=body["display_name"], created_at_millis=now)
    _apply(team, body)
    # The creator is checked before the team is stored: an unknown one leaves no team behind.
    changes.add_team(ctx.backend.webhooks, auth.project, team, creator_user_id=creator)
    return Reply(status=201, body=team_json(team, server=auth.server))


def _team_for_change(ctx: Ctx, project: Project, permission: str) -> Team:
    auth, team_id = ctx.need_auth, ctx.params["team_id"]
    if not auth.server:
        require_team_permission(project, team_id, signed_in(auth), permission)
    return project.team_or_404(team_id)


def patch_team(ctx: Ctx) -> Reply:
    auth = ctx.need_auth
    fields = _SERVER_FIELDS if auth.server else _CLIENT_FIELDS
    body = validate(ctx, body=fields, problems=param_problems(ctx, uuids=["team_id"]))
    team = _team_for_change(ctx, auth.project, "$update_team")
    _apply(team, body)
    events.send(ctx.backend.webhooks, auth.project, events.team_updated(team))
    return Reply(body=team_json(team, server=auth.server))


def delete_team(ctx: Ctx) -> Reply:
    validate(ctx, problems=param_problems(ctx, uuids=["team_id"]))
    auth = ctx.need_auth
    team = _team_for_change(ctx, auth.project, "$delete_team")
    changes.delete_team(ctx.backend.webhooks, auth.project, team.id)
    return Reply(body={"success": True})


# --- memberships --------------------------------------------------------------------------------


def _membership_params(ctx: Ctx) -> list[str]:
    return param_problems(ctx, uuids=["team_id"], users=["user_id"])


def add_membership(ctx: Ctx) -> Reply:
    validate(ctx, body={}, problems=_membership_params(ctx))
    auth, team_id = ctx.need_auth, ctx.params["team_id"]
    member = user_id(auth, ctx.params["user_id"]) or ""
    changes.add_member(ctx.backend.webhooks, auth.project, team_id, member)
    return Reply(status=201, body={"team_id": team_id, "user_id": member})


def remove_membership(ctx: Ctx) -> Reply:
    validate(ctx, problems=_membership_params(ctx))
    auth, team_id = ctx.need_auth, ctx.params["team_id"]
    member = user_id(auth, ctx.params["user_id"]) or ""
    project = auth.project
    if not auth.server:  # anyone may leave; removing others needs $remove_members
        current = me(auth)
        if member != current.id:
            require_team_permission(project, team_id, current, "$remove_members")
    project.check_member(team_id, member)
    changes.remove_member(ctx.backend.webhooks, project, team_id, member)
    return Reply(body={"success": True})
