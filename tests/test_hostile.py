"""Hostile input, property-based: whatever a client sends in the credential headers, the answer
is a 401 (never a 500), and Stack Auth is never asked about a token the checks before any I/O
refuse: one that is not an ES256 JWT with this project's audience and a future ``exp``.

Requests go through the real FastAPI app (``httpx.ASGITransport`` passes header bytes through
untouched, NUL and CR/LF included), with Stack Auth behind an ``httpx.MockTransport`` that counts
every call. ``cache_ttl=0``, so every accepted token is one upstream call (a token Stack
rejected is remembered for a few seconds: at most one). The project's JWKS answers 404, so remote
mode runs without its local signature check and well-shaped tokens do reach the stand-in.
Hypothesis runs derandomized, without an example database, so CI sees the same examples every
time.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, cast

import httpx
import jwt
import pytest
from fastapi import Depends, FastAPI
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from fastapi_stack_auth import (
    AuthError,
    StackAuth,
    StackUser,
    TokenClaims,
    current_user,
    optional_user,
)
from fastapi_stack_auth._client import StackClient
from fastapi_stack_auth._jwks import REFETCH_INTERVAL
from fastapi_stack_auth._tokens import MAX_TOKEN_BYTES, credential_from_headers
from fastapi_stack_auth._verifiers import RemoteVerifier
from tests.conftest import PROJECT_ID, USER_ID, mint_token, stack_error, user_body
from tests.jwt_helpers import KINDS, JwksEndpoint, KeyRing, SigningKey

#: Users Stack knows (the stand-in answers 200 for their well-shaped tokens, 401 otherwise).
SUBS = (USER_ID, "a0000000-0000-4000-8000-00000000000a", "b0000000-0000-4000-8000-00000000000b")
#: Codes a request with bad credentials may get; all are 401 with WWW-Authenticate.
CLIENT_FAULTS = frozenset(
    {"NOT_AUTHENTICATED", "MALFORMED_CREDENTIALS", "INVALID_TOKEN", "TOKEN_EXPIRED"}
)
CREDENTIAL_NAMES = (b"authorization", b"x-stack-access-token", b"x-stack-auth")
FUTURE = int(time.time()) + 3600
OUR_AUDIENCES = (PROJECT_ID, f"{PROJECT_ID}:restricted", f"{PROJECT_ID}:anon")
JWKS_PATH = f"/api/v1/projects/{PROJECT_ID}/.well-known/jwks.json"
COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")

HOSTILE = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    # One app and one counting stand-in serve all the examples of a test (calls are counted
    # per example); the inputs are large on purpose.
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.large_base_example,
        HealthCheck.data_too_large,
    ],
)
FAST = settings(HOSTILE, max_examples=300)


# --- the app and the counting stand-in --------------------------------------------------------


def unverified_sub(token: str) -> str:
    """The ``sub`` of ``token``, read without any check of ours."""
    sub: str = jwt.decode(token, options={"verify_signature": False})["sub"]
    return sub


def worth_asking(token: str) -> bool:
    """Whether ``token`` is one Stack may be asked about: at most ``MAX_TOKEN_BYTES`` of three
    base64url segments, an ES256 JWT whose claims have the shape of a Stack token, this
    project's audience and an ``exp`` still to come."""
    if len(token) > MAX_TOKEN_BYTES or not COMPACT_JWS.fullmatch(token):
        return False
    try:
        header = jwt.get_unverified_header(token)
        claims = TokenClaims.model_validate(jwt.decode(token, options={"verify_signature": False}))
    except (jwt.InvalidTokenError, ValueError):  # pydantic's ValidationError is a ValueError
        return False
    return header.get("alg") == "ES256" and claims.aud in OUR_AUDIENCES and claims.exp > time.time()


@dataclass
class Upstream:
    """Stack Auth: ``GET /users/me`` counting calls and checking what it is sent; the project's
    JWKS answers 404 (counted apart)."""

    tokens: list[str] = field(default_factory=list)
    unworthy: list[str] = field(default_factory=list)
    others: list[str] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path != "/api/v1/users/me":
            self.others.append(request.url.path)
            return httpx.Response(404, text="Not found")
        token = request.headers.get("x-stack-access-token", "")
        self.tokens.append(token)
        if not worth_asking(token):
            self.unworthy.append(token)  # must never happen
            return stack_error(401, "UNPARSABLE_ACCESS_TOKEN")
        sub = unverified_sub(token)
        if sub in SUBS:
            return httpx.Response(200, json=user_body(id=sub))
        return stack_error(401, "UNPARSABLE_ACCESS_TOKEN")


