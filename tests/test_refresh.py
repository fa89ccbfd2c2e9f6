"""Silent refresh against a mocked Stack (respx): an expired access token sent with its refresh
token is exchanged through the refresh grant once (single flight, cached by the refresh token's
digest), the request proceeds as the user, and the new token goes back in a response header (and
the access cookie); revoked, forged, down and misconfigured cases answer as documented."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import respx
from fastapi import Depends, FastAPI, HTTPException, WebSocket
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from starlette.requests import Request

from fastapi_stack_auth import StackAuth, StackUser, UserDependency, current_user, optional_user
from fastapi_stack_auth._cookies import choose_refresh_token, stack_cookies
from fastapi_stack_auth._pipeline import REJECTION_TTL
from fastapi_stack_auth._refresh import (
    PUBLIC_CLIENT_SECRET,
    REFRESH_MARGIN,
    Refresher,
    use_refresher,
)
from fastapi_stack_auth._refresh_relay import REFRESHED_HEADER, RELAY_KEY, Refreshed, RefreshRelay
from tests.conftest import (
    PROJECT_ID,
    PUBLISHABLE_KEY,
    SECRET_KEY,
    eventually,
    stack_error,
    user_body,
)
from tests.jwt_helpers import KeyRing, SigningKey, claims_for, sign_jwt

USER = "3f5c8e21-7a4b-4c9d-8e2f-1a6b3c4d5e6f"
SESSION = "e1d2c3b4-a5f6-4e7d-8c9b-0a1b2c3d4e5f"
RT = "0123456789abcdefghjkmnpqrstvwxyz0123456789abc"
TOKEN_PATH = "/auth/oauth/token"


def expired(ring: KeyRing, **claims: Any) -> str:
    """A genuine token of ``USER``'s session that expired 50 minutes ago."""
    return ring.mint(
        **{"sub": USER, "refresh_token_id": SESSION, "now": time.time() - 3600, **claims}
    )


def fresh(ring: KeyRing, **claims: Any) -> str:
    return ring.mint(**{"sub": USER, "refresh_token_id": SESSION, **claims})


def sdk_header(access: str, refresh: str | None = RT) -> dict[str, str]:
    return {"x-stack-auth": json.dumps({"accessToken": access, "refreshToken": refresh})}


def grant_answer(token: str) -> httpx.Response:
    """The refresh grant's 200 (contract §7.2, the fixture's shape)."""
    body = {
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": 3599,
        "scope": "legacy",
        "afterCallbackRedirectUrl": None,
        "after_callback_redirect_url": None,
    }
    return httpx.Response(200, json=body, headers={"cache-control": "no-store"})


def build_app(stack: StackAuth) -> FastAPI:
    app = FastAPI()
    stack.init_app(app)

    @app.get("/me")
    async def me(request: Request, user: StackUser = Depends(current_user)) -> dict[str, Any]:
        return {"id": user.id, "relayed": RELAY_KEY in request.scope}

    @app.get("/hello")
    async def hello(user: StackUser | None = Depends(optional_user)) -> dict[str, Any]:
        return {"id": user.id if user else None}

    @app.post("/own-response")
    async def own(user: StackUser = Depends(current_user)) -> JSONResponse:
        return JSONResponse({"id": user.id}, headers={"cache-control": "public, max-age=600"})

    @app.get("/missing")
    async def missing(user: StackUser = Depends(current_user)) -> None:
        raise HTTPException(404, "no such thing")

    @app.websocket("/ws")
    async def ws(websocket: WebSocket, user: StackUser = Depends(current_user)) -> None:
        await websocket.accept()
        token = getattr(websocket.state, "stack_refreshed_access_token", None)
        await websocket.send_json({"id": user.id, "refreshed": token})
        await websocket.close()

    return app


@pytest.fixture
def jwt_settings(stack_settings: dict[str, Any]) -> dict[str, Any]:
    return {**stack_settings, "verify": "jwt", "silent_refresh": True, "cookies": True}


@pytest.fixture
def grant(mock_api: respx.MockRouter) -> respx.Route:
    return mock_api.post(TOKEN_PATH)


@pytest.fixture
async def stack(jwt_settings: dict[str, Any], endpoint: Any) -> AsyncIterator[StackAuth]:
    async with StackAuth(**jwt_settings) as started:
        yield started


@pytest.fixture
async def client(stack: StackAuth) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=build_app(stack))
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as c:
        yield c


