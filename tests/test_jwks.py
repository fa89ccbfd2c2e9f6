"""JWKS fetching and caching: Stack's three key sets per fetch, each key with its audience,
through the shared client, per Cache-Control, rate-limited refetches, last good keys kept; over
respx and over a real loopback server."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import secrets
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import respx

from fastapi_stack_auth._client import StackClient
from fastapi_stack_auth._jwks import (
    JwksCache,
    _coordinate,
    audience_keys,
    es256_public_key,
    freshness,
    parse_jwks,
)
from fastapi_stack_auth._settings import load_settings
from fastapi_stack_auth.errors import StackAPIError, StackBadResponseError, StackUnavailableError
from tests.conftest import PROJECT_ID, PUBLISHABLE_KEY, SECRET_KEY
from tests.jwt_helpers import (
    CONTRACT_FIXTURES,
    JWKS_PATH,
    KINDS,
    JwksEndpoint,
    KeyRing,
    SigningKey,
    b64url,
    jwks_app,
)
from tests.servers import serve_in_thread


class Clock:
    """A monotonic clock that moves only when told to."""

    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
async def client(stack_settings: dict[str, Any]) -> AsyncIterator[StackClient]:
    # One HTTP call per fetch, so that calls count fetches; retries within a fetch are
    # tested in test_faults.py.
    settings = load_settings(**stack_settings, verify="jwt", max_attempts=1)
    async with StackClient(settings) as opened:
        yield opened


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def cache(client: StackClient, clock: Clock) -> JwksCache:
    return JwksCache(client, PROJECT_ID, clock=clock)


def random_kid() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(9)).decode()


def unavailable(_request: httpx.Request) -> httpx.Response:
    return httpx.Response(503, text="down")


#: The query of each of Stack's three key sets, as a fetch asks for them.
KEY_SET_QUERIES = [{}, {"include_restricted": "true"}, {"include_anonymous": "true"}]
AUDIENCES = {
    "normal": PROJECT_ID,
    "restricted": f"{PROJECT_ID}:restricted",
    "anonymous": f"{PROJECT_ID}:anon",
}


def ring_bodies(ring: KeyRing) -> list[dict[str, Any]]:
    """What Stack answers for its plain, ``include_restricted`` and ``include_anonymous`` sets."""
    return [ring.jwks(KINDS[:1]), ring.jwks(KINDS[:2]), ring.jwks()]


# --- fetching ----------------------------------------------------------------------------------


async def test_fetches_every_audience_without_our_credentials(
    cache: JwksCache, endpoint: JwksEndpoint, ring: KeyRing
) -> None:
    await cache.load()
    assert endpoint.fetches == 1
    assert sorted((dict(r.url.params) for r in endpoint.requests), key=len) == KEY_SET_QUERIES
    for request in endpoint.requests:
        assert request.method == "GET"
        assert request.url.path == JWKS_PATH
        headers = {name.lower() for name in request.headers}
        for forbidden in (
            "x-stack-access-type",
            "x-stack-project-id",
            "x-stack-secret-server-key",
            "x-stack-publishable-client-key",
            "x-stack-access-token",
        ):
            assert forbidden not in headers
        assert SECRET_KEY not in str(request.headers)
        assert PUBLISHABLE_KEY not in str(request.headers)
    all_kids = {key.kid for keys in ring.keys.values() for key in keys}
    assert cache.loaded
    assert cache.kids == all_kids
    assert len(all_kids) == 6


async def test_each_key_belongs_to_the_audience_whose_set_adds_it(
    cache: JwksCache, endpoint: JwksEndpoint, ring: KeyRing
) -> None:
    """Issue 9.8: Stack verifies a token only with its ``aud``'s keys; so must we."""
    await cache.load()
    for kind, keys in ring.keys.items():
        for key in keys:
            assert cache.audience_of(key.kid) == AUDIENCES[kind], kind
            assert cache.cached(key.kid) is not None
    assert cache.audience_of(random_kid()) is None


async def test_the_three_key_sets_are_fetched_concurrently(
    cache: JwksCache, ring: KeyRing, mock_api: respx.MockRouter
) -> None:
    served = JwksEndpoint(ring)
    arrived = asyncio.Event()

    async def all_three_first(request: httpx.Request) -> httpx.Response:
        response = served(request)
        if served.calls == 3:
            arrived.set()
        # A fetch asking one set after another would never send the third request.
        await asyncio.wait_for(arrived.wait(), timeout=10)
        return response

    mock_api.get(f"/projects/{PROJECT_ID}/.well-known/jwks.json").mock(side_effect=all_three_first)
    await cache.load()
    assert served.calls == 3
    assert cache.audience_of(ring.signer("anonymous").kid) == AUDIENCES["anonymous"]