@dataclass
class Harness:
    client: httpx.AsyncClient
    upstream: Upstream

    async def send(
        self, headers: list[tuple[bytes, bytes]], path: str = "/me"
    ) -> tuple[httpx.Response, list[str]]:
        """One request; the response and the tokens Stack Auth was asked about for it."""
        before, others = len(self.upstream.tokens), len(self.upstream.others)
        response = await self.client.get(path, headers=headers)
        assert response.status_code != 500, response.text
        assert not self.upstream.unworthy, "a token the checks before I/O refuse went upstream"
        assert self.upstream.others[others:] == []  # no other call (the JWKS) per request
        return response, self.upstream.tokens[before:]


def build_app(stack: StackAuth) -> FastAPI:
    app = FastAPI()
    stack.init_app(app)

    @app.get("/me")
    async def me(user: StackUser = Depends(current_user)) -> dict[str, str]:
        return {"id": user.id}

    @app.get("/hello")
    async def hello(user: StackUser | None = Depends(optional_user)) -> dict[str, str | None]:
        return {"id": user.id if user else None}

    return app


@pytest.fixture
async def harness(stack_settings: dict[str, Any]) -> AsyncIterator[Harness]:
    upstream = Upstream()
    transport = httpx.MockTransport(upstream)
    async with StackAuth(**stack_settings, cache_ttl=0, transport=transport) as stack:
        # raise_app_exceptions (the default): an unhandled exception fails the example.
        app = httpx.ASGITransport(app=build_app(stack))
        async with httpx.AsyncClient(transport=app, base_url="http://app.test") as client:
            assert set(upstream.others) == {JWKS_PATH}  # asked at startup, and not found
            yield Harness(client, upstream)


def assert_client_fault(response: httpx.Response, code: str | None = None) -> None:
    assert response.status_code == 401, response.text
    body = response.json()
    assert set(body) == {"detail", "code"}
    assert body["code"] in CLIENT_FAULTS
    if code is not None:
        assert body["code"] == code, body
    assert response.headers["www-authenticate"].startswith('Bearer realm="stack-auth"')


class Asked(Exception):
    """Raised by ``NoStack``: the token passed every check before I/O."""


class NoStack:
    """A ``StackClient`` for ``RemoteVerifier`` that says when it would be asked."""

    async def get_current_user(self, raw: str) -> dict[str, Any]:
        raise Asked


#: The remote verifier's checks before any I/O, alone.
PRE_IO = RemoteVerifier(cast(StackClient, NoStack()), PROJECT_ID)


async def pre_io(raw: str) -> str | None:
    """The code the checks before I/O refuse ``raw`` with, or ``None`` when it passes them."""
    try:
        await PRE_IO.verify(raw)
    except AuthError as error:
        return error.code if error.status_code == 401 else f"HTTP {error.status_code}"
    except Asked:
        return None
    raise AssertionError("NoStack answered")


async def expected_outcome(headers: list[tuple[bytes, bytes]]) -> tuple[str | None, bool]:
    """(the code a client fault must have or ``None``, whether Stack may be asked at all)
    per the library's own checks before I/O."""
    try:
        raw = credential_from_headers(headers)
    except AuthError as error:
        return error.code, False
    if raw is None:
        return "NOT_AUTHENTICATED", False
    code = await pre_io(raw)
    return code, code is None


# --- strategies --------------------------------------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)

