"""``/team-permissions`` and ``/project-permissions`` (contract §9.4, §9.5)."""

from __future__ import annotations

from . import _changes as changes
from ._authz_errors import permission_not_found, team_permission_not_found
from ._http import Ctx, Reply, q_bool, q_uuid, validate
from ._routes_common import own_user_only, param_problems, q_permission_id, q_user_id_or_me, user_id

_NOT_OWN = (
    "Client can only list permissions for their own user."
    ' user_id must be either "me" or the ID of the current user'
)
_LIST_QUERY = {"user_id": q_user_id_or_me, "permission_id": q_permission_id, "recursive": q_bool}


def list_team_permissions(ctx: Ctx) -> Reply:
    validate(ctx, {"team_id": q_uuid, **_LIST_QUERY})
    auth, q = ctx.need_auth, ctx.query
    wanted = user_id(auth, q.get("user_id"))
    own_user_only(auth, wanted, _NOT_OWN)
    # No check that the team, the user or the membership exists: unknown ones list nothing.
    rows = auth.project.permissions.list_team(
        team_id=q.get("team_id"),
        user_id=wanted,
        permission_id=q.get("permission_id"),
        recursive=q.get("recursive") == "true",
    )
    items = [{"id": pid, "team_id": team, "user_id": user} for team, user, pid in rows]
    return Reply(body={"items": items, "is_paginated": False})


def _team_grant(ctx: Ctx, *, body: bool) -> tuple[str, str, str]:
    problems = param_problems(
        ctx, uuids=["team_id"], users=["user_id"], permissions=["permission_id"]
    )
    validate(ctx, body={} if body else None, problems=problems)
    auth, params = ctx.need_auth, ctx.params
    team_id, member = params["team_id"], user_id(auth, params["user_id"]) or ""
    auth.project.check_member(team_id, member)  # USER_NOT_FOUND, then TEAM_MEMBERSHIP_NOT_FOUND
    return team_id, member, params["permission_id"]


def grant_team_permission(ctx: Ctx) -> Reply:
    team_id, member, permission_id = _team_grant(ctx, body=True)
    project = ctx.need_auth.project
    changes.grant_team_permission(ctx.backend.webhooks, project, team_id, member, permission_id)
    return Reply(status=201, body={"id": permission_id, "team_id": team_id, "user_id": member})


def revoke_team_permission(ctx: Ctx) -> Reply:
    team_id, member, permission_id = _team_grant(ctx, body=False)
    project = ctx.need_auth.project
    if not changes.revoke_team_permission(
        ctx.backend.webhooks, project, team_id, member, permission_id
    ):
        raise team_permission_not_found(team_id, member, permission_id)
    return Reply(body={"success": True})


def list_project_permissions(ctx: Ctx) -> Reply:
    validate(ctx, _LIST_QUERY)
    auth, q = ctx.need_auth, ctx.query
    wanted = user_id(auth, q.get("user_id"))
    own_user_only(auth, wanted, _NOT_OWN)
    rows = auth.project.permissions.list_project(
        user_id=wanted,
        permission_id=q.get("permission_id"),
        recursive=q.get("recursive") == "true",
    )
    items = [{"id": pid, "user_id": user} for user, pid in rows]
    return Reply(body={"items": items, "is_paginated": False})


def _project_grant(ctx: Ctx, *, body: bool) -> tuple[str, str]:
    problems = param_problems(ctx, users=["user_id"], permissions=["permission_id"])
    validate(ctx, body={} if body else None, problems=problems)
    auth = ctx.need_auth
    member = user_id(auth, ctx.params["user_id"]) or ""
    auth.project.user_or_404(member)
    return member, ctx.params["permission_id"]


def grant_project_permission(ctx: Ctx) -> Reply:
    member, permission_id = _project_grant(ctx, body=True)
    project = ctx.need_auth.project
    changes.grant_project_permission(ctx.backend.webhooks, project, member, permission_id)
    return Reply(status=201, body={"id": permission_id, "user_id": member})


def revoke_project_permission(ctx: Ctx) -> Reply:
    member, permission_id = _project_grant(ctx, body=False)
    project = ctx.need_auth.project
    if not changes.revoke_project_permission(ctx.backend.webhooks, project, member, permission_id):
        raise permission_not_found(permission_id)
    return Reply(body={"success": True})
