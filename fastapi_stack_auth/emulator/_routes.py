"""The emulated endpoints (contract §6, §7, §9.1, §9.7, §9.8)."""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import _errors as err
from ._errors import PlainError
from ._http import (
    CLIENT_AND_UP,
    PUBLIC_CLIENT_SENTINEL,
    SERVER_AND_UP,
    Auth,
    Ctx,
    FieldCheck,
    Reply,
    f_bool,
    f_email,
    f_false,
    f_int,
    f_json,
    f_str,
    f_uuid,
    is_uuid,
    q_bool,
    q_one_of,
    q_positive_int,
    q_uuid,
    validate,
)
from ._store import DEFAULT_SESSION_MILLIS, Project, User, check_password, hash_password, new_id
from ._views import project_json, user_json

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 70
MAX_SESSION_MILLIS = 367 * 24 * 3600 * 1000
#: ``expires_in`` of the OAuth token response: the OAuth library's default, not the JWT's.
OAUTH_EXPIRES_IN = 3599

Handler = Callable[[Ctx], Reply]


@dataclass(frozen=True)
class Route:
    """One endpoint: method, path pattern (under ``/api/v1``), access types, handler."""

    method: str
    pattern: re.Pattern[str]
    access: tuple[str, ...] | None
    handler: Handler
    #: The path as written in the table (``/users/{user_id}``), for ``Emulator.calls``.
    label: str = ""


# --- field sets -------------------------------------------------------------------------------


def _f_oauth_providers(value: Any) -> str | None:
    if not isinstance(value, list):
        return "must be an array"
    for item in value:
        if not isinstance(item, dict) or not {"id", "account_id"} <= set(item):
            return "items must be objects with id and account_id"
        if set(item) - {"id", "account_id", "email"}:
            return "items may only have id, account_id and email"
    return None


def _f_risk_scores(value: Any) -> str | None:
    score = f_int(minimum=0, maximum=100)
    if not isinstance(value, dict) or set(value) != {"sign_up"}:
        return "must be {sign_up: {bot, free_trial_abuse}}"
    sign_up = value["sign_up"]
    if not isinstance(sign_up, dict) or set(sign_up) != {"bot", "free_trial_abuse"}:
        return "must be {sign_up: {bot, free_trial_abuse}}"
    if score(sign_up["bot"]) or score(sign_up["free_trial_abuse"]):
        return "scores must be integers from 0 to 100"
    return None


def _f_country_code(value: Any) -> str | None:
    if value is None or (isinstance(value, str) and re.fullmatch(r"[A-Z]{2}", value)):
        return None
    return "must be a two-letter country code"


_SERVER_USER_FIELDS: dict[str, FieldCheck] = {
    "display_name": f_str(max_len=256, nullable=True),
    "profile_image_url": f_str(nullable=True),
    "client_metadata": f_json,
    "client_read_only_metadata": f_json,
    "server_metadata": f_json,
    "primary_email": f_email(nullable=True),
    "primary_email_verified": f_bool,
    "primary_email_auth_enabled": f_bool,
    "password": f_str(max_len=MAX_PASSWORD_LENGTH, nullable=True),
    "password_hash": f_str(nullable=True),
    "otp_auth_enabled": f_bool,
    "passkey_auth_enabled": f_bool,
    "totp_secret_base64": f_str(nullable=True),
    "restricted_by_admin": f_bool,
    "restricted_by_admin_reason": f_str(nullable=True),
    "restricted_by_admin_private_details": f_str(nullable=True),
    "country_code": _f_country_code,
    "risk_scores": _f_risk_scores,
}
SERVER_CREATE_FIELDS: dict[str, FieldCheck] = {
    **_SERVER_USER_FIELDS,
    "is_anonymous": f_bool,
    "oauth_providers": _f_oauth_providers,
}
SERVER_UPDATE_FIELDS: dict[str, FieldCheck] = {
    **_SERVER_USER_FIELDS,
    "is_anonymous": f_false,
    "selected_team_id": f_uuid(nullable=True),
}
CLIENT_UPDATE_FIELDS: dict[str, FieldCheck] = {
    "display_name": f_str(max_len=256, nullable=True),
    "profile_image_url": f_str(nullable=True),
    "client_metadata": f_json,
    "selected_team_id": f_uuid(nullable=True),
    "totp_secret_base64": f_str(nullable=True),
    "otp_auth_enabled": f_bool,
    "passkey_auth_enabled": f_false,
    "primary_email": f_email(),
}
_SIMPLE_FIELDS = (
    "profile_image_url",
    "client_metadata",
    "client_read_only_metadata",
    "server_metadata",
    "primary_email_verified",
    "otp_auth_enabled",
    "passkey_auth_enabled",
    "totp_secret_base64",
    "restricted_by_admin",
    "country_code",
    "risk_scores",
    "oauth_providers",
)