async def test_fresh_keys_are_served_without_any_io(
    cache: JwksCache, endpoint: JwksEndpoint, ring: KeyRing
) -> None:
    await cache.load()
    kid = ring.signer().kid
    for _ in range(100):
        assert cache.cached(kid) is not None
        assert await cache.get(kid) is cache.cached(kid)
    assert endpoint.fetches == 1


async def test_load_at_startup_is_shared_by_concurrent_first_users(
    cache: JwksCache, endpoint: JwksEndpoint, ring: KeyRing
) -> None:
    kid = ring.signer().kid
    keys = await asyncio.gather(*(cache.get(kid) for _ in range(20)))
    assert all(key is keys[0] and key is not None for key in keys)
    assert endpoint.fetches == 1


async def test_contract_fixture_jwks_parses_to_six_keys() -> None:
    body = KeyRing.from_contract_fixtures().jwks()
    assert len(parse_jwks(body)) == 6


def test_contract_fixture_key_sets_give_each_key_its_audience() -> None:
    bodies = [
        json.loads((CONTRACT_FIXTURES / name).read_text())
        for name in ("jwks.json", "jwks.include_restricted.json", "jwks.include_anonymous.json")
    ]
    private = json.loads((CONTRACT_FIXTURES / "tokens" / "jwks.private.TEST-ONLY.json").read_text())
    project = private["audiences"]["normal"]["aud"]
    keys = audience_keys(bodies, project)
    expected = {
        jwk["kid"]: audience["aud"]
        for audience in private["audiences"].values()
        for jwk in audience["keys"]
    }
    assert {kid: aud for kid, (_, aud) in keys.items()} == expected
    assert set(expected.values()) == {project, f"{project}:restricted", f"{project}:anon"}


def test_audience_keys_takes_the_first_set_holding_a_key_and_drops_conflicts() -> None:
    ring = KeyRing()
    plain, restricted, anonymous = ring_bodies(ring)
    keys = audience_keys([plain, restricted, anonymous], PROJECT_ID)
    assert {kid: aud for kid, (_, aud) in keys.items()} == {
        key.kid: AUDIENCES[kind] for kind in KINDS for key in ring.keys[kind]
    }
    # A kid that names another key in a later set names no key at all (which one would it be?).
    normal = ring.signer()
    impostor = SigningKey.generate(normal.kid).public_jwk()
    anonymous["keys"] = [impostor if jwk["kid"] == normal.kid else jwk for jwk in anonymous["keys"]]
    keys = audience_keys([plain, restricted, anonymous], PROJECT_ID)
    assert set(keys) == {key.kid for kind in KINDS for key in ring.keys[kind]} - {normal.kid}
    # And with no key left, the answer is unusable.
    with pytest.raises(StackBadResponseError):
        audience_keys(
            [{"keys": [impostor]}, {"keys": [normal.public_jwk()]}, {"keys": [impostor]}],
            PROJECT_ID,
        )


# --- parsing -----------------------------------------------------------------------------------


def _jwk(**changes: Any) -> dict[str, Any]:
    jwk: dict[str, Any] = SigningKey.generate().public_jwk()
    jwk.update(changes)
    return {key: value for key, value in jwk.items() if value is not None}


def test_parse_keeps_only_usable_es256_keys() -> None:
    good = _jwk(kid="good")
    duplicate = _jwk(kid="twice")
    other_point = SigningKey.generate().public_jwk()
    body = {
        "keys": [
            good,
            _jwk(kid="sig-use", use="sig", key_ops=["verify"]),
            {"kty": "RSA", "kid": "rsa", "n": "AQAB", "e": "AQAB"},
            _jwk(kid="p384", crv="P-384"),
            _jwk(kid="es384", alg="ES384"),
            _jwk(kid="enc", use="enc"),
            _jwk(kid="sign-only", key_ops=["sign"]),
            _jwk(kid="off-curve", y=other_point["y"]),
            _jwk(kid="short-x", x="AAAA"),
            _jwk(kid="bad-b64", x="!" * 43),
            _jwk(kid=None),
            _jwk(kid=""),
            _jwk(kid=7),
            _jwk(kid="k" * 129),
            duplicate,
            _jwk(kid="twice"),
            "not an object",
        ]
    }
    assert set(parse_jwks(body)) == {"good", "sig-use"}


