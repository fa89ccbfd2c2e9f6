"""Hostile input for the principal dependencies, property-based: whatever a client sends in the
credential headers, the answer is never a 5xx, and Stack Auth's API-key check is asked only
about keys with Stack's exact format (length, prefix, alphabet, marker and CRC-32), judged here
by an oracle written apart from the library's.

Requests go through the real FastAPI app (``httpx.ASGITransport`` passes header bytes through
untouched) to a stand-in Stack behind an ``httpx.MockTransport`` that records every key it is
asked about. ``cache_ttl=0``: every accepted key is one call. Hypothesis runs derandomized,
without an example database.
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from fastapi_stack_auth import StackAuth
from fastapi_stack_auth._answers import AuthError
from fastapi_stack_auth._principals import ApiKeyPrincipal, CurrentPrincipal
from fastapi_stack_auth._tokens import credentials_from_headers
from tests.conftest import USER_ID, stack_error, user_body
from tests.test_api_keys import CROCKFORD_LOWER, key_body, make_key

HOSTILE = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.large_base_example,
        HealthCheck.data_too_large,
    ],
)
CLIENT_CODES = frozenset(
    {
        "NOT_AUTHENTICATED",
        "MALFORMED_CREDENTIALS",
        "INVALID_TOKEN",
        "TOKEN_EXPIRED",
        "INVALID_API_KEY",
        "API_KEY_REQUIRED",
        "WRONG_API_KEY_TYPE",
    }
)
#: Keys Stack knows (it answers 200 for them, API_KEY_NOT_FOUND for any other).
KNOWN = (make_key("user"), make_key("team"), make_key("user", public=True, flag="2"))
_ORACLE = re.compile(r"[sp]k_[0-9a-z]{45}[0-9a-f]{32}(user|team)[0-9a-z]574ck4u7h[0-9a-f]{8}")


def well_formed(key: str) -> bool:
    """Stack's format (§9.6), CRC included: the only keys Stack may be asked about."""
    return bool(_ORACLE.fullmatch(key)) and f"{zlib.crc32(key[:-8].encode()):08x}" == key[-8:]


@dataclass
class Upstream:
    """Stack Auth's check endpoints and ``GET /users/{id}``; anything else answers 404."""

    keys: list[str] = field(default_factory=list)
    unworthy: list[str] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path in ("/api/v1/user-api-keys/check", "/api/v1/team-api-keys/check"):
            key = json.loads(request.content)["api_key"]
            self.keys.append(key)
            if not well_formed(key) or key[80:84] not in path:
                self.unworthy.append(key)  # must never happen
            if key in KNOWN:
                return httpx.Response(200, json=key_body(key))
            return stack_error(404, "API_KEY_NOT_FOUND")
        if path == f"/api/v1/users/{USER_ID}":
            return httpx.Response(200, json=user_body())
        if path == "/api/v1/users/me":
            return stack_error(401, "UNPARSABLE_ACCESS_TOKEN")
        return httpx.Response(404, text="Not found")


@dataclass
class Harness:
    client: httpx.AsyncClient
    upstream: Upstream

    async def send(self, path: str, headers: list[tuple[bytes, bytes]]) -> httpx.Response:
        before = len(self.upstream.keys)
        response = await self.client.get(path, headers=headers)
        assert response.status_code < 500, response.text
        assert not self.upstream.unworthy, "a key that fails the pre-check went upstream"
        asked = self.upstream.keys[before:]
        assert len(asked) <= 1
        if response.status_code == 401:
            body = response.json()
            assert body["code"] in CLIENT_CODES, body
            assert response.headers["www-authenticate"].startswith("Bearer")
        else:
            assert response.status_code in (200, 403), response.text
        for key in asked:
            assert key[3:48] not in response.text
        return response


def build_app(stack: StackAuth) -> FastAPI:
    app = FastAPI()
    stack.init_app(app)

    @app.get("/principal")
    async def principal(caller: CurrentPrincipal) -> dict[str, Any]:
        return {"kind": caller.kind}

    @app.get("/key")
    async def key(caller: ApiKeyPrincipal) -> dict[str, Any]:
        return {"kind": caller.kind}

    return app


@pytest.fixture
async def harness(stack_settings: dict[str, Any]) -> AsyncIterator[Harness]:
    upstream = Upstream()
    transport = httpx.MockTransport(upstream)
    async with StackAuth(**stack_settings, cache_ttl=0, transport=transport) as stack:
        app = httpx.ASGITransport(app=build_app(stack))
        async with httpx.AsyncClient(transport=app, base_url="http://app.test") as client:
            yield Harness(client, upstream)


