"""Stack's error codes for the server API become typed exceptions, all ``StackAPIError``s, all in
``fastapi_stack_auth.errors``; none of them is mistaken for a request's authentication."""

from __future__ import annotations

import pytest

from fastapi_stack_auth import errors
from fastapi_stack_auth._answers import to_auth_error
from fastapi_stack_auth._exceptions import stack_api_error

CODES = {
    "USER_NOT_FOUND": errors.UserNotFoundError,
    "USER_ID_DOES_NOT_EXIST": errors.UserNotFoundError,
    "USER_EMAIL_ALREADY_EXISTS": errors.UserEmailAlreadyExistsError,
    "TEAM_NOT_FOUND": errors.TeamNotFoundError,
    "TEAM_MEMBERSHIP_NOT_FOUND": errors.TeamMembershipNotFoundError,
    "TEAM_MEMBERSHIP_ALREADY_EXISTS": errors.TeamMembershipAlreadyExistsError,
    "TEAM_PERMISSION_REQUIRED": errors.TeamPermissionRequiredError,
    "PERMISSION_NOT_FOUND": errors.PermissionNotFoundError,
    "TEAM_PERMISSION_NOT_FOUND": errors.PermissionNotFoundError,
    "WRONG_PERMISSION_SCOPE": errors.WrongPermissionScopeError,
    "SCHEMA_ERROR": errors.StackValidationError,
    "BODY_PARSING_ERROR": errors.StackValidationError,
    "REDIRECT_URL_NOT_WHITELISTED": errors.RedirectUrlNotAllowedError,
    "VERIFICATION_CODE_NOT_FOUND": errors.TeamInvitationError,
    "VERIFICATION_CODE_EXPIRED": errors.TeamInvitationError,
    "VERIFICATION_CODE_ALREADY_USED": errors.TeamInvitationError,
    "VERIFICATION_CODE_MAX_ATTEMPTS_REACHED": errors.TeamInvitationError,
    "TEAM_INVITATION_RESTRICTED_USER_NOT_ALLOWED": errors.TeamInvitationError,
    "OAUTH_PROVIDER_NOT_FOUND_OR_NOT_ENABLED": errors.OAuthProviderNotEnabledError,
    "OAUTH_ACCESS_TOKEN_NOT_AVAILABLE_WITH_SHARED_OAUTH_KEYS": errors.OAuthSharedKeysError,
    "OAUTH_CONNECTION_NOT_CONNECTED_TO_USER": errors.OAuthNotConnectedError,
    "OAUTH_CONNECTION_DOES_NOT_HAVE_REQUIRED_SCOPE": errors.OAuthReconnectRequiredError,
    "REQUIRES_CUSTOM_EMAIL_SERVER": errors.CustomEmailServerRequiredError,
    "API_KEY_NOT_FOUND": errors.ApiKeyNotFoundError,
    "API_KEY_REVOKED": errors.ApiKeyRevokedError,
    "API_KEY_EXPIRED": errors.ApiKeyExpiredError,
    "WRONG_API_KEY_TYPE": errors.WrongApiKeyTypeError,
}


@pytest.mark.parametrize(("code", "exc_type"), CODES.items())
def test_code_becomes_its_exception(code: str, exc_type: type[errors.StackAPIError]) -> None:
    error = stack_api_error(400, code, "Stack's words", {"a": 1})
    assert type(error) is exc_type
    assert isinstance(error, errors.StackAPIError)
    assert (error.code, error.message, dict(error.details)) == (code, "Stack's words", {"a": 1})
    assert exc_type.__name__ in errors.__all__
    assert exc_type.__doc__


def test_families_can_be_caught_together() -> None:
    assert issubclass(errors.WrongPermissionScopeError, errors.PermissionNotFoundError)
    for leaf in (
        errors.OAuthProviderNotEnabledError,
        errors.OAuthSharedKeysError,
        errors.OAuthNotConnectedError,
        errors.OAuthReconnectRequiredError,
    ):
        assert issubclass(leaf, errors.ConnectedAccountError)


@pytest.mark.parametrize(
    "code",
    [
        "USER_ID_DOES_NOT_EXIST",
        "TEAM_PERMISSION_REQUIRED",
        "SCHEMA_ERROR",
        "TEAM_INVITATION_RESTRICTED_USER_NOT_ALLOWED",
        "OAUTH_CONNECTION_NOT_CONNECTED_TO_USER",
    ],
)
def test_an_uncaught_server_api_error_is_no_auth_answer(code: str) -> None:
    # Raised by app code calling stack.server and not caught: the app's fault, not the
    # caller's credentials (no 401/403), and Stack's words stay out of the answer.
    answer = to_auth_error(stack_api_error(403, code, "Stack's words", None))
    assert (answer.status_code, answer.code) == (500, "SERVER_MISCONFIGURED")
    assert "Stack's words" not in answer.detail