audiences = st.sampled_from(
    [PROJECT_ID, f"{PROJECT_ID}:anon", f"{PROJECT_ID}:restricted", f"{PROJECT_ID}:x", "other"]
)
#: The claims a Stack token has, some of them off: every pre-I/O check is reached, and some
#: tokens pass them all (Stack is then asked).
plausible_claims = st.fixed_dictionaries(
    {
        "sub": st.sampled_from(SUBS) | st.text(max_size=10),
        "aud": audiences,
        "exp": st.sampled_from([FUTURE, 0, 1]) | st.integers(0, 2**40),
    },
    optional={
        "iat": st.integers(0, FUTURE),
        "is_anonymous": st.booleans(),
        "is_restricted": st.booleans(),
        "branch_id": st.just("main"),
        "email": st.text(max_size=10) | st.none(),
    },
)
#: Any subset of the claims, with values of any JSON type.
arbitrary_claims = st.fixed_dictionaries(
    {},
    optional={
        "sub": st.sampled_from(SUBS) | json_scalars,
        "aud": audiences | json_scalars,
        "exp": st.just(FUTURE) | st.integers() | json_scalars,
        "iat": st.integers() | json_scalars,
        "is_anonymous": st.booleans() | json_scalars,
        "is_restricted": st.booleans() | json_scalars,
        "restricted_reason": json_values,
        "branch_id": st.just("main") | json_scalars,
    },
)
claims = plausible_claims | arbitrary_claims | json_values
jose_headers = st.just({"alg": "ES256", "kid": "dN6MEJ_40uJC"}) | st.fixed_dictionaries(
    {},
    optional={
        "alg": st.sampled_from(["ES256", "none", "HS256", "RS256", "es256"]) | json_scalars,
        "kid": json_scalars,
        "typ": json_scalars,
        "crit": json_values,
    },
)
#: Well-formed tokens (random signatures): Stack knows their users unless expired.
minted = st.builds(
    mint_token,
    sub=st.sampled_from(SUBS),
    kind=st.sampled_from(["normal", "anonymous", "restricted"]),
    exp_in=st.sampled_from([600, -60]),
)


@st.composite
def jwt_like(draw: st.DrawFn) -> str:
    """Three dot-separated segments: JSON or bytes, base64url or not, padded or not."""

    def segment(values: st.SearchStrategy[Any]) -> str:
        choice = draw(st.integers(0, 5))
        if choice <= 2:
            return b64url(json.dumps(draw(values)).encode())
        if choice == 3:
            return b64url(draw(st.binary(max_size=60)))
        if choice == 4:
            return base64.urlsafe_b64encode(json.dumps(draw(values)).encode()).decode()  # "="
        return draw(st.text(max_size=30))

    signature = draw(
        st.binary(min_size=64, max_size=64).map(b64url)  # an ES256 signature's size
        | st.binary(max_size=70).map(b64url)
        | st.text(max_size=10)
    )
    return f"{segment(jose_headers)}.{segment(claims)}.{signature}"


#: JSON bombs and odd numbers for the JSON credential shapes.
json_bombs = st.one_of(
    st.integers(1, 20_000).map(lambda n: "[" * n + "]" * n),
    st.integers(1, 20_000).map(lambda n: '{"accessToken": ' + "[" * n + "]" * n + "}"),
    st.integers(1, 20_000).map(lambda n: '{"a":' * n + "1" + "}" * n),
    st.integers(1, 12_000).map(lambda n: '{"accessToken": ' + "9" * n + "}"),
    st.sampled_from(
        [
            '{"accessToken": 1e999999}',
            '{"accessToken": -1e-999999}',
            '{"accessToken": NaN}',
            '{"accessToken": Infinity}',
            '{"accessToken": "\\ud800"}',
            '{"accessToken": "a\\u0000b"}',
            '{"accessToken": "\\u00e9"}',
            '{"accessToken": null}',
            '{"accessToken": null, "accessToken": "x.y.z"}',
            '{"accessToken": []}',
            '{"accessToken": {"accessToken": "x"}}',
            "null",
            '"accessToken"',
            "",
            "{",
            '{"accessToken": "' + "a" * 20_000 + '"}',
        ]
    ),
)
sdk_objects = st.fixed_dictionaries(
    {"accessToken": json_values | jwt_like() | minted},
    optional={"refreshToken": json_values},
)
json_texts = st.one_of(
    json_values.map(json.dumps),
    st.tuples(sdk_objects, st.booleans()).map(lambda v: json.dumps(v[0], ensure_ascii=v[1])),
    json_bombs,
)


def encoded(text: str) -> bytes:
    return text.encode("utf-8")


