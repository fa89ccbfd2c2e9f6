"""Authorization checks built on a principal dependency (``user=current_principal`` and the
like): a user's API key stands for its user, a team key is refused. Stack Auth mocked by respx;
the grants come from ``FakeStack`` of ``test_authorization``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import respx
from fastapi import Depends, FastAPI, Request, WebSocket
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from fastapi_stack_auth import StackAuth, StackUser
from fastapi_stack_auth._authorization import (
    TeamAccess,
    TeamMember,
    current_team_member,
    require_project_permission,
    require_team_permission,
)
from fastapi_stack_auth._principals import (
    PrincipalDependency,
    api_key_principal,
    current_principal,
)
from fastapi_stack_auth._requirements import any_of
from tests.conftest import USER_ID, mint_token, user_body
from tests.test_api_keys import checking, make_key
from tests.test_authorization import TEAM, FakeStack

# teams-list.server.json's other team: the key's user is a member of both.
PERSONAL_TEAM = "c4e7a9b1-2d3f-4a5b-9c6d-7e8f9a0b1c2d"

READ_DOCS = require_team_permission("docs:read", user=current_principal)
MACHINES_READ_DOCS = require_team_permission("docs:read", user=api_key_principal)
MEMBER = current_team_member(user=current_principal)
ADMIN = require_project_permission(any_of("admin", "reports:read"), user=current_principal)
TOKENS_ONLY = require_team_permission("docs:read")  # user=current_user, as before


def build_app(stack: StackAuth) -> FastAPI:
    app = FastAPI()
    stack.init_app(app)

    @app.get("/teams/{team_id}/docs")
    async def read_docs(request: Request, access: TeamAccess = Depends(READ_DOCS)) -> Any:
        principal = request.state.stack_principal
        return {
            "user": access.user.id,
            "team": access.team_id,
            "by_key": principal.api_key is not None,
        }

    @app.get("/machines/teams/{team_id}/docs")
    async def machine_docs(access: TeamAccess = Depends(MACHINES_READ_DOCS)) -> Any:
        return {"user": access.user.id, "team": access.team_id}

    @app.get("/teams/{team_id}")
    async def team(member: TeamMember = Depends(MEMBER)) -> Any:
        return {"team": member.team_id, "user": member.user.id}

    @app.get("/admin")
    async def admin(user: StackUser = Depends(ADMIN)) -> Any:
        return {"admin": user.id}

    @app.get("/tokens-only/teams/{team_id}", dependencies=[Depends(TOKENS_ONLY)])
    async def tokens_only(team_id: str) -> Any:
        return {"team": team_id}

    @app.websocket("/ws/teams/{team_id}")
    async def ws(websocket: WebSocket, access: TeamAccess = Depends(READ_DOCS)) -> None:
        await websocket.accept()
        await websocket.send_json({"team": access.team_id, "user": access.user.id})
        await websocket.close()

    return app


@pytest.fixture
def fake(mock_api: respx.MockRouter) -> FakeStack:
    """Stack's permission and team lists, the test user by token and by id, and every
    well-formed key as a live one (a user key is the test user's)."""
    served = FakeStack()
    mock_api.get("/users/me").respond(200, json=user_body())
    mock_api.get(f"/users/{USER_ID}").respond(200, json=user_body())
    mock_api.get("/team-permissions").mock(side_effect=served.team_permissions)
    mock_api.get("/project-permissions").mock(side_effect=served.project_permissions)
    mock_api.get("/teams").mock(side_effect=served.teams)
    checking("user", mock_api)
    checking("team", mock_api)
    return served


@pytest.fixture
def client(stack_settings: dict[str, Any], fake: FakeStack) -> Iterator[TestClient]:
    with TestClient(build_app(StackAuth(**stack_settings))) as test_client:
        yield test_client


def calls(mock_api: respx.MockRouter, fragment: str) -> int:
    """Requests made to the routes whose pattern names ``fragment``."""
    return sum(route.call_count for route in mock_api.routes if fragment in repr(route))


def bearer(credential: str) -> dict[str, str]:
    return {"authorization": f"Bearer {credential}"}


def assert_refused(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["code"] == code


# --- a user key stands for its user -----------------------------------------------------------


def test_a_user_key_holds_its_users_team_permission(
    client: TestClient, fake: FakeStack, mock_api: respx.MockRouter
) -> None:
    fake.team_grants.add((USER_ID, TEAM, "docs:read"))
    key = make_key("user")
    for headers in (bearer(key), {"x-stack-api-key": key}):
        response = client.get(f"/teams/{TEAM}/docs", headers=headers)
        assert response.json() == {"user": USER_ID, "team": TEAM, "by_key": True}
    # The key was checked once, its user fetched once, and the permission asked once about
    # that user: the second request was answered from the caches.
    assert calls(mock_api, "user-api-keys/check") == 1
    assert calls(mock_api, f"/users/{USER_ID}") == 1
    query = {"team_id": TEAM, "user_id": USER_ID, "permission_id": "docs:read", "recursive": "true"}
    assert fake.asked == [("team-permissions", query)]


def test_a_user_key_is_refused_what_its_user_lacks(client: TestClient, fake: FakeStack) -> None:
    fake.team_grants.add((USER_ID, TEAM, "docs:write"))
    response = client.get(f"/teams/{TEAM}/docs", headers=bearer(make_key("user")))
    assert response.status_code == 403
    assert response.json() == {
        "detail": "Requires the team permission 'docs:read'",
        "code": "PERMISSION_REQUIRED",
    }


def test_an_access_token_still_passes_where_a_principal_is_taken(
    client: TestClient, fake: FakeStack
) -> None:
    fake.team_grants.add((USER_ID, TEAM, "docs:read"))
    response = client.get(f"/teams/{TEAM}/docs", headers=bearer(mint_token()))
    assert response.json() == {"user": USER_ID, "team": TEAM, "by_key": False}


def test_membership_and_project_permissions_by_key(client: TestClient, fake: FakeStack) -> None:
    key = make_key("user")
    response = client.get(f"/teams/{PERSONAL_TEAM}", headers=bearer(key))
    assert response.json() == {"team": PERSONAL_TEAM, "user": USER_ID}
    assert fake.asked == [("teams", {"user_id": USER_ID})]
    assert_refused(
        client.get("/teams/0e9d8c7b-6a5f-4e3d-9c2b-1a0f9e8d7c6b", headers=bearer(key)),
        403,
        "TEAM_MEMBERSHIP_REQUIRED",
    )
    assert_refused(client.get("/admin", headers=bearer(key)), 403, "PERMISSION_REQUIRED")
    fake.project_grants.add((USER_ID, "reports:read"))
    client.app.state.stack_auth.permissions.clear()
    assert client.get("/admin", headers=bearer(key)).json() == {"admin": USER_ID}


def test_api_key_principal_takes_keys_only(client: TestClient, fake: FakeStack) -> None:
    fake.team_grants.add((USER_ID, TEAM, "docs:read"))
    url = f"/machines/teams/{TEAM}/docs"
    assert client.get(url, headers=bearer(make_key())).json() == {"user": USER_ID, "team": TEAM}
    assert_refused(client.get(url, headers=bearer(mint_token())), 401, "API_KEY_REQUIRED")


# --- a team key has no user -------------------------------------------------------------------


def test_a_team_key_is_401_wrong_type_without_any_call(
    client: TestClient, fake: FakeStack, mock_api: respx.MockRouter
) -> None:
    fake.team_grants.add((USER_ID, TEAM, "docs:read"))
    team_key = make_key("team")
    for url in (
        f"/teams/{TEAM}/docs",
        f"/machines/teams/{TEAM}/docs",
        f"/teams/{TEAM}",
        "/admin",
    ):
        for headers in (bearer(team_key), {"x-stack-api-key": team_key}):
            response = client.get(url, headers=headers)
            assert response.status_code == 401, url
            assert response.json() == {
                "detail": "A team API key is not accepted here; send a user API key",
                "code": "WRONG_API_KEY_TYPE",
            }
            assert response.headers["www-authenticate"].startswith("Bearer")
    assert calls(mock_api, "api-keys/check") == 0
    assert fake.asked == []


def test_a_user_dependency_still_refuses_keys(client: TestClient, fake: FakeStack) -> None:
    # The default (user=current_user) is unchanged: an API key is not a user's token.
    fake.team_grants.add((USER_ID, TEAM, "docs:read"))
    response = client.get(f"/tokens-only/teams/{TEAM}", headers=bearer(make_key("user")))
    assert_refused(response, 401, "API_KEY_NOT_ACCEPTED")
    assert fake.asked == []
    granted = client.get(f"/tokens-only/teams/{TEAM}", headers=bearer(mint_token()))
    assert granted.json() == {"team": TEAM}


# --- the key's user policy --------------------------------------------------------------------


def test_a_restricted_users_key_is_refused_before_any_permission_call(
    client: TestClient, fake: FakeStack, mock_api: respx.MockRouter
) -> None:
    restricted = user_body(is_restricted=True, restricted_reason={"type": "email_not_verified"})
    mock_api.get(f"/users/{USER_ID}").respond(200, json=restricted)
    fake.team_grants.add((USER_ID, TEAM, "docs:read"))
    response = client.get(f"/teams/{TEAM}/docs", headers=bearer(make_key("user")))
    assert_refused(response, 403, "RESTRICTED_USER_NOT_ALLOWED")
    assert fake.asked == []


def test_a_principal_dependency_carries_its_policy(
    stack_settings: dict[str, Any], fake: FakeStack, mock_api: respx.MockRouter
) -> None:
    restricted = user_body(is_restricted=True, restricted_reason={"type": "email_not_verified"})
    mock_api.get(f"/users/{USER_ID}").respond(200, json=restricted)
    fake.team_grants.add((USER_ID, TEAM, "docs:read"))
    lenient = require_team_permission("docs:read", user=PrincipalDependency(allow_restricted=True))
    app = FastAPI()
    StackAuth(**stack_settings).init_app(app)

    @app.get("/teams/{team_id}", dependencies=[Depends(lenient)])
    async def team(team_id: str) -> dict[str, str]:
        return {"team": team_id}

    with TestClient(app) as client:
        assert client.get(f"/teams/{TEAM}", headers=bearer(make_key())).json() == {"team": TEAM}


# --- WebSockets -------------------------------------------------------------------------------


def _close_code(client: TestClient, path: str, headers: dict[str, str]) -> int:
    with (
        pytest.raises(WebSocketDisconnect) as info,
        client.websocket_connect(path, headers=headers) as ws,
    ):
        ws.receive_json()
    return info.value.code


def test_websockets_by_key(client: TestClient, fake: FakeStack, mock_api: respx.MockRouter) -> None:
    fake.team_grants.add((USER_ID, TEAM, "docs:read"))
    with client.websocket_connect(f"/ws/teams/{TEAM}", headers=bearer(make_key())) as ws:
        assert ws.receive_json() == {"team": TEAM, "user": USER_ID}
    other = "0e9d8c7b-6a5f-4e3d-9c2b-1a0f9e8d7c6b"
    assert _close_code(client, f"/ws/teams/{other}", bearer(make_key())) == 1008  # 403
    assert _close_code(client, f"/ws/teams/{TEAM}", bearer(make_key("team"))) == 1008  # 401
    assert calls(mock_api, "team-api-keys/check") == 0


# --- definitions ------------------------------------------------------------------------------


def test_a_team_only_principal_dependency_is_refused_when_the_route_is_defined() -> None:
    with pytest.raises(ValueError, match="kind='team'"):
        require_team_permission("docs:read", user=PrincipalDependency(kind="team"))
    with pytest.raises(ValueError, match="kind='team'"):
        current_team_member(user=PrincipalDependency(kind="team"))
    with pytest.raises(ValueError, match="two different"):
        require_project_permission(
            "admin", stack=StackAuth(), user=PrincipalDependency(stack=StackAuth())
        )


def test_the_principal_dependency_given_is_left_as_it_was() -> None:
    given = PrincipalDependency(allow_anonymous=True)
    check = require_team_permission("docs:read", user=given)
    assert given.kind is None  # current_principal elsewhere still takes team keys
    assert isinstance(check.user, PrincipalDependency)
    assert (check.user.kind, check.user.allow_anonymous) == ("user", True)
    users = PrincipalDependency(kind="user")
    assert require_project_permission("admin", user=users).user is users


def test_openapi_names_the_principal_scheme(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert schema["paths"]["/teams/{team_id}/docs"]["get"]["security"] == [
        {"StackAuthOrApiKey": []}
    ]
    assert schema["paths"]["/machines/teams/{team_id}/docs"]["get"]["security"] == [
        {"StackApiKey": []}
    ]
