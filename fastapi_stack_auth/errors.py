"""Every exception fastapi-stack-auth raises.

``StackAuthError`` is the base of them all. ``AuthError`` is what a client is answered (status,
``code``, ``detail``); ``StackAPIError`` and its subclasses are what Stack Auth said, one class
per error code an app may want to catch; ``StackUnavailableError`` and
``StackBadResponseError`` are Stack unreachable or answering outside its contract.
"""

from ._answers import AuthError
from ._exceptions import (
    ApiKeyError,
    ApiKeyExpiredError,
    ApiKeyNotFoundError,
    ApiKeyRevokedError,
    InvalidAccessTokenError,
    PermissionNotFoundError,
    ProjectCredentialsError,
    StackAPIError,
    StackAuthConfigError,
    StackAuthError,
    StackBadResponseError,
    StackUnavailableError,
    TeamMembershipAlreadyExistsError,
    TeamMembershipNotFoundError,
    TeamNotFoundError,
    UserGoneError,
    UserNotAllowedError,
    UserNotFoundError,
    WrongApiKeyTypeError,
)

__all__ = [
    "ApiKeyError",
    "ApiKeyExpiredError",
    "ApiKeyNotFoundError",
    "ApiKeyRevokedError",
    "AuthError",
    "InvalidAccessTokenError",
    "PermissionNotFoundError",
    "ProjectCredentialsError",
    "StackAPIError",
    "StackAuthConfigError",
    "StackAuthError",
    "StackBadResponseError",
    "StackUnavailableError",
    "TeamMembershipAlreadyExistsError",
    "TeamMembershipNotFoundError",
    "TeamNotFoundError",
    "UserGoneError",
    "UserNotAllowedError",
    "UserNotFoundError",
    "WrongApiKeyTypeError",
]