# --- the refresh ------------------------------------------------------------------------------


async def test_expired_token_is_refreshed_and_handed_back(
    client: httpx.AsyncClient, ring: KeyRing, grant: respx.Route
) -> None:
    new = fresh(ring)
    grant.mock(return_value=grant_answer(new))
    response = await client.get("/me", headers=sdk_header(expired(ring)))
    assert response.status_code == 200, response.text
    assert response.json() == {"id": USER, "relayed": True}
    assert response.headers[REFRESHED_HEADER] == new
    assert response.headers["cache-control"] == "no-store"
    assert "set-cookie" not in response.headers  # a header credential: no cookie to update
    # The grant as the contract describes it, with our server credentials.
    sent = grant.calls.last.request
    assert json.loads(sent.content) == {
        "grant_type": "refresh_token",
        "refresh_token": RT,
        "client_id": PROJECT_ID,
        "client_secret": PUBLISHABLE_KEY,
    }
    assert sent.headers["x-stack-access-type"] == "server"
    assert sent.headers["x-stack-secret-server-key"] == SECRET_KEY
    assert "x-stack-access-token" not in sent.headers  # never the expired token (§7.3)


async def test_stackauth_bearer_shape_carries_the_refresh_token(
    client: httpx.AsyncClient, ring: KeyRing, grant: respx.Route
) -> None:
    new = fresh(ring)
    grant.mock(return_value=grant_answer(new))
    text = json.dumps({"accessToken": expired(ring), "refreshToken": RT})
    bearer = "Bearer stackauth_" + base64.b64encode(text.encode()).decode()
    response = await client.get("/me", headers={"Authorization": bearer})
    assert response.status_code == 200
    assert response.headers[REFRESHED_HEADER] == new


async def test_the_next_requests_need_no_grant(
    client: httpx.AsyncClient, ring: KeyRing, grant: respx.Route
) -> None:
    new = fresh(ring)
    grant.mock(return_value=grant_answer(new))
    old = expired(ring)
    for _ in range(3):  # the frontend has not picked the new token up yet: cached
        response = await client.get("/me", headers=sdk_header(old))
        assert response.headers[REFRESHED_HEADER] == new
    # Once it has, the new token is an ordinary cache hit: nothing to refresh, no header.
    response = await client.get("/me", headers=sdk_header(new))
    assert response.status_code == 200
    assert REFRESHED_HEADER not in response.headers
    assert grant.call_count == 1


async def test_50_concurrent_requests_make_one_grant(
    stack: StackAuth, client: httpx.AsyncClient, ring: KeyRing, grant: respx.Route
) -> None:
    entered = 0

    class Counting(Refresher):
        async def access_token(self, refresh_token: str) -> str:
            nonlocal entered
            entered += 1
            return await super().access_token(refresh_token)

    use_refresher(stack, Counting(stack.client, stack.settings))
    release = asyncio.Event()
    new = fresh(ring)

    async def slow_grant(request: httpx.Request) -> httpx.Response:
        await release.wait()
        return grant_answer(new)

    grant.mock(side_effect=slow_grant)
    old = expired(ring)
    requests = [asyncio.create_task(client.get("/me", headers=sdk_header(old))) for _ in range(50)]
    # Every request waits on the one grant in flight.
    await eventually(lambda: entered >= 50, "all 50 requests reach the refresher")
    release.set()
    responses = await asyncio.gather(*requests)
    assert [r.status_code for r in responses] == [200] * 50
    assert {r.headers[REFRESHED_HEADER] for r in responses} == {new}
    assert grant.call_count == 1


async def test_cached_until_shortly_before_the_new_tokens_exp(
    stack: StackAuth, client: httpx.AsyncClient, ring: KeyRing, grant: respx.Route
) -> None:
    now = [time.time()]
    use_refresher(stack, Refresher(stack.client, stack.settings, clock=lambda: now[0]))
    first, second = fresh(ring, ttl=600), fresh(ring, ttl=600)
    grant.mock(side_effect=[grant_answer(first), grant_answer(second)])
    old = expired(ring)
    assert (await client.get("/me", headers=sdk_header(old))).headers[REFRESHED_HEADER] == first
    now[0] += 600 - REFRESH_MARGIN - 2  # still cached
    assert (await client.get("/me", headers=sdk_header(old))).headers[REFRESHED_HEADER] == first
    now[0] += 4  # inside the margin: a new grant
    assert (await client.get("/me", headers=sdk_header(old))).headers[REFRESHED_HEADER] == second
    assert grant.call_count == 2


