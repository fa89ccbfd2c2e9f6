"""``/connected-accounts`` (contract §9.11): a user's linked OAuth accounts and their providers'
access tokens (the emulator's are made up)."""

from __future__ import annotations

from . import _connected_accounts as accounts
from ._http import Ctx, Reply, f_str, validate
from ._routes_common import own_user_only, param_problems, user_id


def list_connected_accounts(ctx: Ctx) -> Reply:
    validate(ctx, problems=param_problems(ctx, users=["user_id"]))
    auth = ctx.need_auth
    wanted = user_id(auth, ctx.params["user_id"]) or ""
    own_user_only(auth, wanted, "Client can only list connected accounts for their own user.")
    user = auth.project.user_or_404(wanted)
    links = [
        link for link in accounts.links_of(auth.project, user) if link.allow_connected_accounts
    ]
    items = [accounts.connected_account_json(link) for link in links]
    return Reply(body={"items": items, "is_paginated": False})


def access_token(ctx: Ctx) -> Reply:
    body = validate(ctx, body={"scope": f_str()}, problems=param_problems(ctx, users=["user_id"]))
    auth = ctx.need_auth
    wanted = user_id(auth, ctx.params["user_id"]) or ""
    own_user_only(auth, wanted, "Client can only access its own connected accounts")
    token = accounts.provider_access_token(
        auth.project,
        wanted,
        ctx.params["provider_id"],
        ctx.params.get("provider_account_id"),
        accounts.scopes_of(body.get("scope")),
    )
    return Reply(status=201, body={"access_token": token})
