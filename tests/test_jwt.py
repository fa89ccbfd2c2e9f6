"""JWT mode: real ES256 tokens checked against a JWKS, through FastAPI and directly.

Every token here is signed with a real P-256 key; the JWKS is served by respx (or a real
loopback server) and counted, so "no I/O per request" is checked, not assumed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import jwt
import pytest
import respx
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from fastapi import Depends, FastAPI, Request, WebSocket
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from fastapi_stack_auth import (
    StackAuth,
    StackAuthConfigError,
    StackUser,
    TokenClaims,
    UserDependency,
    current_user,
    full_user,
    token_claims,
)
from fastapi_stack_auth._cache import token_key
from fastapi_stack_auth._client import StackClient
from fastapi_stack_auth._dependencies import ClaimsDependency
from fastapi_stack_auth._jwks import JwksCache
from fastapi_stack_auth._jwt import JwtVerifier
from fastapi_stack_auth._settings import load_settings
from fastapi_stack_auth.errors import AuthError
from fastapi_stack_auth.models import RestrictedReason
from tests.conftest import API_URL, PROJECT_ID, SECRET_KEY, mint_token, stack_error, user_body
from tests.jwt_helpers import (
    CONTRACT_FIXTURES,
    MISSING,
    JwksEndpoint,
    KeyRing,
    SigningKey,
    b64url,
    b64url_json,
    claims_for,
    jwks_app,
    kinds_asked,
    sign_jwt,
)
from tests.servers import serve_in_thread

OTHER_PROJECT = "0b9e7c55-1f2a-4d3b-8c4d-5e6f7a8b9c0d"
USERS_ME = "/users/me"
optional_claims = ClaimsDependency(optional=True)
restricted_claims = ClaimsDependency(allow_restricted=True)


def build_app(stack: StackAuth) -> FastAPI:
    app = FastAPI()
    stack.init_app(app)

    @app.get("/me")
    async def me(user: StackUser = Depends(current_user)) -> dict[str, Any]:
        return user.model_dump(mode="json")

    @app.get("/claims")
    async def claims(claims: TokenClaims = Depends(token_claims)) -> dict[str, Any]:
        return claims.model_dump(mode="json")

    @app.get("/maybe-claims")
    async def maybe_claims(
        claims: TokenClaims | None = Depends(optional_claims),
    ) -> dict[str, Any]:
        return {"sub": claims.sub if claims else None}

    @app.get("/typed-claims")
    async def typed_claims(claims: TokenClaims = Depends(restricted_claims)) -> dict[str, Any]:
        assert isinstance(claims, TokenClaims)
        assert isinstance(claims.restricted_reason, RestrictedReason)
        return {
            "user_id": claims.user_id,
            "reason": claims.restricted_reason.type,
            "expires_at": int(claims.expires_at.timestamp()),
            "extra_is_dict": isinstance(claims.model_extra, dict),
        }

    @app.get("/anon-ok")
    async def anon_ok(
        user: StackUser = Depends(UserDependency(allow_anonymous=True)),
    ) -> dict[str, Any]:
        return {"id": user.id}

    @app.get("/restricted-ok")
    async def restricted_ok(
        user: StackUser = Depends(UserDependency(allow_restricted=True)),
    ) -> dict[str, Any]:
        return {"id": user.id}

    @app.get("/full")
    async def full(user: StackUser = Depends(full_user)) -> dict[str, Any]:
        return user.model_dump(mode="json")

    @app.get("/fetch")
    async def fetch(request: Request, claims: TokenClaims = Depends(token_claims)) -> Any:
        user = await stack.fetch_user(request)
        return {"sub": claims.sub, "user": user.model_dump(mode="json")}

    @app.websocket("/ws")
    async def ws(websocket: WebSocket, claims: TokenClaims = Depends(token_claims)) -> None:
        await websocket.accept()
        await websocket.send_json({"sub": claims.sub})
        await websocket.close()

    return app


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["code"] == code
    if status == 401:
        assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.fixture
def jwt_settings(stack_settings: dict[str, Any]) -> dict[str, Any]:
    return {**stack_settings, "verify": "jwt"}


@pytest.fixture
async def jwt_stack(
    jwt_settings: dict[str, Any], endpoint: JwksEndpoint
) -> AsyncIterator[StackAuth]:
    async with StackAuth(**jwt_settings) as started:
        yield started


@pytest.fixture
async def client(jwt_stack: StackAuth) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=build_app(jwt_stack))
    async with httpx.AsyncClient(transport=transport, base_url="http://app.test") as c:
        yield c


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@asynccontextmanager
async def stack_with_jwks_clock(settings: dict[str, Any], clock: Clock) -> AsyncIterator[StackAuth]:
    """A started JWT-mode ``StackAuth`` whose JWKS cache runs on ``clock``."""
    async with StackClient(load_settings(**settings)) as http:
        jwks = JwksCache(http, PROJECT_ID, clock=clock)
        verifier = JwtVerifier(jwks, project_id=PROJECT_ID, api_url=API_URL)
        async with StackAuth(**settings, verifier=verifier) as stack:
            assert stack.jwks is jwks
            yield stack


def unverified_sub(token: str) -> str:
    sub: str = jwt.decode(token, options={"verify_signature": False})["sub"]
    return sub


# --- the happy path ----------------------------------------------------------------------------


async def test_valid_token_is_accepted_with_no_io_after_the_jwks(
    client: httpx.AsyncClient, ring: KeyRing, mock_api: respx.MockRouter
) -> None:
    assert len(mock_api.calls) == 3  # the JWKS's three key sets, loaded at startup
    tokens = [ring.mint() for _ in range(5)]
    for token in tokens * 3:
        assert (await client.get("/me", headers=bearer(token))).status_code == 200
        assert (await client.get("/claims", headers=bearer(token))).status_code == 200
    assert len(mock_api.calls) == 3


async def test_current_user_is_a_snapshot_of_the_claims(
    client: httpx.AsyncClient, ring: KeyRing
) -> None:
    payload = claims_for(selected_team_id="c4e7a9b1-2d3f-4a5b-9c6d-7e8f9a0b1c2d")
    response = await client.get("/me", headers=bearer(sign_jwt(ring.signer(), payload)))
    assert response.status_code == 200
    user = response.json()
    assert user["id"] == payload["sub"]
    assert user["primary_email"] == "ada@example.com"
    assert user["primary_email_verified"] is True
    assert user["display_name"] == "Ada Lovelace"
    assert user["selected_team_id"] == payload["selected_team_id"]
    assert user["signed_up_at_millis"] == payload["signed_up_at"] * 1000
    assert (user["is_anonymous"], user["is_restricted"], user["restricted_reason"]) == (
        False,
        False,
        None,
    )
    # What a token does not carry keeps its default; the full profile is an explicit call.
    assert user["client_metadata"] is None
    assert user["oauth_providers"] == []


async def test_token_claims_are_typed(client: httpx.AsyncClient, ring: KeyRing) -> None:
    payload = claims_for("restricted")
    token = sign_jwt(ring.signer("restricted"), payload)
    response = await client.get("/claims", headers=bearer(token))
    assert_error(response, 403, "RESTRICTED_USER_NOT_ALLOWED")  # same policy as current_user
    response = await client.get("/typed-claims", headers=bearer(token))
    assert response.status_code == 200
    assert response.json() == {
        "user_id": payload["sub"],
        "reason": "email_not_verified",
        "expires_at": payload["exp"],
        "extra_is_dict": True,
    }


async def test_token_claims_dependency_returns_every_claim(
    client: httpx.AsyncClient, ring: KeyRing
) -> None:
    payload = claims_for(selected_team_id="5b6c7d8e-9f0a-4b1c-8d2e-3f4a5b6c7d8e")
    response = await client.get("/claims", headers=bearer(sign_jwt(ring.signer(), payload)))
    assert response.status_code == 200
    body = response.json()
    for name in (
        "sub",
        "name",
        "email",
        "email_verified",
        "selected_team_id",
        "is_anonymous",
        "is_restricted",
        "restricted_reason",
        "project_id",
        "branch_id",
        "refresh_token_id",
        "iat",
        "exp",
        "iss",
        "aud",
    ):
        assert body[name] == payload[name], name


async def test_optional_claims_without_credential(client: httpx.AsyncClient) -> None:
    response = await client.get("/maybe-claims")
    assert response.json() == {"sub": None}


async def test_token_claims_in_remote_mode_come_from_the_accepted_token(
    stack: StackAuth, mock_api: respx.MockRouter
) -> None:
    mock_api.get(USERS_ME).respond(200, json=user_body())
    token = mint_token()
    transport = httpx.ASGITransport(app=build_app(stack))
    async with httpx.AsyncClient(transport=transport, base_url="http://app.test") as c:
        response = await c.get("/claims", headers=bearer(token))
    assert response.status_code == 200
    assert response.json()["sub"] == unverified_sub(token)


async def test_token_claims_over_websocket(
    jwt_settings: dict[str, Any], endpoint: JwksEndpoint, ring: KeyRing
) -> None:
    payload = claims_for()
    with TestClient(build_app(StackAuth(**jwt_settings))) as client:
        with client.websocket_connect(
            "/ws", headers=bearer(sign_jwt(ring.signer(), payload))
        ) as ws:
            assert ws.receive_json() == {"sub": payload["sub"]}
        with (
            pytest.raises(WebSocketDisconnect) as info,
            client.websocket_connect("/ws", headers=bearer(ring.mint(exp=int(time.time()) - 60))),
        ):
            pass
    assert info.value.code == 1008


# --- anonymous and restricted users ------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "denied_code", "route_that_allows"),
    [
        ("restricted", "RESTRICTED_USER_NOT_ALLOWED", "/restricted-ok"),
        ("anonymous", "ANONYMOUS_USER_NOT_ALLOWED", "/anon-ok"),
    ],
)
async def test_restricted_and_anonymous_need_an_opt_in(
    client: httpx.AsyncClient, ring: KeyRing, kind: str, denied_code: str, route_that_allows: str
) -> None:
    token = ring.mint(kind)
    assert_error(await client.get("/me", headers=bearer(token)), 403, denied_code)
    assert_error(await client.get("/claims", headers=bearer(token)), 403, denied_code)
    response = await client.get(route_that_allows, headers=bearer(token))
    assert response.status_code == 200
    assert response.json()["id"] == unverified_sub(token)


@pytest.mark.parametrize(
    ("kind", "setting"),
    [("restricted", "allow_restricted"), ("anonymous", "allow_anonymous")],
)
async def test_restricted_and_anonymous_allowed_by_settings(
    jwt_settings: dict[str, Any], endpoint: JwksEndpoint, ring: KeyRing, kind: str, setting: str
) -> None:
    async with StackAuth(**jwt_settings, **{setting: True}) as stack:
        transport = httpx.ASGITransport(app=build_app(stack))
        async with httpx.AsyncClient(transport=transport, base_url="http://app.test") as c:
            response = await c.get("/me", headers=bearer(ring.mint(kind)))
    assert response.status_code == 200
    assert response.json()["is_restricted"] is True
    assert response.json()["is_anonymous"] is (kind == "anonymous")


async def test_anonymous_route_still_refuses_other_projects(
    client: httpx.AsyncClient, ring: KeyRing
) -> None:
    token = sign_jwt(ring.signer("anonymous"), claims_for("anonymous", project_id=OTHER_PROJECT))
    assert_error(await client.get("/anon-ok", headers=bearer(token)), 401, "INVALID_TOKEN")


ROUTE_OF_KIND = {"normal": "/me", "restricted": "/restricted-ok", "anonymous": "/anon-ok"}


@pytest.mark.parametrize("key_kind", ["normal", "restricted", "anonymous"])
@pytest.mark.parametrize("token_kind", ["normal", "restricted", "anonymous"])
async def test_a_key_verifies_only_tokens_of_its_own_audience(
    client: httpx.AsyncClient, ring: KeyRing, token_kind: str, key_kind: str
) -> None:
    """Issue 9.8: Stack publishes separate keys per audience and verifies a token only with the
    keys of its ``aud``; a token signed with another audience's key is refused (both keys of
    each audience, the signing one and the one published ahead of a switch)."""
    for key in ring.keys[key_kind]:
        token = sign_jwt(key, claims_for(token_kind))
        response = await client.get(ROUTE_OF_KIND[token_kind], headers=bearer(token))
        if token_kind == key_kind:
            assert response.status_code == 200, response.text
        else:
            assert_error(response, 401, "INVALID_TOKEN")
            assert response.json()["detail"] == (
                "The access token is signed with another audience's key"
            )


# --- rejections --------------------------------------------------------------------------------


def _hs256(secret: bytes, payload: dict[str, Any], alg: str = "HS256", kid: str = "") -> str:
    signing_input = f"{b64url_json({'alg': alg, 'kid': kid})}.{b64url_json(payload)}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


def _public_pem(key: SigningKey) -> bytes:
    return key.private.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)


def _tampered(ring: KeyRing) -> str:
    header, _payload, signature = ring.mint().split(".")
    forged = b64url_json(claims_for(sub="someone-else"))
    return f"{header}.{forged}.{signature}"


def _swapped_signature(ring: KeyRing) -> str:
    head, payload, signature = ring.mint().split(".")
    raw = base64.urlsafe_b64decode(signature + "==")
    return f"{head}.{payload}.{b64url(raw[32:] + raw[:32])}"


def _non_canonical_signature(ring: KeyRing) -> str:
    token = ring.mint()
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(token[-1])
    # The last character carries 2 data bits and 4 padding bits; set one padding bit.
    return token[:-1] + alphabet[last | 1] if last % 2 == 0 else token[:-1] + alphabet[last & ~1]


def _standard_base64_signature(ring: KeyRing) -> str:
    """The signature's bytes spelled in standard base64 ("+/" for "-_"): not base64url."""
    token = ring.mint()
    while not {"-", "_"} & set(token.rsplit(".", 1)[1]):  # 1 signature in 15 has neither
        token = ring.mint()
    head, _, signature = token.rpartition(".")
    return f"{head}.{signature.translate(str.maketrans('-_', '+/'))}"