def test_parse_pads_short_coordinates_and_refuses_long_or_off_curve_points() -> None:
    short = SigningKey.generate_short()
    jwk = short.public_jwk(minimal=True)  # as Stack serialises it: no leading zero byte
    assert 42 in (len(jwk["x"]), len(jwk["y"]))
    key = parse_jwks({"keys": [jwk]})[short.kid]
    assert key.public_numbers() == short.private.public_key().public_numbers()
    numbers = short.private.public_key().public_numbers()
    for bad in (
        {**jwk, "x": b64url(numbers.x.to_bytes(33, "big"))},  # a zero byte too many
        {**jwk, "y": b64url((numbers.y ^ 1).to_bytes(32, "big"))},  # not on P-256
    ):
        assert es256_public_key(bad) is None
        with pytest.raises(StackBadResponseError):
            parse_jwks({"keys": [bad]})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (b64url(b"\x01" * 32), b"\x01" * 32),
        (b64url(b"\x01" * 31), b"\x00" + b"\x01" * 31),  # 42 characters: left-padded
        (b64url(b"\x01" * 30), b"\x00\x00" + b"\x01" * 30),
        (b64url(b"\x00" + b"\x01" * 32), None),  # 33 bytes, even with a leading zero
        (b64url(b"\x01" * 33), None),
        ("", None),
        ("A" * 41 + "=", None),  # padding is not base64url
        ("+" + "A" * 42, None),  # nor is standard base64
        (None, None),
        (32, None),
    ],
)
def test_coordinate_lengths(text: Any, expected: bytes | None) -> None:
    assert _coordinate(text) == expected


@pytest.mark.parametrize(
    "body",
    [None, [], "keys", {}, {"keys": "x"}, {"keys": []}, {"keys": [{"kty": "RSA"}]}],
)
def test_parse_rejects_documents_without_usable_keys(body: Any) -> None:
    with pytest.raises(StackBadResponseError):
        parse_jwks(body)


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"cache-control": "public, max-age=3600"}, 3600),
        ({"cache-control": "public, max-age=3600", "age": "600"}, 3000),
        ({"cache-control": 'max-age="120"'}, 120),
        ({}, 300),
        ({"cache-control": "public"}, 300),
        ({"cache-control": "no-store, max-age=0"}, 60),
        ({"cache-control": "no-cache"}, 60),
        ({"cache-control": "max-age=5"}, 60),
        ({"cache-control": "max-age=999999999"}, 86_400),
    ],
)
def test_freshness_follows_cache_control_within_floor_and_ceiling(
    headers: dict[str, str], seconds: float
) -> None:
    assert freshness(headers) == seconds


# --- freshness and refetching -----------------------------------------------------------------


async def test_max_age_is_honoured_then_refreshed_in_background(
    cache: JwksCache, endpoint: JwksEndpoint, ring: KeyRing, clock: Clock
) -> None:
    ring.cache_control = "public, max-age=600"
    await cache.load()
    kid = ring.signer().kid
    clock.advance(599)
    assert cache.cached(kid) is not None
    await cache.settled()
    assert endpoint.fetches == 1  # still fresh: nothing fetched
    clock.advance(1)
    # Stale: the key is still served at once, and one background fetch revalidates the set.
    assert cache.cached(kid) is not None
    assert await cache.get(kid) is not None
    assert cache.cached(kid) is not None
    await cache.settled()
    assert endpoint.fetches == 2
    clock.advance(599)  # fresh again after the refetch
    assert cache.cached(kid) is not None
    await cache.settled()
    assert endpoint.fetches == 2


def test_stale_keys_outside_the_event_loop_are_served_without_refetch(
    stack_settings: dict[str, Any], ring: KeyRing, clock: Clock
) -> None:
    client = StackClient(load_settings(**stack_settings, verify="jwt"))
    cache = JwksCache(client, PROJECT_ID, clock=clock)
    cache._keys = audience_keys(ring_bodies(ring), PROJECT_ID)  # as if loaded long ago
    assert cache.cached(ring.signer().kid) is not None
    assert cache.fetches == 0


async def test_unknown_kid_triggers_one_refetch(
    cache: JwksCache, endpoint: JwksEndpoint, ring: KeyRing, clock: Clock
) -> None:
    await cache.load()
    clock.advance(31)
    new = ring.rotate()
    assert cache.cached(new.kid) is None
    assert await cache.get(new.kid) is not None
    assert endpoint.fetches == 2
    assert await cache.get(new.kid) is not None
    assert endpoint.fetches == 2


