"""``stack.server`` end to end over loopback against the emulator: teams, memberships, team and
project permissions (recursive as Stack lists them), API keys and session lists. The emulator
runs with a seed that allows API keys and defines ``docs:read`` < ``docs:delete`` and
``admin``."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator

import pytest

from fastapi_stack_auth import StackAuth, StackUser
from fastapi_stack_auth.emulator import Emulator, EmulatorServer, Seed
from fastapi_stack_auth.errors import (
    ApiKeyNotFoundError,
    ApiKeyRevokedError,
    PermissionNotFoundError,
    TeamMembershipAlreadyExistsError,
    TeamMembershipNotFoundError,
    TeamNotFoundError,
    WrongApiKeyTypeError,
)
from fastapi_stack_auth.testing import EmulatedStack

SEED = {
    "projects": [
        {
            "id": "7e57ab1e-7e57-4000-8000-0000000000aa",
            "secret_server_keys": [f"ssk_test_{secrets.token_hex(16)}"],
            "config": {"allow_user_api_keys": True, "allow_team_api_keys": True},
            "team_permission_definitions": [
                {"id": "docs:read"},
                {"id": "docs:delete", "contained_permission_ids": ["docs:read"]},
            ],
            "project_permission_definitions": [{"id": "admin"}],
        }
    ]
}


@pytest.fixture(scope="module")
def emulator_server() -> Iterator[EmulatorServer]:
    with EmulatorServer(Emulator(Seed.model_validate(SEED))) as server:
        yield server


@pytest.fixture
async def stack(emulator_server: EmulatorServer) -> AsyncIterator[StackAuth]:
    emulator_server.emulator.reset()
    emulated = EmulatedStack(emulator_server.emulator, emulator_server.url)
    async with emulated.stack_auth() as started:
        yield started


async def two_users(stack: StackAuth) -> tuple[StackUser, StackUser]:
    ada = await stack.server.users.create(primary_email="ada@example.com", display_name="Ada")
    bob = await stack.server.users.create(primary_email="bob@example.com", display_name="Bob")
    return ada, bob


async def test_teams_and_memberships(stack: StackAuth) -> None:
    server = stack.server
    ada, bob = await two_users(stack)
    team = await server.teams.create("Docs", creator_user_id=ada.id, server_metadata={"n": 1})
    assert (await server.teams.get(team.id)).server_metadata == {"n": 1}
    assert [t.id for t in await server.memberships.teams_of(ada.id)] == [team.id]
    assert await server.memberships.teams_of(bob.id) == []

    added = await server.memberships.add(team.id, bob.id)
    assert (added.team_id, added.user_id) == (team.id, bob.id)
    with pytest.raises(TeamMembershipAlreadyExistsError):
        await server.memberships.add(team.id, bob.id)
    members = {u.id async for u in server.memberships.members(team.id, page_size=1)}
    assert members == {ada.id, bob.id}

    renamed = await server.teams.update(team.id, display_name="Documents", server_metadata=None)
    assert (renamed.display_name, renamed.server_metadata) == ("Documents", None)
    assert {t.id for t in await server.teams.list()} == {team.id}

    await server.memberships.remove(team.id, bob.id)
    with pytest.raises(TeamMembershipNotFoundError):
        await server.memberships.remove(team.id, bob.id)
    await server.teams.delete(team.id)
    with pytest.raises(TeamNotFoundError):
        await server.teams.get(team.id)


async def test_team_permissions_are_recursive_by_default(stack: StackAuth) -> None:
    server = stack.server
    ada, bob = await two_users(stack)
    team = await server.teams.create("Docs", creator_user_id=ada.id)
    await server.memberships.add(team.id, bob.id)
    perms = server.team_permissions

    # The creator holds team_admin, which contains $update_team: only a recursive list says so.
    assert await perms.has(team.id, ada.id, "$update_team")
    direct = await perms.list(team_id=team.id, user_id=ada.id, recursive=False)
    assert [p.id for p in direct] == ["team_admin"]
    assert await perms.has(team.id, bob.id, "$read_members")  # team_member's
    assert not await perms.has(team.id, bob.id, "$update_team")

    granted = await perms.grant(team.id, bob.id, "docs:delete")
    assert (granted.id, granted.team_id, granted.user_id) == ("docs:delete", team.id, bob.id)
    assert await perms.has(team.id, bob.id, "docs:read")  # contained
    with pytest.raises(PermissionNotFoundError):
        await perms.revoke(team.id, bob.id, "docs:read")  # not granted directly
    await perms.revoke(team.id, bob.id, "docs:delete")
    assert not await perms.has(team.id, bob.id, "docs:read")
    with pytest.raises(PermissionNotFoundError):
        await perms.grant(team.id, bob.id, "no_such_permission")
    # An unknown team is an empty list, not an error (contract §11.10).
    assert await perms.list(team_id="0b1c2d3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e") == []


async def test_project_permissions(stack: StackAuth) -> None:
    server = stack.server
    ada, _ = await two_users(stack)
    perms = server.project_permissions
    assert not await perms.has(ada.id, "admin")
    granted = await perms.grant(ada.id, "admin")
    assert (granted.id, granted.user_id) == ("admin", ada.id)
    assert await perms.has(ada.id, "admin")
    assert [p.id for p in await perms.list(user_id=ada.id)] == ["admin"]
    await perms.revoke(ada.id, "admin")
    with pytest.raises(PermissionNotFoundError):
        await perms.revoke(ada.id, "admin")


async def test_api_keys_create_check_list_revoke(stack: StackAuth) -> None:
    keys = stack.server.api_keys
    ada, _ = await two_users(stack)
    new = await keys.create_user_key(ada.id, description="CI")
    value = new.value.get_secret_value()
    assert value.startswith("sk_")
    assert new.api_key.value == {"last_four": value[-4:]}

    checked = await keys.check_user_key(value)
    assert (checked.id, checked.user_id, checked.type) == (new.api_key.id, ada.id, "user")
    with pytest.raises(WrongApiKeyTypeError):
        await keys.check_team_key(value)
    assert [k.id for k in await keys.list_user_keys(ada.id)] == [new.api_key.id]

    revoked = await keys.revoke(new.api_key)
    assert revoked.manually_revoked_at_millis is not None
    with pytest.raises(ApiKeyRevokedError):
        await keys.check_user_key(value)
    with pytest.raises(ApiKeyNotFoundError):
        await keys.check_user_key(value[:-1] + ("0" if value[-1] != "0" else "1"))

    team = await stack.server.teams.create("Robots", creator_user_id=ada.id)
    team_key = await keys.create_team_key(team.id, description="deploy", is_public=True)
    assert team_key.value.get_secret_value().startswith("pk_")
    assert (await keys.check_team_key(team_key.value.get_secret_value())).team_id == team.id
    await keys.revoke_team_key(team_key.api_key.id, team_id=team.id)
    assert [
        k.manually_revoked_at_millis is not None for k in await keys.list_team_keys(team.id)
    ] == [True]


async def test_sessions_list_and_revoke(stack: StackAuth) -> None:
    sessions = stack.server.sessions
    ada, _ = await two_users(stack)
    first = await sessions.create(ada.id)
    await sessions.create(ada.id)
    listed = await sessions.list(ada.id)
    assert len(listed) == 2
    claims = (await stack.authenticate(first.access_token.get_secret_value())).claims
    ours = next(s for s in listed if s.id == claims.refresh_token_id)
    await sessions.revoke(ours.id, user_id=ada.id)
    assert [s.id for s in await sessions.list(ada.id)] == [s.id for s in listed if s.id != ours.id]
