"""``stack.invalidation`` in one worker: what each method drops (exactly that), deleted users
refused in both modes, and loads in flight during an invalidation kept out of the caches.

Stack is mocked with respx; the caches are filled through the library's own paths, so that
each entry carries the tags the real code gives it.
"""

from __future__ import annotations

import asyncio
import json
import math
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import pytest
import respx

from fastapi_stack_auth import AuthError, StackAuth, _jwks
from fastapi_stack_auth._cache import TokenCache, token_key
from fastapi_stack_auth._denied import DeniedUsers
from fastapi_stack_auth._permissions import project_key, team_key, teams_key
from fastapi_stack_auth._subjects import member_subject, team_subject, user_subject
from tests.conftest import API_URL, PROJECT_ID, USER_ID, granted, mint_token, user_body
from tests.jwt_helpers import JwksEndpoint, KeyRing
from tests.test_api_keys import key_body, make_key

U = "0a1b2c3d-0000-4000-8000-000000000001"
V = "0a1b2c3d-0000-4000-8000-000000000002"
T = "7e7e7e7e-0000-4000-8000-0000000000a1"
T2 = "7e7e7e7e-0000-4000-8000-0000000000a2"


def team_body(team_id: str) -> dict[str, Any]:
    return {
        "id": team_id,
        "display_name": f"Team {team_id[-2:]}",
        "profile_image_url": None,
        "client_metadata": None,
        "client_read_only_metadata": None,
        "server_metadata": None,
        "created_at_millis": 1_700_000_000_000,
    }


#: Each user's selected team (embedded in full profiles) and teams.
SELECTED = {U: T, V: T2}
TEAMS = {U: [T, T2], V: [T2]}


def full_user(user_id: str) -> dict[str, Any]:
    team = SELECTED[user_id]
    return user_body(id=user_id, selected_team_id=team, selected_team=team_body(team))


class FakeStack:
    """Stack's answers for U and V: profiles, teams, every permission granted, API keys."""

    def __init__(self, mock_api: respx.MockRouter) -> None:
        self.me = mock_api.get("/users/me").mock(side_effect=self.users_me)
        for user in (U, V):
            mock_api.get(f"/users/{user}").respond(200, json=full_user(user))
        self.teams = mock_api.get("/teams").mock(side_effect=self.teams_of)
        self.team_grants = mock_api.get("/team-permissions").mock(side_effect=granted)
        self.project_grants = mock_api.get("/project-permissions").mock(side_effect=granted)
        self.user_keys = mock_api.post("/user-api-keys/check").mock(side_effect=self.check)
        self.team_keys = mock_api.post("/team-api-keys/check").mock(side_effect=self.check)
        self.owners: dict[str, dict[str, str]] = {}  # API key -> {"user_id"|"team_id": id}

    def users_me(self, request: httpx.Request) -> httpx.Response:
        token = request.headers["x-stack-access-token"]
        sub = jwt.decode(token, options={"verify_signature": False})["sub"]
        return httpx.Response(200, json=full_user(sub))

    def teams_of(self, request: httpx.Request) -> httpx.Response:
        user = request.url.params["user_id"]
        return httpx.Response(200, json={"items": [team_body(t) for t in TEAMS[user]]})

    def check(self, request: httpx.Request) -> httpx.Response:
        key = json.loads(request.content)["api_key"]
        return httpx.Response(200, json=key_body(key, **self.owners[key]))

    def key_of(self, **owner: str) -> str:
        key = make_key("user" if "user_id" in owner else "team")
        self.owners[key] = owner
        return key


@dataclass
class Seeded:
    """What ``seed`` put in the caches: a label per entry, and how to find each."""

    stack: StackAuth
    entries: dict[str, tuple[Callable[[], TokenCache[Any]], bytes]]

    def present(self) -> set[str]:
        return {label for label, (cache, key) in self.entries.items() if cache().get(key)}


