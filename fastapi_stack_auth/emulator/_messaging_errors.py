"""Known errors of team invitations, connected accounts and email (contract §4, §9.10-9.12).
Codes, statuses and ``details`` follow the contract; the messages are the emulator's own."""

from __future__ import annotations

from ._errors import KnownError


def redirect_url_not_whitelisted() -> KnownError:
    message = (
        "The callback URL is not on a trusted domain of this project (the emulator trusts "
        "loopback hosts and the project's configured domains)."
    )
    return KnownError(400, "REDIRECT_URL_NOT_WHITELISTED", message)


def verification_code_not_found() -> KnownError:
    message = "No such invitation code (or no verified email of the user matches the invitation)."
    return KnownError(404, "VERIFICATION_CODE_NOT_FOUND", message)


def verification_code_expired() -> KnownError:
    return KnownError(400, "VERIFICATION_CODE_EXPIRED", "This invitation code has expired.")


def verification_code_already_used() -> KnownError:
    message = "This invitation code has already been used."
    return KnownError(409, "VERIFICATION_CODE_ALREADY_USED", message)


def team_invitation_restricted_user_not_allowed(reason: str) -> KnownError:
    message = (
        f"A restricted user ({reason}) cannot accept or read team invitations; finish "
        "signing up first."
    )
    details = {"restricted_reason": {"type": reason}}
    return KnownError(403, "TEAM_INVITATION_RESTRICTED_USER_NOT_ALLOWED", message, details)


def oauth_provider_not_found_or_not_enabled() -> KnownError:
    message = "The project has no OAuth provider with this ID enabled."
    return KnownError(400, "OAUTH_PROVIDER_NOT_FOUND_OR_NOT_ENABLED", message)


def oauth_connection_not_connected_to_user() -> KnownError:
    message = "The user has no account of this OAuth provider linked."
    return KnownError(400, "OAUTH_CONNECTION_NOT_CONNECTED_TO_USER", message)


def oauth_connection_does_not_have_required_scope() -> KnownError:
    message = (
        "No token of the linked account covers the requested scopes (or the provider refused "
        "it): the user has to link the account again."
    )
    return KnownError(400, "OAUTH_CONNECTION_DOES_NOT_HAVE_REQUIRED_SCOPE", message)


def requires_custom_email_server() -> KnownError:
    message = "Sending email needs a custom email server; this project uses the shared one."
    return KnownError(400, "REQUIRES_CUSTOM_EMAIL_SERVER", message)