def _stale(ring: KeyRing, field: str, offset: int) -> str:
    now = int(time.time())
    return ring.mint(**{field: now + offset})


REJECTIONS: dict[str, tuple[Callable[[KeyRing], str], str]] = {
    "alg-es384": (
        lambda ring: sign_jwt(ring.signer(), claims_for(), alg="ES384"),
        "INVALID_TOKEN",
    ),
    "alg-rs256": (lambda ring: sign_jwt(ring.signer(), claims_for(), alg="RS256"), "INVALID_TOKEN"),
    "alg-none-empty-signature": (
        lambda ring: f"{b64url_json({'alg': 'none'})}.{b64url_json(claims_for())}.",
        "INVALID_TOKEN",
    ),
    "alg-none-with-signature": (
        lambda ring: sign_jwt(ring.signer(), claims_for(), alg="none"),
        "INVALID_TOKEN",
    ),
    "alg-missing": (
        lambda ring: sign_jwt(ring.signer(), claims_for(), alg=MISSING),
        "INVALID_TOKEN",
    ),
    "hs256-public-key-pem-as-secret": (
        lambda ring: _hs256(_public_pem(ring.signer()), claims_for(), kid=ring.signer().kid),
        "INVALID_TOKEN",
    ),
    "hs256-public-jwk-as-secret": (
        lambda ring: _hs256(
            json.dumps(ring.signer().public_jwk()).encode(), claims_for(), kid=ring.signer().kid
        ),
        "INVALID_TOKEN",
    ),
    "hmac-signature-under-es256-header": (
        lambda ring: _hs256(_public_pem(ring.signer()), claims_for(), "ES256", ring.signer().kid),
        "INVALID_TOKEN",
    ),
    "tampered-payload": (_tampered, "INVALID_TOKEN"),
    "swapped-r-and-s": (_swapped_signature, "INVALID_TOKEN"),
    "zero-signature": (
        lambda ring: ring.mint().rsplit(".", 1)[0] + "." + b64url(bytes(64)),
        "INVALID_TOKEN",
    ),
    "non-canonical-signature-encoding": (_non_canonical_signature, "INVALID_TOKEN"),
    "padded-signature": (lambda ring: ring.mint() + "==", "INVALID_TOKEN"),
    "standard-base64-signature": (_standard_base64_signature, "INVALID_TOKEN"),
    "unknown-kid": (
        lambda ring: sign_jwt(SigningKey.generate(), claims_for()),
        "INVALID_TOKEN",
    ),
    "known-kid-other-key": (
        lambda ring: sign_jwt(SigningKey.generate(ring.signer().kid), claims_for()),
        "INVALID_TOKEN",
    ),
    "kid-missing": (
        lambda ring: sign_jwt(ring.signer(), claims_for(), kid=MISSING),
        "INVALID_TOKEN",
    ),
    "kid-not-a-string": (
        lambda ring: sign_jwt(ring.signer(), claims_for(), kid=7),
        "INVALID_TOKEN",
    ),
    "crit-header": (
        lambda ring: sign_jwt(ring.signer(), claims_for(), crit=["exp"]),
        "INVALID_TOKEN",
    ),
    "wrong-aud-suffix": (
        lambda ring: ring.mint(aud=f"{PROJECT_ID}:admin"),
        "INVALID_TOKEN",
    ),
    "aud-list": (lambda ring: ring.mint(aud=[PROJECT_ID]), "INVALID_TOKEN"),
    "aud-list-of-numbers": (lambda ring: ring.mint(aud=[7]), "INVALID_TOKEN"),
    "aud-object": (lambda ring: ring.mint(aud={"id": PROJECT_ID}), "INVALID_TOKEN"),
    "aud-missing": (lambda ring: ring.mint(aud=MISSING), "INVALID_TOKEN"),
    "wrong-iss-host": (
        lambda ring: ring.mint(iss=f"https://evil.test/api/v1/projects/{PROJECT_ID}"),
        "INVALID_TOKEN",
    ),
    "wrong-iss-trailing-slash": (
        lambda ring: ring.mint(iss=f"{API_URL}/api/v1/projects/{PROJECT_ID}/"),
        "INVALID_TOKEN",
    ),
    "iss-missing": (lambda ring: ring.mint(iss=MISSING), "INVALID_TOKEN"),
    "iss-null": (lambda ring: ring.mint(iss=None), "INVALID_TOKEN"),
    "iss-of-restricted-users-on-normal-token": (
        lambda ring: ring.mint(iss=f"{API_URL}/api/v1/projects-restricted-users/{PROJECT_ID}"),
        "INVALID_TOKEN",
    ),
    "expired": (lambda ring: _stale(ring, "exp", -60), "TOKEN_EXPIRED"),
    "exp-missing": (lambda ring: ring.mint(exp=MISSING), "INVALID_TOKEN"),
    "nbf-in-future": (lambda ring: _stale(ring, "nbf", 120), "INVALID_TOKEN"),
    "nbf-not-a-number": (lambda ring: ring.mint(nbf="soon"), "INVALID_TOKEN"),
    "iat-in-future": (lambda ring: _stale(ring, "iat", 120), "INVALID_TOKEN"),
    "other-project": (
        lambda ring: ring.mint(project_id=OTHER_PROJECT),
        "INVALID_TOKEN",
    ),
    "other-project-id-claim-only": (
        lambda ring: sign_jwt(ring.signer(), {**claims_for(), "project_id": OTHER_PROJECT}),
        "INVALID_TOKEN",
    ),
    "other-branch": (lambda ring: ring.mint(branch_id="dev"), "INVALID_TOKEN"),
    "sub-missing": (lambda ring: ring.mint(sub=MISSING), "INVALID_TOKEN"),
    "sub-empty": (lambda ring: ring.mint(sub=""), "INVALID_TOKEN"),
    "anonymous-flag-on-normal-audience": (
        lambda ring: ring.mint(is_anonymous=True, restricted_reason={"type": "anonymous"}),
        "INVALID_TOKEN",
    ),
    "restricted-flag-on-normal-audience": (
        lambda ring: ring.mint(
            is_restricted=True, restricted_reason={"type": "email_not_verified"}
        ),
        "INVALID_TOKEN",
    ),
    "restricted-without-reason": (
        lambda ring: sign_jwt(
            ring.signer("restricted"), claims_for("restricted", restricted_reason=None)
        ),
        "INVALID_TOKEN",
    ),
    "anonymous-not-restricted": (
        lambda ring: sign_jwt(
            ring.signer("anonymous"),
            claims_for("anonymous", is_restricted=False, restricted_reason=None),
        ),
        "INVALID_TOKEN",
    ),
    "normal-user-with-anonymous-audience": (
        lambda ring: sign_jwt(
            ring.signer("anonymous"),
            claims_for(aud=f"{PROJECT_ID}:anon", iss=claims_for("anonymous")["iss"]),
        ),
        "INVALID_TOKEN",
    ),
    "not-a-jwt": (lambda ring: "not-a-jwt", "INVALID_TOKEN"),
}