def _check_user_fields(ctx: Ctx, body: dict[str, Any], user: User | None) -> None:
    """Rules across fields that plain type checks cannot express (raised after the schema)."""
    if "password_hash" in body:
        raise PlainError(501, "The Stack Auth emulator does not support password_hash.")
    password = body.get("password")
    if password is not None and not ctx.need_auth.project.config.credential_enabled:
        raise PlainError(400, "Password authentication is not enabled for this project.")
    restricted = body.get("restricted_by_admin", user.restricted_by_admin if user else False)
    for name in ("restricted_by_admin_reason", "restricted_by_admin_private_details"):
        if body.get(name) is not None and not restricted:
            raise err.schema_error(
                ctx.method, ctx.path, [f"body.{name} is only allowed with restricted_by_admin"]
            )
    email = body.get("primary_email", user.primary_email if user else None)
    auth_enabled = body.get(
        "primary_email_auth_enabled", user.primary_email_auth_enabled if user else False
    )
    if auth_enabled and email is None:
        raise PlainError(400, "primary_email_auth_enabled needs a primary_email.")


def _apply_user_fields(project: Project, user: User, body: dict[str, Any], now: int) -> None:
    if "primary_email" in body or "primary_email_auth_enabled" in body:
        email = body.get("primary_email", user.primary_email)
        auth_enabled = body.get("primary_email_auth_enabled", user.primary_email_auth_enabled)
        if auth_enabled:
            project.check_auth_email_free(email, for_user=user.id)
        if email != user.primary_email and "primary_email_verified" not in body:
            user.primary_email_verified = False
        user.primary_email = email
        user.primary_email_auth_enabled = bool(auth_enabled)
    if "display_name" in body:
        user.display_name = body["display_name"] or None
    for name in _SIMPLE_FIELDS:
        if name in body:
            setattr(user, name, body[name])
    if not user.restricted_by_admin:
        user.restricted_by_admin_reason = None
        user.restricted_by_admin_private_details = None
    for name in ("restricted_by_admin_reason", "restricted_by_admin_private_details"):
        if name in body:
            setattr(user, name, body[name])
    if "password" in body:
        password = body["password"]
        user.password_hash = hash_password(password) if password is not None else None
        project.revoke_sessions_of(user.id)  # a password change ends every session
    if "selected_team_id" in body:
        team_id = body["selected_team_id"]
        if team_id is not None and not project.is_member(team_id, user.id):
            raise err.team_membership_not_found(team_id, user.id)
        user.selected_team_id = team_id
    if body.get("is_anonymous") is False and user.is_anonymous:
        user.is_anonymous = False
        user.signed_up_at_millis = now


def _user_or_404(ctx: Ctx, project: Project) -> User:
    user = project.users.get(ctx.params["user_id"])
    if user is None:
        raise err.user_not_found()
    return user


def _me(auth: Auth) -> User:
    if auth.user is None:
        raise err.cannot_get_own_user_without_user()
    return auth.user


# --- /users ------------------------------------------------------------------------------------


def get_me(ctx: Ctx) -> Reply:
    validate(ctx)
    auth = ctx.need_auth
    return Reply(body=user_json(_me(auth), auth.project, server=auth.server))


def patch_me(ctx: Ctx) -> Reply:
    auth = ctx.need_auth
    body = validate(ctx, body=SERVER_UPDATE_FIELDS if auth.server else CLIENT_UPDATE_FIELDS)
    user = _me(auth)
    _check_user_fields(ctx, body, user)
    _apply_user_fields(auth.project, user, body, ctx.backend.now_millis())
    return Reply(body=user_json(user, auth.project, server=auth.server))