stackauth_bearers = st.tuples(
    st.sampled_from([b"stackauth_", b"hexclave_", b"Stackauth_", b"stackauth"]),
    st.one_of(
        json_texts.map(lambda t: base64.b64encode(encoded(t))),
        st.binary(max_size=200).map(base64.b64encode),
        st.binary(max_size=200).map(base64.urlsafe_b64encode),  # the wrong alphabet
        st.binary(max_size=200),
    ),
).map(lambda parts: b"Bearer " + parts[0] + parts[1])

latin1 = st.text(st.characters(max_codepoint=255), max_size=200).map(lambda s: s.encode("latin-1"))
oversize = st.sampled_from(
    [
        b"a" * (MAX_TOKEN_BYTES + 1),
        b"Bearer " + b"a.b." * 20_000,
        b"Bearer stackauth_" + b"A" * 100_000,
        b"{" * 200_000,
        b"\x00" * 65_536,
        b"\xff" * 1_000_000,
    ]
)
header_values = st.one_of(
    st.binary(max_size=200),
    latin1,
    st.text(max_size=100).map(encoded),  # any unicode, as UTF-8 bytes
    st.tuples(st.sampled_from([b"Bearer ", b"bearer\t", b"BEARER  ", b"Basic "]), latin1).map(
        b"".join
    ),
    jwt_like().map(encoded),
    jwt_like().map(lambda t: b"Bearer " + encoded(t)),
    minted.map(encoded),
    minted.map(lambda t: b"Bearer " + encoded(t)),
    json_texts.map(encoded),
    stackauth_bearers,
    oversize,
)
request_headers = st.lists(
    st.tuples(
        st.sampled_from([*CREDENTIAL_NAMES, b"cookie", b"x-stack-refresh-token"]), header_values
    ),
    max_size=6,
)


# --- the app never fails on what a client sends ------------------------------------------------


@HOSTILE
@given(headers=request_headers)
@example(headers=[(b"authorization", b"Bearer \x00")])
@example(headers=[(b"x-stack-access-token", b"a.b.c\x00")])
@example(headers=[(b"x-stack-auth", b'{"accessToken": "\x00"}')])
@example(headers=[(b"x-stack-auth", b"\r\n\r\n")])
@example(headers=[(b"authorization", b"Bearer stackauth_\xe2\x82\xac")])
async def test_any_credential_headers_give_a_401_and_no_upstream_call_for_non_jwts(
    harness: Harness, headers: list[tuple[bytes, bytes]]
) -> None:
    code, may_ask_stack = await expected_outcome(headers)
    response, asked = await harness.send(headers)
    if not may_ask_stack:
        assert asked == []
        assert_client_fault(response, code)
    else:
        event(f"a JWT-shaped token; Stack asked {len(asked)} times; {response.status_code}")
        assert len(asked) <= 1
        assert response.status_code in (200, 401), response.text
        if response.status_code == 401:
            assert_client_fault(response)
    # Nothing the client sent is echoed back.
    for _, value in headers:
        if len(value) >= 24:
            assert value.decode("latin-1") not in response.text


@FAST
@given(value=header_values)
async def test_each_header_alone_with_any_value(harness: Harness, value: bytes) -> None:
    for name in CREDENTIAL_NAMES:
        code, may_ask_stack = await expected_outcome([(name, value)])
        response, asked = await harness.send([(name, value)])
        if not may_ask_stack:
            assert asked == []
            assert_client_fault(response, code)
        else:
            event(f"a JWT-shaped token; Stack asked {len(asked)} times; {response.status_code}")
            assert len(asked) <= 1
            assert response.status_code in (200, 401)


@HOSTILE
@given(token=jwt_like(), shape=st.sampled_from(["header", "sdk", "bearer", "stackauth"]))
async def test_token_parsing_through_every_shape(harness: Harness, token: str, shape: str) -> None:
    sdk = json.dumps({"accessToken": token, "refreshToken": "rt"})
    value = {
        "header": (b"x-stack-access-token", encoded(token)),
        "sdk": (b"x-stack-auth", encoded(sdk)),
        "bearer": (b"authorization", b"Bearer " + encoded(token)),
        "stackauth": (b"authorization", b"Bearer stackauth_" + base64.b64encode(encoded(sdk))),
    }[shape]
    code, may_ask_stack = await expected_outcome([value])
    response, asked = await harness.send([value])
    if not may_ask_stack:
        assert asked == []  # rejected before any I/O
        assert_client_fault(response, code)
    else:
        event(f"a JWT-shaped token; Stack asked {len(asked)} times; {response.status_code}")
        assert asked in ([], [token])  # the pre-checks (exp, aud) may still refuse it
        assert response.status_code in (200, 401)


