"""``POST /emails/send-email`` (contract §9.12), which records each message in the project's
outbox instead of mailing it, and the emulator's own ``GET /emulator/sent-emails`` to read it."""

from __future__ import annotations

import copy
from typing import Any

from . import _errors as err
from . import _messaging_errors as merr
from ._crypto import new_id
from ._errors import PlainError
from ._http import (
    Ctx,
    FieldCheck,
    Reply,
    f_bool,
    f_int,
    f_str,
    f_true,
    is_uuid,
    q_one_of,
    q_uuid,
    validate,
)
from ._outbox import OutboxEmail

SENT_EMAILS = "/emulator/sent-emails"
CATEGORIES = ("Transactional", "Marketing")
_CONTENTS = ("html", "template_id", "draft_id")


def _f_user_ids(value: Any) -> str | None:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return "must be an array of strings"
    return None if all(is_uuid(v) for v in value) else "must contain valid UUIDs"


def _f_theme_id(value: Any) -> str | None:
    return (
        None
        if value is None or value is False or is_uuid(value)
        else ("must be a valid UUID, false or null")
    )


_FIELDS: dict[str, FieldCheck] = {
    "user_ids": _f_user_ids,
    "all_users": f_true,
    "html": f_str(),
    "template_id": lambda v: None if is_uuid(v) else "must be a valid UUID",
    "variables": lambda v: None if isinstance(v, dict) else "must be an object",
    "draft_id": f_str(),
    "subject": f_str(),
    "notification_category_name": f_str(),
    "theme_id": _f_theme_id,
    "is_high_priority": f_bool,
    "scheduled_at_millis": f_int(minimum=0),
}


def _cross_field_problems(body: dict[str, Any]) -> list[str]:
    problems = []
    if ("user_ids" in body) == ("all_users" in body):
        problems.append("body must have exactly one of user_ids and all_users")
    if sum(name in body for name in _CONTENTS) != 1:
        problems.append(
            "body must have exactly one of html, template_id (with variables) or draft_id"
        )
    if "variables" in body and "template_id" not in body:
        problems.append("body.variables is only allowed with template_id")
    return problems


def send_email(ctx: Ctx) -> Reply:
    raw = ctx.body if isinstance(ctx.body, dict) else {}
    body = validate(ctx, body=_FIELDS, problems=_cross_field_problems(raw))
    project, now = ctx.need_auth.project, ctx.backend.now_millis()
    if project.config.shared_email_server:
        raise merr.requires_custom_email_server()
    category = body.get("notification_category_name", "Transactional")
    if category not in CATEGORIES:
        raise PlainError(400, f"Notification category {category!r} not found")
    if "user_ids" in body:
        user_ids: list[str] = list(body["user_ids"])
        unknown = next((uid for uid in user_ids if uid not in project.users), None)
        if unknown is not None:
            raise err.user_id_does_not_exist(unknown)
    else:
        user_ids = list(project.users)
    for uid in user_ids:
        project.outbox.add(
            OutboxEmail(
                id=new_id(),
                kind="email",
                created_at_millis=now,
                to=project.users[uid].primary_email,
                user_id=uid,
                subject=body.get("subject"),
                html=body.get("html"),
                template_id=body.get("template_id"),
                variables=copy.deepcopy(body.get("variables")),
                draft_id=body.get("draft_id"),
                notification_category_name=category,
                theme_id=body.get("theme_id"),
                is_high_priority=body.get("is_high_priority", False),
                scheduled_at_millis=body.get("scheduled_at_millis"),
            )
        )
    return Reply(body={"results": [{"user_id": uid} for uid in user_ids]})


def list_sent_emails(ctx: Ctx) -> Reply:
    """The outbox, oldest first; ``?user_id=`` and ``?kind=`` narrow it."""
    validate(ctx, {"user_id": q_uuid, "kind": q_one_of("email", "team_invitation")})
    kind = ctx.query.get("kind")
    found = ctx.need_auth.project.outbox.emails(
        user_id=ctx.query.get("user_id"),
        kind="email" if kind == "email" else "team_invitation" if kind else None,
    )
    return Reply(body={"items": [e.as_json() for e in found], "is_paginated": False})
