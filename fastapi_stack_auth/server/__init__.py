"""The typed async server client: Stack Auth's server API on the library's shared HTTP client.

``stack.server`` (a ``StackServer``) talks to Stack with the project's secret server key,
through the same pooled client, retries (GET only), body cap and error mapping as the
dependencies. Every call is a coroutine; errors are ``StackAPIError`` subclasses from
``fastapi_stack_auth.errors`` (``UserNotFoundError``, ``TeamNotFoundError``, ...),
``StackUnavailableError`` or ``StackBadResponseError``.
"""

from __future__ import annotations

from starlette.requests import HTTPConnection

from .._client import StackClient
from ._accounts import ConnectedAccountsApi
from ._api_keys import ApiKeysApi
from ._base import UNSET, Unset
from ._emails import EmailsApi
from ._invitations import InvitationsApi
from ._models import (
    ConnectedAccount,
    EndUserIpInfo,
    NewApiKey,
    ProjectPermission,
    ProviderAccessToken,
    SentEmail,
    Session,
    SessionTokens,
    TeamInvitation,
    TeamMembership,
    TeamPermission,
    UserPage,
)
from ._permissions import ProjectPermissionsApi, TeamPermissionsApi
from ._sessions import SessionsApi
from ._teams import MembershipsApi, TeamsApi
from ._users import UsersApi

__all__ = [
    "UNSET",
    "ApiKeysApi",
    "ConnectedAccount",
    "ConnectedAccountsApi",
    "EmailsApi",
    "EndUserIpInfo",
    "InvitationsApi",
    "MembershipsApi",
    "NewApiKey",
    "ProjectPermission",
    "ProjectPermissionsApi",
    "ProviderAccessToken",
    "SentEmail",
    "Session",
    "SessionTokens",
    "SessionsApi",
    "StackServer",
    "TeamInvitation",
    "TeamMembership",
    "TeamPermission",
    "TeamPermissionsApi",
    "TeamsApi",
    "Unset",
    "UserPage",
    "UsersApi",
    "stack_server",
]


class StackServer:
    """Stack Auth's server API (``stack.server``): users, teams, memberships, permissions, API
    keys, sessions, invitations, connected accounts and email."""

    def __init__(self, client: StackClient) -> None:
        self._client = client
        #: ``/users``: get, list (async iterator over every page), create, update, delete.
        self.users = UsersApi(client)
        #: ``/teams``: get, list, create, update, delete.
        self.teams = TeamsApi(client)
        #: Team memberships: add, remove, members (of a team), teams_of (a user).
        self.memberships = MembershipsApi(client, self.users, self.teams)
        #: Team permissions: list (recursive by default), has, grant, revoke.
        self.team_permissions = TeamPermissionsApi(client)
        #: Project permissions: list (recursive by default), has, grant, revoke.
        self.project_permissions = ProjectPermissionsApi(client)
        #: User and team API keys: create, list, revoke, check.
        self.api_keys = ApiKeysApi(client)
        #: Sessions: create (server-side sign-in, impersonation), list, revoke.
        self.sessions = SessionsApi(client)
        #: Team invitations: send, list, revoke, accept.
        self.invitations = InvitationsApi(client)
        #: Connected OAuth accounts: list, a provider access token.
        self.connected_accounts = ConnectedAccountsApi(client)
        #: Email to users: send.
        self.emails = EmailsApi(client)


def stack_server(conn: HTTPConnection) -> StackServer:
    """``Depends(stack_server)``: the server client of the app's default ``StackAuth``."""
    from .._dependencies import default_stack  # _dependencies imports this package

    return default_stack(conn).server