async def test_unknown_kid_right_after_load_waits_for_the_rate_limit(
    cache: JwksCache, endpoint: JwksEndpoint, ring: KeyRing, clock: Clock
) -> None:
    await cache.load()
    new = ring.rotate()
    assert await cache.get(new.kid) is None  # fetched a moment ago: no second fetch yet
    assert endpoint.fetches == 1
    clock.advance(30)
    assert await cache.get(new.kid) is not None
    assert endpoint.fetches == 2


async def test_kid_flood_causes_bounded_refetches(
    cache: JwksCache, endpoint: JwksEndpoint, clock: Clock
) -> None:
    await cache.load()
    clock.advance(60)
    # A burst of random kids: the misses share one refetch.
    results = await asyncio.gather(*(cache.get(random_kid()) for _ in range(500)))
    assert results == [None] * 500
    assert endpoint.fetches == 2
    # More of them, one after another, within the interval: no fetch at all.
    for _ in range(500):
        clock.advance(0.05)
        assert await cache.get(random_kid()) is None
    assert endpoint.fetches == 2
    # Over five simulated minutes of flooding: at most one fetch per 30 s.
    for _ in range(3000):
        clock.advance(0.1)
        await cache.get(random_kid())
    assert endpoint.fetches <= 2 + 300 // 30 + 1


async def test_overlong_kid_is_never_looked_up(
    cache: JwksCache, endpoint: JwksEndpoint, clock: Clock
) -> None:
    await cache.load()
    clock.advance(60)
    assert await cache.get("k" * 1000) is None
    assert endpoint.fetches == 1


# --- failures ----------------------------------------------------------------------------------


