"""The user fields of ``/users`` bodies (contract §9.1): their schema checks, the rules across
fields, and how they apply to a user row."""

from __future__ import annotations

import re
from typing import Any

from . import _errors as err
from ._errors import PlainError
from ._http import Ctx, FieldCheck, f_bool, f_email, f_false, f_int, f_json, f_str, f_uuid
from ._store import Project, User, hash_password

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 70

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


def check_user_fields(ctx: Ctx, body: dict[str, Any], user: User | None) -> None:
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


def apply_user_fields(project: Project, user: User, body: dict[str, Any], now: int) -> None:
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
