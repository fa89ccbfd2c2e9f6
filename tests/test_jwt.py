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
from typing import Any

import httpx
import pytest
import respx
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from fastapi import Depends, FastAPI, Request, WebSocket
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from fastapi_stack_auth import (
    ClaimsDependency,
    Identity,
    JwksCache,
    JwtVerifier,
    RestrictedReason,
    StackAuth,
    StackAuthConfigError,
    StackClient,
    StackUser,
    TokenClaims,
    UserDependency,
    current_user,
    full_user,
    token_claims,
)
from fastapi_stack_auth._cache import token_key
from fastapi_stack_auth._errors import AuthError
from fastapi_stack_auth._settings import load_settings
from fastapi_stack_auth._tokens import parse_access_token
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


def with_jwks_clock(stack: StackAuth, clock: Clock) -> None:
    """Give ``stack`` a JWKS cache whose time the test controls (same client, settings)."""
    s = stack.settings
    stack.verifier = JwtVerifier(
        JwksCache(stack.client, s.project_id, clock=clock),
        project_id=s.project_id,
        api_url=s.api_url,
        leeway=s.jwt_leeway,
    )


# --- the happy path ----------------------------------------------------------------------------


async def test_valid_token_is_accepted_with_no_io_after_the_jwks(
    client: httpx.AsyncClient, ring: KeyRing, mock_api: respx.MockRouter
) -> None:
    assert len(mock_api.calls) == 1  # the JWKS, loaded at startup
    tokens = [ring.mint() for _ in range(5)]
    for token in tokens * 3:
        assert (await client.get("/me", headers=bearer(token))).status_code == 200
        assert (await client.get("/claims", headers=bearer(token))).status_code == 200
    assert len(mock_api.calls) == 1


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
    assert response.json()["sub"] == parse_access_token(token).claims.sub


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
    assert response.json()["id"] == parse_access_token(token).claims.sub


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
    assert len(mock_api.calls) <= 2


# --- leeway and time, with a controlled clock --------------------------------------------------


@pytest.fixture
async def verifier(
    endpoint: JwksEndpoint, jwt_settings: dict[str, Any]
) -> AsyncIterator[Callable[..., JwtVerifier]]:
    """Makes a ``JwtVerifier`` with a given clock and leeway, over the mocked JWKS."""
    async with StackClient(load_settings(**jwt_settings)) as http:

        def make(clock: Callable[[], float], leeway: float = 5.0) -> JwtVerifier:
            return JwtVerifier(
                JwksCache(http, PROJECT_ID),
                project_id=PROJECT_ID,
                api_url=API_URL,
                leeway=leeway,
                clock=clock,
            )

        yield make


async def _verify(verifier: JwtVerifier, token: str) -> Identity:
    return await verifier.verify(parse_access_token(token))


@pytest.mark.parametrize(
    ("leeway", "seconds_past_exp", "accepted"),
    [(5, -1, True), (5, 0, True), (5, 4.9, True), (5, 5, False), (0, 0, False), (0, -0.5, True)],
)
async def test_exp_leeway(
    verifier: Callable[..., JwtVerifier],
    ring: KeyRing,
    leeway: float,
    seconds_past_exp: float,
    accepted: bool,
) -> None:
    payload = claims_for(now=1_800_000_000)
    clock = Clock(payload["exp"] + seconds_past_exp)
    check = verifier(clock, leeway=leeway)
    token = sign_jwt(ring.signer(), payload)
    if accepted:
        assert (await _verify(check, token)).claims.sub == payload["sub"]
    else:
        with pytest.raises(AuthError) as info:
            await _verify(check, token)
        assert info.value.code == "TOKEN_EXPIRED"


@pytest.mark.parametrize("claim", ["nbf", "iat"])
@pytest.mark.parametrize(("ahead", "accepted"), [(4, True), (6, False)])
async def test_not_yet_valid_leeway(
    verifier: Callable[..., JwtVerifier], ring: KeyRing, claim: str, ahead: int, accepted: bool
) -> None:
    now = 1_800_000_000
    payload = claims_for(now=now, **{claim: now + ahead})
    check = verifier(Clock(now), leeway=5)
    token = sign_jwt(ring.signer(), payload)
    if accepted:
        await _verify(check, token)
    else:
        with pytest.raises(AuthError) as info:
            await _verify(check, token)
        assert info.value.code == "INVALID_TOKEN"


async def test_expired_within_leeway_passes_the_precheck_too(
    client: httpx.AsyncClient, ring: KeyRing
) -> None:
    token = ring.mint(exp=int(time.time()) - 2)  # default leeway is 5 s
    assert (await client.get("/me", headers=bearer(token))).status_code == 200


@pytest.mark.parametrize("kind", ["normal", "restricted", "anonymous"])
async def test_contract_fixture_tokens_verify(
    mock_api: respx.MockRouter, stack_settings: dict[str, Any], kind: str
) -> None:
    """The contract's real-shaped tokens against its JWKS, at a time they were valid."""
    fixture = json.loads((CONTRACT_FIXTURES / "tokens" / f"access-token.{kind}.json").read_text())
    jwks = json.loads((CONTRACT_FIXTURES / "jwks.include_anonymous.json").read_text())
    mock_api.get(f"/projects/{PROJECT_ID}/.well-known/jwks.json").respond(200, json=jwks)
    payload = fixture["payload"]
    async with StackAuth(**{**stack_settings, "verify": "jwt"}) as stack:
        verifier = JwtVerifier(
            JwksCache(stack.client, PROJECT_ID),
            project_id=PROJECT_ID,
            api_url="https://api.stack-auth.com",
            clock=Clock(payload["iat"] + 60),
        )
        identity = await verifier.verify(parse_access_token(fixture["token"]))
        assert identity.snapshot
        assert identity.claims.sub == payload["sub"]
        assert identity.user.is_anonymous is payload["is_anonymous"]
        assert identity.user.is_restricted is payload["is_restricted"]
        # Same token, later: expired. Same token, another Stack URL: wrong issuer.
        for clock, api_url, code in (
            (Clock(payload["exp"] + 60), "https://api.stack-auth.com", "TOKEN_EXPIRED"),
            (Clock(payload["iat"] + 60), API_URL, "INVALID_TOKEN"),
        ):
            other = JwtVerifier(verifier.jwks, project_id=PROJECT_ID, api_url=api_url, clock=clock)
            with pytest.raises(AuthError) as info:
                await other.verify(parse_access_token(fixture["token"]))
            assert info.value.code == code


