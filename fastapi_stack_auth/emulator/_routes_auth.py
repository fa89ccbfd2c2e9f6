"""The project, its JWKS, and issuing tokens: sign-up, sign-in, sessions, refresh, sign-out and
the OAuth refresh grant (contract §6, §7, §9.7, §9.8)."""

from __future__ import annotations

import base64
import binascii
import secrets

from . import _changes as changes
from . import _errors as err
from . import _webhook_events as events
from ._errors import PlainError
from ._http import (
    PUBLIC_CLIENT_SENTINEL,
    Ctx,
    FieldCheck,
    Reply,
    f_bool,
    f_email,
    f_int,
    f_str,
    f_uuid,
    q_bool,
    validate,
)
from ._routes_common import me
from ._store import DEFAULT_SESSION_MILLIS, Project, User, check_password, hash_password, new_id
from ._user_fields import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH
from ._views import project_json

MAX_SESSION_MILLIS = 367 * 24 * 3600 * 1000
#: ``expires_in`` of the OAuth token response: the OAuth library's default, not the JWT's.
OAUTH_EXPIRES_IN = 3599

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
    anonymous = auth.user if auth.user is not None and auth.user.is_anonymous else None
    if anonymous is not None:
        user = anonymous  # signing up with an anonymous user's token upgrades that user
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
    # An upgraded anonymous user is updated, not created (contract §13.5).
    event = events.user_updated if anonymous is not None else events.user_created
    events.send(ctx.backend.webhooks, project, event(project, user))
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
    user = changes.add_user(
        ctx.backend.webhooks,
        auth.project,
        User(id=new_id(), signed_up_at_millis=now, last_active_at_millis=now, is_anonymous=True),
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
        user_id = me(auth).id
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
