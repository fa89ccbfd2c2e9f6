"""``ApiKeys``: the format pre-check, Stack's check endpoints (respx), the cache by digest and
what each of Stack's answers becomes. The dependencies are in ``test_principals.py``."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import secrets
import uuid
import zlib
from typing import Any

import httpx
import pytest
import respx

from fastapi_stack_auth import StackAuth, StackUser
from fastapi_stack_auth._answers import AuthError, to_auth_error
from fastapi_stack_auth._api_keys import (
    API_KEY_LENGTH,
    dump_principal,
    load_principal,
    parse_api_key,
)
from fastapi_stack_auth._cache import TokenCache
from fastapi_stack_auth._exceptions import StackAuthError
from fastapi_stack_auth.models import ApiKey, Principal
from tests.conftest import USER_ID, fixture_json, fixture_response, user_body

TEAM_ID = "5b6c7d8e-9f0a-4b1c-8d2e-3f4a5b6c7d8e"
CROCKFORD_LOWER = "0123456789abcdefghjkmnpqrstvwxyz"
#: The contract's (made-up) key, from the create answer.
FIXTURE_KEY: str = fixture_json("api-key-create.user.json")["value"]


def make_key(
    kind: str = "user", key_id: str | None = None, *, public: bool = False, flag: str = "0"
) -> str:
    """A key in Stack's format (§9.6) with a random secret and a correct CRC-32."""
    secret = "".join(secrets.choice(CROCKFORD_LOWER) for _ in range(45))
    id_hex = (key_id or str(uuid.uuid4())).replace("-", "")
    body = f"{'pk' if public else 'sk'}_{secret}{id_hex}{kind}{flag}574ck4u7h"
    return body + f"{zlib.crc32(body.encode()):08x}"


def key_id_of(key: str) -> str:
    return str(uuid.UUID(key[48:80]))


def key_body(key: str, **overrides: Any) -> dict[str, Any]:
    """Stack's check answer for ``key`` (the contract's fixtures), with overrides."""
    kind = key[80:84]
    name = "api-key-check.user.json" if kind == "user" else "api-key-check.team.CONSTRUCTED.json"
    body: dict[str, Any] = fixture_json(name)
    body.pop("expires_at_millis", None)
    body.update(id=key_id_of(key), value={"last_four": key[-4:]})
    if kind == "user":
        body["user_id"] = USER_ID
    else:
        body["team_id"] = TEAM_ID
    body.update(overrides)
    return body


def checking(kind: str, mock_api: respx.MockRouter) -> respx.Route:
    """Stack's check endpoint for ``kind`` keys, answering each key as a live one."""

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=key_body(json.loads(request.content)["api_key"]))

    return mock_api.post(f"/{kind}-api-keys/check").mock(side_effect=answer)


@pytest.fixture
def user_check(mock_api: respx.MockRouter) -> respx.Route:
    return checking("user", mock_api)


@pytest.fixture
def team_check(mock_api: respx.MockRouter) -> respx.Route:
    return checking("team", mock_api)


@pytest.fixture
def user_get(mock_api: respx.MockRouter) -> respx.Route:
    return mock_api.get(f"/users/{USER_ID}").respond(200, json=user_body())


async def refused(stack: StackAuth, key: str, **kwargs: Any) -> AuthError:
    with pytest.raises(StackAuthError) as info:
        await stack.api_keys.verify(key, **kwargs)
    return to_auth_error(info.value)


# --- the format pre-check ---------------------------------------------------------------------


def test_the_contracts_key_and_fresh_keys_pass_the_pre_check() -> None:
    assert len(FIXTURE_KEY) == API_KEY_LENGTH
    assert parse_api_key(FIXTURE_KEY) == ("user", "7c8d9e0f1a2b4c3d9e4f5a6b7c8d9e0f")
    for kind in ("user", "team"):
        for public, flag in ((False, "0"), (False, "1"), (True, "2"), (True, "3")):
            key = make_key(kind, public=public, flag=flag)
            assert parse_api_key(key) == (kind, key[48:80])


def _flip(key: str, index: int) -> str:
    return key[:index] + ("1" if key[index] != "1" else "2") + key[index + 1 :]