async def test_optional_routes_refresh_too(
    client: httpx.AsyncClient, ring: KeyRing, grant: respx.Route
) -> None:
    new = fresh(ring)
    grant.mock(return_value=grant_answer(new))
    response = await client.get("/hello", headers=sdk_header(expired(ring)))
    assert response.json() == {"id": USER}
    assert response.headers[REFRESHED_HEADER] == new


# --- when there is nothing to refresh ------------------------------------------------------------


async def test_no_refresh_token_no_refresh(
    client: httpx.AsyncClient, ring: KeyRing, grant: respx.Route
) -> None:
    old = expired(ring)
    for headers in (
        {"x-stack-access-token": old},
        {"Authorization": f"Bearer {old}"},
        sdk_header(old, refresh=None),
        sdk_header(old, refresh="has space"),
    ):
        response = await client.get("/me", headers=headers)
        assert response.status_code == 401
        assert response.json()["code"] == "TOKEN_EXPIRED"
    assert grant.call_count == 0


async def test_off_by_default(
    stack_settings: dict[str, Any], endpoint: Any, ring: KeyRing, grant: respx.Route
) -> None:
    async with StackAuth(**stack_settings, verify="jwt") as stack:
        transport = httpx.ASGITransport(app=build_app(stack))
        async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as c:
            response = await c.get("/me", headers=sdk_header(expired(ring)))
    assert response.status_code == 401
    assert response.json()["code"] == "TOKEN_EXPIRED"
    assert grant.call_count == 0


def forged_expired(ring: KeyRing) -> str:
    """A token with a past ``exp`` and the ring's ``kid``, signed with another key."""
    impostor = SigningKey.generate(kid=ring.signer().kid)
    payload = claims_for(sub=USER, refresh_token_id=SESSION, now=time.time() - 3600)
    return sign_jwt(impostor, payload)


@pytest.mark.parametrize(
    "token",
    [
        forged_expired,
        lambda ring: "not-a-jwt",
        lambda ring: expired(ring)[:-4] + "AAAA",
        lambda ring: expired(ring, aud=f"{PROJECT_ID}:restricted"),  # another audience's key
        lambda ring: fresh(ring, project_id="other", aud="other"),
    ],
)
async def test_forged_or_invalid_tokens_are_never_refreshed(
    client: httpx.AsyncClient, ring: KeyRing, grant: respx.Route, token: Callable[[KeyRing], str]
) -> None:
    grant.mock(return_value=grant_answer(fresh(ring)))
    response = await client.get("/me", headers=sdk_header(token(ring)))
    assert response.status_code == 401
    assert response.json()["code"] == "INVALID_TOKEN"
    assert grant.call_count == 0


async def test_remote_mode_checks_the_signature_before_refreshing(
    stack_settings: dict[str, Any],
    endpoint: Any,
    ring: KeyRing,
    grant: respx.Route,
    mock_api: respx.MockRouter,
) -> None:
    # Remote mode judges exp before the signature: the refresh checks the signature itself.
    new = fresh(ring)
    grant.mock(return_value=grant_answer(new))
    users_me = mock_api.get("/users/me").respond(200, json=user_body(id=USER))
    async with StackAuth(**stack_settings, silent_refresh=True) as stack:
        transport = httpx.ASGITransport(app=build_app(stack))
        async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as c:
            forged = await c.get("/me", headers=sdk_header(forged_expired(ring)))
            good = await c.get("/me", headers=sdk_header(expired(ring)))
    assert forged.status_code == 401
    assert forged.json()["code"] == "INVALID_TOKEN"
    assert good.status_code == 200
    assert good.headers[REFRESHED_HEADER] == new
    assert grant.call_count == 1
    assert users_me.calls.last.request.headers["x-stack-access-token"] == new


# --- what Stack may answer ------------------------------------------------------------------


