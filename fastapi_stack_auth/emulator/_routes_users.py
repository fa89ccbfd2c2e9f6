"""``/users`` (contract §9.1)."""

from __future__ import annotations

from . import _changes as changes
from . import _webhook_events as events
from ._errors import PlainError
from ._http import Ctx, Reply, is_uuid, q_bool, q_one_of, q_positive_int, q_uuid, validate
from ._routes_common import me
from ._store import User, new_id
from ._user_fields import (
    CLIENT_UPDATE_FIELDS,
    SERVER_CREATE_FIELDS,
    SERVER_UPDATE_FIELDS,
    apply_user_fields,
    check_user_fields,
)
from ._views import user_json

# --- /users ------------------------------------------------------------------------------------


def get_me(ctx: Ctx) -> Reply:
    validate(ctx)
    auth = ctx.need_auth
    return Reply(body=user_json(me(auth), auth.project, server=auth.server))


def patch_me(ctx: Ctx) -> Reply:
    auth = ctx.need_auth
    body = validate(ctx, body=SERVER_UPDATE_FIELDS if auth.server else CLIENT_UPDATE_FIELDS)
    user = me(auth)
    check_user_fields(ctx, body, user)
    apply_user_fields(auth.project, user, body, ctx.backend.now_millis())
    events.send(ctx.backend.webhooks, auth.project, events.user_updated(auth.project, user))
    return Reply(body=user_json(user, auth.project, server=auth.server))


def delete_me(ctx: Ctx) -> Reply:
    validate(ctx)
    auth = ctx.need_auth
    user = me(auth)
    if not auth.server and not auth.project.config.client_user_deletion_enabled:
        raise PlainError(400, "Client user deletion is disabled for this project.")
    changes.delete_user(ctx.backend.webhooks, auth.project, user.id)
    return Reply(body={"success": True})


_LIST_QUERY = {
    "limit": q_positive_int,
    "cursor": q_uuid,
    "order_by": q_one_of("signed_up_at"),
    "desc": q_bool,
    "query": lambda value: None,
    "team_id": q_uuid,
    "include_restricted": q_bool,
    "include_anonymous": q_bool,
    "only_anonymous": q_bool,
}


def list_users(ctx: Ctx) -> Reply:
    validate(ctx, _LIST_QUERY)
    auth = ctx.need_auth
    q = ctx.query
    include_anonymous = q.get("include_anonymous") == "true"
    include_restricted = include_anonymous or q.get("include_restricted") == "true"
    only_anonymous = q.get("only_anonymous") == "true"
    if only_anonymous and not include_anonymous:
        raise PlainError(400, "only_anonymous=true needs include_anonymous=true.")
    project = auth.project
    users = list(project.users.values())
    if only_anonymous:
        users = [u for u in users if u.is_anonymous]
    if not include_anonymous:
        users = [u for u in users if not u.is_anonymous]
    if not include_restricted:
        users = [u for u in users if project.restricted_reason(u) is None]
    if "team_id" in q:
        users = [u for u in users if project.is_member(q["team_id"], u.id)]
    if q.get("query"):
        term = q["query"]
        if is_uuid(term):
            users = [u for u in users if u.id == term.lower()]
        else:
            needle = term.casefold()
            users = [
                u
                for u in users
                if needle in (u.display_name or "").casefold()
                or needle in (u.primary_email or "").casefold()
            ]
    users.sort(key=lambda u: (u.signed_up_at_millis, u.id), reverse=q.get("desc") == "true")
    start = 0
    if "cursor" in q:
        ids = [u.id for u in users]
        start = ids.index(q["cursor"]) if q["cursor"] in ids else len(users)
    end = start + int(q["limit"]) if "limit" in q else len(users)
    page = users[start:end]
    next_cursor = users[end].id if end < len(users) else None
    return Reply(
        body={
            "items": [user_json(u, project, server=True) for u in page],
            "is_paginated": True,
            "pagination": {"next_cursor": next_cursor},
        }
    )


def create_user(ctx: Ctx) -> Reply:
    auth = ctx.need_auth
    body = validate(ctx, body=SERVER_CREATE_FIELDS)
    check_user_fields(ctx, body, None)
    project = auth.project
    now = ctx.backend.now_millis()
    user = User(id=new_id(), signed_up_at_millis=now, last_active_at_millis=now)
    user.is_anonymous = bool(body.get("is_anonymous", False))
    apply_user_fields(project, user, body, now)
    changes.add_user(ctx.backend.webhooks, project, user)
    return Reply(status=201, body=user_json(user, project, server=True))


def get_user(ctx: Ctx) -> Reply:
    validate(ctx, uuid_param="user_id")
    project = ctx.need_auth.project
    return Reply(body=user_json(project.user_or_404(ctx.params["user_id"]), project, server=True))


def patch_user(ctx: Ctx) -> Reply:
    body = validate(ctx, body=SERVER_UPDATE_FIELDS, uuid_param="user_id")
    project = ctx.need_auth.project
    user = project.user_or_404(ctx.params["user_id"])
    check_user_fields(ctx, body, user)
    apply_user_fields(project, user, body, ctx.backend.now_millis())
    events.send(ctx.backend.webhooks, project, events.user_updated(project, user))
    return Reply(body=user_json(user, project, server=True))


def delete_user(ctx: Ctx) -> Reply:
    validate(ctx, uuid_param="user_id")
    project = ctx.need_auth.project
    user_id = project.user_or_404(ctx.params["user_id"]).id
    changes.delete_user(ctx.backend.webhooks, project, user_id)
    return Reply(body={"success": True})
