"""Stack's known-error envelope and plain-text errors. Codes, statuses and ``details`` follow the
contract; the ``error`` messages are the emulator's own wording (clients must not parse them)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any


class KnownError(Exception):
    """A Stack known error: ``{"code", "details"?, "error"}`` plus ``x-stack-known-error``."""

    def __init__(
        self, status: int, code: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(f"{status} {code}")
        self.status, self.code, self.message, self.details = status, code, message, details

    def body(self) -> dict[str, Any]:
        """The JSON body, keys in the order Stack writes them."""
        details = {} if self.details is None else {"details": self.details}
        return {"code": self.code, **details, "error": self.message}


class PlainError(Exception):
    """A Stack ``StatusError``: a ``text/plain`` body and no known-error header."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(f"{status} {text}")
        self.status, self.text = status, text


def _project(status: int, code: str, message: str, project_id: str) -> KnownError:
    return KnownError(status, code, message, {"project_id": project_id})


# --- request and project auth ------------------------------------------------------------------


def access_type_required() -> KnownError:
    return KnownError(
        400,
        "ACCESS_TYPE_REQUIRED",
        "This endpoint needs project authentication: send x-stack-access-type "
        "('client', 'server' or 'admin') with the matching project keys.",
    )


def invalid_access_type(value: str) -> KnownError:
    message = f"x-stack-access-type must be 'client', 'server' or 'admin', not {value!r}."
    return KnownError(400, "INVALID_ACCESS_TYPE", message)


def access_type_without_project_id(access_type: str) -> KnownError:
    message = f"x-stack-access-type is {access_type!r} but no x-stack-project-id header was sent."
    return KnownError(400, "ACCESS_TYPE_WITHOUT_PROJECT_ID", message, {"request_type": access_type})


def project_key_without_access_type() -> KnownError:
    message = "A project key or admin token was sent without an x-stack-access-type header."
    return KnownError(400, "PROJECT_KEY_WITHOUT_ACCESS_TYPE", message)


def current_project_not_found(project_id: str) -> KnownError:
    message = f"No project with ID {project_id} exists in this emulator (x-stack-project-id)."
    return _project(400, "CURRENT_PROJECT_NOT_FOUND", message, project_id)


def branch_does_not_exist(branch_id: str) -> KnownError:
    message = f"There is no branch {branch_id!r}; the emulator only has 'main'."
    return KnownError(400, "BRANCH_DOES_NOT_EXIST", message, {"branch_id": branch_id})


def invalid_publishable_client_key(project_id: str) -> KnownError:
    message = f"This publishable client key is not valid for project {project_id}."
    return _project(401, "INVALID_PUBLISHABLE_CLIENT_KEY", message, project_id)


def publishable_client_key_required(project_id: str) -> KnownError:
    message = f"Project {project_id} requires a publishable client key for client access."
    return _project(401, "PUBLISHABLE_CLIENT_KEY_REQUIRED_FOR_PROJECT", message, project_id)


def server_authentication_required() -> KnownError:
    message = "Server access needs x-stack-secret-server-key."
    return KnownError(401, "SERVER_AUTHENTICATION_REQUIRED", message)


def invalid_secret_server_key(project_id: str) -> KnownError:
    message = f"This secret server key is not valid for project {project_id}."
    return _project(401, "INVALID_SECRET_SERVER_KEY", message, project_id)


def admin_authentication_required() -> KnownError:
    message = "Admin access needs x-stack-super-secret-admin-key."
    return KnownError(401, "ADMIN_AUTHENTICATION_REQUIRED", message)


def invalid_super_secret_admin_key(project_id: str) -> KnownError:
    message = f"This super secret admin key is not valid for project {project_id}."
    return _project(401, "INVALID_SUPER_SECRET_ADMIN_KEY", message, project_id)


def insufficient_access_type(actual: str, allowed: list[str]) -> KnownError:
    message = (
        f"This endpoint accepts x-stack-access-type {' or '.join(map(repr, allowed))}, "
        f"not {actual!r}."
    )
    details = {"actual_access_type": actual, "allowed_access_types": allowed}
    return KnownError(401, "INSUFFICIENT_ACCESS_TYPE", message, details)


# --- access tokens ------------------------------------------------------------------------


def unparsable_access_token() -> KnownError:
    return KnownError(401, "UNPARSABLE_ACCESS_TOKEN", "The access token cannot be parsed.")