def delete_me(ctx: Ctx) -> Reply:
    validate(ctx)
    auth = ctx.need_auth
    user = _me(auth)
    if not auth.server and not auth.project.config.client_user_deletion_enabled:
        raise PlainError(400, "Client user deletion is disabled for this project.")
    auth.project.delete_user(user.id)
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
    _check_user_fields(ctx, body, None)
    project = auth.project
    now = ctx.backend.now_millis()
    user = User(id=new_id(), signed_up_at_millis=now, last_active_at_millis=now)
    user.is_anonymous = bool(body.get("is_anonymous", False))
    _apply_user_fields(project, user, body, now)
    project.add_user(user)
    return Reply(status=201, body=user_json(user, project, server=True))


def get_user(ctx: Ctx) -> Reply:
    validate(ctx, uuid_param="user_id")
    project = ctx.need_auth.project
    return Reply(body=user_json(_user_or_404(ctx, project), project, server=True))


def patch_user(ctx: Ctx) -> Reply:
    body = validate(ctx, body=SERVER_UPDATE_FIELDS, uuid_param="user_id")
    project = ctx.need_auth.project
    user = _user_or_404(ctx, project)
    _check_user_fields(ctx, body, user)
    _apply_user_fields(project, user, body, ctx.backend.now_millis())
    return Reply(body=user_json(user, project, server=True))


def delete_user(ctx: Ctx) -> Reply:
    validate(ctx, uuid_param="user_id")
    project = ctx.need_auth.project
    project.delete_user(_user_or_404(ctx, project).id)
    return Reply(body={"success": True})


# --- project and keys ---------------------------------------------------------------------------


def current_project(ctx: Ctx) -> Reply:
    validate(ctx)
    return Reply(body=project_json(ctx.need_auth.project))


def jwks(ctx: Ctx) -> Reply:
    validate(ctx, {"include_restricted": q_bool, "include_anonymous": q_bool})
    project_id = ctx.params["project_id"]
    if project_id not in ctx.backend.projects:
        raise PlainError(404, "Project not found")
    body = ctx.backend.jwks(
        project_id,
        include_restricted=ctx.query.get("include_restricted") == "true",
        include_anonymous=ctx.query.get("include_anonymous") == "true",
    )
    return Reply(body=body, headers={"cache-control": "public, max-age=3600"})


def anonymous_well_known(ctx: Ctx) -> Reply:
    """The anonymous issuer cannot carry a query string: redirect to the JWKS that has it."""
    location = (
        f"{ctx.backend.public_url}/api/v1/projects/{ctx.params['project_id']}"
        f"/.well-known/{ctx.params['rest']}?include_anonymous=true"
    )
    return Reply(status=307, text="", headers={"location": location})


# --- sign-up, sign-in, sessions ------------------------------------------------------------------


def _issue(ctx: Ctx, project: Project, user: User) -> dict[str, str]:
    session = project.create_session(user.id, ctx.backend.now_millis())
    token = ctx.backend.mint_access_token(session, project=project)
    return {"access_token": token, "refresh_token": session.refresh_token, "user_id": user.id}


_SIGN_UP_FIELDS: dict[str, FieldCheck] = {
    "email": f_email(),
    "password": f_str(max_len=MAX_PASSWORD_LENGTH),
    "verification_callback_url": f_str(),
    "bot_challenge_token": f_str(),
    "bot_challenge_phase": f_str(),
    "bot_challenge_unavailable": f_bool,
}


def password_sign_up(ctx: Ctx) -> Reply:
    auth = ctx.need_auth
    body = validate(ctx, body=_SIGN_UP_FIELDS, required=("email", "password"))
    project = auth.project
    if not project.config.credential_enabled:
        raise err.password_authentication_not_enabled()
    if not project.config.sign_up_enabled:
        raise err.sign_up_not_enabled()
    if len(body["password"]) < MIN_PASSWORD_LENGTH:
        raise err.password_too_short(MIN_PASSWORD_LENGTH)
    project.check_auth_email_free(body["email"])
    now = ctx.backend.now_millis()
    if auth.user is not None and auth.user.is_anonymous:
        user = auth.user  # signing up with an anonymous user's token upgrades that user
        user.is_anonymous = False
        user.signed_up_at_millis = now
    else:
        user = project.add_user(
            User(id=new_id(), signed_up_at_millis=now, last_active_at_millis=now)
        )
    user.primary_email = body["email"]
    user.primary_email_verified = False
    user.primary_email_auth_enabled = True
    user.password_hash = hash_password(body["password"])
    return Reply(body=_issue(ctx, project, user))