# --- strategies --------------------------------------------------------------------------------


@st.composite
def near_keys(draw: st.DrawFn) -> str:
    """A key Stack issued or could issue, then maybe bent by one edit."""
    kind = draw(st.sampled_from(["user", "team"]))
    key = draw(st.sampled_from(KNOWN) | st.builds(make_key, st.just(kind)))
    edit = draw(st.integers(0, 7))
    i = draw(st.integers(0, len(key) - 1))
    char = draw(st.sampled_from([*CROCKFORD_LOWER, "A", "_", "-", " ", "\t", "\u00e9", "\x00"]))
    if edit == 1:
        return key[:i] + char + key[i + 1 :]  # one character replaced
    if edit == 2:
        return key[:i] + key[i + 1 :]  # one dropped
    if edit == 3:
        return key[:i] + char + key[i:]  # one inserted
    if edit == 4:
        return key.upper()
    if edit == 5:
        return key[:80] + ("team" if kind == "user" else "user") + key[84:]
    if edit == 6:
        return f" {key}\t"  # whitespace around: stripped, still the key
    return key


def encoded(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


header_values = st.one_of(
    st.binary(max_size=150),
    st.text(max_size=120).map(encoded),
    near_keys().map(encoded),
    near_keys().map(lambda k: b"Bearer " + encoded(k)),
    st.tuples(st.sampled_from([b"sk_", b"pk_", b"Bearer sk_", b"Bearer pk_"]), st.binary()).map(
        b"".join
    ),
    st.sampled_from([b"", b"Bearer", b"Bearer ", b"sk_" * 40_000, b"\xff" * 100_000]),
)
CREDENTIAL_NAMES = st.sampled_from(
    [b"authorization", b"x-stack-api-key", b"x-stack-access-token", b"x-stack-auth"]
)
key_headers = st.one_of(
    st.tuples(st.just(b"x-stack-api-key"), near_keys().map(encoded)),
    st.tuples(st.just(b"authorization"), near_keys().map(lambda k: b"Bearer " + encoded(k))),
)
#: Mostly one credential header (a key, bent or not), else up to four of anything.
request_headers = st.one_of(
    key_headers.map(lambda header: [header]),
    st.tuples(CREDENTIAL_NAMES, header_values).map(lambda header: [header]),
    st.lists(st.tuples(CREDENTIAL_NAMES, header_values), max_size=4),
)


def key_sent(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The key the request carries, when the headers are readable and unambiguous."""
    try:
        return credentials_from_headers(headers)[1]
    except AuthError:
        return None


# --- the properties -----------------------------------------------------------------------------


@HOSTILE
@given(headers=request_headers, path=st.sampled_from(["/principal", "/key"]))
@example(headers=[(b"x-stack-api-key", encoded(KNOWN[0]))], path="/key")
@example(headers=[(b"authorization", b"Bearer " + encoded(KNOWN[1]))], path="/principal")
@example(headers=[(b"x-stack-api-key", encoded(KNOWN[0][:-1] + "\x00"))], path="/key")
@example(headers=[(b"x-stack-api-key", b"sk_\r\n")], path="/key")
async def test_any_header_values_never_give_a_5xx_and_reach_stack_only_well_formed(
    harness: Harness, headers: list[tuple[bytes, bytes]], path: str
) -> None:
    before = len(harness.upstream.keys)
    response = await harness.send(path, headers)
    key = key_sent(headers)
    asked = harness.upstream.keys[before:]
    event(f"{response.status_code} {response.json().get('code', '')}; Stack asked: {bool(asked)}")
    if key is None or not well_formed(key):
        assert asked == []
    if key is not None and key in KNOWN:
        assert response.status_code == 200


@HOSTILE
@given(key=near_keys())
async def test_a_bent_key_is_refused_unless_still_well_formed(harness: Harness, key: str) -> None:
    before = len(harness.upstream.keys)
    for headers in (
        [(b"x-stack-api-key", encoded(key))],
        [(b"authorization", b"Bearer " + encoded(key))],
    ):
        response = await harness.send("/key", headers)
        stripped = key.strip()
        if stripped in KNOWN:
            assert response.status_code == 200
        elif not well_formed(stripped):
            assert response.status_code == 401
            assert harness.upstream.keys[before:] == []