def access_token_expired(
    expired_at_millis: int | None,
    project_id: str | None,
    user_id: str | None,
    refresh_token_id: str | None,
) -> KnownError:
    when = (
        datetime.fromtimestamp(expired_at_millis / 1000, tz=timezone.utc).isoformat()
        if expired_at_millis is not None
        else "an unknown time"
    )
    return KnownError(
        401,
        "ACCESS_TOKEN_EXPIRED",
        f"The access token expired at {when}; refresh it and try again.",
        {
            "expired_at_millis": expired_at_millis,
            "project_id": project_id,
            "user_id": user_id,
            "refresh_token_id": refresh_token_id,
        },
    )


def invalid_project_for_access_token(expected: str, actual: str) -> KnownError:
    message = f"The access token is for project {actual!r}, not for {expected!r}."
    details = {"expected_project_id": expected, "actual_project_id": actual}
    return KnownError(401, "INVALID_PROJECT_FOR_ACCESS_TOKEN", message, details)


def anonymous_authentication_not_allowed() -> KnownError:
    return KnownError(
        401,
        "ANONYMOUS_AUTHENTICATION_NOT_ALLOWED",
        "The access token belongs to an anonymous user; send "
        "x-stack-allow-anonymous-user: true to accept anonymous users.",
    )


def restricted_user_not_allowed(reason: dict[str, Any] | None) -> KnownError:
    return KnownError(
        403,
        "RESTRICTED_USER_NOT_ALLOWED",
        f"The access token belongs to a restricted user ({(reason or {}).get('type')}); send "
        "x-stack-allow-restricted-user: true to accept restricted users.",
        {"restricted_reason": reason},
    )


# --- users and sessions -----------------------------------------------------------------


def cannot_get_own_user_without_user() -> KnownError:
    message = "'me' was used as the user, but the request carries no signed-in user."
    return KnownError(400, "CANNOT_GET_OWN_USER_WITHOUT_USER", message)


def user_not_found() -> KnownError:
    return KnownError(404, "USER_NOT_FOUND", "No such user.")


def user_id_does_not_exist(user_id: str) -> KnownError:
    message = f"There is no user with ID {user_id}."
    return KnownError(400, "USER_ID_DOES_NOT_EXIST", message, {"user_id": user_id})


def user_email_already_exists(email: str) -> KnownError:
    message = f"Another user already signs in with the email {email!r}."
    details = {"email": email, "would_work_if_email_was_verified": False}
    return KnownError(409, "USER_EMAIL_ALREADY_EXISTS", message, details)


def team_membership_not_found(team_id: str, user_id: str) -> KnownError:
    message = f"User {user_id} is not a member of team {team_id}."
    details = {"team_id": team_id, "user_id": user_id}
    return KnownError(404, "TEAM_MEMBERSHIP_NOT_FOUND", message, details)


def email_password_mismatch() -> KnownError:
    return KnownError(400, "EMAIL_PASSWORD_MISMATCH", "The email or the password is wrong.")


def password_authentication_not_enabled() -> KnownError:
    message = "Password authentication is turned off for this project."
    return KnownError(400, "PASSWORD_AUTHENTICATION_NOT_ENABLED", message)


def sign_up_not_enabled() -> KnownError:
    return KnownError(400, "SIGN_UP_NOT_ENABLED", "Sign-up is turned off for this project.")


def password_too_short(min_length: int) -> KnownError:
    message = f"The password must have at least {min_length} characters."
    return KnownError(400, "PASSWORD_TOO_SHORT", message, {"min_length": min_length})


def refresh_token_not_found_or_expired() -> KnownError:
    message = "The refresh token is unknown to this project, expired or revoked."
    return KnownError(401, "REFRESH_TOKEN_NOT_FOUND_OR_EXPIRED", message)


def invalid_oauth_client_id_or_secret() -> KnownError:
    return KnownError(
        400,
        "INVALID_OAUTH_CLIENT_ID_OR_SECRET",
        "The OAuth client_id must be the project ID (optionally '#<branch>') and the "
        "client_secret a publishable client key of that project.",
        {"client_id": None},
    )


# --- requests ------------------------------------------------------------------------------


def schema_error(method: str, path: str, problems: list[str]) -> KnownError:
    lines = "\n".join(f"  - {problem}" for problem in problems)
    message = f"Request validation failed on {method} {path}:\n{lines}"
    return KnownError(400, "SCHEMA_ERROR", message, {"message": message})


def body_parsing_error(message: str) -> KnownError:
    return KnownError(400, "BODY_PARSING_ERROR", message)