def password_sign_in(ctx: Ctx) -> Reply:
    auth = ctx.need_auth
    fields = {"email": f_email(), "password": f_str()}
    body = validate(ctx, body=fields, required=("email", "password"))
    project = auth.project
    if not project.config.credential_enabled:
        raise err.password_authentication_not_enabled()
    user = project.user_by_auth_email(body["email"])
    if user is None or not check_password(body["password"], user.password_hash):
        raise err.email_password_mismatch()
    if user.totp_secret_base64 is not None:
        raise err.KnownError(
            400,
            "MULTI_FACTOR_AUTHENTICATION_REQUIRED",
            "This user has TOTP turned on; the emulator does not emulate the MFA sign-in.",
            {"attempt_code": secrets.token_urlsafe(16)},
        )
    return Reply(body=_issue(ctx, project, user))


def anonymous_sign_up(ctx: Ctx) -> Reply:
    validate(ctx)
    auth = ctx.need_auth
    now = ctx.backend.now_millis()
    user = auth.project.add_user(
        User(id=new_id(), signed_up_at_millis=now, last_active_at_millis=now, is_anonymous=True)
    )
    return Reply(body=_issue(ctx, auth.project, user))


def create_session(ctx: Ctx) -> Reply:
    auth = ctx.need_auth
    fields: dict[str, FieldCheck] = {
        "user_id": lambda v: None if v == "me" else f_uuid()(v),
        "expires_in_millis": f_int(minimum=1, maximum=MAX_SESSION_MILLIS),
        "is_impersonation": f_bool,
    }
    body = validate(ctx, body=fields, required=("user_id",))
    project = auth.project
    if body["user_id"] == "me":
        user_id = _me(auth).id
    else:
        user_id = body["user_id"]
        if user_id not in project.users:
            raise err.user_id_does_not_exist(user_id)
    session = project.create_session(
        user_id,
        ctx.backend.now_millis(),
        expires_in_millis=body.get("expires_in_millis", DEFAULT_SESSION_MILLIS),
        is_impersonation=body.get("is_impersonation", False),
    )
    token = ctx.backend.mint_access_token(session, project=project)
    return Reply(body={"refresh_token": session.refresh_token, "access_token": token})


def refresh_current_session(ctx: Ctx) -> Reply:
    auth = ctx.need_auth
    refresh_token = ctx.header("refresh-token") or ""
    missing = [] if refresh_token else ["headers.x-stack-refresh-token is a required field"]
    validate(ctx, problems=missing)
    session = auth.project.session_by_refresh_token(refresh_token, ctx.backend.now_millis())
    if session is None:
        raise err.refresh_token_not_found_or_expired()
    return Reply(
        body={"access_token": ctx.backend.mint_access_token(session, project=auth.project)}
    )


def sign_out(ctx: Ctx) -> Reply:
    validate(ctx)
    auth = ctx.need_auth
    if auth.token is None:
        raise err.access_token_expired(None, None, None, None)
    session_id = auth.token.refresh_token_id
    if session_id is None or session_id not in auth.project.sessions:
        raise err.refresh_token_not_found_or_expired()
    del auth.project.sessions[session_id]
    return Reply(body={"success": True})


def _oauth_error(error: str, description: str) -> Reply:
    return Reply(status=400, body={"error": error, "error_description": description})