async def test_revoked_refresh_token_is_401_and_remembered(
    stack: StackAuth, client: httpx.AsyncClient, ring: KeyRing, grant: respx.Route
) -> None:
    now = [time.time()]
    use_refresher(stack, Refresher(stack.client, stack.settings, clock=lambda: now[0]))
    grant.mock(return_value=stack_error(401, "REFRESH_TOKEN_NOT_FOUND_OR_EXPIRED"))
    old = expired(ring)
    for _ in range(3):
        response = await client.get("/me", headers=sdk_header(old))
        assert response.status_code == 401
        assert response.json() == {
            "detail": "The session has ended; sign in again",
            "code": "REFRESH_TOKEN_INVALID",
        }
        assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert grant.call_count == 1
    now[0] += REJECTION_TTL + 1
    await client.get("/me", headers=sdk_header(old))
    assert grant.call_count == 2


@pytest.mark.parametrize(
    "down",
    [httpx.Response(503, text="down"), httpx.ConnectError("refused"), httpx.ReadTimeout("slow")],
)
async def test_stack_down_is_503_and_not_remembered(
    client: httpx.AsyncClient, ring: KeyRing, grant: respx.Route, down: Any
) -> None:
    if isinstance(down, Exception):
        grant.mock(side_effect=down)
    else:
        grant.mock(return_value=down)
    old = expired(ring)
    for _ in range(2):
        response = await client.get("/me", headers=sdk_header(old))
        assert response.status_code == 503
        assert response.json()["code"] == "STACK_AUTH_UNAVAILABLE"
        assert response.headers["retry-after"].isdigit()
    assert grant.call_count == 2  # a POST is never retried, and a fault never remembered


@pytest.mark.parametrize(
    "answer",
    [
        lambda ring: httpx.Response(200, json={"token_type": "Bearer"}),
        lambda ring: httpx.Response(200, json={"access_token": 42}),
        lambda ring: httpx.Response(200, json={"access_token": "not.a.jwt"}),
        lambda ring: httpx.Response(200, json=["access_token"]),
        lambda ring: httpx.Response(200, text="<html>"),
        lambda ring: grant_answer(sign_jwt(ring.signer(), {"sub": USER})),  # no exp
    ],
)
async def test_unusable_grant_answer_is_502(
    client: httpx.AsyncClient, ring: KeyRing, grant: respx.Route, answer: Any
) -> None:
    grant.mock(return_value=answer(ring))
    response = await client.get("/me", headers=sdk_header(expired(ring)))
    assert response.status_code == 502
    assert response.json()["code"] == "STACK_AUTH_BAD_RESPONSE"


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("INVALID_OAUTH_CLIENT_ID_OR_SECRET", 400),
        ("PUBLISHABLE_CLIENT_KEY_REQUIRED_FOR_PROJECT", 401),
        ("INVALID_SECRET_SERVER_KEY", 401),
    ],
)
async def test_our_misconfiguration_is_500_and_logged(
    client: httpx.AsyncClient,
    ring: KeyRing,
    grant: respx.Route,
    caplog: pytest.LogCaptureFixture,
    code: str,
    status: int,
) -> None:
    grant.mock(return_value=stack_error(status, code))
    with caplog.at_level(logging.ERROR, logger="fastapi_stack_auth"):
        response = await client.get("/me", headers=sdk_header(expired(ring)))
    assert response.status_code == 500
    assert response.json()["code"] == "SERVER_MISCONFIGURED"
    assert code in caplog.text


async def test_a_refresh_token_of_another_session_is_refused(
    client: httpx.AsyncClient, ring: KeyRing, grant: respx.Route
) -> None:
    grant.mock(return_value=grant_answer(fresh(ring, refresh_token_id=SESSION.replace("e", "f"))))
    response = await client.get("/me", headers=sdk_header(expired(ring)))
    assert response.status_code == 401
    assert response.json()["code"] == "INVALID_TOKEN"
    assert REFRESHED_HEADER not in response.headers
    grant.mock(return_value=grant_answer(fresh(ring, sub="0" * 8 + USER[8:])))
    other = await client.get("/me", headers=sdk_header(expired(ring), refresh=RT[::-1]))
    assert other.status_code == 401