@pytest.mark.parametrize("case", list(REJECTIONS))
async def test_rejections(
    client: httpx.AsyncClient, ring: KeyRing, mock_api: respx.MockRouter, case: str
) -> None:
    build, code = REJECTIONS[case]
    token = build(ring)
    for path in ("/me", "/claims", "/anon-ok", "/restricted-ok"):
        assert_error(await client.get(path, headers=bearer(token)), 401, code)
    # Nothing but the JWKS (and at most one refetch for an unknown kid) went to Stack.
    assert all(call.request.url.path.endswith("/jwks.json") for call in mock_api.calls)
    assert len(mock_api.calls) <= 2 * 3  # each fetch asks for Stack's three key sets


# --- leeway and time -------------------------------------------------------------------------
# PyJWT reads the real clock, so tokens are minted with the times a case needs, relative to
# ``int(time.time())``. Each case keeps at least a second of slack on the side where passing
# time could flip it (time only moves on: a case that rejects because of the past stays so).


@pytest.fixture
async def verifier(
    endpoint: JwksEndpoint, jwt_settings: dict[str, Any]
) -> AsyncIterator[Callable[..., JwtVerifier]]:
    """Makes a ``JwtVerifier`` with a given leeway (and Stack URL), over the mocked JWKS."""
    async with StackClient(load_settings(**jwt_settings)) as http:
        jwks = JwksCache(http, PROJECT_ID)

        def make(leeway: float = 5.0, api_url: str = API_URL) -> JwtVerifier:
            return JwtVerifier(jwks, project_id=PROJECT_ID, api_url=api_url, leeway=leeway)

        yield make


