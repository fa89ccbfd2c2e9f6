"""A local Stack Auth emulator -- FOR DEVELOPMENT AND TESTS ONLY, never for production.

It serves the parts of Stack Auth's REST API that fastapi-stack-auth (and Stack's JS SDK) use,
with Stack's headers, check order, errors and real ES256 tokens, from memory. Every response
carries an ``x-stack-emulator`` header. Serving it over HTTP needs uvicorn (the ``testing``
extra); the ``Emulator`` and its ASGI app do not.

Run it with ``python -m fastapi_stack_auth.emulator`` (see ``--help``), or in Python::

    from fastapi_stack_auth.emulator import Emulator, EmulatorServer

    with EmulatorServer() as server:           # 127.0.0.1, a free port, background thread
        emulator = server.emulator
        user = emulator.create_user(email="a@example.com", password="password1")
        tokens = emulator.sign_in(user.id)
        team = emulator.create_team("Docs", creator=user.id)       # user gets team_admin
        emulator.define_permission("docs:delete")                  # a team permission
        emulator.grant_team_permission(team.id, user.id, "docs:delete")
        key = emulator.create_api_key(user_id=user.id, expires_in=60).value
        emulator.add_webhook_endpoint("http://127.0.0.1:8000/webhooks")  # signed events
        emulator.link_oauth_account(user.id, "github", "12345", scopes=["repo"])
        emulator.sent_emails()                  # what send-email and invitations "sent"
        ...                                     # STACK_API_URL=server.url

For pytest fixtures, see ``fastapi_stack_auth.testing``.
"""

from ._app import EMULATOR_HEADER, EmulatorApp, is_loopback
from ._backend import DEFAULT_ACCESS_TOKEN_TTL, Backend
from ._emulator import DEFAULT_HOST, DEFAULT_PORT, DEFAULT_PUBLIC_URL, Emulator, Tokens
from ._emulator_authz import AuthorizationApi, IssuedApiKey
from ._emulator_messaging import MessagingApi
from ._emulator_webhooks import WebhookApi
from ._errors import KnownError
from ._invitations import Invitation
from ._oauth_links import OAuthLink
from ._outbox import OutboxEmail
from ._plugin_helpers import AuthorizationHelpers, MessagingHelpers, WebhookHelpers
from ._rbac import SYSTEM_TEAM_PERMISSIONS
from ._rows import ApiKey, PermissionDefinition, Team
from ._seed import (
    DEFAULT_PROJECT_ID,
    DEFAULT_PUBLISHABLE_CLIENT_KEY,
    DEFAULT_SECRET_SERVER_KEY,
    DEMO_EMAIL,
    DEMO_PASSWORD,
    DEMO_TEAM_ID,
    DEMO_USER_ID,
    Seed,
    SeedMember,
    SeedPermission,
    SeedProject,
    SeedProjectConfig,
    SeedTeam,
    SeedUser,
    default_seed,
)
from ._server import EmulatorServer, RemoteBindRefused
from ._store import Project, ProjectConfig, Session, User
from ._webhook_records import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from ._webhooks import SVIX_RETRY_SCHEDULE, SVIX_TIMEOUT


def create_app(emulator: Emulator | None = None) -> EmulatorApp:
    """The ASGI app of ``emulator`` (a new default ``Emulator`` when omitted)."""
    return (emulator if emulator is not None else Emulator()).app


__all__ = [
    "DEFAULT_ACCESS_TOKEN_TTL",
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "DEFAULT_PROJECT_ID",
    "DEFAULT_PUBLIC_URL",
    "DEFAULT_PUBLISHABLE_CLIENT_KEY",
    "DEFAULT_SECRET_SERVER_KEY",
    "DEMO_EMAIL",
    "DEMO_PASSWORD",
    "DEMO_TEAM_ID",
    "DEMO_USER_ID",
    "EMULATOR_HEADER",
    "SVIX_RETRY_SCHEDULE",
    "SVIX_TIMEOUT",
    "SYSTEM_TEAM_PERMISSIONS",
    "ApiKey",
    "AuthorizationApi",
    "AuthorizationHelpers",
    "Backend",
    "Emulator",
    "EmulatorApp",
    "EmulatorServer",
    "Invitation",
    "IssuedApiKey",
    "KnownError",
    "MessagingApi",
    "MessagingHelpers",
    "OAuthLink",
    "OutboxEmail",
    "PermissionDefinition",
    "Project",
    "ProjectConfig",
    "RemoteBindRefused",
    "Seed",
    "SeedMember",
    "SeedPermission",
    "SeedProject",
    "SeedProjectConfig",
    "SeedTeam",
    "SeedUser",
    "Session",
    "Team",
    "Tokens",
    "User",
    "WebhookApi",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WebhookHelpers",
    "create_app",
    "default_seed",
    "is_loopback",
]