async def test_failed_refetch_keeps_the_last_good_keys(
    cache: JwksCache,
    endpoint: JwksEndpoint,
    ring: KeyRing,
    clock: Clock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await cache.load()
    kid = ring.signer().kid
    endpoint.respond = unavailable
    clock.advance(3600)
    with caplog.at_level(logging.WARNING, logger="fastapi_stack_auth"):
        assert await cache.get(kid) is not None  # stale, refresh fails in the background
        await cache.settled()
        assert await cache.get(random_kid()) is None  # unknown kid, refetch fails too
    assert endpoint.fetches == 2  # the second attempt waited for the rate limit
    assert "still using the 6 keys" in caplog.text
    clock.advance(30)
    assert await cache.get(random_kid()) is None
    assert endpoint.fetches == 3
    assert await cache.get(kid) is not None
    # Stack is back: the next allowed fetch refreshes the set.
    endpoint.respond = None
    clock.advance(30)
    assert await cache.get(kid) is not None
    await cache.settled()
    assert endpoint.fetches == 4
    assert cache.cached(kid) is not None


async def test_one_failed_key_set_fails_the_whole_fetch_and_keeps_the_last_good_keys(
    cache: JwksCache,
    endpoint: JwksEndpoint,
    ring: KeyRing,
    clock: Clock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await cache.load()
    before = {kid: cache.audience_of(kid) for kid in cache.kids}
    new = ring.rotate()  # in the plain set, which is still served...

    def anonymous_down(request: httpx.Request) -> httpx.Response:
        if request.url.params.get("include_anonymous") == "true":
            return httpx.Response(503, text="down")  # ... but not in this one
        return endpoint.answer(request)

    endpoint.respond = anonymous_down
    clock.advance(3600)
    with caplog.at_level(logging.WARNING, logger="fastapi_stack_auth"):
        assert cache.cached(ring.keys["normal"][1].kid) is not None  # stale: revalidated
        await cache.settled()
    assert endpoint.fetches == 2
    assert "JWKS refresh failed" in caplog.text
    # Nothing of the failed fetch was taken: the last good keys, with their audiences.
    assert {kid: cache.audience_of(kid) for kid in cache.kids} == before
    assert cache.cached(new.kid) is None
    endpoint.respond = None
    clock.advance(30)
    assert await cache.get(new.kid) is not None
    assert cache.audience_of(new.kid) == AUDIENCES["normal"]


@pytest.mark.parametrize("failing", ["include_restricted", "include_anonymous", None])
async def test_first_load_fails_when_any_key_set_fails(
    cache: JwksCache, endpoint: JwksEndpoint, ring: KeyRing, failing: str | None
) -> None:
    def one_down(request: httpx.Request) -> httpx.Response:
        if next(iter(request.url.params), None) == failing:  # None: the plain set
            return httpx.Response(503, text="down")
        return endpoint.answer(request)

    endpoint.respond = one_down
    with pytest.raises(StackUnavailableError):
        await cache.load()
    assert not cache.loaded
    assert cache.cached(ring.signer().kid) is None
    assert endpoint.calls == 3  # the other two were asked all the same, concurrently


async def test_the_shortest_freshness_of_the_three_sets_counts(
    cache: JwksCache, endpoint: JwksEndpoint, ring: KeyRing, clock: Clock
) -> None:
    def respond(request: httpx.Request) -> httpx.Response:
        answer = endpoint.answer(request)
        if request.url.params.get("include_restricted") == "true":
            answer.headers["cache-control"] = "public, max-age=600"
        return answer

    endpoint.respond = respond
    await cache.load()
    clock.advance(599)
    assert cache.cached(ring.signer().kid) is not None
    await cache.settled()
    assert endpoint.fetches == 1
    clock.advance(1)
    assert cache.cached(ring.signer().kid) is not None
    await cache.settled()
    assert endpoint.fetches == 2


async def test_first_load_failure_is_raised_and_not_retried_per_request(
    cache: JwksCache, endpoint: JwksEndpoint, ring: KeyRing, clock: Clock
) -> None:
    endpoint.respond = unavailable
    kid = ring.signer().kid
    with pytest.raises(StackUnavailableError):
        await cache.get(kid)
    with pytest.raises(StackUnavailableError):
        await cache.get(kid)
    assert endpoint.fetches == 1
    assert not cache.loaded
    clock.advance(2)
    endpoint.respond = None
    assert await cache.get(kid) is not None
    assert endpoint.fetches == 2


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, text="<html>hello</html>"),
        httpx.Response(200, json={"keys": "nope"}),
        httpx.Response(200, json={"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}),
        httpx.Response(302, headers={"location": "https://elsewhere.test/"}),
    ],
)
async def test_garbage_jwks_is_a_bad_response(
    cache: JwksCache, endpoint: JwksEndpoint, response: httpx.Response
) -> None:
    endpoint.respond = lambda _request: response
    with pytest.raises(StackBadResponseError):
        await cache.load()


async def test_network_failure_is_unavailable(cache: JwksCache, endpoint: JwksEndpoint) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    endpoint.respond = refuse
    with pytest.raises(StackUnavailableError):
        await cache.load()


async def test_unknown_project_is_an_api_error(cache: JwksCache, endpoint: JwksEndpoint) -> None:
    endpoint.respond = lambda _request: httpx.Response(404, text="Project not found")
    with pytest.raises(StackAPIError) as info:
        await cache.load()
    assert info.value.status_code == 404


async def test_aclose_cancels_a_fetch_in_flight(
    cache: JwksCache, mock_api: respx.MockRouter
) -> None:
    started = asyncio.Event()

    async def hang(_request: httpx.Request) -> httpx.Response:
        started.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    mock_api.get(f"/projects/{PROJECT_ID}/.well-known/jwks.json").mock(side_effect=hang)
    loading = asyncio.ensure_future(cache.load())
    await started.wait()
    await cache.aclose()
    with pytest.raises(asyncio.CancelledError):
        await loading
    assert not cache.loaded


# --- over a real loopback server ---------------------------------------------------------------


async def test_jwks_over_a_real_loopback_server(
    stack_settings: dict[str, Any], ring: KeyRing
) -> None:
    served = JwksEndpoint(ring)
    clock = Clock()
    with serve_in_thread(jwks_app(served)) as url:
        settings = load_settings(**{**stack_settings, "api_url": url, "verify": "jwt"})
        async with StackClient(settings) as client:
            cache = JwksCache(client, PROJECT_ID, clock=clock)
            await cache.load()
            assert len(cache.kids) == 6
            clock.advance(30)
            new = ring.rotate("anonymous")
            assert await cache.get(new.kid) is not None
            assert cache.audience_of(new.kid) == AUDIENCES["anonymous"]
            assert served.fetches == 2
    assert served.calls == 6
    for request in served.requests:
        assert "x-stack-access-type" not in request.headers
        assert "x-stack-secret-server-key" not in request.headers
    assert sorted((dict(r.url.params) for r in served.requests), key=len) == sorted(
        KEY_SET_QUERIES * 2, key=len
    )


async def test_unreachable_jwks_server_is_unavailable(stack_settings: dict[str, Any]) -> None:
    with serve_in_thread(jwks_app(JwksEndpoint(KeyRing()))) as url:
        pass  # the server is gone: its port now refuses connections
    settings = load_settings(**{**stack_settings, "api_url": url, "verify": "jwt"})
    async with StackClient(settings) as client:
        with pytest.raises(StackUnavailableError):
            await JwksCache(client, PROJECT_ID).load()
