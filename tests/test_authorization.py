"""Authorization dependencies through FastAPI, Stack Auth mocked with respx: where the team
comes from, what Stack is asked, what the client is told, and the faults."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import respx
from fastapi import Depends, FastAPI, WebSocket
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from fastapi_stack_auth import StackAuth, StackUser, UserDependency
from fastapi_stack_auth._authorization import (
    TeamAccess,
    TeamMember,
    current_team_member,
    require_project_permission,
    require_team_permission,
)
from fastapi_stack_auth._requirements import TeamFrom, _team_id, all_of, any_of
from tests.conftest import USER_ID, fixture_json, mint_token, stack_error, user_body
from tests.jwt_helpers import JwksEndpoint, KeyRing

TEAM = "5b6c7d8e-9f0a-4b1c-8d2e-3f4a5b6c7d8e"  # teams-list.server.json's second team
UNKNOWN_TEAM = "0e9d8c7b-6a5f-4e3d-9c2b-1a0f9e8d7c6b"
OTHER_PROJECT = "7a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"


class FakeStack:
    """Stack's permission and team lists from a table of grants (already expanded, as
    ``recursive=true`` answers), counting what is asked."""

    def __init__(self) -> None:
        self.team_grants: set[tuple[str, str, str]] = set()  # (user, team, permission)
        self.project_grants: set[tuple[str, str]] = set()  # (user, permission)
        self.asked: list[tuple[str, dict[str, str]]] = []

    def team_permissions(self, request: httpx.Request) -> httpx.Response:
        q = dict(request.url.params)
        self.asked.append(("team-permissions", q))
        items = [
            {"id": p, "team_id": t, "user_id": u}
            for (u, t, p) in sorted(self.team_grants)
            if (u, t, p) == (q["user_id"], q["team_id"], q["permission_id"])
        ]
        return httpx.Response(200, json={"items": items, "is_paginated": False})

    def project_permissions(self, request: httpx.Request) -> httpx.Response:
        q = dict(request.url.params)
        self.asked.append(("project-permissions", q))
        items = [
            {"id": p, "user_id": u}
            for (u, p) in sorted(self.project_grants)
            if (u, p) == (q["user_id"], q["permission_id"])
        ]
        return httpx.Response(200, json={"items": items, "is_paginated": False})

    def teams(self, request: httpx.Request) -> httpx.Response:
        self.asked.append(("teams", dict(request.url.params)))
        return httpx.Response(200, json=fixture_json("teams-list.server.json"))

    def permission_ids(self) -> list[str]:
        return [q["permission_id"] for kind, q in self.asked if kind.endswith("permissions")]


@pytest.fixture
def fake(mock_api: respx.MockRouter) -> FakeStack:
    served = FakeStack()
    mock_api.get("/users/me").respond(200, json=user_body())
    mock_api.get("/team-permissions").mock(side_effect=served.team_permissions)
    mock_api.get("/project-permissions").mock(side_effect=served.project_permissions)
    mock_api.get("/teams").mock(side_effect=served.teams)
    return served


READ_DOCS = require_team_permission("docs:read")
READ_ORG_DOCS = require_team_permission("docs:read", team_from=TeamFrom.path("org"))
MEMBER = current_team_member()
ADMIN = require_project_permission("admin")


def build_app(stack: StackAuth) -> FastAPI:
    app = FastAPI()
    stack.init_app(app)

    @app.get("/teams/{team_id}/docs")
    async def read_docs(
        access: TeamAccess = Depends(READ_DOCS),
    ) -> dict[str, str]:
        return {"user": access.user.id, "team": access.team_id}

    @app.delete(
        "/teams/{team_id}/docs",
        dependencies=[Depends(require_team_permission(any_of("docs:delete", "team_admin")))],
    )
    async def delete_docs(team_id: str) -> dict[str, str]:
        return {"deleted": team_id}

    @app.put(
        "/teams/{team_id}/docs",
        dependencies=[Depends(require_team_permission(all_of("docs:read", "docs:write")))],
    )
    async def write_docs() -> dict[str, bool]:
        return {"written": True}

    @app.get("/orgs/{org}/docs")
    async def org_docs(
        access: TeamAccess = Depends(READ_ORG_DOCS),
    ) -> dict[str, str]:
        return {"team": access.team_id}

    by_header = require_team_permission("docs:read", team_from=TeamFrom.header("x-team-id"))

    @app.get("/documents")
    async def header_docs(access: TeamAccess = Depends(by_header)) -> dict[str, str]:
        return {"team": access.team_id}

    @app.get("/teams/{team_id}/header-docs")
    async def header_docs_with_path(access: TeamAccess = Depends(by_header)) -> dict[str, str]:
        return {"team": access.team_id}

    selected = require_team_permission("docs:read", team_from=TeamFrom.selected_team())

    @app.get("/teams/{team_id}/selected-docs")
    async def selected_docs(access: TeamAccess = Depends(selected)) -> dict[str, str]:
        return {"team": access.team_id}

    @app.get("/misnamed", dependencies=[Depends(READ_DOCS)])
    async def misnamed() -> None:
        return None

    @app.get("/teams/{team_id}")
    async def team(member: TeamMember = Depends(MEMBER)) -> dict[str, str]:
        return {"team": member.team_id, "name": member.team.display_name, "user": member.user.id}

    @app.get("/admin")
    async def admin(
        user: StackUser = Depends(ADMIN),
    ) -> dict[str, str]:
        return {"admin": user.id}

    @app.get(
        "/reports",
        dependencies=[Depends(require_project_permission(any_of("admin", "reports:read")))],
    )
    async def reports() -> dict[str, bool]:
        return {"ok": True}

    @app.websocket("/ws/teams/{team_id}")
    async def ws_team(websocket: WebSocket, access: TeamAccess = Depends(READ_DOCS)) -> None:
        await websocket.accept()
        await websocket.send_json({"team": access.team_id})
        await websocket.close()

    @app.websocket("/ws/teams/{team_id}/member")
    async def ws_member(websocket: WebSocket, member: TeamMember = Depends(MEMBER)) -> None:
        await websocket.accept()
        await websocket.send_json({"team": member.team_id})
        await websocket.close()

    @app.websocket("/ws/admin")
    async def ws_admin(websocket: WebSocket, user: StackUser = Depends(ADMIN)) -> None:
        await websocket.accept()
        await websocket.send_json({"admin": user.id})
        await websocket.close()

    return app


@pytest.fixture
def client(stack_settings: dict[str, Any], fake: FakeStack) -> Iterator[TestClient]:
    with TestClient(build_app(StackAuth(**stack_settings))) as test_client:
        test_client.headers["authorization"] = f"Bearer {mint_token()}"
        yield test_client


# --- team permissions: what is asked, what is answered -------------------------------------


def test_a_granted_team_permission_is_asked_of_stack_recursively(
    client: TestClient, fake: FakeStack
) -> None:
    fake.team_grants.add((USER_ID, TEAM, "docs:read"))
    response = client.get(f"/teams/{TEAM}/docs")
    assert response.status_code == 200
    assert response.json() == {"user": USER_ID, "team": TEAM}
    query = {"team_id": TEAM, "user_id": USER_ID, "permission_id": "docs:read", "recursive": "true"}
    assert fake.asked == [("team-permissions", query)]


def test_a_member_without_the_permission_gets_403_naming_only_the_permission(
    client: TestClient, fake: FakeStack
) -> None:
    fake.team_grants.add((USER_ID, TEAM, "docs:write"))
    response = client.get(f"/teams/{TEAM}/docs")
    assert response.status_code == 403
    assert response.json() == {
        "detail": "Requires the team permission 'docs:read'",
        "code": "PERMISSION_REQUIRED",
    }
    assert TEAM not in response.text
    assert USER_ID not in response.text


def test_an_unknown_team_is_403_not_500(client: TestClient, fake: FakeStack) -> None:
    # Stack lists no permissions for a team that does not exist (contract §11.10).
    response = client.get(f"/teams/{UNKNOWN_TEAM}/docs")
    assert (response.status_code, response.json()["code"]) == (403, "PERMISSION_REQUIRED")
    member = client.get(f"/teams/{UNKNOWN_TEAM}")
    assert member.status_code == 403
    assert member.json() == {
        "detail": "Membership of this team is required",
        "code": "TEAM_MEMBERSHIP_REQUIRED",
    }


@pytest.mark.parametrize(
    "team_id",
    [
        "not-a-uuid",
        "5b6c7d8e9f0a4b1c8d2e3f4a5b6c7d8e",  # no dashes
        "5b6c7d8e-9f0a-0b1c-8d2e-3f4a5b6c7d8e",  # version 0: Stack's schema refuses it
        "5b6c7d8e-9f0a-4b1c-cd2e-3f4a5b6c7d8e",  # not the RFC variant
        f"{TEAM}0",
    ],
)
def test_a_malformed_team_id_is_400_before_any_call(
    client: TestClient, fake: FakeStack, mock_api: respx.MockRouter, team_id: str
) -> None:
    started = mock_api.calls.call_count  # the JWKS, loaded at startup
    for path in (f"/teams/{team_id}/docs", f"/teams/{team_id}"):
        response = client.get(path)
        assert response.status_code == 400
        assert response.json() == {
            "detail": "The team id in the path parameter 'team_id' is not a valid UUID",
            "code": "INVALID_TEAM_ID",
        }
        assert team_id not in response.text
    assert mock_api.calls.call_count == started  # not even the user's token was checked


def test_only_team_ids_that_pass_are_remembered(client: TestClient, fake: FakeStack) -> None:
    # The check of a team id is remembered (an LRU of the last 1,024), but a refused one is
    # not: junk cannot fill it, and a refused id is refused again every time.
    before = _team_id.cache_info().currsize
    for junk in ("not-a-uuid", f"{TEAM}0", "5b6c7d8e-9f0a-0b1c-8d2e-3f4a5b6c7d8e"):
        for _ in range(2):
            assert client.get(f"/teams/{junk}").json()["code"] == "INVALID_TEAM_ID"
    assert _team_id.cache_info().currsize == before
    assert _team_id(TEAM.upper()) == TEAM
    assert _team_id.cache_info().currsize <= before + 1


def test_team_ids_are_compared_in_lower_case(client: TestClient, fake: FakeStack) -> None:
    fake.team_grants.add((USER_ID, TEAM, "docs:read"))
    response = client.get(f"/teams/{TEAM.upper()}/docs")
    assert response.json() == {"user": USER_ID, "team": TEAM}
    assert fake.asked[0][1]["team_id"] == TEAM


def test_any_of_is_satisfied_by_a_later_permission(client: TestClient, fake: FakeStack) -> None:
    fake.team_grants.add((USER_ID, TEAM, "team_admin"))
    assert client.delete(f"/teams/{TEAM}/docs").json() == {"deleted": TEAM}
    assert fake.permission_ids() == ["docs:delete", "team_admin"]


def test_any_of_stops_at_the_first_permission_held(client: TestClient, fake: FakeStack) -> None:
    fake.team_grants.add((USER_ID, TEAM, "docs:delete"))
    assert client.delete(f"/teams/{TEAM}/docs").status_code == 200
    assert fake.permission_ids() == ["docs:delete"]


def test_any_of_denied_names_every_alternative(client: TestClient, fake: FakeStack) -> None:
    response = client.delete(f"/teams/{TEAM}/docs")
    assert response.status_code == 403
    assert response.json()["detail"] == (
        "Requires the team permission one of 'docs:delete', 'team_admin'"
    )


def test_all_of_needs_every_permission_and_names_the_missing_one(
    client: TestClient, fake: FakeStack
) -> None:
    fake.team_grants.add((USER_ID, TEAM, "docs:read"))
    response = client.put(f"/teams/{TEAM}/docs")
    assert response.status_code == 403
    assert response.json() == {
        "detail": "Requires the team permission 'docs:write'",
        "code": "PERMISSION_REQUIRED",
    }
    fake.team_grants.add((USER_ID, TEAM, "docs:write"))
    fake.asked.clear()
    client.app.state.stack_auth.permissions.clear()
    assert client.put(f"/teams/{TEAM}/docs").json() == {"written": True}
    assert fake.permission_ids() == ["docs:read", "docs:write"]


def test_a_permission_another_team_grants_does_not_count(
    client: TestClient, fake: FakeStack
) -> None:
    fake.team_grants.add((USER_ID, UNKNOWN_TEAM, "docs:read"))
    assert client.get(f"/teams/{TEAM}/docs").status_code == 403


def test_an_upstream_answer_for_another_permission_is_no_grant(
    client: TestClient, mock_api: respx.MockRouter
) -> None:
    # Were Stack (or a proxy) to ignore the permission_id filter, the list would hold the
    # user's other permissions: none of them may pass for the one asked.
    item = {"id": "team_admin", "team_id": TEAM, "user_id": USER_ID}
    mock_api.get("/team-permissions").respond(200, json={"items": [item], "is_paginated": False})
    assert client.get(f"/teams/{TEAM}/docs").status_code == 403


# --- where the team comes from --------------------------------------------------------------


def test_a_named_path_parameter(client: TestClient, fake: FakeStack) -> None:
    fake.team_grants.add((USER_ID, TEAM, "docs:read"))
    assert client.get(f"/orgs/{TEAM}/docs").json() == {"team": TEAM}


def test_a_route_without_the_path_parameter_is_a_server_error(
    client: TestClient, fake: FakeStack, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="fastapi_stack_auth"):
        response = client.get("/misnamed")
    assert response.status_code == 500
    assert response.json()["code"] == "SERVER_MISCONFIGURED"
    assert "'/misnamed' has no path parameter 'team_id'" in caplog.text
    assert fake.asked == []


def test_the_header_source(client: TestClient, fake: FakeStack) -> None:
    fake.team_grants.add((USER_ID, TEAM, "docs:read"))
    assert client.get("/documents", headers={"x-team-id": TEAM}).json() == {"team": TEAM}

    missing = client.get("/documents")
    assert missing.status_code == 400
    assert missing.json() == {
        "detail": "A team is required: send its id in the 'x-team-id' header",
        "code": "TEAM_ID_REQUIRED",
    }
    assert client.get("/documents", headers={"x-team-id": ""}).json()["code"] == "TEAM_ID_REQUIRED"
    malformed = client.get("/documents", headers={"x-team-id": "team-1"})
    assert (malformed.status_code, malformed.json()["code"]) == (400, "INVALID_TEAM_ID")
    two = client.get("/documents", headers=[("x-team-id", TEAM), ("x-team-id", UNKNOWN_TEAM)])
    assert (two.status_code, two.json()["code"]) == (400, "INVALID_TEAM_ID")
    assert len(fake.asked) == 1


def test_the_header_source_never_falls_back_to_the_path(
    client: TestClient, fake: FakeStack
) -> None:
    fake.team_grants.add((USER_ID, TEAM, "docs:read"))
    response = client.get(f"/teams/{TEAM}/header-docs")
    assert (response.status_code, response.json()["code"]) == (400, "TEAM_ID_REQUIRED")
    granted = client.get(f"/teams/{UNKNOWN_TEAM}/header-docs", headers={"x-team-id": TEAM})
    assert granted.json() == {"team": TEAM}


def test_the_selected_team_source(
    client: TestClient, fake: FakeStack, mock_api: respx.MockRouter
) -> None:
    fake.team_grants.add((USER_ID, TEAM, "docs:read"))
    mock_api.get("/users/me").respond(200, json=user_body(selected_team_id=None))
    # No selected team: a 400, even with a team id in the path (no fallback).
    response = client.get(f"/teams/{TEAM}/selected-docs")
    assert response.status_code == 400
    assert response.json() == {
        "detail": "A team is required: the user has no selected team",
        "code": "TEAM_ID_REQUIRED",
    }
    mock_api.get("/users/me").respond(200, json=user_body(selected_team_id=TEAM))
    client.app.state.stack_auth.pipeline.cache.clear()
    selected = client.get(f"/teams/{UNKNOWN_TEAM}/selected-docs")
    assert selected.json() == {"team": TEAM}


# --- membership -----------------------------------------------------------------------------


def test_a_member_gets_the_team(client: TestClient, fake: FakeStack) -> None:
    response = client.get(f"/teams/{TEAM}")
    assert response.json() == {"team": TEAM, "name": "New Team", "user": USER_ID}
    assert fake.asked == [("teams", {"user_id": USER_ID})]


def test_membership_is_asked_once_per_user_for_all_their_teams(
    client: TestClient, fake: FakeStack
) -> None:
    first = "c4e7a9b1-2d3f-4a5b-9c6d-7e8f9a0b1c2d"
    assert client.get(f"/teams/{TEAM}").status_code == 200
    assert client.get(f"/teams/{first}").status_code == 200
    assert client.get(f"/teams/{UNKNOWN_TEAM}").status_code == 403
    assert len(fake.asked) == 1


# --- project permissions --------------------------------------------------------------------


def test_a_project_permission(client: TestClient, fake: FakeStack) -> None:
    assert client.get("/admin").json() == {
        "detail": "Requires the project permission 'admin'",
        "code": "PERMISSION_REQUIRED",
    }
    fake.project_grants.add((USER_ID, "admin"))
    client.app.state.stack_auth.permissions.clear()
    assert client.get("/admin").json() == {"admin": USER_ID}
    query = {"user_id": USER_ID, "permission_id": "admin", "recursive": "true"}
    assert fake.asked[-1] == ("project-permissions", query)


def test_project_any_of(client: TestClient, fake: FakeStack) -> None:
    fake.project_grants.add((USER_ID, "reports:read"))
    assert client.get("/reports").json() == {"ok": True}
    assert fake.permission_ids() == ["admin", "reports:read"]


# --- faults: never cached, answered as the user dependency answers them ---------------------


def test_stack_down_is_503_with_retry_after_and_not_cached(
    client: TestClient, fake: FakeStack, mock_api: respx.MockRouter
) -> None:
    fake.team_grants.add((USER_ID, TEAM, "docs:read"))
    route = mock_api.get("/team-permissions")
    route.side_effect = None
    route.respond(503, headers={"retry-after": "7"})
    response = client.get(f"/teams/{TEAM}/docs")
    assert response.status_code == 503
    assert response.json()["code"] == "STACK_AUTH_UNAVAILABLE"
    assert response.headers["retry-after"] == "7"
    route.mock(side_effect=fake.team_permissions)  # Stack is back: asked again at once
    assert client.get(f"/teams/{TEAM}/docs").status_code == 200


def test_stack_unreachable_for_membership_is_503(
    client: TestClient, mock_api: respx.MockRouter
) -> None:
    mock_api.get("/teams").mock(side_effect=httpx.ConnectError("refused"))
    response = client.get(f"/teams/{TEAM}")
    assert (response.status_code, response.json()["code"]) == (503, "STACK_AUTH_UNAVAILABLE")
    assert "retry-after" in response.headers


def test_a_wrong_server_key_is_500(
    client: TestClient, mock_api: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    for path in ("/team-permissions", "/project-permissions", "/teams"):
        mock_api.get(path).mock(return_value=stack_error(401, "INVALID_SECRET_SERVER_KEY"))
    with caplog.at_level(logging.ERROR, logger="fastapi_stack_auth"):
        for url in (f"/teams/{TEAM}/docs", "/admin", f"/teams/{TEAM}"):
            response = client.get(url)
            assert response.status_code == 500, url
            assert response.json()["code"] == "SERVER_MISCONFIGURED"
    assert "STACK_SECRET_SERVER_KEY" in caplog.text


def test_an_unreadable_answer_is_502(client: TestClient, mock_api: respx.MockRouter) -> None:
    mock_api.get("/team-permissions").respond(200, json={"items": "nope"})
    mock_api.get("/teams").respond(200, json={"items": [{"id": TEAM}], "is_paginated": False})
    for url in (f"/teams/{TEAM}/docs", f"/teams/{TEAM}"):
        response = client.get(url)
        assert (response.status_code, response.json()["code"]) == (502, "STACK_AUTH_BAD_RESPONSE")


def test_authentication_comes_before_permissions(client: TestClient, fake: FakeStack) -> None:
    del client.headers["authorization"]
    for url in (f"/teams/{TEAM}/docs", "/admin", f"/teams/{TEAM}"):
        response = client.get(url)
        assert (response.status_code, response.json()["code"]) == (401, "NOT_AUTHENTICATED")
    assert fake.asked == []


# --- WebSockets -----------------------------------------------------------------------------


def _close_code(client: TestClient, path: str) -> int:
    with pytest.raises(WebSocketDisconnect) as info, client.websocket_connect(path) as ws:
        ws.receive_json()
    return info.value.code


def test_websockets_are_guarded(
    client: TestClient, fake: FakeStack, mock_api: respx.MockRouter
) -> None:
    fake.team_grants.add((USER_ID, TEAM, "docs:read"))
    fake.project_grants.add((USER_ID, "admin"))
    with client.websocket_connect(f"/ws/teams/{TEAM}") as ws:
        assert ws.receive_json() == {"team": TEAM}
    with client.websocket_connect(f"/ws/teams/{TEAM}/member") as ws:
        assert ws.receive_json() == {"team": TEAM}
    with client.websocket_connect("/ws/admin") as ws:
        assert ws.receive_json() == {"admin": USER_ID}

    assert _close_code(client, f"/ws/teams/{UNKNOWN_TEAM}") == 1008  # 403
    assert _close_code(client, f"/ws/teams/{UNKNOWN_TEAM}/member") == 1008  # 403
    assert _close_code(client, "/ws/teams/not-a-uuid") == 1008  # 400
    del client.headers["authorization"]
    assert _close_code(client, f"/ws/teams/{TEAM}") == 1008  # 401
    assert _close_code(client, "/ws/admin") == 1008


def test_a_websocket_closes_1013_when_stack_is_down(
    client: TestClient, mock_api: respx.MockRouter
) -> None:
    mock_api.get("/team-permissions").respond(503)
    assert _close_code(client, f"/ws/teams/{TEAM}") == 1013


# --- several projects, user policy, definitions --------------------------------------------


def test_stack_argument_asks_that_project(
    stack_settings: dict[str, Any], mock_api: respx.MockRouter
) -> None:
    other = StackAuth(**{**stack_settings, "project_id": OTHER_PROJECT})
    theirs = {"x-stack-project-id": OTHER_PROJECT}
    mock_api.get("/users/me", headers=theirs).respond(200, json=user_body())
    their_grants = mock_api.get("/team-permissions", headers=theirs).respond(
        200, json={"items": [{"id": "docs:read", "team_id": TEAM, "user_id": USER_ID}]}
    )
    ours = mock_api.get("/team-permissions").respond(200, json={"items": []})
    app = build_app(StackAuth(**stack_settings))
    other.init_app(app)

    theirs_read = require_team_permission("docs:read", stack=other)

    @app.get("/other/teams/{team_id}")
    async def other_team(access: TeamAccess = Depends(theirs_read)) -> dict[str, str]:
        return {"team": access.team_id}

    with TestClient(app) as client:
        client.headers["authorization"] = f"Bearer {mint_token(project_id=OTHER_PROJECT)}"
        assert client.get(f"/other/teams/{TEAM}").json() == {"team": TEAM}
    assert their_grants.call_count == 1
    assert ours.call_count == 0  # the default project was never asked


def test_a_user_dependency_carries_its_policy(
    stack_settings: dict[str, Any], fake: FakeStack, mock_api: respx.MockRouter
) -> None:
    restricted = user_body(is_restricted=True, restricted_reason={"type": "email_not_verified"})
    mock_api.get("/users/me").respond(200, json=restricted)
    fake.team_grants.add((USER_ID, TEAM, "docs:read"))
    lenient = UserDependency(allow_restricted=True)
    app = build_app(StackAuth(**stack_settings))

    lenient_read = require_team_permission("docs:read", user=lenient)

    @app.get("/lenient/teams/{team_id}")
    async def lenient_team(access: TeamAccess = Depends(lenient_read)) -> dict[str, str]:
        return {"team": access.team_id}

    with TestClient(app) as client:
        client.headers["authorization"] = f"Bearer {mint_token()}"
        assert client.get(f"/teams/{TEAM}/docs").json()["code"] == "RESTRICTED_USER_NOT_ALLOWED"
        assert client.get(f"/lenient/teams/{TEAM}").json() == {"team": TEAM}


@pytest.mark.parametrize(
    "make",
    [
        lambda: require_team_permission("Docs:Delete"),
        lambda: require_team_permission("docs delete"),
        lambda: require_team_permission("$not_a_system_permission"),
        lambda: require_team_permission(any_of("docs:read", "bad id")),
        lambda: require_project_permission("$update_team"),
        lambda: require_project_permission(all_of()),
        lambda: require_team_permission("docs:read", user=UserDependency(optional=True)),
        lambda: require_team_permission(
            "docs:read", stack=StackAuth(), user=UserDependency(stack=StackAuth())
        ),
        lambda: TeamFrom.header(""),
    ],
)
def test_mistakes_are_refused_when_the_route_is_defined(make: Callable[[], object]) -> None:
    with pytest.raises(ValueError, match=r"permission|optional|two different|needs a name"):
        make()


def test_system_permissions_and_nesting_are_accepted() -> None:
    require_team_permission("$update_team")
    require_team_permission(any_of(all_of("docs:read", "docs:write"), "team_admin"))
    assert any_of(all_of("a", "b"), "c").describe() == "one of (all of 'a', 'b'), 'c'"


def test_openapi_shows_the_security_scheme(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert "StackAuth" in schema["components"]["securitySchemes"]
    assert schema["paths"]["/admin"]["get"]["security"] == [{"StackAuth": []}]
    assert schema["paths"]["/teams/{team_id}/docs"]["delete"]["security"] == [{"StackAuth": []}]


def test_jwt_mode_without_a_server_key_is_500_naming_the_setting(
    stack_settings: dict[str, Any],
    ring: KeyRing,
    endpoint: JwksEndpoint,
    mock_api: respx.MockRouter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = {**stack_settings, "verify": "jwt", "secret_server_key": None}
    asked = mock_api.get("/team-permissions").respond(200, json={"items": []})
    with TestClient(build_app(StackAuth(**settings))) as client:
        client.headers["authorization"] = f"Bearer {ring.mint()}"
        with caplog.at_level(logging.ERROR, logger="fastapi_stack_auth"):
            response = client.get(f"/teams/{TEAM}/docs")
    assert (response.status_code, response.json()["code"]) == (500, "SERVER_MISCONFIGURED")
    assert "STACK_SECRET_SERVER_KEY" in caplog.text
    assert asked.call_count == 0
