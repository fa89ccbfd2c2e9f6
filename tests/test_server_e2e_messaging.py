"""``stack.server`` end to end over loopback against the emulator: team invitations (send, list,
revoke, accept), connected accounts and provider tokens, and ``send-email``, with the typed
errors of their failure cases."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from fastapi_stack_auth import StackAuth
from fastapi_stack_auth.errors import (
    CustomEmailServerRequiredError,
    OAuthNotConnectedError,
    OAuthProviderNotEnabledError,
    OAuthReconnectRequiredError,
    RedirectUrlNotAllowedError,
    StackAPIError,
    StackValidationError,
    TeamInvitationError,
    TeamNotFoundError,
    UserNotFoundError,
)
from fastapi_stack_auth.testing import EmulatedStack

pytest_plugins = ["fastapi_stack_auth.testing"]

CALLBACK = "http://localhost:3000/handler/team-invitation"
UNKNOWN = "9d2e4f6a-1b3c-4d5e-8f7a-6b5c4d3e2f1a"


@pytest.fixture
async def stack(stack_emulator: EmulatedStack) -> AsyncIterator[StackAuth]:
    async with stack_emulator.stack_auth() as started:
        yield started


# --- team invitations ---------------------------------------------------------------------------


async def test_send_list_and_revoke_invitations(
    stack: StackAuth, stack_emulator: EmulatedStack
) -> None:
    invitations = stack.server.invitations
    team = await stack.server.teams.create("Docs")
    first = await invitations.send(team.id, "ada@example.com", callback_url=CALLBACK)
    second = await invitations.send(team.id, "bob@example.com", callback_url=CALLBACK)

    listed = await invitations.list(team_id=team.id)
    assert [i.id for i in listed] == [first, second]
    assert (listed[0].team_id, listed[0].team_display_name) == (team.id, "Docs")
    assert listed[0].recipient_email == "ada@example.com"
    recorded = stack_emulator.team_invitations(team)[0]
    assert listed[0].expires_at_millis == recorded.created_at_millis + 7 * 24 * 3600 * 1000

    mail = stack_emulator.sent_emails()
    assert [(m.kind, m.to, m.invitation_id) for m in mail] == [
        ("team_invitation", "ada@example.com", first),
        ("team_invitation", "bob@example.com", second),
    ]
    assert str(mail[0].link).startswith(f"{CALLBACK}?code=")

    await invitations.revoke(first, team_id=team.id)
    assert [i.id for i in await invitations.list(team_id=team.id)] == [second]
    with pytest.raises(StackAPIError) as revoked_twice:
        await invitations.revoke(first, team_id=team.id)
    assert revoked_twice.value.status_code == 404


async def test_invitation_errors(stack: StackAuth) -> None:
    invitations = stack.server.invitations
    team = await stack.server.teams.create("Docs")
    with pytest.raises(RedirectUrlNotAllowedError):
        await invitations.send(team.id, "ada@example.com", callback_url="https://evil.example/x")
    with pytest.raises(TeamNotFoundError):
        await invitations.send(UNKNOWN, "ada@example.com", callback_url=CALLBACK)
    with pytest.raises(TeamNotFoundError):
        await invitations.list(team_id=UNKNOWN)
    with pytest.raises(StackValidationError):
        await invitations.send(team.id, "not an email", callback_url=CALLBACK)
    assert await invitations.list(team_id=team.id) == []


async def test_accept_adds_the_member_and_sends_the_webhook(
    stack: StackAuth, stack_emulator: EmulatedStack
) -> None:
    server = stack.server
    team = await server.teams.create("Docs")
    ada = await server.users.create(primary_email="ada@example.com", primary_email_verified=True)
    bob = await server.users.create(primary_email="bob@example.com", primary_email_verified=True)
    invitation = await server.invitations.send(team.id, "ada@example.com", callback_url=CALLBACK)
    assert [i.id for i in await server.invitations.list(user_id=ada.id)] == [invitation]
    assert await server.invitations.list(user_id=bob.id) == []

    with pytest.raises(TeamInvitationError) as wrong_user:
        await server.invitations.accept(invitation, user_id=bob.id)
    assert wrong_user.value.code == "VERIFICATION_CODE_NOT_FOUND"

    # An endpoint nobody listens on: the log still records each event sent to it.
    stack_emulator.add_webhook_endpoint("http://127.0.0.1:9/webhooks")
    await server.invitations.accept(invitation, user_id=ada.id)
    assert [t.id for t in await server.memberships.teams_of(ada.id)] == [team.id]
    sent = [(d.event_type, d.payload["data"]) for d in stack_emulator.webhook_deliveries()]
    assert sent[0] == ("team_membership.created", {"team_id": team.id, "user_id": ada.id})
    assert [t for t, _ in sent] == ["team_membership.created", "team_permission.created"]
    assert await server.invitations.list(team_id=team.id) == []  # used: no longer pending
    with pytest.raises(TeamInvitationError):
        await server.invitations.accept(invitation, user_id=ada.id)


# --- connected accounts -------------------------------------------------------------------------


async def test_connected_accounts_and_provider_tokens(
    stack: StackAuth, stack_emulator: EmulatedStack
) -> None:
    accounts = stack.server.connected_accounts
    ada = await stack.server.users.create(primary_email="ada@example.com")
    assert await accounts.list(ada.id) == []
    link = stack_emulator.link_oauth_account(ada, "github", "ada@github.example", scopes=("repo",))

    listed = await accounts.list(ada.id)
    assert [(a.user_id, a.provider, a.provider_account_id) for a in listed] == [
        (ada.id, "github", "ada@github.example")
    ]
    token = await accounts.access_token(ada.id, "github", scopes=["repo"])
    assert token.access_token.get_secret_value() == link.access_token
    per_account = await accounts.access_token(
        ada.id, "github", provider_account_id="ada@github.example"
    )
    assert per_account.access_token.get_secret_value() == link.access_token
    # The user now lists the account among their OAuth providers too.
    assert [p.id for p in (await stack.server.users.get(ada.id)).oauth_providers] == ["github"]


async def test_connected_account_errors(stack: StackAuth, stack_emulator: EmulatedStack) -> None:
    accounts = stack.server.connected_accounts
    ada = await stack.server.users.create(primary_email="ada@example.com")
    bob = await stack.server.users.create(primary_email="bob@example.com")
    with pytest.raises(OAuthProviderNotEnabledError):
        await accounts.access_token(ada.id, "github")
    stack_emulator.link_oauth_account(ada, "github", "ada-gh", scopes=("repo",))

    with pytest.raises(OAuthNotConnectedError):
        await accounts.access_token(bob.id, "github")
    with pytest.raises(OAuthNotConnectedError):
        await accounts.access_token(ada.id, "github", provider_account_id="someone-else")
    with pytest.raises(OAuthReconnectRequiredError):
        await accounts.access_token(ada.id, "github", scopes=["repo", "admin:org"])
    with pytest.raises(UserNotFoundError):
        await accounts.access_token(UNKNOWN, "github")
    with pytest.raises(UserNotFoundError):
        await accounts.list(UNKNOWN)

    stack_emulator.emulator.refuse_oauth_tokens(ada.id, "github")
    with pytest.raises(OAuthReconnectRequiredError):
        await accounts.access_token(ada.id, "github")
    relinked = stack_emulator.link_oauth_account(ada, "github", "ada-gh", scopes=("repo",))
    token = await accounts.access_token(ada.id, "github", scopes=["repo"])
    assert token.access_token.get_secret_value() == relinked.access_token


# --- email --------------------------------------------------------------------------------------


async def test_send_email_lands_in_the_outbox(
    stack: StackAuth, stack_emulator: EmulatedStack
) -> None:
    ada = await stack.server.users.create(primary_email="ada@example.com")
    nomail = await stack.server.users.create(display_name="No mail")
    sent = await stack.server.emails.send(
        user_ids=[ada.id, nomail.id], html="<p>Hello</p>", subject="Hi"
    )
    assert [s.user_id for s in sent] == [ada.id, nomail.id]

    outbox = stack_emulator.sent_emails()
    assert [(m.kind, m.user_id, m.to, m.subject, m.html) for m in outbox] == [
        ("email", ada.id, "ada@example.com", "Hi", "<p>Hello</p>"),
        ("email", nomail.id, None, "Hi", "<p>Hello</p>"),
    ]
    assert stack_emulator.sent_emails(ada) == outbox[:1]

    template = "5b6c7d8e-9f0a-4b1c-8d2e-3f4a5b6c7d8e"
    await stack.server.emails.send(
        user_ids=[ada.id],
        template_id=template,
        variables={"name": "Ada"},
        notification_category_name="Marketing",
    )
    last = stack_emulator.sent_emails(ada)[-1]
    assert (last.template_id, last.variables, last.notification_category_name) == (
        template,
        {"name": "Ada"},
        "Marketing",
    )
    everyone = await stack.server.emails.send(all_users=True, html="<p>All</p>")
    assert {s.user_id for s in everyone} >= {ada.id, nomail.id}


async def test_send_email_errors(stack: StackAuth, stack_emulator: EmulatedStack) -> None:
    with pytest.raises(UserNotFoundError) as unknown:
        await stack.server.emails.send(user_ids=[UNKNOWN], html="<p>x</p>")
    assert unknown.value.code == "USER_ID_DOES_NOT_EXIST"
    assert stack_emulator.sent_emails() == []  # nothing queued when one user is unknown

    stack_emulator.emulator.project.config.shared_email_server = True
    with pytest.raises(CustomEmailServerRequiredError):
        await stack.server.emails.send(user_ids=[], html="<p>x</p>")