async def _code_of(verifier: JwtVerifier, token: str) -> str | None:
    """``None`` when ``verifier`` accepts ``token``, else the error code."""
    try:
        identity = await verifier.verify(token)
    except AuthError as exc:
        error = exc
    else:
        assert identity.claims.sub == unverified_sub(token)
        return None
    assert error.status_code == 401
    return error.code


@pytest.mark.parametrize(
    ("leeway", "exp_from_now", "accepted"),
    [
        (5, 60, True),
        (5, 0, True),  # expired less than a second ago
        (5, -3, True),  # 3 to 4 s ago: within the leeway
        (5, -5, False),  # 5 to 6 s ago: a leeway of 5 s ends at exp + 5 (excluded)
        (0, 3, True),
        (0, 0, False),  # no leeway: expired at exp itself
        (30, -26, True),
        (30, -30, False),
    ],
)
async def test_exp_leeway(
    verifier: Callable[..., JwtVerifier],
    ring: KeyRing,
    leeway: float,
    exp_from_now: int,
    accepted: bool,
) -> None:
    token = ring.mint(exp=int(time.time()) + exp_from_now)
    assert await _code_of(verifier(leeway), token) == (None if accepted else "TOKEN_EXPIRED")


@pytest.mark.parametrize("claim", ["nbf", "iat"])
@pytest.mark.parametrize(
    ("ahead", "accepted"),
    [(4, True), (5, True), (8, False)],  # 5: at most 5 s ahead, never more
)
async def test_not_yet_valid_leeway(
    verifier: Callable[..., JwtVerifier], ring: KeyRing, claim: str, ahead: int, accepted: bool
) -> None:
    token = ring.mint(**{claim: int(time.time()) + ahead})
    assert await _code_of(verifier(leeway=5), token) == (None if accepted else "INVALID_TOKEN")