async def seed(stack: StackAuth, ring: KeyRing, fake: FakeStack) -> Seeded:
    """One entry of every kind for U and V (and team keys for T and T2)."""
    pipeline, permissions, api_keys = stack.pipeline, stack.permissions, stack.api_keys
    entries: dict[str, tuple[Callable[[], TokenCache[Any]], bytes]] = {}
    for user in (U, V):
        token = ring.mint(sub=user)
        identity = await stack.authenticate(token)
        await pipeline.full_profile(token, identity)
        entries[f"identity {user}"] = (lambda: pipeline.cache, token_key(token))
        entries[f"profile {user}"] = (lambda: pipeline.profiles, token_key(token))
        await permissions.teams_of(user)
        entries[f"teams {user}"] = (lambda: permissions.teams, teams_key(user))
        for team in (T, T2):
            for permission in ("docs:read", "docs:write"):
                assert await permissions.has_team_permission(user, team, permission)
                label = f"team-permission {user} {team} {permission}"
                entries[label] = (
                    lambda: permissions.team_permissions,
                    team_key(user, team, permission),
                )
        assert await permissions.has_project_permission(user, "admin")
        entries[f"project-permission {user}"] = (
            lambda: permissions.project_permissions,
            project_key(user, "admin"),
        )
        key = fake.key_of(user_id=user)
        await api_keys.verify(key)
        entries[f"user key {user}"] = (lambda: api_keys.cache, token_key(key))
    for team in (T, T2):
        key = fake.key_of(team_id=team)
        assert (await api_keys.verify(key)).team_id == team
        entries[f"team key {team}"] = (lambda: api_keys.cache, token_key(key))
    seeded = Seeded(stack, entries)
    assert seeded.present() == set(entries)  # everything is cached
    return seeded


@pytest.fixture
async def jwt_stack(
    stack_settings: dict[str, Any], endpoint: JwksEndpoint
) -> AsyncIterator[StackAuth]:
    async with StackAuth(**stack_settings, verify="jwt") as started:
        yield started


@pytest.fixture
def fake(mock_api: respx.MockRouter) -> FakeStack:
    return FakeStack(mock_api)


def labels(*prefixes: str, of: set[str]) -> set[str]:
    return {label for label in of if label.startswith(prefixes)}


ALL_OF_U = (
    f"identity {U}",
    f"profile {U}",
    f"teams {U}",
    f"team-permission {U}",
    f"project-permission {U}",
    f"user key {U}",
)

# Each method, its arguments, and the entries it must drop (by label prefix).
EXPECTED: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "user_deleted": ((U,), ALL_OF_U),
    "user_changed": ((U,), (f"identity {U}", f"profile {U}", f"user key {U}")),
    "memberships_changed": ((U, T), (f"teams {U}", f"team-permission {U} {T}")),
    "team_permissions_changed": ((U, T), (f"team-permission {U} {T}",)),
    "project_permissions_changed": ((U,), (f"project-permission {U}",)),
    # T is in U's teams and is U's selected team (embedded in U's full profile and in the
    # user its key stands for); V's teams list holds T2 only.
    "team_changed": (
        (T,),
        (
            f"teams {U}",
            f"team-permission {U} {T}",
            f"team-permission {V} {T}",
            f"team key {T}",
            f"profile {U}",
            f"user key {U}",
        ),
    ),
}
EXPECTED["team_deleted"] = EXPECTED["team_changed"]


@pytest.mark.parametrize("method", sorted(EXPECTED))
async def test_each_method_drops_exactly_its_entries(
    method: str, jwt_stack: StackAuth, ring: KeyRing, fake: FakeStack
) -> None:
    seeded = await seed(jwt_stack, ring, fake)
    args, dropped = EXPECTED[method]
    everything = seeded.present()
    gone = labels(*dropped, of=everything)
    assert gone  # the expectation names real entries
    assert await getattr(jwt_stack.invalidation, method)(*args) is True  # no tier: all told
    assert seeded.present() == everything - gone


async def test_ids_are_matched_whatever_their_case(
    jwt_stack: StackAuth, ring: KeyRing, fake: FakeStack
) -> None:
    seeded = await seed(jwt_stack, ring, fake)
    before = seeded.present()
    await jwt_stack.invalidation.team_permissions_changed(U.upper(), T.upper())
    assert seeded.present() == before - labels(f"team-permission {U} {T}", of=before)


async def test_remote_identities_embedding_the_team_go_with_it(
    stack: StackAuth, mock_api: respx.MockRouter
) -> None:
    # The contract's user has c4e7... as selected team, embedded in the full profile that
    # remote mode caches as the identity's user.
    users_me = mock_api.get("/users/me").respond(200, json=user_body())
    token = mint_token()
    selected = user_body()["selected_team"]["id"]
    await stack.authenticate(token)
    await stack.invalidation.team_changed(T)  # another team: kept
    assert stack.pipeline.cache.get(token_key(token)) is not None
    await stack.invalidation.team_changed(selected)
    assert stack.pipeline.cache.get(token_key(token)) is None
    await stack.authenticate(token)
    assert users_me.call_count == 2


