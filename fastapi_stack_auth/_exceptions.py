"""The exception family, and what Stack Auth said as typed exceptions (``StackAPIError`` and
its subclasses, one per error code an app may want to catch)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


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


class UserNotFoundError(StackAPIError):
    """No such user (``USER_NOT_FOUND``; ``USER_ID_DOES_NOT_EXIST`` when creating a session or
    sending email)."""


class TeamNotFoundError(StackAPIError):
    """No such team (``TEAM_NOT_FOUND``)."""


class TeamMembershipNotFoundError(StackAPIError):
    """The user is not a member of the team (``TEAM_MEMBERSHIP_NOT_FOUND``)."""


class TeamMembershipAlreadyExistsError(StackAPIError):
    """The user is a member of the team already (``TEAM_MEMBERSHIP_ALREADY_EXISTS``)."""


class PermissionNotFoundError(StackAPIError):
    """No such permission definition, or (revoking) none granted directly
    (``PERMISSION_NOT_FOUND``, ``TEAM_PERMISSION_NOT_FOUND``)."""


class ApiKeyError(StackAPIError):
    """Stack refused an API key: unknown, of the other kind, revoked or expired."""


class ApiKeyNotFoundError(ApiKeyError):
    """No such API key in the project (``API_KEY_NOT_FOUND``)."""


class WrongApiKeyTypeError(ApiKeyError):
    """A user key where a team key was asked for, or the reverse (``WRONG_API_KEY_TYPE``)."""


class ApiKeyRevokedError(ApiKeyError):
    """The API key was revoked (``API_KEY_REVOKED``)."""


class ApiKeyExpiredError(ApiKeyError):
    """The API key has expired (``API_KEY_EXPIRED``)."""


class UserEmailAlreadyExistsError(StackAPIError):
    """Another user already signs in with this email (``USER_EMAIL_ALREADY_EXISTS``)."""


class TeamPermissionRequiredError(StackAPIError):
    """The acting user lacks a team's system permission such as ``$update_team``
    (``TEAM_PERMISSION_REQUIRED``)."""


class WrongPermissionScopeError(PermissionNotFoundError):
    """The permission exists, but as a project permission where a team one was expected, or
    the reverse (``WRONG_PERMISSION_SCOPE``)."""


class StackValidationError(StackAPIError):
    """Stack refused the request's shape: an unknown field, a non-UUID id, a value out of range
    (``SCHEMA_ERROR``, ``BODY_PARSING_ERROR``); ``message`` says what."""


class RedirectUrlNotAllowedError(StackAPIError):
    """A ``callback_url`` outside the project's trusted domains
    (``REDIRECT_URL_NOT_WHITELISTED``)."""


class TeamInvitationError(StackAPIError):
    """A team invitation cannot be accepted: unknown, expired, used, guessed at too often, not
    addressed to a verified email of the user (``VERIFICATION_CODE_*``), or the user is
    restricted (``TEAM_INVITATION_RESTRICTED_USER_NOT_ALLOWED``)."""


class ConnectedAccountError(StackAPIError):
    """Stack cannot give a provider access token for the user (the subclasses say why)."""


class OAuthProviderNotEnabledError(ConnectedAccountError):
    """The project has no such OAuth provider configured
    (``OAUTH_PROVIDER_NOT_FOUND_OR_NOT_ENABLED``)."""


class OAuthSharedKeysError(ConnectedAccountError):
    """The provider runs on Stack's shared OAuth keys, which give no access tokens
    (``OAUTH_ACCESS_TOKEN_NOT_AVAILABLE_WITH_SHARED_OAUTH_KEYS``)."""


class OAuthNotConnectedError(ConnectedAccountError):
    """The user has no linked account at that provider, or not that one
    (``OAUTH_CONNECTION_NOT_CONNECTED_TO_USER``)."""


class OAuthReconnectRequiredError(ConnectedAccountError):
    """No stored token covers the scopes, or the provider refused every refresh: send the
    user through linking the account again (``OAUTH_CONNECTION_DOES_NOT_HAVE_REQUIRED_SCOPE``)."""


class CustomEmailServerRequiredError(StackAPIError):
    """Sending email needs the project to use its own email server, not Stack's shared one
    (``REQUIRES_CUSTOM_EMAIL_SERVER``)."""


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
    "USER_NOT_FOUND": UserNotFoundError,
    "TEAM_NOT_FOUND": TeamNotFoundError,
    "TEAM_MEMBERSHIP_NOT_FOUND": TeamMembershipNotFoundError,
    "TEAM_MEMBERSHIP_ALREADY_EXISTS": TeamMembershipAlreadyExistsError,
    "PERMISSION_NOT_FOUND": PermissionNotFoundError,
    "TEAM_PERMISSION_NOT_FOUND": PermissionNotFoundError,
    "API_KEY_NOT_FOUND": ApiKeyNotFoundError,
    "WRONG_API_KEY_TYPE": WrongApiKeyTypeError,
    "API_KEY_REVOKED": ApiKeyRevokedError,
    "API_KEY_EXPIRED": ApiKeyExpiredError,
    # Raised by the server client (``stack.server``) for app code; never request authentication.
    "USER_ID_DOES_NOT_EXIST": UserNotFoundError,
    "USER_EMAIL_ALREADY_EXISTS": UserEmailAlreadyExistsError,
    "TEAM_PERMISSION_REQUIRED": TeamPermissionRequiredError,
    "WRONG_PERMISSION_SCOPE": WrongPermissionScopeError,
    "SCHEMA_ERROR": StackValidationError,
    "BODY_PARSING_ERROR": StackValidationError,
    "REDIRECT_URL_NOT_WHITELISTED": RedirectUrlNotAllowedError,
    "VERIFICATION_CODE_NOT_FOUND": TeamInvitationError,
    "VERIFICATION_CODE_EXPIRED": TeamInvitationError,
    "VERIFICATION_CODE_ALREADY_USED": TeamInvitationError,
    "VERIFICATION_CODE_MAX_ATTEMPTS_REACHED": TeamInvitationError,
    "TEAM_INVITATION_RESTRICTED_USER_NOT_ALLOWED": TeamInvitationError,
    "OAUTH_PROVIDER_NOT_FOUND_OR_NOT_ENABLED": OAuthProviderNotEnabledError,
    "OAUTH_ACCESS_TOKEN_NOT_AVAILABLE_WITH_SHARED_OAUTH_KEYS": OAuthSharedKeysError,
    "OAUTH_CONNECTION_NOT_CONNECTED_TO_USER": OAuthNotConnectedError,
    "OAUTH_CONNECTION_DOES_NOT_HAVE_REQUIRED_SCOPE": OAuthReconnectRequiredError,
    "REQUIRES_CUSTOM_EMAIL_SERVER": CustomEmailServerRequiredError,
    **dict.fromkeys(PROJECT_CREDENTIAL_CODES, ProjectCredentialsError),
}


def stack_api_error(
    status_code: int, code: str | None, message: str, details: Mapping[str, Any] | None
) -> StackAPIError:
    """The typed exception for one of Stack's error responses."""
    cls = _CODE_CLASSES.get(code or "", StackAPIError)
    return cls(status_code, code, message, details)