# --- keys: rotation, floods, availability ------------------------------------------------------


async def test_key_rotation_refetches_once_and_accepts(
    jwt_settings: dict[str, Any], endpoint: JwksEndpoint, ring: KeyRing
) -> None:
    clock = Clock(1_000)
    stack = StackAuth(**jwt_settings)
    with_jwks_clock(stack, clock)
    async with stack:
        transport = httpx.ASGITransport(app=build_app(stack))
        async with httpx.AsyncClient(transport=transport, base_url="http://app.test") as c:
            assert (await c.get("/me", headers=bearer(ring.mint()))).status_code == 200
            assert endpoint.calls == 1
            clock.advance(45)
            ring.rotate()  # a new kid appears in Stack's JWKS and starts signing
            tokens = [ring.mint() for _ in range(10)]
            for token in tokens:
                assert (await c.get("/me", headers=bearer(token))).status_code == 200
            assert endpoint.calls == 2


async def test_kid_flood_through_the_app_is_bounded(
    jwt_settings: dict[str, Any], endpoint: JwksEndpoint, ring: KeyRing
) -> None:
    clock = Clock(1_000)
    stack = StackAuth(**jwt_settings)
    with_jwks_clock(stack, clock)
    async with stack:
        transport = httpx.ASGITransport(app=build_app(stack))
        async with httpx.AsyncClient(transport=transport, base_url="http://app.test") as c:
            clock.advance(60)
            for _ in range(200):
                forged = sign_jwt(SigningKey.generate(), claims_for())
                assert_error(await c.get("/me", headers=bearer(forged)), 401, "INVALID_TOKEN")
                clock.advance(0.1)  # 20 s of flooding in all
            assert (await c.get("/me", headers=bearer(ring.mint()))).status_code == 200
    assert endpoint.calls == 2  # the startup load and one refetch


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
        assert endpoint.calls == 1
    finally:
        await stack.stop()


# --- the verified-token cache ------------------------------------------------------------------


async def test_verified_token_is_not_verified_again(
    jwt_stack: StackAuth, client: httpx.AsyncClient, ring: KeyRing, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    original = JwtVerifier._check_signature

    def counting(raw: str, key: Any) -> None:
        calls.append(raw)
        original(raw, key)

    # Count the ECDSA checks themselves, whichever path (inline or awaited) reaches them.
    monkeypatch.setattr(JwtVerifier, "_check_signature", staticmethod(counting))
    token = ring.mint()
    for _ in range(10):
        assert (await client.get("/me", headers=bearer(token))).status_code == 200
        assert (await client.get("/claims", headers=bearer(token))).status_code == 200
    assert len(calls) == 1
    assert jwt_stack.cache.get(token_key(token)) is not None


async def test_verified_token_cache_lasts_until_exp_and_is_bounded(
    jwt_settings: dict[str, Any], endpoint: JwksEndpoint, ring: KeyRing
) -> None:
    async with StackAuth(**jwt_settings, cache_max_entries=3, cache_ttl=1) as stack:
        # cache_ttl is for remote mode: JWT-mode entries live until exp.
        token = ring.mint()
        await stack.authenticate(token)
        exp = parse_access_token(token).claims.exp
        deadline, _ = stack.cache._entries[token_key(token)]
        assert deadline - time.monotonic() == pytest.approx(exp - time.time(), abs=2)
        for _ in range(10):
            await stack.authenticate(ring.mint())
        assert len(stack.cache) == 3


async def test_failed_verification_is_not_cached(
    jwt_stack: StackAuth, client: httpx.AsyncClient, ring: KeyRing
) -> None:
    token = _tampered(ring)
    for _ in range(2):
        assert_error(await client.get("/me", headers=bearer(token)), 401, "INVALID_TOKEN")
    assert len(jwt_stack.cache) == 0


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
    route = mock_api.get(USERS_ME).respond(200, json=user_body())
    response = await client.get("/full", headers=bearer(ring.mint("anonymous")))
    assert_error(response, 403, "ANONYMOUS_USER_NOT_ALLOWED")
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
    assert isinstance(stack.verifier, JwtVerifier)
    assert stack.jwks is not None


def test_remote_mode_is_the_default_and_needs_the_server_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STACK_PROJECT_ID", PROJECT_ID)
    with pytest.raises(StackAuthConfigError) as info:
        StackAuth()
    assert "STACK_SECRET_SERVER_KEY is required but not set" in str(info.value)
    assert "STACK_VERIFY=remote" in str(info.value)
    monkeypatch.setenv("STACK_SECRET_SERVER_KEY", SECRET_KEY)
    stack = StackAuth()
    assert stack.settings.verify == "remote"
    assert stack.jwks is None


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
    with pytest.raises(StackAuthConfigError) as info:
        StackAuth()
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
    assert endpoint.calls == 1


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
    assert served.calls == 1