async def test_bad_ids_are_refused() -> None:
    stack = StackAuth(project_id=PROJECT_ID, verify="jwt", api_url=API_URL)
    with pytest.raises(ValueError, match="non-empty"):
        await stack.invalidation.user_deleted("")
    with pytest.raises(ValueError, match="non-empty"):
        await stack.invalidation.team_changed(None)  # type: ignore[arg-type]


# --- deleted users --------------------------------------------------------------------------


async def refused(stack: StackAuth, token: str) -> AuthError:
    with pytest.raises(AuthError) as info:
        await stack.authenticate(token)
    return info.value


async def test_a_deleted_users_cached_token_is_refused_in_jwt_mode_without_asking_stack(
    jwt_stack: StackAuth, ring: KeyRing, endpoint: JwksEndpoint, mock_api: respx.MockRouter
) -> None:
    token, other = ring.mint(sub=U), ring.mint(sub=V)
    assert (await jwt_stack.authenticate(token)).claims.sub == U
    await jwt_stack.authenticate(other)
    calls = len(mock_api.calls)
    await jwt_stack.invalidation.user_deleted(U)
    error = await refused(jwt_stack, token)
    assert (error.status_code, error.code) == (401, "USER_NOT_FOUND")
    assert "invalid_token" in (error.headers or {})["WWW-Authenticate"]
    fresh = ring.mint(sub=U)  # a token never seen before: the signature alone would pass
    assert (await refused(jwt_stack, fresh)).code == "USER_NOT_FOUND"
    assert len(mock_api.calls) == calls  # no upstream call at all
    assert (await jwt_stack.authenticate(other)).claims.sub == V  # others unaffected
    assert U in jwt_stack.invalidation.denied


async def test_a_deleted_users_cached_token_is_refused_in_remote_mode(
    stack: StackAuth, mock_api: respx.MockRouter
) -> None:
    # Stack still answers for the user here (a deletion it has not applied everywhere yet):
    # the memory of the deletion refuses it all the same.
    mock_api.get("/users/me").respond(200, json=user_body())
    token = mint_token()
    await stack.authenticate(token)
    await stack.invalidation.user_deleted(USER_ID)
    assert stack.pipeline.cache.get(token_key(token)) is None
    assert (await refused(stack, token)).code == "USER_NOT_FOUND"


async def test_a_deleted_users_api_keys_are_refused(
    jwt_stack: StackAuth, ring: KeyRing, fake: FakeStack
) -> None:
    key, team_key_of_t = fake.key_of(user_id=U), fake.key_of(team_id=T)
    await jwt_stack.api_keys.verify(key)
    await jwt_stack.api_keys.verify(team_key_of_t)
    await jwt_stack.invalidation.user_deleted(U)
    with pytest.raises(AuthError) as info:
        await jwt_stack.api_keys.verify(key)  # Stack (here) still answers: refused anyway
    assert (info.value.status_code, info.value.code) == (401, "INVALID_API_KEY")
    assert fake.user_keys.call_count == 2
    assert (await jwt_stack.api_keys.verify(team_key_of_t)).team_id == T  # a team's key lives


async def test_a_deleted_user_is_not_served_stale_while_stack_is_down(
    stack_settings: dict[str, Any], mock_api: respx.MockRouter
) -> None:
    route = mock_api.get("/users/me").respond(200, json=user_body())
    token = mint_token()
    async with StackAuth(**stack_settings, stale_grace=300, cache_ttl=0) as stack:
        await stack.authenticate(token)
        route.respond(503)
        assert (await stack.authenticate(token)).user.id == USER_ID  # served stale
        await stack.invalidation.user_deleted(USER_ID)
        assert (await refused(stack, token)).code == "USER_NOT_FOUND"


async def test_a_remote_load_in_flight_does_not_bring_a_deleted_user_back(
    stack: StackAuth, mock_api: respx.MockRouter
) -> None:
    started, release = asyncio.Event(), asyncio.Event()

    async def held(request: httpx.Request) -> httpx.Response:
        started.set()
        await release.wait()
        return httpx.Response(200, json=user_body())  # what Stack said before the deletion

    route = mock_api.get("/users/me").mock(side_effect=held)
    token = mint_token()
    request = asyncio.create_task(stack.authenticate(token))
    await started.wait()
    await stack.invalidation.user_deleted(USER_ID)
    release.set()
    with pytest.raises(AuthError) as info:
        await request
    assert info.value.code == "USER_NOT_FOUND"
    assert stack.pipeline.cache.get(token_key(token)) is None  # not cached
    assert (await refused(stack, token)).code == "USER_NOT_FOUND"
    assert route.call_count == 1  # the refusal is remembered like any other