def oauth_token(ctx: Ctx) -> Reply:
    """The refresh-token grant the JS SDK uses (form or JSON body, client_secret_post/basic)."""
    body = ctx.body if isinstance(ctx.body, dict) else {}
    client_id = body.get("client_id")
    client_secret = body.get("client_secret")
    authorization = ctx.headers.get("authorization", "")
    if authorization.lower().startswith("basic "):
        try:
            decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return _oauth_error("invalid_client", "Invalid HTTP Basic client credentials")
        client_id, _, client_secret = decoded.partition(":")
    grant_type = body.get("grant_type")
    if not isinstance(grant_type, str) or not grant_type:
        return _oauth_error("invalid_request", "Missing parameter: `grant_type`")
    if grant_type != "refresh_token":
        return _oauth_error("unsupported_grant_type", "Unsupported grant type")
    if not isinstance(client_id, str) or not isinstance(client_secret, str) or not client_secret:
        raise err.invalid_oauth_client_id_or_secret()
    project_id, _, branch = client_id.partition("#")
    project = ctx.backend.projects.get(project_id)
    if project is None or branch not in ("", "main"):
        raise err.invalid_oauth_client_id_or_secret()
    if client_secret == PUBLIC_CLIENT_SENTINEL:
        if project.config.require_publishable_client_key:
            raise err.publishable_client_key_required(project.id)
    elif client_secret not in project.publishable_client_keys:
        raise err.invalid_oauth_client_id_or_secret()
    refresh_token = body.get("refresh_token")
    if not isinstance(refresh_token, str) or not refresh_token:
        return _oauth_error("invalid_request", "Missing parameter: `refresh_token`")
    session = project.session_by_refresh_token(refresh_token, ctx.backend.now_millis())
    if session is None:
        raise err.refresh_token_not_found_or_expired()
    return Reply(
        body={
            "access_token": ctx.backend.mint_access_token(session, project=project),
            "token_type": "Bearer",
            "expires_in": OAUTH_EXPIRES_IN,
            "scope": "legacy",
            "afterCallbackRedirectUrl": None,
            "after_callback_redirect_url": None,
        },
        headers={"cache-control": "no-store", "pragma": "no-cache"},
    )


# --- the table ----------------------------------------------------------------------------------


def _route(method: str, path: str, access: tuple[str, ...] | None, handler: Handler) -> Route:
    parts = []
    for segment in path.strip("/").split("/"):
        param = re.fullmatch(r"\{(\w+)\}", segment)
        parts.append(f"(?P<{param.group(1)}>[^/]+)" if param else re.escape(segment))
    return Route(method, re.compile("/" + "/".join(parts)), access, handler, path)


def _routes() -> list[Route]:
    users_me = "/users/me"
    routes = [
        _route("GET", users_me, CLIENT_AND_UP, get_me),
        _route("PATCH", users_me, CLIENT_AND_UP, patch_me),
        _route("DELETE", users_me, CLIENT_AND_UP, delete_me),
        _route("GET", "/users", SERVER_AND_UP, list_users),
        _route("POST", "/users", SERVER_AND_UP, create_user),
        _route("GET", "/users/{user_id}", SERVER_AND_UP, get_user),
        _route("PATCH", "/users/{user_id}", SERVER_AND_UP, patch_user),
        _route("DELETE", "/users/{user_id}", SERVER_AND_UP, delete_user),
        _route("GET", "/projects/current", CLIENT_AND_UP, current_project),
        _route("GET", "/projects/{project_id}/.well-known/jwks.json", None, jwks),
        _route("POST", "/auth/password/sign-up", CLIENT_AND_UP, password_sign_up),
        _route("POST", "/auth/password/sign-in", CLIENT_AND_UP, password_sign_in),
        _route("POST", "/auth/anonymous/sign-up", CLIENT_AND_UP, anonymous_sign_up),
        _route("POST", "/auth/sessions", SERVER_AND_UP, create_session),
        _route("POST", "/auth/sessions/current/refresh", CLIENT_AND_UP, refresh_current_session),
        _route("DELETE", "/auth/sessions/current", CLIENT_AND_UP, sign_out),
        _route("POST", "/auth/oauth/token", None, oauth_token),
    ]
    anonymous_alias = r"/projects-anonymous-users/(?P<project_id>[^/]+)/\.well-known/(?P<rest>.+)"
    routes.append(
        Route(
            "GET",
            re.compile(anonymous_alias),
            None,
            anonymous_well_known,
            "/projects-anonymous-users/{project_id}/.well-known/{rest}",
        )
    )
    return routes


ROUTES = _routes()
