"""``/user-api-keys`` and ``/team-api-keys``: create, list, read, revoke and check (contract §9.6).
Each handler is made for one kind of key by ``handlers(kind)``."""

from __future__ import annotations

from collections.abc import Callable

from . import _authz_errors as authz
from ._errors import PlainError
from ._http import Ctx, FieldCheck, Reply, f_bool, f_int, f_str, f_true, f_uuid, q_uuid, validate
from ._routes_common import param_problems, q_user_id_or_me, signed_in, user_id
from ._rows import ApiKey, ApiKeyType
from ._views import api_key_json

Handler = Callable[[Ctx], Reply]


def _enabled(ctx: Ctx, kind: ApiKeyType) -> None:
    config = ctx.need_auth.project.config
    if not (config.allow_user_api_keys if kind == "user" else config.allow_team_api_keys):
        raise PlainError(400, f"{kind.title()} API keys are not enabled for this project.")


def _may_manage(ctx: Ctx, kind: ApiKeyType, owner_id: str) -> None:
    """Server access manages every key; a client its own user keys, and the keys of teams in
    which it has ``$manage_api_keys`` (else ``API_KEY_NOT_FOUND``: the team's existence stays
    hidden)."""
    auth = ctx.need_auth
    if auth.server:
        return
    user = signed_in(auth)
    if kind == "user" and owner_id != user.id:
        raise PlainError(403, "Client can only manage their own api keys")
    if kind == "team" and not auth.project.permissions.list_team(
        team_id=owner_id, user_id=user.id, permission_id="$manage_api_keys", recursive=True
    ):
        raise authz.api_key_not_found()


def _owner_field(kind: ApiKeyType) -> str:
    return "user_id" if kind == "user" else "team_id"


def _f_expiry(value: object) -> str | None:
    return None if value is None else f_int()(value)


def _key(ctx: Ctx, kind: ApiKeyType) -> ApiKey:
    key = ctx.need_auth.project.api_keys.by_id.get(ctx.params["api_key_id"])
    if key is None or key.type != kind:
        raise authz.api_key_not_found()
    _may_manage(ctx, kind, key.owner_id)
    return key


def handlers(kind: ApiKeyType) -> dict[str, Handler]:
    """``create``, ``list``, ``read``, ``update`` and ``check`` for ``kind`` keys."""
    owner_field = _owner_field(kind)
    owner_check: FieldCheck = (
        (lambda v: q_user_id_or_me(v) if isinstance(v, str) else "must be a string")
        if kind == "user"
        else f_uuid()
    )

    def create(ctx: Ctx) -> Reply:
        fields = {
            owner_field: owner_check,
            "description": f_str(),
            "expires_at_millis": _f_expiry,
            "is_public": f_bool,
        }
        body = validate(
            ctx, body=fields, required=(owner_field, "description", "expires_at_millis")
        )
        _enabled(ctx, kind)
        auth = ctx.need_auth
        owner = user_id(auth, body[owner_field]) or ""
        _may_manage(ctx, kind, owner)
        # Stack leaves an unknown owner to a foreign key (a 500); the emulator says which.
        (auth.project.user_or_404 if kind == "user" else auth.project.team_or_404)(owner)
        key, value = auth.project.api_keys.create(
            kind,
            owner,
            now_millis=ctx.backend.now_millis(),
            description=body["description"],
            expires_at_millis=body["expires_at_millis"] or None,  # Stack: 0 means no expiry
            is_public=body.get("is_public", False),
        )
        return Reply(body=api_key_json(key, value=value))  # 200, not 201, as in Stack

    def list_keys(ctx: Ctx) -> Reply:
        query_check = q_user_id_or_me if kind == "user" else q_uuid
        missing = [] if owner_field in ctx.query else [f"query.{owner_field} is a required field"]
        validate(ctx, {owner_field: query_check}, problems=missing)
        _enabled(ctx, kind)
        auth = ctx.need_auth
        owner = user_id(auth, ctx.query[owner_field]) or ""
        _may_manage(ctx, kind, owner)
        items = [api_key_json(key) for key in auth.project.api_keys.of(kind, owner)]
        return Reply(body={"items": items, "is_paginated": False})

    def _query() -> dict[str, Callable[[str], str | None]]:
        return {owner_field: q_user_id_or_me if kind == "user" else q_uuid}

    def read(ctx: Ctx) -> Reply:
        validate(ctx, _query(), problems=param_problems(ctx, uuids=["api_key_id"]))
        _enabled(ctx, kind)
        return Reply(body=api_key_json(_key(ctx, kind)))

    def update(ctx: Ctx) -> Reply:
        fields: dict[str, FieldCheck] = {
            "description": f_str(),
            "revoked": f_true,
        }
        problems = param_problems(ctx, uuids=["api_key_id"])
        body = validate(ctx, _query(), body=fields, problems=problems)
        _enabled(ctx, kind)
        key = _key(ctx, kind)
        if "description" in body:
            key.description = body["description"]
        if body.get("revoked"):
            ctx.need_auth.project.api_keys.revoke(key.id, ctx.backend.now_millis())
        return Reply(body=api_key_json(key))

    def check(ctx: Ctx) -> Reply:
        body = validate(ctx, body={"api_key": f_str()}, required=("api_key",))
        _enabled(ctx, kind)
        keys = ctx.need_auth.project.api_keys
        return Reply(body=api_key_json(keys.check(body["api_key"], kind, ctx.backend.now_millis())))

    return {"create": create, "list": list_keys, "read": read, "update": update, "check": check}
