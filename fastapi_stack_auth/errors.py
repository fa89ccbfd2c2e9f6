"""Exceptions: what Stack Auth said (``StackAPIError`` and kin), what we answer (``AuthError``),
and ``to_auth_error``, the one mapping from the first to the second."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from starlette.exceptions import HTTPException

logger = logging.getLogger("fastapi_stack_auth")


class StackAuthError(Exception):
    """Base class of every exception raised by fastapi-stack-auth."""


class StackAuthConfigError(StackAuthError, ValueError):
    """The settings are missing or invalid; the message names the environment variable."""


# --- Errors from talking to Stack Auth ------------------------------------------------------


class StackAPIError(StackAuthError):
    """Stack Auth answered with an error (its ``x-stack-known-error`` envelope, or plain text).

    ``code`` is Stack's error code (``None`` for a plain-text error) and ``message`` Stack's
    ``error`` text. Neither is ever sent to our own clients.
    """

    def __init__(
        self,
        status_code: int,
        code: str | None,
        message: str = "",
        details: Mapping[str, Any] | None = None,
    ) -> None:
        self.status_code = status_code
        self.code = code
        self.message = message
        self.details: Mapping[str, Any] = details or {}
        super().__init__(f"Stack Auth answered {status_code} {code or '(no code)'}")


class InvalidAccessTokenError(StackAPIError):
    """Stack rejected the user's access token: unparsable, badly signed, expired or for another
    project."""

    @property
    def expired(self) -> bool:
        """True when the token was rejected because its ``exp`` has passed."""
        return self.code == "ACCESS_TOKEN_EXPIRED"


class UserGoneError(StackAPIError):
    """The token is valid but names no user: the user was deleted since it was issued."""


class UserNotAllowedError(StackAPIError):
    """Stack refused an anonymous or restricted user."""


class ProjectCredentialsError(StackAPIError):
    """Stack rejected *our* configuration (project id or keys): the server is misconfigured.

    ``setting`` names the environment variable to fix.
    """

    @property
    def setting(self) -> str:
        """The environment variable most likely at fault."""
        return PROJECT_CREDENTIAL_CODES.get(self.code or "", "STACK_* settings")


class StackUnavailableError(StackAuthError):
    """Stack Auth could not be reached, timed out, is rate limiting us or answered 5xx."""

    def __init__(self, reason: str, retry_after: int = 5) -> None:
        self.reason = reason
        self.retry_after = retry_after
        super().__init__(f"Stack Auth is unavailable: {reason}")


class StackBadResponseError(StackAuthError):
    """Stack Auth answered something we do not understand (bad JSON, missing fields)."""


#: Stack error codes that mean our own settings are wrong, and the setting to fix.
PROJECT_CREDENTIAL_CODES: dict[str, str] = {
    "INVALID_SECRET_SERVER_KEY": "STACK_SECRET_SERVER_KEY",
    "SERVER_AUTHENTICATION_REQUIRED": "STACK_SECRET_SERVER_KEY",
    "INVALID_PUBLISHABLE_CLIENT_KEY": "STACK_PUBLISHABLE_CLIENT_KEY",
    "PUBLISHABLE_CLIENT_KEY_REQUIRED_FOR_PROJECT": "STACK_PUBLISHABLE_CLIENT_KEY",
    "CURRENT_PROJECT_NOT_FOUND": "STACK_PROJECT_ID",
    "ACCESS_TYPE_WITHOUT_PROJECT_ID": "STACK_PROJECT_ID",
    "PROJECT_KEY_WITHOUT_ACCESS_TYPE": "STACK_SECRET_SERVER_KEY",
    "INVALID_ACCESS_TYPE": "STACK_SECRET_SERVER_KEY",
    "INSUFFICIENT_ACCESS_TYPE": "STACK_SECRET_SERVER_KEY",
    "ACCESS_TYPE_REQUIRED": "STACK_SECRET_SERVER_KEY",
}

_CODE_CLASSES: dict[str, type[StackAPIError]] = {
    "UNPARSABLE_ACCESS_TOKEN": InvalidAccessTokenError,
    "ACCESS_TOKEN_EXPIRED": InvalidAccessTokenError,
    "INVALID_PROJECT_FOR_ACCESS_TOKEN": InvalidAccessTokenError,
    "INVALID_ACCESS_TOKEN": InvalidAccessTokenError,
    "CANNOT_GET_OWN_USER_WITHOUT_USER": UserGoneError,
    "ANONYMOUS_AUTHENTICATION_NOT_ALLOWED": UserNotAllowedError,
    "RESTRICTED_USER_NOT_ALLOWED": UserNotAllowedError,
    **dict.fromkeys(PROJECT_CREDENTIAL_CODES, ProjectCredentialsError),
}


def stack_api_error(
    status_code: int, code: str | None, message: str, details: Mapping[str, Any] | None
) -> StackAPIError:
    """The typed exception for one of Stack's error responses."""
    cls = _CODE_CLASSES.get(code or "", StackAPIError)
    return cls(status_code, code, message, details)


# --- What our own clients see ------------------------------------------------------------------


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
