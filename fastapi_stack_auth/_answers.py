"""What our own clients are told: ``AuthError``, its constructors, and ``to_auth_error``, the
one mapping from anything that went wrong to an answer that says whose fault it is."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse

from ._exceptions import (
    InvalidAccessTokenError,
    ProjectCredentialsError,
    StackAPIError,
    StackAuthError,
    StackBadResponseError,
    StackUnavailableError,
    UserGoneError,
    UserNotAllowedError,
)

logger = logging.getLogger("fastapi_stack_auth")


class AuthError(HTTPException, StackAuthError):
    """An authentication failure as our client sees it: status, ``code`` and ``detail``.

    ``StackAuth.init_app`` installs a handler that renders it as ``{"detail": ..., "code": ...}``
    with its headers (``WWW-Authenticate`` on 401, ``Retry-After`` on 503). Without the handler
    it still degrades to a plain ``HTTPException`` with the right status and headers.
    """

    def __init__(
        self,
        status_code: int,
        code: str,
        detail: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(status_code=status_code, detail=detail, headers=dict(headers or {}))
        self.code = code

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status_code={self.status_code}, code={self.code!r})"


def error_response(error: AuthError) -> JSONResponse:
    """``error`` as the app answers it: ``{"detail": ..., "code": ...}`` with its headers."""
    return JSONResponse(
        {"detail": error.detail, "code": error.code},
        status_code=error.status_code,
        headers=error.headers,
    )


def _bearer_challenge(error: str | None = None, description: str | None = None) -> dict[str, str]:
    if error is None:
        return {"WWW-Authenticate": 'Bearer realm="stack-auth"'}
    value = f'Bearer realm="stack-auth", error="{error}"'
    if description:
        value += f', error_description="{description}"'
    return {"WWW-Authenticate": value}


def not_authenticated() -> AuthError:
    """401: no credential was sent."""
    return AuthError(401, "NOT_AUTHENTICATED", "Not authenticated", _bearer_challenge())


def malformed_credentials(detail: str) -> AuthError:
    """401: a credential header was sent but cannot be read."""
    return AuthError(
        401, "MALFORMED_CREDENTIALS", detail, _bearer_challenge("invalid_request", detail)
    )


def invalid_token(detail: str = "The access token is invalid") -> AuthError:
    """401: the token is not one Stack Auth issued for this project."""
    return AuthError(401, "INVALID_TOKEN", detail, _bearer_challenge("invalid_token", detail))


def token_expired() -> AuthError:
    """401: the token's ``exp`` has passed; the client should refresh it."""
    detail = "The access token has expired"
    return AuthError(401, "TOKEN_EXPIRED", detail, _bearer_challenge("invalid_token", detail))


def user_not_found() -> AuthError:
    """401: the token is valid but its user no longer exists."""
    detail = "The user of this access token no longer exists"
    return AuthError(401, "USER_NOT_FOUND", detail, _bearer_challenge("invalid_token", detail))


def anonymous_not_allowed() -> AuthError:
    """403: an anonymous user where only signed-up users are allowed."""
    return AuthError(403, "ANONYMOUS_USER_NOT_ALLOWED", "Anonymous users are not allowed here")


def restricted_not_allowed() -> AuthError:
    """403: a restricted user (e.g. unverified email) where only full users are allowed."""
    return AuthError(403, "RESTRICTED_USER_NOT_ALLOWED", "Restricted users are not allowed here")


def team_id_required(where: str) -> AuthError:
    """400: the route needs a team and the request names none (``where`` says where it is read:
    a header, or the user's selected team)."""
    return AuthError(400, "TEAM_ID_REQUIRED", f"A team is required: {where}")


def invalid_team_id(where: str) -> AuthError:
    """400: the team id sent is not a UUID (never echoed: ``where`` names where it was read)."""
    return AuthError(400, "INVALID_TEAM_ID", f"The team id in {where} is not a valid UUID")


def team_membership_required() -> AuthError:
    """403: the user is not a member of the team (or there is no such team: the same answer,
    so that a team's existence is never revealed)."""
    return AuthError(403, "TEAM_MEMBERSHIP_REQUIRED", "Membership of this team is required")


def permission_required(scope: str, missing: str) -> AuthError:
    """403: the user lacks a permission; ``missing`` names it (or the alternatives), ``scope``
    is ``team`` or ``project``."""
    return AuthError(403, "PERMISSION_REQUIRED", f"Requires the {scope} permission {missing}")


def server_misconfigured() -> AuthError:
    """500: our own Stack Auth settings are wrong (the log names the setting)."""
    return AuthError(500, "SERVER_MISCONFIGURED", "Authentication is misconfigured on the server")


def stack_unavailable(retry_after: int) -> AuthError:
    """503: Stack Auth cannot be reached right now."""
    return AuthError(
        503,
        "STACK_AUTH_UNAVAILABLE",
        "Authentication service unavailable, try again later",
        {"Retry-After": str(retry_after)},
    )


