"""The emulator's user and team API keys against the contract (§9.6): Stack's key format, create
/ list / read / revoke / check, the check's order of errors, expiry by the emulator's clock, the
cascade from a deleted owner, client rules, and that only a digest of a key is kept."""

from __future__ import annotations

import re
import uuid
import zlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from fastapi_stack_auth.emulator import Emulator, User
from tests.emulator_helpers import (
    BASE_URL,
    UNKNOWN_UUID,
    Clock,
    client_headers,
    known_error,
    seed,
    server_headers,
)

KEY = re.compile(
    r"(?P<prefix>sk|pk)_[0-9a-hjkmnp-tv-z]{45}(?P<id>[0-9a-f]{32})(?P<kind>user|team)"
    r"(?P<flag>[0-9a-z])574ck4u7h(?P<crc>[0-9a-f]{8})"
)


@pytest.fixture
def emu(clock: Clock) -> Emulator:
    return Emulator(
        seed(allow_user_api_keys=True, allow_team_api_keys=True), public_url=BASE_URL, clock=clock
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def api(emu: Emulator) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=emu.app)
    async with httpx.AsyncClient(transport=transport, base_url=f"{BASE_URL}/api/v1") as client:
        yield client


async def check(api: httpx.AsyncClient, kind: str, key: str) -> httpx.Response:
    return await api.post(
        f"/{kind}-api-keys/check", json={"api_key": key}, headers=server_headers()
    )


def as_user(emu: Emulator, user: User) -> dict[str, str]:
    return client_headers(**{"x-stack-access-token": emu.sign_in(user.id).access_token})


@pytest.mark.parametrize(("kind", "is_public"), [("user", False), ("team", True)])
def test_keys_have_stacks_format(emu: Emulator, kind: str, is_public: bool) -> None:
    ada = emu.create_user(email="ada@example.com")
    owner = {"user_id": ada.id} if kind == "user" else {"team_id": emu.create_team("T").id}
    key = emu.create_api_key(**owner, is_public=is_public)
    match = KEY.fullmatch(key.value)
    assert match is not None
    assert len(key.value) == 102
    assert match["prefix"] == ("pk" if is_public else "sk")
    assert match["flag"] == ("3" if is_public else "1")  # self-hosted: 1 secret, 3 public
    assert (match["kind"], uuid.UUID(match["id"])) == (kind, uuid.UUID(key.id))
    assert int(match["crc"], 16) == zlib.crc32(key.value[:-8].encode())
    assert key.value not in repr(key)


async def test_user_key_lifecycle(api: httpx.AsyncClient, emu: Emulator, clock: Clock) -> None:
    ada = emu.create_user(email="ada@example.com")
    body = {"user_id": ada.id, "description": "ci", "expires_at_millis": None}
    created = await api.post("/user-api-keys", json=body, headers=server_headers())
    assert created.status_code == 200  # not 201, as in Stack
    key = created.json()
    assert KEY.fullmatch(key["value"])
    assert "expires_at_millis" not in key  # absent, not null, without an expiry
    assert "manually_revoked_at_millis" not in key
    assert (key["type"], key["user_id"], key["is_public"]) == ("user", ada.id, False)
    clock.now += 1
    later = emu.create_api_key(user_id=ada.id, description="later")
    listed = await api.get("/user-api-keys", params={"user_id": ada.id}, headers=server_headers())
    items = listed.json()["items"]
    assert [item["id"] for item in items] == [later.id, key["id"]]  # newest first
    assert items[1]["value"] == {"last_four": key["value"][-4:]}
    read = await api.get(f"/user-api-keys/{key['id']}", headers=server_headers())
    assert read.json() == items[1]
    checked = await check(api, "user", key["value"])
    assert checked.status_code == 200
    assert checked.json() == items[1]
    revoke = {"revoked": True, "description": "revoked ci"}
    revoked = await api.patch(f"/user-api-keys/{key['id']}", json=revoke, headers=server_headers())
    assert revoked.json()["manually_revoked_at_millis"] == emu.now_millis()
    assert revoked.json()["description"] == "revoked ci"
    known_error(await check(api, "user", key["value"]), 401, "API_KEY_REVOKED")
    for bad in ({"revoked": False}, {"value": "x"}):
        response = await api.patch(
            f"/user-api-keys/{key['id']}", json=bad, headers=server_headers()
        )
        known_error(response, 400, "SCHEMA_ERROR")
    unknown = await api.get(f"/user-api-keys/{UNKNOWN_UUID}", headers=server_headers())
    known_error(unknown, 404, "API_KEY_NOT_FOUND")


