"""The cross-site request forgery defence of cookie credentials: safe methods pass, unsafe ones
and WebSocket handshakes must come from the app's own origin or a trusted one (``Origin``, else
``Sec-Fetch-Site: same-origin``), header credentials never need it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import respx
from fastapi import Depends, FastAPI, WebSocket
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from fastapi_stack_auth import StackAuth, StackUser, current_user, optional_user
from fastapi_stack_auth._csrf import check_same_origin
from fastapi_stack_auth.errors import AuthError
from tests.conftest import PROJECT_ID, USER_ID, mint_token

RT = "0123456789abcdefghjkmnpqrstvwxyz0123456789abc"
TRUSTED = "https://app.example.com"
APP = "http://api.test"  # the app's own origin in these tests (httpx sends Host: api.test)
UNSAFE = ["POST", "PUT", "PATCH", "DELETE"]


def js_cookie(value: Any) -> str:
    return json.dumps(value, separators=(",", ":")).replace('"', "%22").replace(",", "%2C")


def cookies(access: str) -> dict[str, str]:
    refresh = js_cookie({"refresh_token": RT, "updated_at_millis": 1})
    return {
        "Cookie": f"stack-refresh-{PROJECT_ID}--default={refresh}; "
        f"stack-access={js_cookie([RT, access])}"
    }


def build_app(stack: StackAuth) -> FastAPI:
    app = FastAPI()
    stack.init_app(app)

    @app.api_route("/things", methods=["GET", "HEAD", "OPTIONS", *UNSAFE])
    async def things(user: StackUser = Depends(current_user)) -> dict[str, str]:
        return {"id": user.id}

    @app.post("/maybe")
    async def maybe(user: StackUser | None = Depends(optional_user)) -> dict[str, str | None]:
        return {"id": user.id if user else None}

    @app.websocket("/ws")
    async def ws(websocket: WebSocket, user: StackUser = Depends(current_user)) -> None:
        await websocket.accept()
        await websocket.send_json({"id": user.id})
        await websocket.close()

    return app


@pytest.fixture
def settings(stack_settings: dict[str, Any]) -> dict[str, Any]:
    return {
        **stack_settings,
        "cookies": True,
        "trusted_origins": f"{TRUSTED}, http://localhost:3000",
    }


@pytest.fixture
async def client(
    settings: dict[str, Any], users_me: respx.Route
) -> AsyncIterator[httpx.AsyncClient]:
    async with StackAuth(**settings) as stack:
        transport = httpx.ASGITransport(app=build_app(stack))
        async with httpx.AsyncClient(transport=transport, base_url=APP) as c:
            yield c


def refused(response: httpx.Response) -> bool:
    if response.status_code != 403:
        return False
    assert response.json() == {
        "detail": "A request authenticated by cookies must come from this site or a trusted origin",
        "code": "CROSS_SITE_REQUEST_REFUSED",
    }
    return True


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS"])
async def test_safe_methods_need_no_origin(client: httpx.AsyncClient, method: str) -> None:
    response = await client.request(
        method, "/things", headers={**cookies(mint_token()), "Origin": "https://evil.example"}
    )
    assert response.status_code == 200


@pytest.mark.parametrize("method", UNSAFE)
@pytest.mark.parametrize(
    ("extra", "allowed"),
    [
        ({"Origin": TRUSTED}, True),
        ({"Origin": "HTTPS://App.Example.com:443"}, True),  # as browsers serialise it
        ({"Origin": "http://localhost:3000"}, True),
        ({"Origin": APP}, True),  # the app's own origin needs no setting
        ({"Origin": "http://api.test:80"}, True),
        ({"Origin": "https://evil.example"}, False),
        ({"Origin": "https://app.example.com.evil.example"}, False),
        ({"Origin": "http://app.example.com"}, False),  # another scheme is another origin
        ({"Origin": "https://api.test"}, False),
        ({"Origin": "http://localhost:3001"}, False),
        ({"Origin": "null"}, False),
        ({"Origin": "https://app.example.com/path"}, False),
        ({"Origin": ""}, False),
        ({"Sec-Fetch-Site": "same-origin"}, True),
        ({"Sec-Fetch-Site": "same-site"}, False),
        ({"Sec-Fetch-Site": "cross-site"}, False),
        ({"Sec-Fetch-Site": "none"}, False),
        ({"Origin": "https://evil.example", "Sec-Fetch-Site": "same-origin"}, False),
        ({}, False),
    ],
)
async def test_unsafe_methods_with_cookies(
    client: httpx.AsyncClient,
    users_me: respx.Route,
    method: str,
    extra: dict[str, str],
    allowed: bool,
) -> None:
    response = await client.request(method, "/things", headers={**cookies(mint_token()), **extra})
    if allowed:
        assert response.status_code == 200, response.text
        assert response.json() == {"id": USER_ID}
    else:
        assert refused(response), response.text
        assert users_me.call_count == 0  # refused before the token is looked at


async def test_two_origin_headers_are_refused(client: httpx.AsyncClient) -> None:
    headers = [*cookies(mint_token()).items(), ("Origin", TRUSTED), ("Origin", TRUSTED)]
    response = await client.post("/things", headers=headers)
    assert refused(response)


@pytest.mark.parametrize(
    "credential",
    [
        lambda token: {"Authorization": f"Bearer {token}"},
        lambda token: {"x-stack-access-token": token},
        lambda token: {"x-stack-auth": json.dumps({"accessToken": token, "refreshToken": RT})},
    ],
)
async def test_header_credentials_never_need_it(client: httpx.AsyncClient, credential: Any) -> None:
    token = mint_token()
    headers = {**credential(token), **cookies(mint_token()), "Origin": "https://evil.example"}
    response = await client.post("/things", headers=headers)
    assert response.status_code == 200


async def test_optional_routes_refuse_too(client: httpx.AsyncClient) -> None:
    token = mint_token()
    assert refused(
        await client.post("/maybe", headers={**cookies(token), "Origin": "https://evil.example"})
    )
    anonymous = await client.post("/maybe", headers={"Origin": "https://evil.example"})
    assert anonymous.json() == {"id": None}  # no cookie: nothing to forge


async def test_cookies_off_means_no_check(
    stack_settings: dict[str, Any], users_me: respx.Route
) -> None:
    async with StackAuth(**stack_settings, trusted_origins=TRUSTED) as stack:
        transport = httpx.ASGITransport(app=build_app(stack))
        async with httpx.AsyncClient(transport=transport, base_url=APP) as c:
            response = await c.post(
                "/things", headers={**cookies(mint_token()), "Origin": "https://evil.example"}
            )
    assert response.status_code == 401
    assert response.json()["code"] == "NOT_AUTHENTICATED"


# --- WebSockets: every handshake with cookie credentials is checked --------------------------


@pytest.fixture
def ws_client(settings: dict[str, Any], users_me: respx.Route) -> Iterator[TestClient]:
    with TestClient(build_app(StackAuth(**settings)), base_url="http://testserver") as client:
        yield client


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [(TRUSTED, True), ("http://testserver", True), ("https://evil.example", False), (None, False)],
)
def test_websocket_handshake_with_cookies(
    ws_client: TestClient, origin: str | None, allowed: bool
) -> None:
    headers = cookies(mint_token())
    if origin is not None:
        headers["Origin"] = origin
    if allowed:
        with ws_client.websocket_connect("/ws", headers=headers) as ws:
            assert ws.receive_json() == {"id": USER_ID}
    else:
        with (
            pytest.raises(WebSocketDisconnect) as closed,
            ws_client.websocket_connect("/ws", headers=headers),
        ):
            pass
        assert closed.value.code == 1008


def test_websocket_with_a_header_credential_needs_no_origin(ws_client: TestClient) -> None:
    headers = {"Authorization": f"Bearer {mint_token()}", "Origin": "https://evil.example"}
    with ws_client.websocket_connect("/ws", headers=headers) as ws:
        assert ws.receive_json() == {"id": USER_ID}


# --- the check itself ------------------------------------------------------------------------


def scope(method: str = "POST", scheme: str = "http", **headers: str) -> dict[str, Any]:
    return {
        "type": "websocket" if scheme.startswith("ws") else "http",
        "method": method,
        "scheme": scheme,
        "headers": [
            (k.replace("_", "-").encode(), v.encode("latin-1")) for k, v in headers.items()
        ],
    }


@pytest.mark.parametrize(
    ("case", "allowed"),
    [
        (scope(scheme="https", host="shop.example", origin="https://shop.example"), True),
        (scope(scheme="https", host="shop.example:443", origin="https://shop.example"), True),
        (scope(scheme="https", host="shop.example:8443", origin="https://shop.example:8443"), True),
        (scope(scheme="https", host="shop.example", origin="http://shop.example"), False),
        (scope(scheme="wss", host="shop.example", origin="https://shop.example"), True),
        (scope(scheme="ws", host="shop.example", origin="https://shop.example"), False),
        (scope(origin="https://shop.example"), False),  # no Host: no own origin to compare
        (scope(host="shop.example", origin="http://user@shop.example"), False),
        (scope(host="shop.example", origin="http://shop.example\u00e9"), False),
        (scope(host="SHOP.example", origin="http://shop.EXAMPLE"), True),
        (scope(sec_fetch_site=" Same-Origin "), True),
        (scope("GET"), True),
        (scope("TRACE"), False),
        (scope("PROPFIND", sec_fetch_site="same-origin"), True),
    ],
)
def test_check_same_origin(case: dict[str, Any], allowed: bool) -> None:
    if allowed:
        check_same_origin(case, ())
    else:
        with pytest.raises(AuthError) as refusal:
            check_same_origin(case, ())
        assert (refusal.value.status_code, refusal.value.code) == (
            403,
            "CROSS_SITE_REQUEST_REFUSED",
        )


def test_trusted_origins_come_normalised_from_the_settings(stack_settings: dict[str, Any]) -> None:
    stack = StackAuth(**stack_settings, trusted_origins="HTTPS://App.Example.com:443/, http://x:80")
    assert stack.settings.trusted_origins == ("https://app.example.com", "http://x")
    check_same_origin(scope(origin="https://app.example.com"), stack.settings.trusted_origins)
    check_same_origin(scope(origin="http://x"), stack.settings.trusted_origins)