async def test_a_jwt_load_in_flight_does_not_bring_a_deleted_user_back(
    stack_settings: dict[str, Any],
    ring: KeyRing,
    endpoint: JwksEndpoint,
    mock_api: respx.MockRouter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # JWT mode's only wait: a token signed with a key the worker has not seen yet is checked
    # once the key set is fetched again (no pause between refetches here).
    monkeypatch.setattr(_jwks, "REFETCH_INTERVAL", 0.0)
    async with StackAuth(**stack_settings, verify="jwt") as stack:
        ring.rotate()
        started, release = asyncio.Event(), asyncio.Event()

        async def held(request: httpx.Request) -> httpx.Response:
            started.set()
            await release.wait()
            return endpoint(request)

        mock_api.get(f"/projects/{PROJECT_ID}/.well-known/jwks.json").mock(side_effect=held)
        token = ring.mint(sub=U)
        request = asyncio.create_task(stack.authenticate(token))
        await started.wait()
        await stack.invalidation.user_deleted(U)
        release.set()
        with pytest.raises(AuthError) as info:
            await request
        assert info.value.code == "USER_NOT_FOUND"
        assert stack.pipeline.cache.get(token_key(token)) is None


async def test_a_permission_load_in_flight_is_answered_but_not_cached(
    jwt_stack: StackAuth, mock_api: respx.MockRouter
) -> None:
    started, release = asyncio.Event(), asyncio.Event()
    granted = {"items": [{"id": "docs:read", "team_id": T, "user_id": U}]}

    async def held(request: httpx.Request) -> httpx.Response:
        started.set()
        await release.wait()
        return httpx.Response(200, json=granted)  # read before the revocation

    route = mock_api.get("/team-permissions").mock(side_effect=held)
    asking = asyncio.create_task(jwt_stack.permissions.has_team_permission(U, T, "docs:read"))
    await started.wait()
    await jwt_stack.invalidation.team_permissions_changed(U, T)
    route.mock(return_value=httpx.Response(200, json={"items": []}))  # revoked
    release.set()
    assert await asking  # the question asked before the change gets its answer
    assert jwt_stack.permissions.team_permissions.get(team_key(U, T, "docs:read")) is None
    assert not await jwt_stack.permissions.has_team_permission(U, T, "docs:read")


async def test_a_load_in_flight_elsewhere_in_the_cache_is_not_shared_after_a_drop() -> None:
    # Later askers start a load of their own: the one in flight may predate the change.
    cache: TokenCache[str] = TokenCache(maxsize=10, ttl=30)
    started, release = asyncio.Event(), asyncio.Event()
    answers = iter(["before", "after"])

    async def loader() -> tuple[str, float]:
        started.set()
        await release.wait()
        return next(answers), math.inf

    first = asyncio.create_task(cache.get_or_load(b"k", loader, tags=lambda _: ("user:x",)))
    await started.wait()
    assert cache.drop("user:y") == 0  # any drop: the load cannot know what it read
    second = asyncio.create_task(cache.get_or_load(b"k", loader))
    release.set()
    assert {await first, await second} == {"before", "after"}
    assert cache.get(b"k") == "after"  # only the load started after the drop is kept


# --- the memory of deleted users ------------------------------------------------------------


def test_deleted_users_are_remembered_for_an_hour_from_the_deletion() -> None:
    now = [1_000_000.0]
    denied = DeniedUsers(clock=lambda: now[0])
    assert denied.seconds == 3600
    assert denied.add(U.upper(), now[0] - 10)
    assert U in denied
    assert U.upper() in denied
    assert not denied.add(V, now[0] - 3600)  # a record too old to matter
    assert V not in denied
    now[0] += 3589
    assert U in denied
    now[0] += 2
    assert U not in denied
    assert 42 not in denied  # not an id


def test_expired_deletions_are_dropped_as_new_ones_come() -> None:
    now = [1_000_000.0]
    denied = DeniedUsers(seconds=10, clock=lambda: now[0])
    for _ in range(1000):
        assert denied.add(str(uuid.uuid4()), now[0])
        now[0] += 1
    assert len(denied) <= 128  # never much more than what is live (10) or the floor (64)


def test_subject_tags_are_lower_case_and_distinct() -> None:
    assert user_subject(U.upper()) == user_subject(U) != team_subject(U)
    assert member_subject(U, T) != member_subject(T, U)
