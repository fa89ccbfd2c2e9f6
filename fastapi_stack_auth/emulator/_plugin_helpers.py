"""One-line helpers of the pytest plugin's ``EmulatedStack``: webhooks, the outbox, invitations
and linked OAuth accounts, and teams, permission grants, API keys and the clock, taking users
and teams as objects with an ``id`` or as IDs."""

from __future__ import annotations

from typing import Literal, Protocol

from pydantic import SecretStr

from ._emulator import Emulator
from ._invitations import Invitation
from ._oauth_links import OAuthLink
from ._outbox import OutboxEmail
from ._rows import Team
from ._webhook_records import WebhookDelivery, WebhookEndpoint


class HasId(Protocol):
    """A user or team as tests hold them (``StackTestUser``, ``Team``, ``User``)."""

    @property
    def id(self) -> str: ...


def _id(thing: HasId | str) -> str:
    return thing if isinstance(thing, str) else thing.id


class WebhookHelpers:
    """Webhook endpoints and the delivery log of ``self.emulator``'s default project. A reset
    (before each test) removes the endpoints a test added and empties the log."""

    emulator: Emulator

    @property
    def webhook_secret(self) -> SecretStr:
        """The secret every delivery is signed with (``whsec_...``)."""
        return self.emulator.webhook_secret

    def add_webhook_endpoint(self, url: str) -> WebhookEndpoint:
        """Send the project's webhooks to ``url`` (http or https) from now on."""
        return self.emulator.add_webhook_endpoint(url)

    def remove_webhook_endpoint(self, endpoint: WebhookEndpoint | str) -> bool:
        """Stop sending to an endpoint (the object or its ID); False if unknown."""
        return self.emulator.remove_webhook_endpoint(_id(endpoint))

    def webhook_deliveries(self) -> list[WebhookDelivery]:
        """The delivery log: one record per event and endpoint, in the order the events
        happened, with every attempt so far (``status``, ``attempts``, ``payload``)."""
        return self.emulator.webhook_deliveries()

    def wait_for_webhooks(
        self, count: int | None = None, *, timeout: float = 10.0
    ) -> list[WebhookDelivery]:
        """Wait until the log holds at least ``count`` deliveries and none is pending (each was
        delivered, or failed every retry); returns the log. ``TimeoutError`` after
        ``timeout`` seconds."""
        return self.emulator.wait_for_webhook_deliveries(count, timeout=timeout)


class MessagingHelpers(WebhookHelpers):
    """The outbox, team invitations and linked OAuth accounts of ``self.emulator``'s default
    project (a reset empties the outbox and forgets invitations and links)."""

    emulator: Emulator

    def sent_emails(self, user: HasId | str | None = None) -> list[OutboxEmail]:
        """What the app had mailed (to ``user``, or to anyone), oldest first: ``send-email``
        messages and team invitations (``kind``, ``to``, ``subject``, ``html``, ``link``...)."""
        return self.emulator.sent_emails(user_id=_id(user) if user is not None else None)

    def invite(self, team: HasId | str, email: str) -> Invitation:
        """Invite ``email`` to ``team`` (the email, with its ``link``, lands in the outbox)."""
        return self.emulator.send_team_invitation(_id(team), email)

    def team_invitations(self, team: HasId | str) -> list[Invitation]:
        """The team's pending invitations, oldest first."""
        return self.emulator.team_invitations(_id(team))

    def link_oauth_account(
        self,
        user: HasId | str,
        provider_id: str,
        account_id: str | None = None,
        *,
        scopes: tuple[str, ...] = (),
    ) -> OAuthLink:
        """Link a ``provider_id`` account (``account_id``: the user's ID when omitted) to
        ``user`` with ``scopes``; its made-up token is ``.access_token``."""
        user_id = _id(user)
        return self.emulator.link_oauth_account(
            user_id, provider_id, account_id or user_id, scopes=scopes
        )


class AuthorizationHelpers(MessagingHelpers):
    """Teams, permissions, API keys and time in one line each, on ``self.emulator``'s default
    project (and the webhooks of ``WebhookHelpers``). Permissions a test grants are defined on
    the fly when the project does not define them (containing nothing)."""

    emulator: Emulator

    def create_team(
        self, owner: HasId | str | None = None, *, display_name: str = "Test Team"
    ) -> Team:
        """A team; ``owner`` (if any) is its creator, a member with ``team_admin``."""
        return self.emulator.create_team(display_name, creator=_id(owner) if owner else None)

    def add_member(self, team: HasId | str, user: HasId | str) -> None:
        """Add ``user`` to ``team`` with the default member permissions (``team_member``)."""
        self.emulator.add_member(_id(team), _id(user))

    def grant_team_permission(self, user: HasId | str, team: HasId | str, permission: str) -> None:
        """Grant ``permission`` in ``team`` to ``user``, adding them to the team first if they
        are not a member; an undefined permission is first defined (containing nothing)."""
        self._define(permission, "team")
        if not self.emulator.project.is_member(_id(team), _id(user)):
            self.add_member(team, user)
        self.emulator.grant_team_permission(_id(team), _id(user), permission)

    def revoke_team_permission(self, user: HasId | str, team: HasId | str, permission: str) -> None:
        """Revoke a directly granted team permission."""
        self.emulator.revoke_team_permission(_id(team), _id(user), permission)

    def grant_project_permission(self, user: HasId | str, permission: str) -> None:
        """Grant a project permission; an undefined one is first defined (containing nothing)."""
        self._define(permission, "project")
        self.emulator.grant_project_permission(_id(user), permission)

    def revoke_project_permission(self, user: HasId | str, permission: str) -> None:
        """Revoke a directly granted project permission."""
        self.emulator.revoke_project_permission(_id(user), permission)

    def _define(self, permission: str, scope: Literal["team", "project"]) -> None:
        known = permission.startswith("$") or self.emulator.permission_definition(permission)
        if not known:
            self.emulator.define_permission(permission, scope=scope)

    def create_api_key(self, owner: HasId | str, *, expires_in: float | None = None) -> str:
        """A new API key of a user or a team (the key itself), valid ``expires_in`` seconds of
        the emulator's clock (``None``: forever; see ``advance_clock``)."""
        owner_id = _id(owner)
        is_team = isinstance(owner, Team) or (
            isinstance(owner, str) and self.emulator.get_team(owner) is not None
        )
        key = self.emulator.create_api_key(
            user_id=None if is_team else owner_id,
            team_id=owner_id if is_team else None,
            description="test key",
            expires_in=expires_in,
        )
        return key.value

    def revoke_api_key(self, key: str) -> None:
        """Revoke an API key (by its value or its ID)."""
        self.emulator.revoke_api_key(key)

    def advance_clock(self, seconds: float) -> None:
        """Move the emulator's time forward: its tokens, sessions and API keys expire without
        waiting (the library's own clock does not move; ``reset`` undoes it)."""
        self.emulator.advance_clock(seconds)