# --- the documented rules: many Authorization headers, mixed credentials ------------------------

bearer_schemes = st.sampled_from([b"Bearer", b"bearer", b"BEARER", b"bEaReR"])
other_schemes = st.sampled_from([b"Basic", b"Digest", b"Token", b"Negotiate", b"Bearer2", b"Bear"])


@st.composite
def authorization_headers(draw: st.DrawFn) -> tuple[list[tuple[bytes, bytes]], int, bool]:
    """Up to 60 Authorization headers; (headers, how many are Bearer, whether the one Bearer
    holds a token Stack accepts)."""
    headers: list[tuple[bytes, bytes]] = []
    bearers, good = 0, False
    for _ in range(draw(st.integers(1, 60))):
        if draw(st.booleans()):
            bearers += 1
            good = draw(st.booleans())
            token = (
                mint_token(sub=draw(st.sampled_from(SUBS))).encode()
                if good
                else draw(latin1).strip()
            )
            headers.append((b"authorization", draw(bearer_schemes) + b" " + (token or b"x")))
        else:
            credentials = draw(st.binary(max_size=40))
            headers.append((b"authorization", draw(other_schemes) + b" " + credentials))
    return headers, bearers, good


@HOSTILE
@given(case=authorization_headers())
async def test_many_authorization_headers(
    harness: Harness, case: tuple[list[tuple[bytes, bytes]], int, bool]
) -> None:
    headers, bearers, good = case
    response, asked = await harness.send(headers)
    if bearers == 0:  # other schemes are not ours: as if nothing was sent
        assert_client_fault(response, "NOT_AUTHENTICATED")
        assert asked == []
    elif bearers > 1:  # which one would be ours is ambiguous: refused
        assert_client_fault(response, "MALFORMED_CREDENTIALS")
        assert asked == []
    elif good:
        assert response.status_code == 200, response.text
        assert len(asked) == 1
    else:
        assert_client_fault(response)
        assert asked == []


@HOSTILE
@given(
    access=st.booleans(),
    sdk=st.sampled_from([None, "token", "null"]),
    authorization=st.sampled_from([None, "bearer", "stackauth", "stackauth-null", "basic"]),
    order=st.permutations(range(3)),
)
async def test_mixed_credentials_follow_the_documented_order(
    harness: Harness, access: bool, sdk: str | None, authorization: str | None, order: list[int]
) -> None:
    """x-stack-access-token, then x-stack-auth (unless its accessToken is null), then
    Authorization; the order the headers arrive in does not matter."""
    token_a, token_b, token_c = (mint_token(sub=sub) for sub in SUBS)
    slots: list[tuple[bytes, bytes] | None] = [None, None, None]
    if access:
        slots[0] = (b"x-stack-access-token", token_a.encode())
    if sdk is not None:
        value = json.dumps({"accessToken": token_b if sdk == "token" else None})
        slots[1] = (b"x-stack-auth", value.encode())
    if authorization is not None:
        sdk_json = json.dumps({"accessToken": None if authorization.endswith("null") else token_c})
        slots[2] = (
            b"authorization",
            {
                "bearer": b"Bearer " + token_c.encode(),
                "stackauth": b"Bearer stackauth_" + base64.b64encode(sdk_json.encode()),
                "stackauth-null": b"Bearer stackauth_" + base64.b64encode(sdk_json.encode()),
                "basic": b"Basic " + base64.b64encode(b"user:password"),
            }[authorization],
        )
    headers = [slots[i] for i in order if slots[i] is not None]
    winner = (
        token_a
        if access
        else token_b
        if sdk == "token"
        else token_c
        if authorization in ("bearer", "stackauth")
        else None
    )
    response, asked = await harness.send([h for h in headers if h is not None])
    if winner is None:
        assert_client_fault(response, "NOT_AUTHENTICATED")
        assert asked == []
    else:
        assert response.status_code == 200, response.text
        assert asked == [winner]
        assert response.json()["id"] == unverified_sub(winner)
    # The optional route agrees, and is public only when nothing at all is sent.
    optional, _ = await harness.send([h for h in headers if h is not None], "/hello")
    assert optional.status_code == 200
    assert optional.json()["id"] == (None if winner is None else response.json()["id"])