@pytest.mark.parametrize(
    ("publishable", "secret", "access_type", "client_secret"),
    [
        (PUBLISHABLE_KEY, None, "client", PUBLISHABLE_KEY),
        (None, None, "client", PUBLIC_CLIENT_SECRET),
        (None, SECRET_KEY, "server", PUBLIC_CLIENT_SECRET),
    ],
)
async def test_grant_credentials_by_configured_keys(
    stack_settings: dict[str, Any],
    endpoint: Any,
    ring: KeyRing,
    grant: respx.Route,
    publishable: str | None,
    secret: str | None,
    access_type: str,
    client_secret: str,
) -> None:
    grant.mock(return_value=grant_answer(fresh(ring)))
    settings = {
        **stack_settings,
        "verify": "jwt",
        "silent_refresh": True,
        "publishable_client_key": publishable,
        "secret_server_key": secret,
    }
    async with StackAuth(**settings) as stack:
        transport = httpx.ASGITransport(app=build_app(stack))
        async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as c:
            response = await c.get("/me", headers=sdk_header(expired(ring)))
    assert response.status_code == 200
    sent = grant.calls.last.request
    assert sent.headers["x-stack-access-type"] == access_type
    assert ("x-stack-secret-server-key" in sent.headers) is (secret is not None)
    assert json.loads(sent.content)["client_secret"] == client_secret


# --- handing the token back -------------------------------------------------------------------


async def test_a_route_that_returns_its_own_response_still_gets_the_header(
    client: httpx.AsyncClient, ring: KeyRing, grant: respx.Route
) -> None:
    new = fresh(ring)
    grant.mock(return_value=grant_answer(new))
    response = await client.post("/own-response", headers=sdk_header(expired(ring)))
    assert response.status_code == 200
    assert response.headers[REFRESHED_HEADER] == new
    # A response that carries a token must never be stored by a shared cache.
    assert response.headers.get_list("cache-control") == ["no-store"]


async def test_an_error_answered_after_the_refresh_still_gets_the_header(
    client: httpx.AsyncClient, ring: KeyRing, grant: respx.Route
) -> None:
    new = fresh(ring)
    grant.mock(return_value=grant_answer(new))
    response = await client.get("/missing", headers=sdk_header(expired(ring)))
    assert response.status_code == 404
    assert response.headers[REFRESHED_HEADER] == new


def cookie_header(access: str, family: str = "stack", refresh: str = RT) -> str:
    value = json.dumps({"refresh_token": refresh, "updated_at_millis": 1}, separators=(",", ":"))
    pair = json.dumps([refresh, access], separators=(",", ":"))
    encode = {'"': "%22", ",": "%2C"}
    for char, code in encode.items():
        value, pair = value.replace(char, code), pair.replace(char, code)
    return f"{family}-refresh-{PROJECT_ID}--default={value}; {family}-access={pair}"


@pytest.mark.parametrize(
    ("family", "base_url", "https_hint", "secure"),
    [
        ("stack", "http://api.test", False, False),
        ("hexclave", "https://api.test", False, True),
        ("stack", "http://api.test", True, True),  # the SDK's stack-is-https helper cookie
    ],
)
async def test_cookie_mode_updates_the_access_cookie(
    stack: StackAuth,
    ring: KeyRing,
    grant: respx.Route,
    family: str,
    base_url: str,
    https_hint: bool,
    secure: bool,
) -> None:
    new = fresh(ring)
    grant.mock(return_value=grant_answer(new))
    transport = httpx.ASGITransport(app=build_app(stack))
    cookie = cookie_header(expired(ring), family)
    if https_hint:
        cookie += f"; {family}-is-https=true"
    async with httpx.AsyncClient(transport=transport, base_url=base_url) as c:
        response = await c.get("/me", headers={"Cookie": cookie})
        assert response.status_code == 200, response.text
        assert response.headers[REFRESHED_HEADER] == new
        set_cookie = response.headers["set-cookie"]
        name_value, _, attributes = set_cookie.partition("; ")
        assert name_value == f"{family}-access=[%22{RT}%22%2C%22{new}%22]"
        expected = "Path=/; Max-Age=86400; SameSite=Lax" + ("; Secure" if secure else "")
        assert attributes == expected
        # The browser stores it; the next request carries it and is an ordinary cache hit.
        updated = f"{cookie.split('; ')[0]}; {name_value}"
        again = await c.get("/me", headers={"Cookie": updated})
    assert again.status_code == 200
    assert REFRESHED_HEADER not in again.headers
    assert "set-cookie" not in again.headers
    assert grant.call_count == 1
    assert choose_refresh_token(stack_cookies([(b"cookie", updated.encode())]), PROJECT_ID) == RT