async def test_check_order(api: httpx.AsyncClient, emu: Emulator) -> None:
    ada = emu.create_user(email="ada@example.com")
    team = emu.create_team("Docs")
    user_key = emu.create_api_key(user_id=ada.id)
    team_key = emu.create_api_key(team_id=team.id, expires_in=-1)  # already expired
    emu.revoke_api_key(team_key.value)
    known_error(await check(api, "user", "sk_not_a_key"), 404, "API_KEY_NOT_FOUND")
    # The wrong kind comes before revoked and expired; revoked before expired.
    wrong = known_error(await check(api, "user", team_key.value), 400, "WRONG_API_KEY_TYPE")
    assert wrong["details"] == {"expected_type": "user", "actual_type": "team"}
    wrong = known_error(await check(api, "team", user_key.value), 400, "WRONG_API_KEY_TYPE")
    assert wrong["details"] == {"expected_type": "team", "actual_type": "user"}
    known_error(await check(api, "team", team_key.value), 401, "API_KEY_REVOKED")
    team_read = await api.get(f"/team-api-keys/{team_key.id}", headers=server_headers())
    assert team_read.json()["expires_at_millis"] < team_read.json()["manually_revoked_at_millis"]
    other_kind = await api.get(f"/user-api-keys/{team_key.id}", headers=server_headers())
    known_error(other_kind, 404, "API_KEY_NOT_FOUND")
    # Stack's spec names a POST /api-keys/check that the backend does not have.
    assert (await api.post("/api-keys/check", json={}, headers=server_headers())).status_code == 404
    client = await api.post("/user-api-keys/check", json={"api_key": "x"}, headers=client_headers())
    known_error(client, 401, "INSUFFICIENT_ACCESS_TYPE")
    missing = await api.post("/user-api-keys/check", json={}, headers=server_headers())
    known_error(missing, 400, "SCHEMA_ERROR")


async def test_expiry_follows_the_emulators_clock(
    api: httpx.AsyncClient, emu: Emulator, clock: Clock
) -> None:
    ada = emu.create_user(email="ada@example.com")
    key = emu.create_api_key(user_id=ada.id, expires_in=60)
    assert (await check(api, "user", key.value)).status_code == 200
    emu.advance_clock(60)
    assert (await check(api, "user", key.value)).status_code == 200  # expired only once past
    emu.advance_clock(0.001)
    known_error(await check(api, "user", key.value), 401, "API_KEY_EXPIRED")
    emu.reset()  # back to the clock's own time (and to the seed: the key is gone)
    assert emu.now() == clock.now
    body = {"user_id": "me", "description": "", "expires_at_millis": emu.now_millis() + 1000}
    ada = emu.create_user(email="ada@example.com")
    as_ada = {"x-stack-access-token": emu.sign_in(ada.id).access_token}
    created = await api.post("/user-api-keys", json=body, headers=server_headers(**as_ada))
    assert created.json()["expires_at_millis"] == body["expires_at_millis"]
    clock.now += 2
    known_error(await check(api, "user", created.json()["value"]), 401, "API_KEY_EXPIRED")


async def test_keys_of_a_deleted_owner_are_gone(api: httpx.AsyncClient, emu: Emulator) -> None:
    ada = emu.create_user(email="ada@example.com")
    team = emu.create_team("Docs", creator=ada.id)
    user_key, team_key = emu.create_api_key(user_id=ada.id), emu.create_api_key(team_id=team.id)
    await api.delete(f"/teams/{team.id}", headers=server_headers())
    known_error(await check(api, "team", team_key.value), 404, "API_KEY_NOT_FOUND")
    assert (await check(api, "user", user_key.value)).status_code == 200
    await api.delete(f"/users/{ada.id}", headers=server_headers())
    known_error(await check(api, "user", user_key.value), 404, "API_KEY_NOT_FOUND")
    assert emu.project.api_keys.by_id == {}
    assert emu.project.api_keys.by_digest == {}