MALFORMED = {
    "empty": "",
    "short": FIXTURE_KEY[:-1],
    "long": FIXTURE_KEY + "0",
    "newline": FIXTURE_KEY[:-1] + "\n",
    "other prefix": "xk" + FIXTURE_KEY[2:],
    "upper case": FIXTURE_KEY.upper(),
    "secret not base32": FIXTURE_KEY[:10] + "_" + FIXTURE_KEY[11:],
    "id not hex": FIXTURE_KEY[:50] + "g" + FIXTURE_KEY[51:],
    "no kind": FIXTURE_KEY.replace("user", "usex"),
    "no marker": FIXTURE_KEY.replace("574ck4u7h", "574ck4u7x"),
    "non-ascii": FIXTURE_KEY[:20] + "\u00e9" + FIXTURE_KEY[21:],
    "crc changed": FIXTURE_KEY[:-1] + ("0" if FIXTURE_KEY[-1] != "0" else "1"),
    "secret mistyped": _flip(FIXTURE_KEY, 10),
    "kind swapped": FIXTURE_KEY.replace("user", "team"),
    "a jwt": "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln",
}


@pytest.mark.parametrize("key", MALFORMED.values(), ids=MALFORMED.keys())
async def test_a_malformed_key_is_401_without_any_call(
    stack: StackAuth, user_check: respx.Route, team_check: respx.Route, key: str
) -> None:
    error = await refused(stack, key)
    assert (error.status_code, error.code) == (401, "INVALID_API_KEY")
    assert error.headers["WWW-Authenticate"].startswith("Bearer")
    assert user_check.call_count == team_check.call_count == 0
    assert len(stack.api_keys.cache) == 0


async def test_without_the_crc_check_the_structure_alone_is_judged(
    stack: StackAuth, user_check: respx.Route, user_get: respx.Route
) -> None:
    bad_crc = make_key()[:-8] + "00000000"
    stack.api_keys.check_crc = False
    assert (await stack.api_keys.verify(bad_crc)).kind == "user"
    assert (await refused(stack, "xk" + bad_crc[2:])).code == "INVALID_API_KEY"
    assert user_check.call_count == 1


# --- what Stack answers -----------------------------------------------------------------------


async def test_a_user_key_gives_its_user(
    stack: StackAuth, user_check: respx.Route, user_get: respx.Route
) -> None:
    key = make_key("user")
    principal = await stack.api_keys.verify(key)
    assert principal.kind == "user"
    assert isinstance(principal.user, StackUser)
    assert principal.user.id == USER_ID
    assert principal.team_id is None
    assert principal.claims is None
    assert principal.api_key is not None
    assert (principal.api_key.id, principal.api_key.type) == (key_id_of(key), "user")
    request = user_check.calls.last.request
    assert json.loads(request.content) == {"api_key": key}
    assert request.headers["x-stack-access-type"] == "server"
    assert "x-stack-access-token" not in request.headers
    assert user_get.call_count == 1


async def test_a_team_key_gives_its_team(stack: StackAuth, team_check: respx.Route) -> None:
    key = make_key("team", public=True, flag="2")
    principal = await stack.api_keys.verify(key)
    assert (principal.kind, principal.team_id, principal.user) == ("team", TEAM_ID, None)
    assert principal.api_key is not None
    assert principal.api_key.type == "team"
    assert team_check.call_count == 1


@pytest.mark.parametrize(
    ("fixture", "code"),
    [
        ("errors/API_KEY_NOT_FOUND.json", "INVALID_API_KEY"),
        ("errors/API_KEY_REVOKED.json", "API_KEY_REVOKED"),
        ("errors/API_KEY_EXPIRED.json", "API_KEY_EXPIRED"),
        ("errors/WRONG_API_KEY_TYPE.json", "INVALID_API_KEY"),
    ],
)
async def test_stacks_refusals_are_401_with_distinct_codes(
    stack: StackAuth, mock_api: respx.MockRouter, fixture: str, code: str
) -> None:
    route = mock_api.post("/user-api-keys/check").mock(return_value=fixture_response(fixture))
    key = make_key()
    for _ in range(3):  # remembered: a key sent in a loop costs one call per REJECTION_TTL
        error = await refused(stack, key)
        assert (error.status_code, error.code) == (401, code)
        assert error.headers["WWW-Authenticate"].startswith('Bearer realm="stack-auth"')
    assert route.call_count == 1
    assert list(stack.api_keys.rejected) == [hashlib.sha256(key.encode()).digest()]


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"manually_revoked_at_millis": 1767229260000}, "API_KEY_REVOKED"),
        ({"expires_at_millis": 1767229260000}, "API_KEY_EXPIRED"),
    ],
)
async def test_a_200_for_a_revoked_or_expired_key_is_still_refused(
    stack: StackAuth, mock_api: respx.MockRouter, overrides: dict[str, Any], code: str
) -> None:
    key = make_key("team")
    mock_api.post("/team-api-keys/check").respond(200, json=key_body(key, **overrides))
    assert (await refused(stack, key)).code == code