def test_websocket_handshake_refreshes_without_a_header(
    jwt_settings: dict[str, Any], endpoint: Any, ring: KeyRing, grant: respx.Route
) -> None:
    new = fresh(ring)
    grant.mock(return_value=grant_answer(new))
    app = build_app(StackAuth(**jwt_settings))
    with (
        TestClient(app) as client,
        client.websocket_connect("/ws", headers=sdk_header(expired(ring))) as ws,
    ):
        # The app may pass the new token on itself, e.g. in its first message.
        assert ws.receive_json() == {"id": USER, "refreshed": new}
    assert grant.call_count == 1


def test_init_app_installs_the_relay(stack: StackAuth) -> None:
    app = FastAPI()
    stack.init_app(app)
    assert [m.cls for m in app.user_middleware] == [RefreshRelay]


async def test_without_the_relay_the_request_proceeds_and_a_warning_says_why(
    stack: StackAuth,
    ring: KeyRing,
    grant: respx.Route,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # An app that names its StackAuth on the route and never called init_app has no relay.
    from fastapi_stack_auth import _refresh_relay

    monkeypatch.setattr(_refresh_relay, "_warned_no_relay", False)
    grant.mock(return_value=grant_answer(fresh(ring)))
    app = FastAPI()

    @app.get("/me")
    async def me(user: StackUser = Depends(UserDependency(stack=stack))) -> dict[str, str]:
        return {"id": user.id}

    assert app.user_middleware == []
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as c:
        with caplog.at_level(logging.WARNING, logger="fastapi_stack_auth"):
            first = await c.get("/me", headers=sdk_header(expired(ring)))
            second = await c.get("/me", headers=sdk_header(expired(ring)))
    assert first.status_code == second.status_code == 200
    assert REFRESHED_HEADER not in first.headers
    warnings = [r for r in caplog.records if "RefreshRelay" in r.getMessage()]
    assert len(warnings) == 1


async def test_the_relay_stays_out_of_the_way_when_no_stack_refreshes(
    stack_settings: dict[str, Any], mock_api: respx.MockRouter
) -> None:
    mock_api.get("/users/me").respond(200, json=user_body(id=USER))
    async with StackAuth(**stack_settings) as plain:
        transport = httpx.ASGITransport(app=build_app(plain))
        async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as c:
            response = await c.get("/me", headers={"x-stack-access-token": fresh(KeyRing())})
    assert response.json() == {"id": USER, "relayed": False}


async def test_relay_installed_twice_adds_the_header_once(
    stack: StackAuth, ring: KeyRing, grant: respx.Route
) -> None:
    new = fresh(ring)
    grant.mock(return_value=grant_answer(new))
    app = build_app(stack)
    app.add_middleware(RefreshRelay)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as c:
        response = await c.get("/me", headers=sdk_header(expired(ring)))
    assert response.headers.get_list(REFRESHED_HEADER) == [new]


# --- nothing secret in the logs -----------------------------------------------------------------


async def test_no_token_in_any_log_line(
    stack: StackAuth,
    client: httpx.AsyncClient,
    ring: KeyRing,
    grant: respx.Route,
    caplog: pytest.LogCaptureFixture,
) -> None:
    new = fresh(ring)
    old = expired(ring)
    answers = iter(
        [
            grant_answer(new),
            stack_error(401, "REFRESH_TOKEN_NOT_FOUND_OR_EXPIRED"),
            stack_error(400, "INVALID_OAUTH_CLIENT_ID_OR_SECRET"),
            httpx.Response(200, json={"access_token": "garbage"}),
            httpx.Response(503),
        ]
    )
    grant.mock(side_effect=lambda request: next(answers))
    with caplog.at_level(logging.DEBUG):
        for refresh in (RT, RT[::-1], RT.upper(), RT[1:] + "0", RT[2:] + "00"):
            headers = sdk_header(old, refresh)
            await client.get("/me", headers={**headers, "Cookie": cookie_header(old)})
    assert grant.call_count == 5
    assert caplog.records
    for secret in (new, old, RT, RT[::-1], RT.upper(), PUBLISHABLE_KEY, SECRET_KEY):
        assert secret not in caplog.text


def test_what_waits_for_the_response_shows_no_token() -> None:
    refreshed = Refreshed("aa.bb.cc", RT, "stack-access", True)
    assert "aa.bb.cc" not in repr(refreshed)
    assert RT not in repr(refreshed)
    names = [name for name, _ in refreshed.headers()]
    assert names == [REFRESHED_HEADER.encode(), b"cache-control", b"set-cookie"]