async def test_expired_within_leeway_passes_the_precheck_too(
    client: httpx.AsyncClient, ring: KeyRing
) -> None:
    token = ring.mint(exp=int(time.time()) - 2)  # default leeway is 5 s
    assert (await client.get("/me", headers=bearer(token))).status_code == 200


def serve_contract_jwks(mock_api: respx.MockRouter) -> None:
    """The contract's three JWKS answers (plain, restricted, anonymous) through ``mock_api``."""

    def respond(request: httpx.Request) -> httpx.Response:
        name = {1: "jwks.json", 2: "jwks.include_restricted.json"}.get(
            len(kinds_asked(request) or ()), "jwks.include_anonymous.json"
        )
        return httpx.Response(200, json=json.loads((CONTRACT_FIXTURES / name).read_text()))

    mock_api.get(f"/projects/{PROJECT_ID}/.well-known/jwks.json").mock(side_effect=respond)


@pytest.mark.parametrize("kind", ["normal", "restricted", "anonymous"])
async def test_contract_fixture_tokens_verify(
    mock_api: respx.MockRouter, jwt_settings: dict[str, Any], kind: str
) -> None:
    """The contract's real-shaped tokens against its JWKS.

    The fixture token itself, byte for byte, is checked with a leeway that reaches back to when
    it was valid; its exact claims are also signed again, valid now, with the contract's
    private key of the same ``kid``, and checked with the default leeway.
    """
    fixture = json.loads((CONTRACT_FIXTURES / "tokens" / f"access-token.{kind}.json").read_text())
    serve_contract_jwks(mock_api)
    payload = fixture["payload"]
    now = int(time.time())
    back_then = now - payload["iat"] + 3600  # a leeway that covers the token's age
    signer = next(
        key
        for keys in KeyRing.from_contract_fixtures().keys.values()
        for key in keys
        if key.kid == fixture["header"]["kid"]
    )
    fresh = sign_jwt(signer, {**payload, "iat": now, "exp": now + 600})
    async with StackClient(load_settings(**jwt_settings)) as http:
        keys = JwksCache(http, PROJECT_ID)
        stack_url = "https://api.stack-auth.com"
        for token, leeway in ((fixture["token"], back_then), (fresh, 5.0)):
            check = JwtVerifier(keys, project_id=PROJECT_ID, api_url=stack_url, leeway=leeway)
            identity = await check.verify(token)
            assert identity.snapshot
            assert identity.claims.sub == payload["sub"]
            assert identity.user.is_anonymous is payload["is_anonymous"]
            assert identity.user.is_restricted is payload["is_restricted"]
        # The fixture token now: expired. A valid one against another Stack URL: wrong issuer.
        for token, api_url, code in (
            (fixture["token"], stack_url, "TOKEN_EXPIRED"),
            (fresh, API_URL, "INVALID_TOKEN"),
        ):
            other = JwtVerifier(keys, project_id=PROJECT_ID, api_url=api_url)
            assert await _code_of(other, token) == code


# --- keys: rotation, floods, availability ------------------------------------------------------


async def test_key_rotation_refetches_once_and_accepts(
    jwt_settings: dict[str, Any], endpoint: JwksEndpoint, ring: KeyRing
) -> None:
    clock = Clock(1_000)
    async with stack_with_jwks_clock(jwt_settings, clock) as stack:
        transport = httpx.ASGITransport(app=build_app(stack))
        async with httpx.AsyncClient(transport=transport, base_url="http://app.test") as c:
            assert (await c.get("/me", headers=bearer(ring.mint()))).status_code == 200
            assert endpoint.fetches == 1
            clock.advance(45)
            ring.rotate()  # a new kid appears in Stack's JWKS and starts signing
            tokens = [ring.mint() for _ in range(10)]
            for token in tokens:
                assert (await c.get("/me", headers=bearer(token))).status_code == 200
            assert endpoint.fetches == 2