async def test_a_readable_winner_never_falls_through_to_a_weaker_shape(harness: Harness) -> None:
    good = mint_token()
    for broken in (b"{", b"[]", b'{"accessToken": 1}', b"\xff"):
        response, asked = await harness.send(
            [(b"x-stack-auth", broken), (b"authorization", b"Bearer " + good.encode())]
        )
        assert_client_fault(response, "MALFORMED_CREDENTIALS")
        assert asked == []


async def test_the_same_credential_header_twice_is_refused(harness: Harness) -> None:
    token = mint_token().encode()
    for name in (b"x-stack-access-token", b"x-stack-auth"):
        value = token if name == b"x-stack-access-token" else b'{"accessToken": "%s"}' % token
        response, asked = await harness.send([(name, value), (name, value)])
        assert_client_fault(response, "MALFORMED_CREDENTIALS")
        assert asked == []


async def test_many_unrelated_headers_do_not_matter(harness: Harness) -> None:
    noise = [(b"x-noise-%d" % i, b"\x00" * 100) for i in range(2_000)]
    response, asked = await harness.send([*noise, (b"authorization", b"Bearer " + b"a" * 9000)])
    assert_client_fault(response, "INVALID_TOKEN")
    assert asked == []
    response, asked = await harness.send([*noise, (b"x-stack-access-token", mint_token().encode())])
    assert response.status_code == 200
    assert len(asked) == 1


# --- the parsers alone, with many more examples -----------------------------------------------


@FAST
@given(headers=request_headers)
def test_credential_from_headers_raises_only_401s(headers: list[tuple[bytes, bytes]]) -> None:
    refused: AuthError | None = None
    try:
        raw = credential_from_headers(headers)
    except AuthError as error:
        refused, raw = error, None
    if refused is not None:
        assert refused.status_code == 401
        assert refused.code in CLIENT_FAULTS
        return
    assert raw is None or (isinstance(raw, str) and raw.isascii())


@FAST
@given(raw=st.one_of(st.text(max_size=300), jwt_like(), st.binary(max_size=200).map(b64url)))
@example(raw="a" * (MAX_TOKEN_BYTES + 1))
@example(raw="e30.e30.\x00")
@example(raw="\ud800.e30.e30")
async def test_the_checks_before_io_raise_only_401s(raw: str) -> None:
    """Whatever ``StackAuth.authenticate`` is given (not only what a header can hold)."""
    code = await pre_io(raw)
    if code is not None:
        assert code in ("INVALID_TOKEN", "TOKEN_EXPIRED")
        return
    # What they let through has the shape of a Stack token for this project, and nothing else.
    assert worth_asking(raw)


# --- with the project's JWKS: remote mode's signature check, and JWT mode ----------------------

#: The project's signing keys (the stand-in serves their JWKS), and tokens they really signed.
RING = KeyRing()
signed = st.builds(
    lambda kind, sub: RING.mint(kind, sub=sub),
    kind=st.sampled_from(KINDS),
    sub=st.sampled_from(SUBS),
)


@st.composite
def tampered(draw: st.DrawFn) -> str:
    """A token the ring signed, then changed the way an attacker would."""
    token = draw(signed)
    header, payload, signature = token.split(".")
    how = draw(st.integers(0, 6))
    if how == 0:  # another header: alg, kid, crit, anything
        header = b64url(json.dumps(draw(jose_headers)).encode())
    elif how == 1:  # other claims under the real signature
        payload = b64url(json.dumps(draw(claims)).encode())
    elif how == 2:  # one character of the signature changed
        i = draw(st.integers(0, len(signature) - 1))
        signature = signature[:i] + ("A" if signature[i] != "A" else "B") + signature[i + 1 :]
    elif how == 3:  # a shorter or longer signature
        signature = signature[: draw(st.integers(0, len(signature)))] + draw(
            st.text("AQgw_-", max_size=8)
        )
    elif how == 4:  # padded: the same token, spelled another way
        header, payload = header + "=" * (-len(header) % 4), payload + "=" * (-len(payload) % 4)
    elif how == 5:  # an unknown key id (a refetch of the JWKS, rate-limited)
        kid = draw(st.text(max_size=200) | st.sampled_from(["", "x" * 128, "x" * 129]))
        header = b64url(json.dumps({"alg": "ES256", "kid": kid}).encode())
    else:  # a signature of another key of the project (another audience's)
        other = RING.keys[draw(st.sampled_from(KINDS))][1]
        signature = b64url(other.sign(f"{header}.{payload}".encode()))
    return f"{header}.{payload}.{signature}"


