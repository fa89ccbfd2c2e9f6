"""The route table of team invitations, connected accounts and email (contract §9.10-9.12), and
the emulator's outbox route: rows of ``(method, path, access types, handler)``."""

from __future__ import annotations

from collections.abc import Callable

from ._http import CLIENT_AND_UP, SERVER_AND_UP, Ctx, Reply
from ._routes_connected_accounts import access_token, list_connected_accounts
from ._routes_emails import SENT_EMAILS, list_sent_emails, send_email
from ._routes_invitations import (
    accept_by_code,
    accept_by_id,
    check_code,
    code_details,
    list_invitations,
    revoke_invitation,
    send_code,
)

Row = tuple[str, str, tuple[str, ...], Callable[[Ctx], Reply]]


def messaging_routes() -> list[Row]:
    """The rows, in matching order."""
    invitations, accounts = "/team-invitations", "/connected-accounts/{user_id}"
    return [
        ("POST", f"{invitations}/send-code", CLIENT_AND_UP, send_code),
        ("GET", invitations, CLIENT_AND_UP, list_invitations),
        ("POST", f"{invitations}/accept", CLIENT_AND_UP, accept_by_code),
        ("POST", f"{invitations}/accept/check-code", CLIENT_AND_UP, check_code),
        ("POST", f"{invitations}/accept/details", CLIENT_AND_UP, code_details),
        ("DELETE", f"{invitations}/{{id}}", CLIENT_AND_UP, revoke_invitation),
        ("POST", f"{invitations}/{{id}}/accept", CLIENT_AND_UP, accept_by_id),
        ("GET", accounts, CLIENT_AND_UP, list_connected_accounts),
        ("POST", f"{accounts}/{{provider_id}}/access-token", CLIENT_AND_UP, access_token),
        (
            "POST",
            f"{accounts}/{{provider_id}}/{{provider_account_id}}/access-token",
            CLIENT_AND_UP,
            access_token,
        ),
        ("POST", "/emails/send-email", SERVER_AND_UP, send_email),
        ("GET", SENT_EMAILS, SERVER_AND_UP, list_sent_emails),
    ]