async def test_the_kind_a_route_asks_for_is_judged_without_a_call(
    stack: StackAuth, user_check: respx.Route, team_check: respx.Route
) -> None:
    for key, kind in ((make_key("team"), "user"), (make_key("user"), "team")):
        error = await refused(stack, key, kind=kind)
        assert (error.status_code, error.code) == (401, "WRONG_API_KEY_TYPE")
        assert f"send a {kind} API key" in error.detail
    assert user_check.call_count == team_check.call_count == 0


async def test_a_keys_user_deleted_in_between_is_an_invalid_key(
    stack: StackAuth, user_check: respx.Route, mock_api: respx.MockRouter
) -> None:
    mock_api.get(f"/users/{USER_ID}").mock(
        return_value=fixture_response("errors/USER_NOT_FOUND.json")
    )
    assert (await refused(stack, make_key())).code == "INVALID_API_KEY"


@pytest.mark.parametrize(
    "overrides",
    [
        {"id": str(uuid.uuid4())},  # another key than the one sent
        {"type": "team", "team_id": TEAM_ID},
        {"user_id": None},
        {"user_id": "../projects/current"},
        {"created_at_millis": "yesterday"},
    ],
)
async def test_an_answer_about_another_key_is_502(
    stack: StackAuth, mock_api: respx.MockRouter, user_get: respx.Route, overrides: dict[str, Any]
) -> None:
    key = make_key()
    mock_api.post("/user-api-keys/check").respond(200, json=key_body(key, **overrides))
    error = await refused(stack, key)
    assert (error.status_code, error.code) == (502, "STACK_AUTH_BAD_RESPONSE")
    assert user_get.call_count == 0
    assert len(stack.api_keys.rejected) == 0  # a fault is never remembered as a verdict


async def test_another_user_than_asked_for_is_502(
    stack: StackAuth, user_check: respx.Route, mock_api: respx.MockRouter
) -> None:
    mock_api.get(f"/users/{USER_ID}").respond(200, json=user_body(id=str(uuid.uuid4())))
    assert (await refused(stack, make_key())).status_code == 502


async def test_stack_down_is_503_and_not_remembered(
    stack: StackAuth, mock_api: respx.MockRouter, user_get: respx.Route
) -> None:
    route = mock_api.post("/user-api-keys/check").mock(side_effect=httpx.ConnectError("down"))
    key = make_key()
    error = await refused(stack, key)
    assert (error.status_code, error.code) == (503, "STACK_AUTH_UNAVAILABLE")
    assert int(error.headers["Retry-After"]) >= 1
    checking("user", mock_api)  # the same route, now answering
    assert (await stack.api_keys.verify(key)).kind == "user"
    assert route.call_count == 2


