"""``stack.server`` end to end: the library's client talking HTTP over loopback to the emulator
served by uvicorn (users and server-side sessions)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from fastapi_stack_auth import StackAuth
from fastapi_stack_auth.errors import StackAPIError, StackValidationError, UserNotFoundError
from fastapi_stack_auth.server import StackServer, stack_server
from fastapi_stack_auth.testing import EmulatedStack

pytest_plugins = ["fastapi_stack_auth.testing"]


@pytest.fixture
async def stack(stack_emulator: EmulatedStack) -> AsyncIterator[StackAuth]:
    async with stack_emulator.stack_auth() as started:
        yield started


async def test_users_create_get_update_delete(stack: StackAuth) -> None:
    users = stack.server.users
    created = await users.create(
        primary_email="ada@example.com",
        display_name="Ada",
        server_metadata={"plan": "pro"},
        client_metadata={"theme": "dark"},
    )
    assert (created.primary_email, created.display_name) == ("ada@example.com", "Ada")
    assert (await users.get(created.id)).server_metadata == {"plan": "pro"}

    updated = await users.update(
        created.id,
        display_name=None,  # cleared
        client_read_only_metadata={"tier": 2},
        server_metadata={"plan": "team"},
    )
    assert updated.display_name is None
    assert updated.client_read_only_metadata == {"tier": 2}
    assert updated.server_metadata == {"plan": "team"}
    assert updated.client_metadata == {"theme": "dark"}  # not given: left as it was

    await users.delete(created.id)
    with pytest.raises(UserNotFoundError):
        await users.get(created.id)
    with pytest.raises(UserNotFoundError):
        await users.delete(created.id)


async def test_list_walks_every_page(stack: StackAuth) -> None:
    users = stack.server.users
    created = [await users.create(display_name=f"member {i}") for i in range(5)]
    await users.create(display_name="other")
    expected = sorted(created, key=lambda u: (u.signed_up_at_millis, u.id))

    found = [u.id async for u in users.list(query="member", page_size=2)]
    assert found == [u.id for u in expected]
    assert [u.id async for u in users.list(query="member", page_size=2, limit=3)] == found[:3]
    newest_first = [u.id async for u in users.list(query="member", desc=True, page_size=4)]
    assert newest_first == found[::-1]

    page = await users.list_page(query="member", page_size=2)
    assert [u.id for u in page.items] == found[:2]
    assert page.next_cursor == found[2]


async def test_an_id_with_dots_or_slashes_stays_in_its_segment(stack: StackAuth) -> None:
    # Were ".." resolved, GET /users/.. would be GET /api/v1 and this one GET /projects/current,
    # whose project would not parse as a user (StackBadResponseError). Quoted, the emulator
    # sees a user id it refuses: a non-UUID (SCHEMA_ERROR), or a path it does not know (404).
    with pytest.raises(StackValidationError):
        await stack.server.users.get("..")
    with pytest.raises(StackAPIError) as info:
        await stack.server.users.get("x/../../projects/current")
    assert info.value.status_code in (400, 404)


async def test_a_server_session_signs_the_user_in(stack: StackAuth) -> None:
    user = await stack.server.users.create(primary_email="grace@example.com")
    tokens = await stack.server.sessions.create(user.id, expires_in_millis=60_000)
    identity = await stack.authenticate(tokens.access_token.get_secret_value())
    assert identity.user.id == user.id
    with pytest.raises(UserNotFoundError):
        await stack.server.sessions.create("0b1c2d3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e")


def test_stack_server_dependency_in_a_route(stack_emulator: EmulatedStack) -> None:
    stack = stack_emulator.stack_auth()
    app = FastAPI()
    stack.init_app(app)

    @app.post("/accounts")
    async def open_account(server: StackServer = Depends(stack_server)) -> dict[str, str]:
        user = await server.users.create(display_name="From a route")
        return {"id": user.id}

    with TestClient(app) as client:
        response = client.post("/accounts")
    assert response.status_code == 200
    assert stack_emulator.emulator.get_user(response.json()["id"]) is not None