def shaped(token: str, shape: str) -> tuple[bytes, bytes]:
    sdk = json.dumps({"accessToken": token, "refreshToken": "rt"})
    return {
        "header": (b"x-stack-access-token", encoded(token)),
        "sdk": (b"x-stack-auth", encoded(sdk)),
        "bearer": (b"authorization", b"Bearer " + encoded(token)),
        "stackauth": (b"authorization", b"Bearer stackauth_" + base64.b64encode(encoded(sdk))),
    }[shape]


@dataclass
class SignedUpstream(Upstream):
    """``Upstream``, serving ``RING``'s JWKS; ``/users/me`` is asked only about tokens the ring
    signed exactly as they are sent."""

    jwks: JwksEndpoint = field(default_factory=lambda: JwksEndpoint(RING))
    forged: list[str] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == JWKS_PATH:
            return self.jwks(request)
        if request.url.path == "/api/v1/users/me":
            token = request.headers.get("x-stack-access-token", "")
            if not any(signed_by(key, token) for keys in RING.keys.values() for key in keys):
                self.forged.append(token)  # must never happen
        return super().__call__(request)


def signed_by(key: SigningKey, token: str) -> bool:
    try:
        jwt.decode(
            token,
            key.private.public_key(),
            algorithms=["ES256"],
            options={"verify_exp": False, "verify_aud": False, "verify_iat": False},
        )
    except jwt.InvalidTokenError:
        return False
    return "=" not in token


@settings(HOSTILE, max_examples=100)
@given(
    headers=request_headers
    | st.tuples(signed | tampered(), st.sampled_from(["header", "sdk", "bearer", "stackauth"])).map(
        lambda case: [shaped(*case)]
    ),
)
@pytest.mark.parametrize("verify", ["remote", "jwt"])
async def test_with_the_jwks_no_forgery_costs_a_call(
    stack_settings: dict[str, Any], verify: str, headers: list[tuple[bytes, bytes]]
) -> None:
    """Remote mode checks signatures before asking Stack once the JWKS is loaded; JWT mode
    never asks it. Either way: a 401 (never a 500) for anything not signed by the project,
    Stack asked only about tokens it signed, and the JWKS fetched at most once per refetch
    interval whatever ``kid`` a client makes up."""
    upstream = SignedUpstream()
    settings = {**stack_settings, "verify": verify, "cache_ttl": 0}
    started = time.monotonic()
    async with StackAuth(**settings, transport=httpx.MockTransport(upstream)) as stack:
        transport = httpx.ASGITransport(app=build_app(stack))
        async with httpx.AsyncClient(transport=transport, base_url="http://app.test") as client:
            response = await client.get("/me", headers=headers)
    assert response.status_code in (200, 401, 403), response.text
    if response.status_code == 401:
        assert_client_fault(response)
    if response.status_code == 403:  # a token the project signed, of a user not let in here
        assert response.json()["code"] in (
            "ANONYMOUS_USER_NOT_ALLOWED",
            "RESTRICTED_USER_NOT_ALLOWED",
        )
    assert upstream.unworthy == []
    assert upstream.forged == []
    if verify == "jwt":
        assert upstream.tokens == []
    else:
        assert len(upstream.tokens) <= 1
    # Key-set refreshes: the most requests for any one set (a refresh may ask for several).
    refreshes = max(Counter(str(r.url.params) for r in upstream.jwks.requests).values())
    assert refreshes <= 2 + int((time.monotonic() - started) // REFETCH_INTERVAL)
    event(f"{verify}: {response.status_code}, Stack asked {len(upstream.tokens)} times")
