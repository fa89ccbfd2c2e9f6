"""The emulated endpoints, as one table of routes (contract §6, §7, §9.1-9.8, §9.10-9.12, §13);
the handlers are in the ``_routes_*`` modules."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from ._http import CLIENT_AND_UP, SERVER_AND_UP, Ctx, Reply
from ._routes_api_keys import handlers as api_key_handlers
from ._routes_auth import (
    anonymous_sign_up,
    anonymous_well_known,
    create_session,
    current_project,
    jwks,
    oauth_token,
    password_sign_in,
    password_sign_up,
    refresh_current_session,
    sign_out,
)
from ._routes_messaging import messaging_routes
from ._routes_permissions import (
    grant_project_permission,
    grant_team_permission,
    list_project_permissions,
    list_team_permissions,
    revoke_project_permission,
    revoke_team_permission,
)
from ._routes_sessions import delete_session, list_sessions
from ._routes_teams import (
    add_membership,
    create_team,
    delete_team,
    get_team,
    list_teams,
    patch_team,
    remove_membership,
)
from ._routes_users import (
    create_user,
    delete_me,
    delete_user,
    get_me,
    get_user,
    list_users,
    patch_me,
    patch_user,
)
from ._routes_webhooks import (
    DELIVERIES,
    ENDPOINTS,
    SEND_TEST,
    add_endpoint,
    list_deliveries,
    list_endpoints,
    remove_endpoint,
    send_test_webhook,
)

Handler = Callable[[Ctx], Reply]


@dataclass(frozen=True)
class Route:
    """One endpoint: method, path pattern (under ``/api/v1``), access types, handler."""

    method: str
    pattern: re.Pattern[str]
    access: tuple[str, ...] | None
    handler: Handler
    #: The path as written in the table (``/users/{user_id}``), for ``Emulator.calls``.
    label: str = ""


# --- the table ----------------------------------------------------------------------------------


def _route(method: str, path: str, access: tuple[str, ...] | None, handler: Handler) -> Route:
    parts = []
    for segment in path.strip("/").split("/"):
        param = re.fullmatch(r"\{(\w+)\}", segment)
        parts.append(f"(?P<{param.group(1)}>[^/]+)" if param else re.escape(segment))
    return Route(method, re.compile("/" + "/".join(parts)), access, handler, path)


def _authz_routes() -> list[Route]:
    """Teams, memberships, permissions and API keys (contract §9.2-9.6)."""
    team, membership = "/teams/{team_id}", "/team-memberships/{team_id}/{user_id}"
    team_grant = "/team-permissions/{team_id}/{user_id}/{permission_id}"
    project_grant = "/project-permissions/{user_id}/{permission_id}"
    routes = [
        _route("GET", "/teams", CLIENT_AND_UP, list_teams),
        _route("POST", "/teams", CLIENT_AND_UP, create_team),
        _route("GET", team, CLIENT_AND_UP, get_team),
        _route("PATCH", team, CLIENT_AND_UP, patch_team),
        _route("DELETE", team, CLIENT_AND_UP, delete_team),
        _route("POST", membership, SERVER_AND_UP, add_membership),
        _route("DELETE", membership, CLIENT_AND_UP, remove_membership),
        _route("GET", "/team-permissions", CLIENT_AND_UP, list_team_permissions),
        _route("POST", team_grant, SERVER_AND_UP, grant_team_permission),
        _route("DELETE", team_grant, SERVER_AND_UP, revoke_team_permission),
        _route("GET", "/project-permissions", CLIENT_AND_UP, list_project_permissions),
        _route("POST", project_grant, SERVER_AND_UP, grant_project_permission),
        _route("DELETE", project_grant, SERVER_AND_UP, revoke_project_permission),
    ]
    for kind in ("user", "team"):
        base, handler = f"/{kind}-api-keys", api_key_handlers(kind)
        routes += [
            _route("POST", f"{base}/check", SERVER_AND_UP, handler["check"]),
            _route("POST", base, CLIENT_AND_UP, handler["create"]),
            _route("GET", base, CLIENT_AND_UP, handler["list"]),
            _route("GET", f"{base}/{{api_key_id}}", CLIENT_AND_UP, handler["read"]),
            _route("PATCH", f"{base}/{{api_key_id}}", CLIENT_AND_UP, handler["update"]),
        ]
    return routes


def _webhook_routes() -> list[Route]:
    """The emulator's own endpoint and log routes, and Stack's test-event route (§13.2)."""
    return [
        _route("GET", ENDPOINTS, SERVER_AND_UP, list_endpoints),
        _route("POST", ENDPOINTS, SERVER_AND_UP, add_endpoint),
        _route("DELETE", f"{ENDPOINTS}/{{endpoint_id}}", SERVER_AND_UP, remove_endpoint),
        _route("GET", DELIVERIES, SERVER_AND_UP, list_deliveries),
        _route("POST", SEND_TEST, ("admin",), send_test_webhook),
    ]


def _routes() -> list[Route]:
    users_me = "/users/me"
    routes = [
        _route("GET", users_me, CLIENT_AND_UP, get_me),
        _route("PATCH", users_me, CLIENT_AND_UP, patch_me),
        _route("DELETE", users_me, CLIENT_AND_UP, delete_me),
        _route("GET", "/users", SERVER_AND_UP, list_users),
        _route("POST", "/users", SERVER_AND_UP, create_user),
        _route("GET", "/users/{user_id}", SERVER_AND_UP, get_user),
        _route("PATCH", "/users/{user_id}", SERVER_AND_UP, patch_user),
        _route("DELETE", "/users/{user_id}", SERVER_AND_UP, delete_user),
        _route("GET", "/projects/current", CLIENT_AND_UP, current_project),
        _route("GET", "/projects/{project_id}/.well-known/jwks.json", None, jwks),
        _route("POST", "/auth/password/sign-up", CLIENT_AND_UP, password_sign_up),
        _route("POST", "/auth/password/sign-in", CLIENT_AND_UP, password_sign_in),
        _route("POST", "/auth/anonymous/sign-up", CLIENT_AND_UP, anonymous_sign_up),
        _route("POST", "/auth/sessions", SERVER_AND_UP, create_session),
        _route("POST", "/auth/sessions/current/refresh", CLIENT_AND_UP, refresh_current_session),
        _route("DELETE", "/auth/sessions/current", CLIENT_AND_UP, sign_out),
        _route("GET", "/auth/sessions", CLIENT_AND_UP, list_sessions),
        _route("DELETE", "/auth/sessions/{id}", CLIENT_AND_UP, delete_session),
        _route("POST", "/auth/oauth/token", None, oauth_token),
        *_authz_routes(),
        *_webhook_routes(),
        *(_route(*row) for row in messaging_routes()),
    ]
    anonymous_alias = r"/projects-anonymous-users/(?P<project_id>[^/]+)/\.well-known/(?P<rest>.+)"
    routes.append(
        Route(
            "GET",
            re.compile(anonymous_alias),
            None,
            anonymous_well_known,
            "/projects-anonymous-users/{project_id}/.well-known/{rest}",
        )
    )
    return routes


ROUTES = _routes()
