"""Known errors of teams, permissions, API keys and sessions (contract §4). Codes, statuses and
``details`` (keys in Stack's order) follow the contract; the messages are the emulator's own."""

from __future__ import annotations

from ._errors import KnownError


def user_authentication_required() -> KnownError:
    message = "This endpoint needs a signed-in user (send x-stack-access-token)."
    return KnownError(401, "USER_AUTHENTICATION_REQUIRED", message)


def team_not_found(team_id: str) -> KnownError:
    message = f"There is no team with ID {team_id} in this project."
    return KnownError(404, "TEAM_NOT_FOUND", message, {"team_id": team_id})


def team_membership_already_exists() -> KnownError:
    message = "This user is already a member of this team."
    return KnownError(409, "TEAM_MEMBERSHIP_ALREADY_EXISTS", message)


def permission_not_found(permission_id: str) -> KnownError:
    message = f"The project defines no permission {permission_id!r}."
    return KnownError(404, "PERMISSION_NOT_FOUND", message, {"permission_id": permission_id})


def wrong_permission_scope(permission_id: str, expected: str, actual: str | None) -> KnownError:
    message = f"Permission {permission_id!r} is a {actual} permission, not a {expected} one."
    details = {"permission_id": permission_id, "expected_scope": expected, "actual_scope": actual}
    return KnownError(404, "WRONG_PERMISSION_SCOPE", message, details)


def _team_permission(code: str, team_id: str, user_id: str, permission_id: str) -> KnownError:
    message = f"User {user_id} has no permission {permission_id!r} in team {team_id}"
    if code == "TEAM_PERMISSION_NOT_FOUND":
        message += " granted directly"
    details = {"team_id": team_id, "user_id": user_id, "permission_id": permission_id}
    return KnownError(401, code, message + ".", details)


def team_permission_not_found(team_id: str, user_id: str, permission_id: str) -> KnownError:
    """Revoking a team permission that was not granted directly (401, as in Stack)."""
    return _team_permission("TEAM_PERMISSION_NOT_FOUND", team_id, user_id, permission_id)


def team_permission_required(team_id: str, user_id: str, permission_id: str) -> KnownError:
    """A client lacks the system permission an operation on a team needs."""
    return _team_permission("TEAM_PERMISSION_REQUIRED", team_id, user_id, permission_id)


def api_key_not_found() -> KnownError:
    return KnownError(404, "API_KEY_NOT_FOUND", "This project has no such API key.")


def wrong_api_key_type(expected: str, actual: str) -> KnownError:
    message = f"This endpoint checks {expected} API keys, and this is a {actual} API key."
    details = {"expected_type": expected, "actual_type": actual}
    return KnownError(400, "WRONG_API_KEY_TYPE", message, details)


def api_key_revoked() -> KnownError:
    return KnownError(401, "API_KEY_REVOKED", "This API key has been revoked.")


def api_key_expired() -> KnownError:
    return KnownError(401, "API_KEY_EXPIRED", "This API key has expired.")


def cannot_delete_current_session() -> KnownError:
    message = "This is the session of the access token sent with the request; sign out instead."
    return KnownError(400, "CANNOT_DELETE_CURRENT_SESSION", message)