@pytest.mark.parametrize("kind", ["user", "team"])
async def test_turned_off_key_types_answer_plain_400(kind: str) -> None:
    emu = Emulator(seed(), public_url=BASE_URL)  # API keys are off by default
    transport = httpx.ASGITransport(app=emu.app)
    owner = f"{kind}_id"
    async with httpx.AsyncClient(transport=transport, base_url=f"{BASE_URL}/api/v1") as api:
        for method, path, body in (
            (
                "POST",
                f"/{kind}-api-keys",
                {owner: UNKNOWN_UUID, "description": "", "expires_at_millis": None},
            ),
            ("GET", f"/{kind}-api-keys?{owner}={UNKNOWN_UUID}", None),
            ("POST", f"/{kind}-api-keys/check", {"api_key": "x"}),
        ):
            response = await api.request(method, path, json=body, headers=server_headers())
            assert response.status_code == 400
            assert response.text == f"{kind.title()} API keys are not enabled for this project."


async def test_create_checks(api: httpx.AsyncClient, emu: Emulator) -> None:
    ada = emu.create_user(email="ada@example.com")
    bodies: list[dict[str, Any]] = [
        {"user_id": ada.id, "expires_at_millis": None},  # no description
        {"user_id": ada.id, "description": ""},  # no expires_at_millis
        {"description": "", "expires_at_millis": None},  # no owner
        {"user_id": ada.id, "description": "", "expires_at_millis": None, "prefix": "x"},
    ]
    for body in bodies:
        response = await api.post("/user-api-keys", json=body, headers=server_headers())
        known_error(response, 400, "SCHEMA_ERROR")
    unknown = {"user_id": UNKNOWN_UUID, "description": "", "expires_at_millis": None}
    known_error(
        await api.post("/user-api-keys", json=unknown, headers=server_headers()),
        404,
        "USER_NOT_FOUND",
    )
    unknown_team = {"team_id": UNKNOWN_UUID, "description": "", "expires_at_millis": None}
    response = await api.post("/team-api-keys", json=unknown_team, headers=server_headers())
    known_error(response, 404, "TEAM_NOT_FOUND")
    missing = await api.get("/team-api-keys", headers=server_headers())
    known_error(missing, 400, "SCHEMA_ERROR")


async def test_client_rules(api: httpx.AsyncClient, emu: Emulator) -> None:
    ada, bob = emu.create_user(email="ada@example.com"), emu.create_user(email="bob@example.com")
    team = emu.create_team("Docs", creator=ada.id)  # ada: team_admin, with $manage_api_keys
    emu.add_member(team.id, bob.id)  # bob: team_member, without
    mine = {"user_id": "me", "description": "", "expires_at_millis": None}
    created = await api.post("/user-api-keys", json=mine, headers=as_user(emu, ada))
    assert created.json()["user_id"] == ada.id
    others = {**mine, "user_id": bob.id}
    refused = await api.post("/user-api-keys", json=others, headers=as_user(emu, ada))
    assert (refused.status_code, refused.text) == (403, "Client can only manage their own api keys")
    anonymous = await api.post("/user-api-keys", json=mine, headers=client_headers())
    known_error(anonymous, 400, "CANNOT_GET_OWN_USER_WITHOUT_USER")  # "me" with no user
    anonymous = await api.post("/user-api-keys", json=others, headers=client_headers())
    known_error(anonymous, 401, "USER_AUTHENTICATION_REQUIRED")
    team_key = {"team_id": team.id, "description": "", "expires_at_millis": None}
    # Without $manage_api_keys, or for a team that does not exist: API_KEY_NOT_FOUND alike.
    for body in (team_key, {**team_key, "team_id": UNKNOWN_UUID}):
        response = await api.post("/team-api-keys", json=body, headers=as_user(emu, bob))
        known_error(response, 404, "API_KEY_NOT_FOUND")
    allowed = await api.post("/team-api-keys", json=team_key, headers=as_user(emu, ada))
    assert allowed.json()["team_id"] == team.id
    listed = await api.get(f"/team-api-keys?team_id={team.id}", headers=as_user(emu, ada))
    assert [k["id"] for k in listed.json()["items"]] == [allowed.json()["id"]]
    key_id = created.json()["id"]
    refused = await api.patch(
        f"/user-api-keys/{key_id}", json={"revoked": True}, headers=as_user(emu, bob)
    )
    assert refused.status_code == 403


def test_only_a_digest_is_kept(emu: Emulator) -> None:
    ada = emu.create_user(email="ada@example.com")
    key = emu.create_api_key(user_id=ada.id)
    row = emu.project.api_keys.by_id[key.id]
    assert key.value not in repr(row)
    assert key.value not in repr(vars(row))
    assert len(row.digest) == 32
    assert emu.api_key(key.value) is row
    other = key.value[:-1] + ("1" if key.value.endswith("0") else "0")  # never the same key
    assert emu.api_key(other) is None
