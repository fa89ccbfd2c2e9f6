"""``stack.server.invitations``, ``.connected_accounts`` and ``.emails`` against a respx-mocked
Stack, answering with the contract's fixtures."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import respx

from fastapi_stack_auth import StackAuth
from fastapi_stack_auth.errors import (
    ConnectedAccountError,
    CustomEmailServerRequiredError,
    OAuthNotConnectedError,
    OAuthProviderNotEnabledError,
    OAuthReconnectRequiredError,
    OAuthSharedKeysError,
    RedirectUrlNotAllowedError,
    StackAPIError,
    TeamInvitationError,
    UserNotFoundError,
)
from fastapi_stack_auth.server import (
    ConnectedAccount,
    SentEmail,
    StackServer,
    TeamInvitation,
)
from tests.conftest import USER_ID, fixture_json, fixture_response, stack_error

TEAM_ID = "5b6c7d8e-9f0a-4b1c-8d2e-3f4a5b6c7d8e"
INVITATION_ID = "2a4c6e8f-1b3d-4f5a-9c7e-0d2f4a6b8c1e"
MAILBOX = "default-mailbox--4b1e7c3a-9d2f-4e8a-b5c6-0f1a2b3c4d5e@stack-generated.example.com"

SEND_CODE = fixture_json("team-invitations-send-code.json")
INVITATIONS_LIST = fixture_json("team-invitations-list.json")
ACCOUNTS_LIST = fixture_json("connected-accounts-list.json")
ACCESS_TOKEN = fixture_json("connected-accounts-access-token.json")  # answered 201
SEND_EMAIL = fixture_json("emails-send-email.json")
#: Codes known from Stack's source only (README §4), with no fixture: (status, message).
SOURCE_ONLY_ERRORS = {
    "OAUTH_ACCESS_TOKEN_NOT_AVAILABLE_WITH_SHARED_OAUTH_KEYS": (400, "shared keys"),
    "VERIFICATION_CODE_NOT_FOUND": (404, "not found"),
}


def known_error(code: str) -> httpx.Response:
    """Stack's answer with the known error ``code``: its fixture ``errors/<code>.json`` when
    the contract has one."""
    if code in SOURCE_ONLY_ERRORS:
        status, message = SOURCE_ONLY_ERRORS[code]
        return stack_error(status, code, message)
    return fixture_response(f"errors/{code}.json")


def body_of(route: respx.Route) -> Any:
    return json.loads(route.calls.last.request.content)


@pytest.fixture
def server(stack: StackAuth) -> StackServer:
    return stack.server


# --- invitations ----------------------------------------------------------------------------


async def test_send_invitation(server: StackServer, mock_api: respx.MockRouter) -> None:
    route = mock_api.post("/team-invitations/send-code").respond(200, json=SEND_CODE)
    sent = await server.invitations.send(
        TEAM_ID, "ada@example.com", callback_url="https://app.example.com/join"
    )
    assert sent == INVITATION_ID
    assert body_of(route) == {
        "team_id": TEAM_ID,
        "email": "ada@example.com",
        "callback_url": "https://app.example.com/join",
    }


async def test_send_invitation_to_an_untrusted_callback(
    server: StackServer, mock_api: respx.MockRouter
) -> None:
    answer = known_error("REDIRECT_URL_NOT_WHITELISTED")
    mock_api.post("/team-invitations/send-code").mock(return_value=answer)
    with pytest.raises(RedirectUrlNotAllowedError):
        await server.invitations.send(TEAM_ID, "a@example.com", callback_url="https://evil.test")


async def test_list_invitations_by_team_or_by_user(
    server: StackServer, mock_api: respx.MockRouter
) -> None:
    route = mock_api.get("/team-invitations").respond(200, json=INVITATIONS_LIST)
    found = await server.invitations.list(team_id=TEAM_ID)
    assert found == [TeamInvitation.model_validate(INVITATIONS_LIST["items"][0])]
    assert found[0].expires_at.year == 2026
    assert dict(route.calls.last.request.url.params) == {"team_id": TEAM_ID}
    await server.invitations.list(user_id=USER_ID)
    assert dict(route.calls.last.request.url.params) == {"user_id": USER_ID}
    assert route.call_count == 2
    for wrong in ({}, {"team_id": TEAM_ID, "user_id": USER_ID}):
        with pytest.raises(ValueError, match="exactly one"):
            await server.invitations.list(**wrong)
    assert route.call_count == 2


async def test_revoke_invitation(server: StackServer, mock_api: respx.MockRouter) -> None:
    route = mock_api.delete(f"/team-invitations/{INVITATION_ID}").respond(
        200, json={"success": True}
    )
    await server.invitations.revoke(INVITATION_ID, team_id=TEAM_ID)
    assert dict(route.calls.last.request.url.params) == {"team_id": TEAM_ID}


async def test_accept_invitation(server: StackServer, mock_api: respx.MockRouter) -> None:
    route = mock_api.post(f"/team-invitations/{INVITATION_ID}/accept").respond(200, json={})
    await server.invitations.accept(INVITATION_ID, user_id=USER_ID)
    assert dict(route.calls.last.request.url.params) == {"user_id": USER_ID}
    route.mock(return_value=known_error("VERIFICATION_CODE_NOT_FOUND"))
    with pytest.raises(TeamInvitationError):
        await server.invitations.accept(INVITATION_ID, user_id=USER_ID)


async def test_restricted_user_invitation_error_is_typed(
    server: StackServer, mock_api: respx.MockRouter
) -> None:
    answer = known_error("TEAM_INVITATION_RESTRICTED_USER_NOT_ALLOWED")
    mock_api.post(f"/team-invitations/{INVITATION_ID}/accept").mock(return_value=answer)
    with pytest.raises(TeamInvitationError) as info:
        await server.invitations.accept(INVITATION_ID, user_id=USER_ID)
    assert info.value.details == {"restricted_reason": {"type": "email_not_verified"}}


# --- connected accounts ---------------------------------------------------------------------


async def test_list_connected_accounts(server: StackServer, mock_api: respx.MockRouter) -> None:
    mock_api.get(f"/connected-accounts/{USER_ID}").respond(200, json=ACCOUNTS_LIST)
    accounts = await server.connected_accounts.list(USER_ID)
    assert accounts == [
        ConnectedAccount(user_id=USER_ID, provider="spotify", provider_account_id=MAILBOX)
    ]


async def test_provider_access_token_is_secret(
    server: StackServer, mock_api: respx.MockRouter
) -> None:
    route = mock_api.post(f"/connected-accounts/{USER_ID}/spotify/access-token").respond(
        201, json=ACCESS_TOKEN
    )
    token = await server.connected_accounts.access_token(USER_ID, "spotify")
    assert token.access_token.get_secret_value() == ACCESS_TOKEN["access_token"]
    assert ACCESS_TOKEN["access_token"] not in repr(token)
    assert body_of(route) == {}


async def test_provider_access_token_of_one_account_with_scopes(
    server: StackServer, mock_api: respx.MockRouter
) -> None:
    route = mock_api.route(method="POST").respond(201, json=ACCESS_TOKEN)
    await server.connected_accounts.access_token(
        USER_ID, "github", provider_account_id="ada/@x.io", scopes=["repo", "read:user"]
    )
    # The account id is often an email: percent-encoded, it stays one segment.
    assert route.calls.last.request.url.raw_path == (
        f"/api/v1/connected-accounts/{USER_ID}/github/ada%2F%40x.io/access-token".encode()
    )
    assert body_of(route) == {"scope": "repo read:user"}


@pytest.mark.parametrize(
    ("code", "exc_type"),
    [
        ("OAUTH_PROVIDER_NOT_FOUND_OR_NOT_ENABLED", OAuthProviderNotEnabledError),
        ("OAUTH_ACCESS_TOKEN_NOT_AVAILABLE_WITH_SHARED_OAUTH_KEYS", OAuthSharedKeysError),
        ("OAUTH_CONNECTION_NOT_CONNECTED_TO_USER", OAuthNotConnectedError),
        ("OAUTH_CONNECTION_DOES_NOT_HAVE_REQUIRED_SCOPE", OAuthReconnectRequiredError),
    ],
)
async def test_provider_access_token_errors(
    server: StackServer, mock_api: respx.MockRouter, code: str, exc_type: type[Exception]
) -> None:
    route = mock_api.post(f"/connected-accounts/{USER_ID}/google/access-token")
    route.mock(return_value=known_error(code))
    with pytest.raises(exc_type) as info:
        await server.connected_accounts.access_token(USER_ID, "google")
    assert isinstance(info.value, ConnectedAccountError)
    assert info.value.code == code


# --- emails ---------------------------------------------------------------------------------


async def test_send_email_to_users(server: StackServer, mock_api: respx.MockRouter) -> None:
    route = mock_api.post("/emails/send-email").respond(200, json=SEND_EMAIL)
    results = await server.emails.send(
        user_ids=[USER_ID],
        html="<p>Hi</p>",
        subject="Hello",
        notification_category_name="Marketing",
    )
    assert results == [SentEmail(user_id=USER_ID)]
    assert body_of(route) == {
        "user_ids": [USER_ID],
        "html": "<p>Hi</p>",
        "subject": "Hello",
        "notification_category_name": "Marketing",
    }


async def test_send_template_email_to_all_users(
    server: StackServer, mock_api: respx.MockRouter
) -> None:
    route = mock_api.post("/emails/send-email").respond(200, json={"results": []})
    template = "0f1e2d3c-4b5a-4697-8877-665544332211"
    await server.emails.send(
        all_users=True, template_id=template, variables={"name": "Ada"}, theme_id=False
    )
    assert body_of(route) == {
        "all_users": True,
        "template_id": template,
        "variables": {"name": "Ada"},
        "theme_id": False,
    }


@pytest.mark.parametrize(
    "arguments",
    [
        {"html": "x"},  # no recipients
        {"user_ids": [USER_ID], "all_users": True, "html": "x"},
        {"user_ids": [USER_ID]},  # no content
        {"user_ids": [USER_ID], "html": "x", "draft_id": "d"},
        {"user_ids": [USER_ID], "html": "x", "variables": {"a": 1}},
    ],
)
async def test_send_email_arguments_are_checked_before_any_request(
    server: StackServer, mock_api: respx.MockRouter, arguments: dict[str, Any]
) -> None:
    route = mock_api.post("/emails/send-email").respond(200, json=SEND_EMAIL)
    with pytest.raises(ValueError, match=r"exactly one|variables"):
        await server.emails.send(**arguments)
    assert route.call_count == 0


@pytest.mark.parametrize(
    ("answer", "exc_type"),
    [
        (known_error("REQUIRES_CUSTOM_EMAIL_SERVER"), CustomEmailServerRequiredError),
        (fixture_response("errors-constructed/USER_ID_DOES_NOT_EXIST.json"), UserNotFoundError),
    ],
)
async def test_send_email_errors(
    server: StackServer,
    mock_api: respx.MockRouter,
    answer: httpx.Response,
    exc_type: type[StackAPIError],
) -> None:
    mock_api.post("/emails/send-email").mock(return_value=answer)
    with pytest.raises(exc_type):
        await server.emails.send(user_ids=[USER_ID], html="x")
