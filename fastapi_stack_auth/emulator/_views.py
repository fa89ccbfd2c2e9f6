"""JSON views of store rows, field for field as Stack Auth renders them (contract §10)."""

from __future__ import annotations

import copy
from typing import Any

from ._rows import ApiKey, Session
from ._store import Project, Team, User


def team_json(team: Team, *, server: bool) -> dict[str, Any]:
    """A team; ``created_at_millis`` and ``server_metadata`` only with server access."""
    body: dict[str, Any] = {
        "client_metadata": copy.deepcopy(team.client_metadata),
        "client_read_only_metadata": copy.deepcopy(team.client_read_only_metadata),
    }
    if server:
        body["created_at_millis"] = team.created_at_millis
    body["display_name"] = team.display_name
    body["id"] = team.id
    body["profile_image_url"] = team.profile_image_url
    if server:
        body["server_metadata"] = copy.deepcopy(team.server_metadata)
    return body


def user_json(user: User, project: Project, *, server: bool) -> dict[str, Any]:
    """A user: the server shape, or the client shape (server-only fields left out)."""
    reason = project.restricted_reason(user)
    team = project.teams.get(user.selected_team_id) if user.selected_team_id else None
    body: dict[str, Any] = {
        "auth_with_email": user.has_password or user.otp_auth_enabled,
        "client_metadata": copy.deepcopy(user.client_metadata),
        "client_read_only_metadata": copy.deepcopy(user.client_read_only_metadata),
        "country_code": user.country_code,
        "display_name": user.display_name,
        "has_password": user.has_password,
        "id": user.id,
        "is_anonymous": user.is_anonymous,
        "is_restricted": reason is not None,
        "last_active_at_millis": user.last_active_at_millis,
        "oauth_providers": copy.deepcopy(user.oauth_providers),
        "otp_auth_enabled": user.otp_auth_enabled,
        "passkey_auth_enabled": user.passkey_auth_enabled,
        "primary_email": user.primary_email,
        "primary_email_auth_enabled": user.primary_email_auth_enabled,
        "primary_email_verified": user.primary_email_verified,
        "profile_image_url": user.profile_image_url,
        "requires_totp_mfa": user.totp_secret_base64 is not None,
        "restricted_by_admin": user.restricted_by_admin,
        "restricted_by_admin_private_details": user.restricted_by_admin_private_details,
        "restricted_by_admin_reason": user.restricted_by_admin_reason,
        "restricted_reason": {"type": reason} if reason is not None else None,
        "risk_scores": copy.deepcopy(user.risk_scores),
        "selected_team": team_json(team, server=server) if team is not None else None,
        "selected_team_id": team.id if team is not None else None,
        "server_metadata": copy.deepcopy(user.server_metadata),
        "signed_up_at_millis": user.signed_up_at_millis,
    }
    if not server:
        for name in SERVER_ONLY_USER_FIELDS:
            del body[name]
    return body


#: Fields a client-access response leaves out.
SERVER_ONLY_USER_FIELDS = (
    "country_code",
    "last_active_at_millis",
    "primary_email_auth_enabled",
    "restricted_by_admin_private_details",
    "risk_scores",
    "server_metadata",
)


def project_json(project: Project) -> dict[str, Any]:
    """``GET /projects/current``: the same shape for every access type."""
    config = project.config
    return {
        "config": {
            "allow_team_api_keys": config.allow_team_api_keys,
            "allow_user_api_keys": config.allow_user_api_keys,
            "client_team_creation_enabled": config.client_team_creation_enabled,
            "client_user_deletion_enabled": config.client_user_deletion_enabled,
            "credential_enabled": config.credential_enabled,
            "domains": copy.deepcopy(config.domains),
            "enabled_oauth_providers": [{"id": p} for p in config.enabled_oauth_providers],
            "magic_link_enabled": config.magic_link_enabled,
            "passkey_enabled": config.passkey_enabled,
            "sign_up_enabled": config.sign_up_enabled,
        },
        "display_name": project.display_name,
        "id": project.id,
    }


def api_key_json(key: ApiKey, *, value: str | None = None) -> dict[str, Any]:
    """A key as Stack reads it out: ``value`` is ``{last_four}``, or the whole key when it has
    just been created; the expiry and revocation times are absent when unset."""
    body: dict[str, Any] = {
        "id": key.id,
        "description": key.description,
        "is_public": key.is_public,
        "created_at_millis": key.created_at_millis,
    }
    if key.expires_at_millis is not None:
        body["expires_at_millis"] = key.expires_at_millis
    if key.manually_revoked_at_millis is not None:
        body["manually_revoked_at_millis"] = key.manually_revoked_at_millis
    body["value"] = value if value is not None else {"last_four": key.last_four}
    body["user_id" if key.type == "user" else "team_id"] = key.owner_id
    body["type"] = key.type
    return body


def session_json(session: Session, *, current_id: str | None) -> dict[str, Any]:
    """A session as ``GET /auth/sessions`` lists it (no IP information: the key is absent)."""
    return {
        "id": session.id,
        "user_id": session.user_id,
        "created_at": session.created_at_millis,
        "last_used_at": session.last_used_at_millis,
        "is_impersonation": session.is_impersonation,
        "is_current_session": session.id == current_id,
    }