async def test_kid_flood_through_the_app_is_bounded(
    jwt_settings: dict[str, Any], endpoint: JwksEndpoint, ring: KeyRing
) -> None:
    clock = Clock(1_000)
    async with stack_with_jwks_clock(jwt_settings, clock) as stack:
        transport = httpx.ASGITransport(app=build_app(stack))
        async with httpx.AsyncClient(transport=transport, base_url="http://app.test") as c:
            clock.advance(60)
            for _ in range(200):
                forged = sign_jwt(SigningKey.generate(), claims_for())
                assert_error(await c.get("/me", headers=bearer(forged)), 401, "INVALID_TOKEN")
                clock.advance(0.1)  # 20 s of flooding in all
            assert (await c.get("/me", headers=bearer(ring.mint()))).status_code == 200
    assert endpoint.fetches == 2  # the startup load and one refetch


async def test_jwks_unavailable_at_first_use_is_503(
    jwt_settings: dict[str, Any],
    endpoint: JwksEndpoint,
    ring: KeyRing,
    caplog: pytest.LogCaptureFixture,
) -> None:
    endpoint.respond = lambda _request: httpx.Response(503, text="down")
    with caplog.at_level(logging.WARNING, logger="fastapi_stack_auth"):
        async with StackAuth(**jwt_settings) as stack:
            assert "Could not load the Stack Auth JWKS" in caplog.text
            transport = httpx.ASGITransport(app=build_app(stack))
            async with httpx.AsyncClient(transport=transport, base_url="http://app.test") as c:
                response = await c.get("/me", headers=bearer(ring.mint()))
    assert_error(response, 503, "STACK_AUTH_UNAVAILABLE")
    assert response.headers["retry-after"].isdigit()


async def test_jwks_garbage_at_first_use_is_502(
    jwt_settings: dict[str, Any], endpoint: JwksEndpoint, ring: KeyRing
) -> None:
    endpoint.respond = lambda _request: httpx.Response(200, json={"keys": "garbage"})
    async with StackAuth(**jwt_settings) as stack:
        transport = httpx.ASGITransport(app=build_app(stack))
        async with httpx.AsyncClient(transport=transport, base_url="http://app.test") as c:
            response = await c.get("/me", headers=bearer(ring.mint()))
    assert_error(response, 502, "STACK_AUTH_BAD_RESPONSE")


async def test_jwks_for_unknown_project_is_a_misconfiguration(
    jwt_settings: dict[str, Any], endpoint: JwksEndpoint, ring: KeyRing
) -> None:
    endpoint.respond = lambda _request: httpx.Response(404, text="Project not found")
    async with StackAuth(**jwt_settings) as stack:
        transport = httpx.ASGITransport(app=build_app(stack))
        async with httpx.AsyncClient(transport=transport, base_url="http://app.test") as c:
            response = await c.get("/me", headers=bearer(ring.mint()))
    assert_error(response, 500, "SERVER_MISCONFIGURED")


async def test_loaded_keys_keep_working_when_stack_goes_down(
    client: httpx.AsyncClient, endpoint: JwksEndpoint, ring: KeyRing
) -> None:
    endpoint.respond = lambda _request: httpx.Response(503, text="down")
    for _ in range(3):
        assert (await client.get("/me", headers=bearer(ring.mint()))).status_code == 200


async def test_jwks_loaded_lazily_when_startup_is_skipped(
    jwt_settings: dict[str, Any], endpoint: JwksEndpoint, ring: KeyRing
) -> None:
    stack = StackAuth(**jwt_settings)
    await stack.client.open()  # no start(): the JWKS is fetched on first use
    try:
        assert endpoint.calls == 0
        identity = await stack.authenticate(ring.mint())
        assert identity.snapshot
        assert endpoint.fetches == 1
    finally:
        await stack.stop()


# --- the verified-token cache ------------------------------------------------------------------