async def test_a_wrong_server_key_is_500_naming_the_setting(
    stack: StackAuth, mock_api: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    mock_api.post("/team-api-keys/check").mock(
        return_value=fixture_response("errors-constructed/INVALID_SECRET_SERVER_KEY.json")
    )
    with caplog.at_level(logging.ERROR, logger="fastapi_stack_auth"):
        error = await refused(stack, make_key("team"))
    assert (error.status_code, error.code) == (500, "SERVER_MISCONFIGURED")
    assert "STACK_SECRET_SERVER_KEY" in caplog.text


async def test_keys_not_enabled_is_500_naming_what_to_enable(
    stack: StackAuth, mock_api: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    disabled = fixture_response("errors/plain/USER_API_KEYS_DISABLED.json")
    mock_api.post("/user-api-keys/check").mock(return_value=disabled)
    key = make_key()
    with caplog.at_level(logging.ERROR, logger="fastapi_stack_auth"):
        first, second = await refused(stack, key), await refused(stack, key)
    assert (first.status_code, first.code) == (500, "SERVER_MISCONFIGURED")
    assert second.status_code == 500  # our fault: never remembered as the client's
    assert "User API keys are not enabled" in caplog.text
    assert "Stack Auth dashboard" in caplog.text


async def test_without_a_secret_server_key_no_call_is_made(
    stack_settings: dict[str, Any], mock_api: respx.MockRouter, user_check: respx.Route
) -> None:
    settings = {**stack_settings, "verify": "jwt", "secret_server_key": None}
    async with StackAuth(**settings) as stack:
        error = await refused(stack, make_key())
        assert (error.status_code, error.code) == (500, "SERVER_MISCONFIGURED")
        assert (await refused(stack, "sk_junk")).code == "INVALID_API_KEY"  # still the client's
    assert user_check.call_count == 0


# --- the cache --------------------------------------------------------------------------------


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def clocked(stack: StackAuth, clock: Clock) -> None:
    keys = stack.api_keys
    keys.clock = clock
    keys.cache = TokenCache(maxsize=100, ttl=stack.settings.cache_ttl, clock=clock)


async def test_cached_by_digest_until_the_keys_expiry(
    stack: StackAuth, mock_api: respx.MockRouter, user_get: respx.Route
) -> None:
    clock = Clock()
    clocked(stack, clock)
    key = make_key()
    expires = int((clock.now + 10) * 1000)  # sooner than cache_ttl (30 s)
    route = mock_api.post("/user-api-keys/check").respond(
        200, json=key_body(key, expires_at_millis=expires)
    )
    first = await stack.api_keys.verify(key)
    clock.now += 9.9
    assert await stack.api_keys.verify(key) is first
    assert (route.call_count, user_get.call_count) == (1, 1)  # the user is cached with the key
    assert list(stack.api_keys.cache._entries) == [hashlib.sha256(key.encode()).digest()]
    clock.now += 0.2
    route.mock(return_value=fixture_response("errors/API_KEY_EXPIRED.json"))
    assert (await refused(stack, key)).code == "API_KEY_EXPIRED"
    assert route.call_count == 2


async def test_a_key_without_expiry_is_asked_again_after_cache_ttl(
    stack: StackAuth, user_check: respx.Route, user_get: respx.Route
) -> None:
    clock = Clock()
    clocked(stack, clock)
    key = make_key()
    await stack.api_keys.verify(key)
    clock.now += stack.settings.cache_ttl - 0.1
    await stack.api_keys.verify(key)
    assert user_check.call_count == 1
    clock.now += 0.2
    await stack.api_keys.verify(key)
    assert user_check.call_count == 2


async def test_cache_ttl_zero_asks_every_time(
    stack_settings: dict[str, Any], user_check: respx.Route, user_get: respx.Route
) -> None:
    async with StackAuth(**stack_settings, cache_ttl=0) as stack:
        key = make_key()
        await stack.api_keys.verify(key)
        await stack.api_keys.verify(key)
    assert user_check.call_count == 2


async def test_100_concurrent_checks_of_one_key_make_one_call(
    stack: StackAuth, mock_api: respx.MockRouter, user_get: respx.Route
) -> None:
    started, release = asyncio.Event(), asyncio.Event()
    calls = 0
    key = make_key()

    async def slow_stack(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        started.set()
        await release.wait()
        return httpx.Response(200, json=key_body(key))

    mock_api.post("/user-api-keys/check").mock(side_effect=slow_stack)
    checks = [asyncio.create_task(stack.api_keys.verify(key)) for _ in range(100)]
    await started.wait()
    release.set()
    principals = await asyncio.gather(*checks)
    assert {p.user.id for p in principals if p.user} == {USER_ID}
    assert len(principals) == 100
    assert (calls, user_get.call_count) == (1, 1)


async def test_two_keys_are_two_entries(
    stack: StackAuth, user_check: respx.Route, team_check: respx.Route, user_get: respx.Route
) -> None:
    user_key, team_key = make_key("user"), make_key("team")
    assert (await stack.api_keys.verify(user_key)).kind == "user"
    assert (await stack.api_keys.verify(team_key)).kind == "team"
    assert len(stack.api_keys.cache) == 2


# --- the shared tier's codec ------------------------------------------------------------------


def test_a_principal_round_trips_and_is_never_trusted_past_the_keys_expiry() -> None:
    key = make_key()
    api_key_body = key_body(key, expires_at_millis=1_800_000_010_000, newer_field={"x": [1]})
    api_key = ApiKey.model_validate(api_key_body)
    user = StackUser.model_validate(user_body(future_field=True))
    principal = Principal(kind="user", user=user, api_key=api_key)
    loaded, until = load_principal(dump_principal(principal, 1_800_000_020.0))
    assert loaded == principal
    assert until == 1_800_000_010.0
    team = Principal(
        kind="team", team_id=TEAM_ID, api_key=api_key.model_copy(update={"expires_at_millis": None})
    )
    assert load_principal(dump_principal(team, 5.0)) == (team, 5.0)
    with pytest.raises(ValueError, match="only API-key principals"):
        dump_principal(Principal(kind="user", user=user), 5.0)  # a token's: never shared
