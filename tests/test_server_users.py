"""``stack.server.users`` against a respx-mocked Stack: request shapes, parsing, pagination, the
``UNSET`` sentinel, safe path segments, and retries on GET only."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import respx

from fastapi_stack_auth import StackAuth, StackUser
from fastapi_stack_auth.errors import (
    StackBadResponseError,
    StackUnavailableError,
    StackValidationError,
    UserEmailAlreadyExistsError,
    UserNotFoundError,
)
from fastapi_stack_auth.server import UNSET, StackServer, UserPage
from tests.conftest import PROJECT_ID, SECRET_KEY, USER_ID, fixture_json, fixture_response

SECOND_USER = "9d2e4f6a-1b3c-4d5e-8f7a-6b5c4d3e2f1a"


def body_of(route: respx.Route) -> Any:
    return json.loads(route.calls.last.request.content)


def user(user_id: str) -> dict[str, Any]:
    return {**fixture_json("user.server.json"), "id": user_id}


@pytest.fixture
def server(stack: StackAuth) -> StackServer:
    return stack.server


async def test_get_sends_server_headers_and_parses_the_user(
    server: StackServer, mock_api: respx.MockRouter
) -> None:
    route = mock_api.get(f"/users/{USER_ID}").respond(200, json=fixture_json("user.server.json"))
    found = await server.users.get(USER_ID)
    assert isinstance(found, StackUser)
    assert found.id == USER_ID
    assert found.server_metadata == fixture_json("user.server.json")["server_metadata"]
    sent = route.calls.last.request
    assert sent.method == "GET"
    assert sent.headers["x-stack-access-type"] == "server"
    assert sent.headers["x-stack-project-id"] == PROJECT_ID
    assert sent.headers["x-stack-secret-server-key"] == SECRET_KEY
    assert "x-stack-access-token" not in sent.headers


async def test_get_unknown_user_raises_user_not_found(
    server: StackServer, mock_api: respx.MockRouter
) -> None:
    mock_api.get(f"/users/{USER_ID}").mock(
        return_value=fixture_response("errors/USER_NOT_FOUND.json")
    )
    with pytest.raises(UserNotFoundError) as info:
        await server.users.get(USER_ID)
    assert info.value.status_code == 404
    assert info.value.code == "USER_NOT_FOUND"


async def test_a_body_outside_the_contract_is_a_bad_response(
    server: StackServer, mock_api: respx.MockRouter
) -> None:
    mock_api.get(f"/users/{USER_ID}").respond(200, json={"id": USER_ID})  # no flags
    with pytest.raises(StackBadResponseError, match=r"GET /users/\{user_id\}"):
        await server.users.get(USER_ID)


async def test_list_follows_next_cursor_over_every_page(
    server: StackServer, mock_api: respx.MockRouter
) -> None:
    ids = [f"00000000-0000-4000-8000-00000000000{i}" for i in range(5)]

    def page(request: httpx.Request) -> httpx.Response:
        start = ids.index(request.url.params["cursor"]) if "cursor" in request.url.params else 0
        end = start + int(request.url.params["limit"])
        return httpx.Response(
            200,
            json={
                "items": [user(i) for i in ids[start:end]],
                "is_paginated": True,
                "pagination": {"next_cursor": ids[end] if end < len(ids) else None},
            },
        )

    route = mock_api.get("/users").mock(side_effect=page)
    found = [u.id async for u in server.users.list(page_size=2, team_id="t-1", query="ada")]
    assert found == ids
    sent = [dict(call.request.url.params) for call in route.calls]
    assert sent == [
        {"limit": "2", "team_id": "t-1", "query": "ada"},
        {"limit": "2", "team_id": "t-1", "query": "ada", "cursor": ids[2]},
        {"limit": "2", "team_id": "t-1", "query": "ada", "cursor": ids[4]},
    ]


def counting_pages(extra: int = 0) -> Any:
    """A ``/users`` handler whose users and cursors are "0", "1", ...; it sends ``extra``
    users more than asked for."""

    def page(request: httpx.Request) -> httpx.Response:
        start = int(request.url.params.get("cursor", "0"))
        size = int(request.url.params["limit"]) + extra
        return httpx.Response(
            200,
            json={
                "items": [user(str(i)) for i in range(start, start + size)],
                "is_paginated": True,
                "pagination": {"next_cursor": str(start + size)},
            },
        )

    return page


async def test_list_stops_at_limit_and_asks_for_no_more_than_needed(
    server: StackServer, mock_api: respx.MockRouter
) -> None:
    route = mock_api.get("/users").mock(side_effect=counting_pages())
    found = [u.id async for u in server.users.list(page_size=2, limit=3)]
    assert found == ["0", "1", "2"]
    assert [call.request.url.params["limit"] for call in route.calls] == ["2", "1"]


async def test_list_stops_at_limit_when_stack_sends_more(
    server: StackServer, mock_api: respx.MockRouter
) -> None:
    route = mock_api.get("/users").mock(side_effect=counting_pages(extra=5))
    found = [u.id async for u in server.users.list(page_size=2, limit=3)]
    assert found == ["0", "1", "2"]
    assert route.call_count == 1


async def test_list_with_limit_zero_asks_nothing(
    server: StackServer, mock_api: respx.MockRouter
) -> None:
    route = mock_api.get("/users").mock(side_effect=counting_pages())
    assert [u async for u in server.users.list(limit=0)] == []
    assert route.call_count == 0


async def test_list_sends_the_filters_stack_reads(
    server: StackServer, mock_api: respx.MockRouter
) -> None:
    route = mock_api.get("/users").respond(200, json=fixture_json("users-list.server.json"))
    found = [
        u
        async for u in server.users.list(
            order_by="signed_up_at", desc=True, only_anonymous=True, include_restricted=True
        )
    ]
    assert [u.id for u in found] == [USER_ID]
    assert dict(route.calls.last.request.url.params) == {
        "limit": "100",  # always: Stack's default is every user in one answer
        "order_by": "signed_up_at",
        "desc": "true",
        "include_anonymous": "true",  # implied by only_anonymous (Stack's rule)
        "include_restricted": "true",
        "only_anonymous": "true",
    }


async def test_list_refuses_a_repeating_cursor(
    server: StackServer, mock_api: respx.MockRouter
) -> None:
    mock_api.get("/users").respond(
        200,
        json={"items": [user(USER_ID)], "is_paginated": True, "pagination": {"next_cursor": "x"}},
    )
    with pytest.raises(StackBadResponseError, match="cursor repeats"):
        _ = [u async for u in server.users.list(page_size=1)]


async def test_list_page_returns_items_and_next_cursor(
    server: StackServer, mock_api: respx.MockRouter
) -> None:
    body = {**fixture_json("users-list.server.json"), "pagination": {"next_cursor": SECOND_USER}}
    route = mock_api.get("/users").respond(200, json=body)
    page = await server.users.list_page(cursor=USER_ID, page_size=1)
    assert isinstance(page, UserPage)
    assert [u.id for u in page.items] == [USER_ID]
    assert page.next_cursor == SECOND_USER
    assert dict(route.calls.last.request.url.params) == {"limit": "1", "cursor": USER_ID}


async def test_list_arguments_are_checked_before_any_request(server: StackServer) -> None:
    with pytest.raises(ValueError, match="page_size"):
        server.users.list(page_size=0)
    with pytest.raises(ValueError, match="limit"):
        server.users.list(limit=-1)


async def test_create_sends_only_the_fields_given(
    server: StackServer, mock_api: respx.MockRouter
) -> None:
    route = mock_api.post("/users").respond(201, json=fixture_json("user-create.server.json"))
    created = await server.users.create(
        primary_email="ada@example.com", display_name=None, server_metadata={"plan": "pro"}
    )
    assert created.id == SECOND_USER
    assert route.calls.last.request.headers["content-type"] == "application/json"
    assert body_of(route) == {
        "primary_email": "ada@example.com",
        "display_name": None,
        "server_metadata": {"plan": "pro"},
    }


async def test_create_with_nothing_sends_an_empty_object(
    server: StackServer, mock_api: respx.MockRouter
) -> None:
    route = mock_api.post("/users").respond(201, json=fixture_json("user-create.server.json"))
    await server.users.create()
    assert body_of(route) == {}


async def test_create_with_a_taken_email_raises(
    server: StackServer, mock_api: respx.MockRouter
) -> None:
    mock_api.post("/users").mock(
        return_value=fixture_response("errors/USER_EMAIL_ALREADY_EXISTS.json")
    )
    with pytest.raises(UserEmailAlreadyExistsError) as info:
        await server.users.create(
            primary_email="taken@example.com", primary_email_auth_enabled=True
        )
    assert info.value.details["would_work_if_email_was_verified"] is False


async def test_update_distinguishes_none_from_unset(
    server: StackServer, mock_api: respx.MockRouter
) -> None:
    route = mock_api.patch(f"/users/{USER_ID}").respond(200, json=fixture_json("user.server.json"))
    updated = await server.users.update(
        USER_ID,
        display_name=None,  # clear it
        client_read_only_metadata={"tier": 2},
        server_metadata={"stripe": "cus_1"},
        restricted_by_admin=False,
        password=UNSET,  # the default, spelled out: not sent
    )
    assert updated.id == USER_ID
    assert route.calls.last.request.method == "PATCH"
    assert body_of(route) == {
        "display_name": None,
        "client_read_only_metadata": {"tier": 2},
        "server_metadata": {"stripe": "cus_1"},
        "restricted_by_admin": False,
    }


async def test_update_schema_error_is_a_validation_error(
    server: StackServer, mock_api: respx.MockRouter
) -> None:
    mock_api.patch(f"/users/{USER_ID}").mock(
        return_value=fixture_response("errors/SCHEMA_ERROR.json")
    )
    with pytest.raises(StackValidationError) as info:
        await server.users.update(USER_ID, country_code="not a country")
    assert info.value.status_code == 400


async def test_delete(server: StackServer, mock_api: respx.MockRouter) -> None:
    route = mock_api.delete(f"/users/{USER_ID}").respond(
        200, json=fixture_json("delete-success.json")
    )
    assert await server.users.delete(USER_ID) is None
    assert route.call_count == 1


@pytest.mark.parametrize(
    ("user_id", "raw_path"),
    [
        ("..", b"/api/v1/users/%2E%2E"),
        (".", b"/api/v1/users/%2E"),
        ("../teams", b"/api/v1/users/..%2Fteams"),
        ("a/b", b"/api/v1/users/a%2Fb"),
        ("x?team_id=1#y", b"/api/v1/users/x%3Fteam_id%3D1%23y"),
        ("me me", b"/api/v1/users/me%20me"),
    ],
)
async def test_an_id_cannot_change_the_path(
    server: StackServer, mock_api: respx.MockRouter, user_id: str, raw_path: bytes
) -> None:
    route = mock_api.route().respond(200, json=fixture_json("user.server.json"))
    await server.users.get(user_id)
    sent = route.calls.last.request.url
    assert sent.raw_path == raw_path
    assert sent.params == httpx.QueryParams()


async def test_an_empty_id_is_refused_before_any_request(
    server: StackServer, mock_api: respx.MockRouter
) -> None:
    route = mock_api.route().respond(200, json={})
    for call in (server.users.get(""), server.users.delete("")):
        with pytest.raises(ValueError, match="non-empty"):
            await call
    assert route.call_count == 0


@pytest.fixture
def no_backoff(stack: StackAuth) -> list[float]:
    """Retries wait through this recorder instead of sleeping."""
    waited: list[float] = []

    async def sleep(seconds: float) -> None:
        waited.append(seconds)

    stack.client.sleep = sleep
    return waited


async def test_get_is_retried_after_a_503(
    server: StackServer, mock_api: respx.MockRouter, no_backoff: list[float]
) -> None:
    route = mock_api.get(f"/users/{USER_ID}").mock(
        side_effect=[
            httpx.Response(503),
            httpx.Response(200, json=fixture_json("user.server.json")),
        ]
    )
    assert (await server.users.get(USER_ID)).id == USER_ID
    assert route.call_count == 2
    assert len(no_backoff) == 1


@pytest.mark.parametrize("method", ["POST", "PATCH", "DELETE"])
async def test_writes_are_never_retried(
    server: StackServer, mock_api: respx.MockRouter, no_backoff: list[float], method: str
) -> None:
    route = mock_api.route(method=method).respond(503)
    calls = {
        "POST": lambda: server.users.create(display_name="x"),
        "PATCH": lambda: server.users.update(USER_ID, display_name="x"),
        "DELETE": lambda: server.users.delete(USER_ID),
    }
    with pytest.raises(StackUnavailableError):
        await calls[method]()
    assert route.call_count == 1
    assert no_backoff == []