async def test_verified_token_is_not_verified_again(
    jwt_stack: StackAuth, client: httpx.AsyncClient, ring: KeyRing, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    original = JwtVerifier._decode

    def counting(self: JwtVerifier, raw: str, key: Any) -> dict[str, Any]:
        calls.append(raw)
        return original(self, raw, key)

    # Count the signature checks themselves (PyJWT's decode of a token with its key).
    monkeypatch.setattr(JwtVerifier, "_decode", counting)
    token = ring.mint()
    for _ in range(10):
        assert (await client.get("/me", headers=bearer(token))).status_code == 200
        assert (await client.get("/claims", headers=bearer(token))).status_code == 200
    assert len(calls) == 1
    assert jwt_stack.pipeline.cache.get(token_key(token)) is not None


async def test_verified_token_cache_lasts_until_exp_and_is_bounded(
    jwt_settings: dict[str, Any], endpoint: JwksEndpoint, ring: KeyRing
) -> None:
    async with StackAuth(**jwt_settings, cache_max_entries=3, cache_ttl=1) as stack:
        # cache_ttl is for remote mode: JWT-mode entries live until exp.
        token = ring.mint()
        await stack.authenticate(token)
        exp = jwt.decode(token, options={"verify_signature": False})["exp"]
        entries = stack.pipeline.cache._entries  # a TLRUCache on the wall clock
        # Not gone after cache_ttl (1 s) nor a second before exp; gone at exp.
        assert entries.expire(time.time() + 2) == []
        assert entries.expire(exp - 1) == []
        assert [key for key, _ in entries.expire(exp)] == [token_key(token)]
        for _ in range(10):
            await stack.authenticate(ring.mint())
        assert len(stack.pipeline.cache) == 3


async def test_failed_verification_is_not_cached(
    jwt_stack: StackAuth, client: httpx.AsyncClient, ring: KeyRing
) -> None:
    token = _tampered(ring)
    for _ in range(2):
        assert_error(await client.get("/me", headers=bearer(token)), 401, "INVALID_TOKEN")
    assert len(jwt_stack.pipeline.cache) == 0


# --- the full profile --------------------------------------------------------------------------


async def test_full_user_fetches_the_profile_once_per_cache_ttl(
    client: httpx.AsyncClient, ring: KeyRing, mock_api: respx.MockRouter
) -> None:
    payload = claims_for()
    token = sign_jwt(ring.signer(), payload)
    route = mock_api.get(USERS_ME).respond(
        200, json=user_body(id=payload["sub"], profile_image_url="https://img.test/a.png")
    )
    for path in ("/full", "/full", "/fetch"):
        response = await client.get(path, headers=bearer(token))
        assert response.status_code == 200, response.text
        user = response.json() if path == "/full" else response.json()["user"]
        assert user["id"] == payload["sub"]
        assert user["profile_image_url"] == "https://img.test/a.png"
    assert route.call_count == 1
    request = route.calls[0].request
    assert request.headers["x-stack-access-token"] == token
    assert request.headers["x-stack-access-type"] == "server"
    assert request.headers["x-stack-secret-server-key"] == SECRET_KEY


async def test_full_profile_sees_a_deleted_user(
    client: httpx.AsyncClient, ring: KeyRing, mock_api: respx.MockRouter
) -> None:
    token = ring.mint()
    mock_api.get(USERS_ME).mock(
        return_value=stack_error(400, "CANNOT_GET_OWN_USER_WITHOUT_USER", "no user")
    )
    assert (await client.get("/me", headers=bearer(token))).status_code == 200  # snapshot
    assert_error(await client.get("/full", headers=bearer(token)), 401, "USER_NOT_FOUND")


async def test_full_profile_applies_the_policy_first(
    client: httpx.AsyncClient, ring: KeyRing, mock_api: respx.MockRouter
) -> None:
    payload = claims_for("anonymous")
    profile = user_body(id=payload["sub"], is_anonymous=True, is_restricted=True)
    route = mock_api.get(USERS_ME).respond(200, json=profile)
    token = sign_jwt(ring.signer("anonymous"), payload)
    assert_error(
        await client.get("/full", headers=bearer(token)), 403, "ANONYMOUS_USER_NOT_ALLOWED"
    )
    # The token already shows a user this route does not let in: Stack is not asked.
    assert route.call_count == 0


async def test_fetch_user_takes_a_raw_token_and_verifies_it_first(
    jwt_stack: StackAuth, ring: KeyRing, mock_api: respx.MockRouter
) -> None:
    payload = claims_for()
    route = mock_api.get(USERS_ME).respond(200, json=user_body(id=payload["sub"]))
    user = await jwt_stack.fetch_user(sign_jwt(ring.signer(), payload))
    assert user.id == payload["sub"]
    assert user.primary_email_auth_enabled is not None
    with pytest.raises(AuthError) as info:
        await jwt_stack.fetch_user(_tampered(ring))
    assert info.value.status_code == 401
    assert route.call_count == 1


async def test_fetch_user_without_credential_is_401(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/fetch"), 401, "NOT_AUTHENTICATED")


async def test_full_profile_without_server_key_is_a_misconfiguration(
    jwt_settings: dict[str, Any],
    endpoint: JwksEndpoint,
    ring: KeyRing,
    mock_api: respx.MockRouter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = {k: v for k, v in jwt_settings.items() if k != "secret_server_key"}
    route = mock_api.get(USERS_ME).respond(200, json=user_body())
    with caplog.at_level(logging.ERROR, logger="fastapi_stack_auth"):
        async with StackAuth(**settings) as stack:
            transport = httpx.ASGITransport(app=build_app(stack))
            async with httpx.AsyncClient(transport=transport, base_url="http://app.test") as c:
                token = ring.mint()
                assert (await c.get("/me", headers=bearer(token))).status_code == 200
                assert_error(
                    await c.get("/full", headers=bearer(token)), 500, "SERVER_MISCONFIGURED"
                )
    assert route.call_count == 0
    assert "STACK_SECRET_SERVER_KEY" in caplog.text


async def test_full_user_in_remote_mode_is_current_user(
    stack: StackAuth, mock_api: respx.MockRouter
) -> None:
    route = mock_api.get(USERS_ME).respond(200, json=user_body())
    transport = httpx.ASGITransport(app=build_app(stack))
    async with httpx.AsyncClient(transport=transport, base_url="http://app.test") as c:
        token = mint_token()
        me = await c.get("/me", headers=bearer(token))
        full = await c.get("/full", headers=bearer(token))
    assert me.json() == full.json()
    assert route.call_count == 1


# --- settings ----------------------------------------------------------------------------------


def test_jwt_mode_needs_no_server_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STACK_PROJECT_ID", PROJECT_ID)
    monkeypatch.setenv("STACK_VERIFY", "jwt")
    monkeypatch.setenv("STACK_JWT_LEEWAY", "2.5")
    stack = StackAuth()
    assert stack.settings.verify == "jwt"
    assert stack.settings.secret_server_key is None
    assert stack.settings.jwt_leeway == 2.5
    assert isinstance(stack.pipeline.verifier, JwtVerifier)
    assert stack.jwks is not None


def test_remote_mode_is_the_default_and_needs_the_server_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STACK_PROJECT_ID", PROJECT_ID)
    stack = StackAuth()  # settings are read at first use (or when the app starts)
    with pytest.raises(StackAuthConfigError) as info:
        _ = stack.settings
    assert "STACK_SECRET_SERVER_KEY is required but not set" in str(info.value)
    assert "STACK_VERIFY=remote" in str(info.value)
    monkeypatch.setenv("STACK_SECRET_SERVER_KEY", SECRET_KEY)
    stack = StackAuth()
    assert stack.settings.verify == "remote"
    # Remote mode loads the JWKS too (to spare Stack forged tokens), but Stack decides.
    assert not isinstance(stack.pipeline.verifier, JwtVerifier)


@pytest.mark.parametrize(
    ("variable", "value"),
    [("STACK_VERIFY", "local"), ("STACK_JWT_LEEWAY", "-1"), ("STACK_JWT_LEEWAY", "3600")],
)
def test_invalid_jwt_settings_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv("STACK_PROJECT_ID", PROJECT_ID)
    monkeypatch.setenv("STACK_SECRET_SERVER_KEY", SECRET_KEY)
    monkeypatch.setenv(variable, value)
    stack = StackAuth()  # settings are read at first use (or when the app starts)
    with pytest.raises(StackAuthConfigError) as info:
        _ = stack.settings
    assert f"{variable} is invalid" in str(info.value)
    assert "STACK_SECRET_SERVER_KEY is required" not in str(info.value)


async def test_jwt_mode_without_key_skips_the_startup_key_check(
    jwt_settings: dict[str, Any], endpoint: JwksEndpoint, mock_api: respx.MockRouter
) -> None:
    settings = {k: v for k, v in jwt_settings.items() if k != "secret_server_key"}
    project = mock_api.get("/projects/current").respond(200, json={})
    async with StackAuth(**{**settings, "check_keys_on_startup": True}):
        pass
    assert project.call_count == 0
    assert endpoint.fetches == 1


# --- over a real loopback server ---------------------------------------------------------------


async def test_jwt_mode_against_a_real_loopback_jwks_server(
    stack_settings: dict[str, Any], ring: KeyRing
) -> None:
    served = JwksEndpoint(ring)
    with serve_in_thread(jwks_app(served)) as url:
        settings = {**stack_settings, "api_url": url, "verify": "jwt"}
        async with StackAuth(**settings) as stack:
            transport = httpx.ASGITransport(app=build_app(stack))
            async with httpx.AsyncClient(transport=transport, base_url="http://app.test") as c:
                for kind, path in (
                    ("normal", "/me"),
                    ("restricted", "/restricted-ok"),
                    ("anonymous", "/anon-ok"),
                ):
                    token = sign_jwt(ring.signer(kind), claims_for(kind, api_url=url))
                    assert (await c.get(path, headers=bearer(token))).status_code == 200
                # A token whose iss names another Stack than the one we verify against.
                other = sign_jwt(ring.signer(), claims_for(api_url=API_URL))
                assert_error(await c.get("/me", headers=bearer(other)), 401, "INVALID_TOKEN")
    assert served.fetches == 1


async def test_short_key_coordinates_over_a_real_loopback_jwks_server(
    stack_settings: dict[str, Any], ring: KeyRing
) -> None:
    """Stack drops a coordinate's leading zero bytes (issue 9.1): about 1 key in 128 has an
    ``x`` or ``y`` of 42 base64url characters, and tokens it signs must verify."""
    short = SigningKey.generate_short()
    ring.keys["normal"].insert(0, short)
    published = short.public_jwk(minimal=True)
    assert 42 in (len(published["x"]), len(published["y"]))
    # Refused, and skipped while the rest of the set stays in use: a coordinate of 33 bytes
    # (one zero byte too many) and a point that is not on P-256.
    overlong_key, off_curve_key = SigningKey.generate(), SigningKey.generate()
    numbers = overlong_key.private.public_key().public_numbers()
    overlong = {**overlong_key.public_jwk(), "x": b64url(numbers.x.to_bytes(33, "big"))}
    assert len(overlong["x"]) == 44
    numbers = off_curve_key.private.public_key().public_numbers()
    with pytest.raises(ValueError, match="curve"):
        ec.EllipticCurvePublicNumbers(numbers.x, numbers.y ^ 1, ec.SECP256R1()).public_key()
    off_curve = {**off_curve_key.public_jwk(), "y": b64url((numbers.y ^ 1).to_bytes(32, "big"))}

    def respond(request: httpx.Request) -> httpx.Response:
        kinds = kinds_asked(request)
        assert kinds is not None
        keys = [*ring.jwks(kinds, minimal=True)["keys"], overlong, off_curve]
        return httpx.Response(200, json={"keys": keys}, headers={"cache-control": "max-age=600"})

    served = JwksEndpoint(ring, respond=respond)
    with serve_in_thread(jwks_app(served)) as url:
        settings = {**stack_settings, "api_url": url, "verify": "jwt"}
        async with StackAuth(**settings) as stack:
            assert stack.jwks is not None
            assert short.kid in stack.jwks.kids
            assert len(stack.jwks.kids) == 7  # the ring's six and the short one
            transport = httpx.ASGITransport(app=build_app(stack))
            async with httpx.AsyncClient(transport=transport, base_url="http://app.test") as c:
                for signer in (short, ring.keys["normal"][1]):
                    token = sign_jwt(signer, claims_for(api_url=url))
                    response = await c.get("/me", headers=bearer(token))
                    assert response.status_code == 200, response.text
                    assert response.json()["id"] == unverified_sub(token)
                for refused in (overlong_key, off_curve_key):
                    token = sign_jwt(refused, claims_for(api_url=url))
                    assert_error(await c.get("/me", headers=bearer(token)), 401, "INVALID_TOKEN")
    assert served.fetches == 1
