"""The aiohttp transport under ``StackClient``: when it is picked, and that it behaves like
httpx's own transport (same requests on the wire, same httpx exceptions, nothing left open).
Servers are real, on 127.0.0.1, in the test's own event loop."""

from __future__ import annotations

import asyncio
import gc
import gzip
import json
import sys
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from fastapi_stack_auth import (
    StackAuthConfigError,
    StackAuthSettings,
    StackBadResponseError,
    StackClient,
    StackUnavailableError,
)
from fastapi_stack_auth._settings import load_settings
from fastapi_stack_auth._transport import AiohttpTransport, default_transport
from tests.conftest import PROJECT_ID, SECRET_KEY, mint_token, user_body

pytest.importorskip("aiohttp")  # the [aiohttp] extra (part of [dev])

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def raw_server(handler: Handler) -> AsyncIterator[str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()


async def read_request(reader: asyncio.StreamReader) -> tuple[str, dict[str, str], bytes]:
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
    line, *fields = head.split("\r\n")[:-2]
    headers = {}
    for field in fields:
        name, _, value = field.partition(":")
        headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return line, headers, body


def http_response(status: int, body: bytes, *headers: str) -> bytes:
    head = [f"HTTP/1.1 {status} X", f"content-length: {len(body)}", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def settings(url: str, **overrides: Any) -> StackAuthSettings:
    values: dict[str, Any] = {
        "project_id": PROJECT_ID,
        "secret_server_key": SECRET_KEY,
        "api_url": url,
        "http_client": "aiohttp",
        "max_attempts": 1,
        **overrides,
    }
    return StackAuthSettings(**values)


# --- which transport ------------------------------------------------------------------------------


async def test_auto_picks_aiohttp_when_it_is_the_better_choice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delitem(sys.modules, "respx")
    transport = default_transport("auto", max_connections=10)
    assert isinstance(transport, AiohttpTransport)
    await transport.aclose()


async def test_auto_stays_on_httpx_where_aiohttp_would_change_behaviour(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert "respx" in sys.modules  # the test suite mocks with respx: requests must go via httpcore
    assert default_transport("auto", max_connections=10) is None
    monkeypatch.delitem(sys.modules, "respx")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")  # httpx honours it
    assert default_transport("auto", max_connections=10) is None
    assert default_transport("httpx", max_connections=10) is None


def test_auto_needs_a_running_asyncio_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "respx")
    assert default_transport("auto", max_connections=10) is None


def test_setting_accepts_only_known_clients() -> None:
    with pytest.raises(StackAuthConfigError, match="STACK_HTTP_CLIENT"):
        load_settings(project_id=PROJECT_ID, secret_server_key=SECRET_KEY, http_client="curl")


# --- on the wire -------------------------------------------------------------------------------


async def test_same_request_and_answer_as_httpx() -> None:
    seen: list[tuple[str, dict[str, str], bytes]] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while not reader.at_eof():
            try:
                request = await read_request(reader)
            except asyncio.IncompleteReadError:
                break
            seen.append(request)
            body = gzip.compress(json.dumps(user_body()).encode())
            writer.write(
                http_response(200, body, "content-type: application/json", "content-encoding: gzip")
            )
            await writer.drain()
        writer.close()

    token = mint_token()
    async with raw_server(handle) as url, StackClient(settings(url)) as client:
        assert client._http is not None
        assert isinstance(client._http._transport, AiohttpTransport)
        user = await client.get_current_user(token)
        created = await client.request("POST", "/users", json_body={"display_name": "Ada"})
    assert user["id"] == user_body()["id"]  # gzip decoded by httpx, as with its own transport
    assert created["id"] == user_body()["id"]
    (line, headers, _), (post_line, post_headers, post_body) = seen
    assert line == "GET /api/v1/users/me HTTP/1.1"
    assert headers["x-stack-access-token"] == token
    assert headers["x-stack-secret-server-key"] == SECRET_KEY
    assert headers["x-stack-access-type"] == "server"
    assert headers["x-stack-allow-anonymous-user"] == "true"
    assert headers["host"] == url.removeprefix("http://")
    assert "authorization" not in headers
    assert "cookie" not in headers
    assert post_line == "POST /api/v1/users HTTP/1.1"
    assert post_headers["content-type"] == "application/json"
    assert json.loads(post_body) == {"display_name": "Ada"}


def answer_then(reply: bytes, *, close: bool = True) -> Handler:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(reply)
        await writer.drain()
        if close:
            writer.close()
        else:
            await reader.read()  # hold the connection until the client goes

    return handle


@pytest.mark.parametrize(
    "reply",
    [
        b"",  # closed without a word
        b"NOT HTTP AT ALL\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{}",  # cut short
        b"HTTP/1.1 200 OK\r\nbad header line\r\n\r\n",
    ],
    ids=["closed", "garbage", "short-body", "bad-header"],
)
async def test_broken_answers_are_unavailable_not_a_crash(reply: bytes) -> None:
    async with (
        raw_server(answer_then(reply)) as url,
        StackClient(settings(url)) as client,
    ):
        with pytest.raises(StackUnavailableError):
            await client.get_current_user(mint_token())


async def test_undecodable_body_is_a_bad_response() -> None:
    reply = http_response(200, b"not gzip", "content-encoding: gzip")
    async with (
        raw_server(answer_then(reply)) as url,
        StackClient(settings(url)) as client,
    ):
        with pytest.raises(StackBadResponseError):
            await client.get_current_user(mint_token())


async def test_refused_connection_is_unavailable() -> None:
    async with raw_server(answer_then(b"")) as url:
        pass  # closed: nothing listens on that port any more
    async with StackClient(settings(url)) as client:
        with pytest.raises(StackUnavailableError) as caught:
            await client.get_current_user(mint_token())
    assert caught.value.reason == "ConnectError"


async def test_silent_server_times_out() -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # never answers; returns when the client gives up

    async with (
        raw_server(handle) as url,
        StackClient(settings(url, http_timeout=0.2)) as client,
    ):
        with pytest.raises(StackUnavailableError, match="timed out"):
            await client.get_current_user(mint_token())


async def test_aiohttp_errors_become_httpx_errors() -> None:
    async with raw_server(answer_then(b"garbage\r\n\r\n")) as url:
        transport = AiohttpTransport()
        async with httpx.AsyncClient(transport=transport) as client:
            with pytest.raises(httpx.RemoteProtocolError):
                await client.get(url)


async def test_closing_leaves_no_session_behind() -> None:
    reply = http_response(200, json.dumps(user_body()).encode())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        async with raw_server(answer_then(reply, close=False)) as url:
            client = StackClient(settings(url))
            await client.open()
            await client.get_current_user(mint_token())
            await client.aclose()
            del client
            gc.collect()
    assert not [w for w in caught if "Unclosed" in str(w.message)], [str(w) for w in caught]