def stack_bad_response() -> AuthError:
    """502: Stack Auth answered something we could not understand."""
    return AuthError(
        502, "STACK_AUTH_BAD_RESPONSE", "Authentication service sent an invalid response"
    )


def to_auth_error(exc: StackAuthError) -> AuthError:
    """What our client is told about ``exc``: a fresh ``AuthError`` that says whose fault it is.

    Our own misconfiguration (500) and Stack's faults (502/503) are logged here, naming the
    setting to fix where there is one; never a token or key.
    """
    if isinstance(exc, AuthError):
        # A fresh exception per request: concurrent waiters may share one failure.
        return AuthError(exc.status_code, exc.code, exc.detail, exc.headers)
    if isinstance(exc, InvalidAccessTokenError):
        if exc.expired:
            return token_expired()
        if exc.code == "INVALID_PROJECT_FOR_ACCESS_TOKEN":
            return invalid_token("The access token was issued for another project")
        return invalid_token()
    if isinstance(exc, UserGoneError):
        return user_not_found()
    if isinstance(exc, UserNotAllowedError):
        if exc.code == "ANONYMOUS_AUTHENTICATION_NOT_ALLOWED":
            return anonymous_not_allowed()
        return restricted_not_allowed()
    if isinstance(exc, ProjectCredentialsError):
        logger.error(
            "Stack Auth rejected this server's credentials (%s): check the %s setting",
            exc.code,
            exc.setting,
        )
    elif isinstance(exc, StackAPIError):
        logger.error(
            "Stack Auth refused our request with HTTP %s %s; treating it as a server "
            "misconfiguration%s",
            exc.status_code,
            exc.code or "(no code)",
            url_hint(exc),
        )
    elif isinstance(exc, StackUnavailableError):
        logger.warning("Stack Auth is unavailable (%s)", exc.reason)
        return stack_unavailable(exc.retry_after)
    elif isinstance(exc, StackBadResponseError):
        logger.error("Stack Auth sent a response we cannot use: %s", exc)
        return stack_bad_response()
    else:
        # Our own exceptions carry our own words only (never a token or key): log them whole.
        logger.error("Stack Auth verification failed: %s", exc)
    return server_misconfigured()


def url_hint(exc: StackAPIError) -> str:
    """A hint for the log when a 404 without Stack's envelope says the base URL is off."""
    if exc.status_code == 404 and exc.code is None:
        return " (a plain 404: check the STACK_API_URL setting)"
    return ""


# --- API keys as credentials ------------------------------------------------------------------


def _api_key_refused(code: str, detail: str) -> AuthError:
    return AuthError(401, code, detail, _bearer_challenge("invalid_token", detail))


def invalid_api_key(detail: str = "The API key is not valid") -> AuthError:
    """401: not a Stack Auth API key, or not one of this project's."""
    return _api_key_refused("INVALID_API_KEY", detail)


def api_key_revoked() -> AuthError:
    """401: the API key was revoked."""
    return _api_key_refused("API_KEY_REVOKED", "The API key has been revoked")


def api_key_expired() -> AuthError:
    """401: the API key's expiry has passed."""
    return _api_key_refused("API_KEY_EXPIRED", "The API key has expired")


def wrong_api_key_type(expected: str) -> AuthError:
    """401: a user API key where a team key is required, or the reverse."""
    other = "team" if expected == "user" else "user"
    detail = f"A {other} API key is not accepted here; send a {expected} API key"
    return _api_key_refused("WRONG_API_KEY_TYPE", detail)


def api_key_required(detail: str = "An API key is required here") -> AuthError:
    """401: a user's access token where only an API key is accepted."""
    return _api_key_refused("API_KEY_REQUIRED", detail)


def api_key_not_accepted() -> AuthError:
    """401: an API key where only a user's access token is accepted."""
    return _api_key_refused(
        "API_KEY_NOT_ACCEPTED", "An API key is not accepted here; send a user's access token"
    )


# --- Browser frontends: cookies and silent refresh --------------------------------------------


def cross_site_request_refused() -> AuthError:
    """403: a request authenticated by Stack's cookies came from an origin that is neither this
    app's own nor one of ``STACK_TRUSTED_ORIGINS`` (cross-site request forgery defence)."""
    return AuthError(
        403,
        "CROSS_SITE_REQUEST_REFUSED",
        "A request authenticated by cookies must come from this site or a trusted origin",
    )


def refresh_token_invalid() -> AuthError:
    """401: silent refresh failed because Stack no longer knows the refresh token (signed out,
    revoked, expired, or its user deleted): the user has to sign in again."""
    detail = "The session has ended; sign in again"
    return AuthError(
        401, "REFRESH_TOKEN_INVALID", detail, _bearer_challenge("invalid_token", detail)
    )
