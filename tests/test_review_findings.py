"""Findings of the outside security and reliability review (issue 9), each with its test."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import respx
from fastapi import Depends, FastAPI

from fastapi_stack_auth import StackAuth, StackUser, current_user, full_user
from fastapi_stack_auth._pipeline import REJECTION_TTL
from tests.conftest import USER_ID, mint_token, stack_error, user_body
from tests.jwt_helpers import JwksEndpoint, KeyRing


def _app(stack: StackAuth) -> FastAPI:
    app = FastAPI()
    stack.init_app(app)

    @app.get("/me")
    async def me(user: StackUser = Depends(current_user)) -> dict[str, Any]:
        return {"id": user.id, "restricted": user.is_restricted}

    @app.get("/full")
    async def full(user: StackUser = Depends(full_user)) -> dict[str, Any]:
        return {"id": user.id, "restricted": user.is_restricted}

    return app


async def _client(stack: StackAuth) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=_app(stack))
    async with stack, httpx.AsyncClient(transport=transport, base_url="http://app.test") as c:
        yield c


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- 9.2: full_user applies the policy to the fresh profile ----------------------------------


async def test_full_user_in_jwt_mode_refuses_a_user_restricted_since_the_token(
    stack_settings: dict[str, Any],
    mock_api: respx.MockRouter,
    ring: KeyRing,
    endpoint: JwksEndpoint,
) -> None:
    token = ring.mint(sub=USER_ID)  # a normal user when the token was issued
    mock_api.get("/users/me").respond(
        200,
        json=user_body(
            is_restricted=True,
            restricted_reason={"type": "restricted_by_administrator"},
            restricted_by_admin=True,
        ),
    )
    stack = StackAuth(**{**stack_settings, "verify": "jwt"})
    async for client in _client(stack):
        snapshot = await client.get("/me", headers=_bearer(token))
        fresh = await client.get("/full", headers=_bearer(token))
    assert (snapshot.status_code, snapshot.json()) == (200, {"id": USER_ID, "restricted": False})
    assert fresh.status_code == 403
    assert fresh.json()["code"] == "RESTRICTED_USER_NOT_ALLOWED"


# --- 9.4: forged tokens do not cost a Stack call each ----------------------------------------


async def test_a_token_stack_rejected_is_remembered_briefly(
    stack_settings: dict[str, Any], mock_api: respx.MockRouter
) -> None:
    route = mock_api.get("/users/me").mock(return_value=stack_error(401, "UNPARSABLE_ACCESS_TOKEN"))
    stack = StackAuth(**stack_settings)
    forged = mint_token()
    async for client in _client(stack):
        answers = [await client.get("/me", headers=_bearer(forged)) for _ in range(50)]
        assert {a.status_code for a in answers} == {401}
        assert {a.json()["code"] for a in answers} == {"INVALID_TOKEN"}
        assert route.call_count == 1
        # Only for a few seconds: then Stack is asked again.
        assert 0 < REJECTION_TTL <= 10
        stack.pipeline.rejected.clear()  # as if REJECTION_TTL had passed
        assert (await client.get("/me", headers=_bearer(forged))).status_code == 401
        assert route.call_count == 2


async def test_a_fault_is_never_remembered_as_a_rejection(
    stack_settings: dict[str, Any], mock_api: respx.MockRouter
) -> None:
    route = mock_api.get("/users/me")
    route.side_effect = [httpx.Response(503), httpx.Response(200, json=user_body())]
    stack = StackAuth(**{**stack_settings, "max_attempts": 1})
    token = mint_token()
    async for client in _client(stack):
        assert (await client.get("/me", headers=_bearer(token))).status_code == 503
        assert (await client.get("/me", headers=_bearer(token))).status_code == 200
    assert route.call_count == 2


async def test_remote_mode_rejects_a_forged_signature_without_asking_stack(
    stack_settings: dict[str, Any],
    mock_api: respx.MockRouter,
    ring: KeyRing,
    endpoint: JwksEndpoint,
) -> None:
    me = mock_api.get("/users/me").respond(200, json=user_body())
    stack = StackAuth(**stack_settings)  # remote mode; the JWKS is served, so it is known
    genuine = ring.mint(sub=USER_ID)
    async for client in _client(stack):
        at_startup = endpoint.calls  # the key sets loaded once
        # 50 distinct forged tokens, right audience and a future exp, bad signatures.
        forged = [mint_token(jti=str(n)) for n in range(50)]
        answers = await asyncio.gather(*(client.get("/me", headers=_bearer(t)) for t in forged))
        ok = await client.get("/me", headers=_bearer(genuine))
    assert {a.status_code for a in answers} == {401}
    assert me.call_count == 1  # the genuine token only
    assert ok.status_code == 200
    # Their unknown kid asked for one rate-limited refetch at most, not one per token.
    assert at_startup > 0
    assert endpoint.calls <= 2 * at_startup


async def test_remote_mode_without_a_jwks_still_asks_stack(
    stack_settings: dict[str, Any],
    mock_api: respx.MockRouter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    me = mock_api.get("/users/me").respond(200, json=user_body())
    stack = StackAuth(**stack_settings)
    with caplog.at_level(logging.INFO, logger="fastapi_stack_auth"):
        async for client in _client(stack):
            assert (await client.get("/me", headers=_bearer(mint_token()))).status_code == 200
    assert me.call_count == 1
    assert "without a local signature check" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


# --- 9.10: a wrong project id is our fault ---------------------------------------------------


async def test_a_project_id_stack_does_not_know_answers_500_not_401(
    stack_settings: dict[str, Any],
    mock_api: respx.MockRouter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    mock_api.get("/projects/current").mock(
        return_value=stack_error(400, "CURRENT_PROJECT_NOT_FOUND")
    )
    me = mock_api.get("/users/me").respond(200, json=user_body())
    stack = StackAuth(**{**stack_settings, "check_keys_on_startup": True})
    valid_elsewhere = mint_token(project_id="11111111-2222-4333-8444-555555555555")
    async for client in _client(stack):
        response = await client.get("/me", headers=_bearer(valid_elsewhere))
        ours = await client.get("/me", headers=_bearer(mint_token()))
    assert response.status_code == 500
    assert response.json()["code"] == "SERVER_MISCONFIGURED"
    assert ours.status_code == 500
    assert me.call_count == 0
    assert "STACK_PROJECT_ID" in caplog.text


async def test_a_token_for_another_project_is_still_401_when_ours_is_right(
    stack_settings: dict[str, Any], mock_api: respx.MockRouter
) -> None:
    mock_api.get("/projects/current").respond(200, json={"id": "x"})
    stack = StackAuth(**{**stack_settings, "check_keys_on_startup": True})
    other = mint_token(project_id="11111111-2222-4333-8444-555555555555")
    async for client in _client(stack):
        response = await client.get("/me", headers=_bearer(other))
    assert response.status_code == 401


# --- 9.8: a key signs only for its own audience ----------------------------------------------


async def test_remote_mode_refuses_a_token_signed_with_another_audiences_key(
    stack_settings: dict[str, Any],
    mock_api: respx.MockRouter,
    ring: KeyRing,
    endpoint: JwksEndpoint,
) -> None:
    from tests.jwt_helpers import claims_for, sign_jwt

    me = mock_api.get("/users/me").respond(200, json=user_body())
    stack = StackAuth(**stack_settings)
    # The normal audience, signed with the anonymous users' key.
    confused = sign_jwt(ring.signer("anonymous"), claims_for("normal", sub=USER_ID))
    async for client in _client(stack):
        response = await client.get("/me", headers=_bearer(confused))
    assert response.status_code == 401
    assert response.json()["detail"] == "The access token is signed with another audience's key"
    assert me.call_count == 0


# --- 9.7: the issuer base can differ from the API URL ----------------------------------------


async def test_jwt_issuer_url_setting_reaches_the_verifier(
    stack_settings: dict[str, Any],
    mock_api: respx.MockRouter,
    ring: KeyRing,
    endpoint: JwksEndpoint,
) -> None:
    public = "https://auth.example.com"
    token = ring.mint(sub=USER_ID, iss=f"{public}/api/v1/projects/{stack_settings['project_id']}")
    wrong = StackAuth(**{**stack_settings, "verify": "jwt"})
    right = StackAuth(**{**stack_settings, "verify": "jwt", "jwt_issuer_url": public.upper()})
    async for client in _client(wrong):
        assert (await client.get("/me", headers=_bearer(token))).status_code == 401
    async for client in _client(right):
        assert (await client.get("/me", headers=_bearer(token))).status_code == 200
