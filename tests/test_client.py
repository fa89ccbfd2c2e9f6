"""StackClient: the server headers it sends and how it reads Stack's answers."""

from __future__ import annotations

import gzip
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import respx

from fastapi_stack_auth import StackAuthError, StackAuthSettings
from fastapi_stack_auth._client import StackClient
from fastapi_stack_auth._responses import MAX_BODY_BYTES
from fastapi_stack_auth.errors import (
    InvalidAccessTokenError,
    ProjectCredentialsError,
    StackAPIError,
    StackBadResponseError,
    StackUnavailableError,
    UserGoneError,
    UserNotAllowedError,
)
from tests.conftest import (
    FIXTURES,
    PROJECT_ID,
    PUBLISHABLE_KEY,
    SECRET_KEY,
    fixture_json,
    fixture_response,
    mint_token,
    user_body,
)


@pytest.fixture
async def client(
    stack_settings: dict[str, Any], mock_api: respx.MockRouter
) -> Any:  # AsyncIterator[StackClient]
    async with StackClient(StackAuthSettings(**stack_settings)) as opened:
        yield opened


async def test_sends_server_headers_and_token(
    client: StackClient, mock_api: respx.MockRouter
) -> None:
    route = mock_api.get("/users/me").respond(200, json=user_body())
    token = mint_token()
    await client.get_current_user(token)
    sent = route.calls.last.request.headers
    assert sent["x-stack-access-type"] == "server"
    assert sent["x-stack-project-id"] == PROJECT_ID
    assert sent["x-stack-secret-server-key"] == SECRET_KEY
    assert sent["x-stack-publishable-client-key"] == PUBLISHABLE_KEY
    assert sent["x-stack-access-token"] == token
    assert sent["x-stack-allow-anonymous-user"] == "true"
    assert sent["x-stack-allow-restricted-user"] == "true"
    assert sent["x-stack-client-version"].startswith("python @fastapi_stack_auth@")
    # Stack never reads Authorization: the token must travel as x-stack-access-token only.
    assert "authorization" not in sent


async def test_client_version_matches_stacks_pattern(client: StackClient) -> None:
    import re

    from fastapi_stack_auth._client import CLIENT_VERSION

    assert re.fullmatch(r"(\w+)\s+(@[\w/]+)@([\d.]+)", CLIENT_VERSION)


async def test_project_check_sends_no_access_token(
    client: StackClient, mock_api: respx.MockRouter
) -> None:
    route = mock_api.get("/projects/current").respond(
        200, json=fixture_json("projects-current.json")
    )
    assert (await client.get_current_project())["id"] == "internal"
    assert "x-stack-access-token" not in route.calls.last.request.headers


@pytest.mark.parametrize(
    ("fixture", "exc_type", "code"),
    [
        ("errors/UNPARSABLE_ACCESS_TOKEN.json", InvalidAccessTokenError, "UNPARSABLE_ACCESS_TOKEN"),
        (
            "errors-constructed/ACCESS_TOKEN_EXPIRED.json",
            InvalidAccessTokenError,
            "ACCESS_TOKEN_EXPIRED",
        ),
        (
            "errors-constructed/INVALID_PROJECT_FOR_ACCESS_TOKEN.json",
            InvalidAccessTokenError,
            "INVALID_PROJECT_FOR_ACCESS_TOKEN",
        ),
        (
            "errors/CANNOT_GET_OWN_USER_WITHOUT_USER.json",
            UserGoneError,
            "CANNOT_GET_OWN_USER_WITHOUT_USER",
        ),
        (
            "errors/ANONYMOUS_AUTHENTICATION_NOT_ALLOWED.json",
            UserNotAllowedError,
            "ANONYMOUS_AUTHENTICATION_NOT_ALLOWED",
        ),
        (
            "errors-constructed/RESTRICTED_USER_NOT_ALLOWED.json",
            UserNotAllowedError,
            "RESTRICTED_USER_NOT_ALLOWED",
        ),
        (
            "errors-constructed/INVALID_SECRET_SERVER_KEY.json",
            ProjectCredentialsError,
            "INVALID_SECRET_SERVER_KEY",
        ),
        (
            "errors/SERVER_AUTHENTICATION_REQUIRED.json",
            ProjectCredentialsError,
            "SERVER_AUTHENTICATION_REQUIRED",
        ),
        (
            "errors/CURRENT_PROJECT_NOT_FOUND.json",
            ProjectCredentialsError,
            "CURRENT_PROJECT_NOT_FOUND",
        ),
        (
            "errors/INVALID_PUBLISHABLE_CLIENT_KEY.json",
            ProjectCredentialsError,
            "INVALID_PUBLISHABLE_CLIENT_KEY",
        ),
        ("errors/SCHEMA_ERROR.json", StackAPIError, "SCHEMA_ERROR"),
        (
            "errors-constructed/OVERRIDE_ERROR_STATUS.UNPARSABLE_ACCESS_TOKEN.json",
            InvalidAccessTokenError,
            "UNPARSABLE_ACCESS_TOKEN",
        ),
    ],
)
async def test_error_envelope_becomes_typed_exception(
    client: StackClient, mock_api: respx.MockRouter, fixture: str, exc_type: type, code: str
) -> None:
    response = fixture_response(fixture)
    mock_api.get("/users/me").mock(return_value=response)
    with pytest.raises(exc_type) as info:
        await client.get_current_user(mint_token())
    error = info.value
    assert error.code == code
    body = json.loads((FIXTURES / fixture).read_text())["body"]
    # The text is in `error`, not `message`; on one line (it is Stack's, so it could be logged).
    assert error.message == body["error"].replace("\n", " ")
    assert error.message.isprintable()
    assert dict(error.details) == body.get("details", {})


async def test_project_credentials_error_names_the_setting(
    client: StackClient, mock_api: respx.MockRouter
) -> None:
    mock_api.get("/projects/current").mock(
        return_value=fixture_response("errors-constructed/INVALID_SECRET_SERVER_KEY.json")
    )
    with pytest.raises(ProjectCredentialsError) as info:
        await client.get_current_project()
    assert info.value.setting == "STACK_SECRET_SERVER_KEY"


async def test_spec_style_message_field_is_read_too(
    client: StackClient, mock_api: respx.MockRouter
) -> None:
    mock_api.get("/users/me").respond(
        401,
        headers={"x-stack-known-error": "UNPARSABLE_ACCESS_TOKEN"},
        json={"code": "UNPARSABLE_ACCESS_TOKEN", "message": "from the spec"},
    )
    with pytest.raises(InvalidAccessTokenError) as info:
        await client.get_current_user(mint_token())
    assert info.value.message == "from the spec"


async def test_plain_text_error(client: StackClient, mock_api: respx.MockRouter) -> None:
    data = fixture_json("errors/plain/TEAMS_LIST_CLIENT_FORBIDDEN.json")
    mock_api.get("/users/me").respond(data["status"], text=str(data["body"]))
    with pytest.raises(StackAPIError) as info:
        await client.get_current_user(mint_token())
    assert (info.value.status_code, info.value.code) == (data["status"], None)


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_5xx_is_unavailable(
    client: StackClient, mock_api: respx.MockRouter, status: int
) -> None:
    mock_api.get("/users/me").respond(status, text="boom")
    with pytest.raises(StackUnavailableError):
        await client.get_current_user(mint_token())


async def test_429_is_unavailable_with_its_retry_after(
    client: StackClient, mock_api: respx.MockRouter
) -> None:
    mock_api.get("/users/me").respond(429, headers={"retry-after": "7"}, json={"message": "slow"})
    with pytest.raises(StackUnavailableError) as info:
        await client.get_current_user(mint_token())
    assert info.value.retry_after == 7


@pytest.mark.parametrize(
    "exc",
    [httpx.ConnectError("refused"), httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("cut")],
)
async def test_network_failures_are_unavailable(
    client: StackClient, mock_api: respx.MockRouter, exc: Exception
) -> None:
    mock_api.get("/users/me").mock(side_effect=exc)
    with pytest.raises(StackUnavailableError):
        await client.get_current_user(mint_token())


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, text="<html>not json</html>"),
        httpx.Response(200, json=["a", "list"]),
        httpx.Response(200, content=b'{"id": "trunc'),
        httpx.Response(302, headers={"location": "https://elsewhere.test"}),
    ],
)
async def test_unusable_success_is_a_bad_response(
    client: StackClient, mock_api: respx.MockRouter, response: httpx.Response
) -> None:
    mock_api.get("/users/me").mock(return_value=response)
    with pytest.raises(StackBadResponseError):
        await client.get_current_user(mint_token())


async def test_closed_client_says_how_to_start_it(stack_settings: dict[str, Any]) -> None:
    client = StackClient(StackAuthSettings(**stack_settings))
    with pytest.raises(StackAuthError, match="lifespan"):
        await client.get_current_project()


async def test_open_and_close_are_idempotent(stack_settings: dict[str, Any]) -> None:
    client = StackClient(StackAuthSettings(**stack_settings))
    await client.open()
    await client.open()
    assert client.is_open
    await client.aclose()
    await client.aclose()
    assert not client.is_open


# --- found by review: a broken or hostile upstream -------------------------------------------


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(201, json=user_body()),  # /users/me answers 200, never 201
        httpx.Response(204),
        httpx.Response(200, content=b"[" * 5000 + b"]" * 5000),  # deeper than json can parse
    ],
)
async def test_status_and_body_outside_the_contract_are_bad_responses(
    client: StackClient, mock_api: respx.MockRouter, response: httpx.Response
) -> None:
    mock_api.get("/users/me").mock(return_value=response)
    with pytest.raises(StackBadResponseError):
        await client.get_current_user(mint_token())


@pytest.mark.parametrize(
    ("status", "expected"),
    [(503, StackUnavailableError), (401, StackAPIError), (302, StackBadResponseError)],
)
async def test_actual_status_header_is_only_read_on_a_200(
    client: StackClient, mock_api: respx.MockRouter, status: int, expected: type
) -> None:
    mock_api.get("/users/me").respond(
        status, headers={"x-stack-actual-status": "200"}, json=user_body()
    )
    with pytest.raises(expected):
        await client.get_current_user(mint_token())


@pytest.mark.parametrize(
    ("header", "retry_after"),
    [("\xb2", 5), ("9" * 5000, 5), (" 12 ", 12), ("Wed, 21 Oct 2015 07:28:00 GMT", 5), ("0", 1)],
)
async def test_odd_retry_after_values(
    client: StackClient, mock_api: respx.MockRouter, header: str, retry_after: int
) -> None:
    mock_api.get("/users/me").respond(
        503, headers=[(b"retry-after", header.encode("latin-1"))], text="down"
    )
    with pytest.raises(StackUnavailableError) as info:
        await client.get_current_user(mint_token())
    assert info.value.retry_after == retry_after


@pytest.mark.parametrize("actual", ["\xb9", "9" * 5000, "abc"])
async def test_odd_actual_status_values_are_ignored(
    client: StackClient, mock_api: respx.MockRouter, actual: str
) -> None:
    mock_api.get("/users/me").respond(
        200, headers=[(b"x-stack-actual-status", actual.encode("latin-1"))], json=user_body()
    )
    assert (await client.get_current_user(mint_token()))["id"] == user_body()["id"]


async def test_the_timeout_bounds_the_whole_call(
    stack_settings: dict[str, Any], mock_api: respx.MockRouter
) -> None:
    import asyncio

    never = asyncio.Event()

    async def hangs(request: httpx.Request) -> httpx.Response:
        await never.wait()
        raise AssertionError("unreachable")

    mock_api.get("/users/me").mock(side_effect=hangs)
    settings = StackAuthSettings(**{**stack_settings, "http_timeout": 0.2})
    async with StackClient(settings) as client:
        with pytest.raises(StackUnavailableError, match="timed out"):
            await client.get_current_user(mint_token())


async def test_illegal_header_value_is_a_configuration_error(
    client: StackClient, mock_api: respx.MockRouter
) -> None:
    mock_api.get("/users/me").mock(side_effect=httpx.LocalProtocolError("Illegal header value"))
    with pytest.raises(StackAuthError, match="STACK_SECRET_SERVER_KEY") as info:
        await client.get_current_user(mint_token())
    assert not isinstance(info.value, StackUnavailableError)


# --- review finding 9.9: what comes from upstream is bounded and cannot forge a log line ------

HOSTILE_CODES = [
    "UNPARSABLE_ACCESS_TOKEN\n2026-01-01 00:00:00 CRITICAL forged line",
    "X\r\nERROR forged",
    "\x1b[2K\x1b[1Ahidden",
    "LINE\u2028SEPARATOR\u0085NEL",
    "A" * 5000,
]


@pytest.mark.parametrize("code", HOSTILE_CODES)
async def test_upstream_code_and_message_are_one_bounded_printable_line(
    client: StackClient, mock_api: respx.MockRouter, code: str
) -> None:
    mock_api.get("/users/me").respond(
        401,
        headers={"x-stack-known-error": "UNPARSABLE_ACCESS_TOKEN"},
        json={"code": code, "error": f"message: {code}" * 3},
    )
    with pytest.raises(StackAPIError) as info:
        await client.get_current_user(mint_token())
    error = info.value
    assert error.code is not None
    assert error.code.isascii()
    assert error.code.isprintable()
    assert 0 < len(error.code) <= 100
    assert error.message.isprintable()
    assert len(error.message) <= 1000
    assert error.code in str(error)  # what a log line of the exception would show
    # Not a code Stack knows: not mistaken for a token verdict either.
    assert type(error) is StackAPIError


async def test_a_hostile_known_error_header_is_sanitised_too(
    client: StackClient, mock_api: respx.MockRouter
) -> None:
    mock_api.get("/users/me").respond(
        400, headers=[(b"x-stack-known-error", b"BAD\x1b[31mCODE\x7f")], text="not json"
    )
    with pytest.raises(StackAPIError) as info:
        await client.get_current_user(mint_token())
    assert info.value.code == "BAD[31mCODE"


async def test_a_code_of_nothing_printable_is_no_code(
    client: StackClient, mock_api: respx.MockRouter
) -> None:
    mock_api.get("/users/me").respond(
        400, headers={"x-stack-known-error": "X"}, json={"code": "\n\r\t\x00", "error": "x"}
    )
    with pytest.raises(StackAPIError) as info:
        await client.get_current_user(mint_token())
    assert info.value.code is None


def _json_of_length(size: int) -> bytes:
    head, tail = b'{"id": "', b'"}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


async def test_a_body_of_exactly_the_cap_is_read(
    client: StackClient, mock_api: respx.MockRouter
) -> None:
    mock_api.get("/users/me").respond(200, content=_json_of_length(MAX_BODY_BYTES))
    assert len((await client.get_current_user(mint_token()))["id"]) == MAX_BODY_BYTES - 10


@pytest.mark.parametrize(
    "response",
    [
        pytest.param(httpx.Response(200, content=_json_of_length(2 << 20)), id="2-MiB"),
        pytest.param(httpx.Response(200, content=_json_of_length(MAX_BODY_BYTES + 1)), id="cap+1"),
        pytest.param(
            httpx.Response(
                200,
                headers={"content-encoding": "gzip"},
                content=gzip.compress(_json_of_length(2 << 20)),  # 2 KiB on the wire
            ),
            id="gzip-bomb",
        ),
        pytest.param(
            httpx.Response(
                401,
                headers={"x-stack-known-error": "UNPARSABLE_ACCESS_TOKEN"},
                content=_json_of_length(2 << 20),
            ),
            id="2-MiB-error-envelope",
        ),
    ],
)
async def test_a_body_over_1_mib_is_a_bad_response(
    client: StackClient, mock_api: respx.MockRouter, response: httpx.Response
) -> None:
    mock_api.get("/users/me").mock(return_value=response)
    with pytest.raises(StackBadResponseError, match="over 1048576 bytes"):
        await client.get_current_user(mint_token())


class EndlessBody(httpx.AsyncByteStream):
    """A body with no Content-Length that goes on and on (64 MiB, so that a client reading it
    all fails a test rather than the machine); counts what was taken from it."""

    def __init__(self) -> None:
        self.produced = 0
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while self.produced < 64 << 20:
            self.produced += 65536
            yield b" " * 65536

    async def aclose(self) -> None:
        self.closed = True


async def test_an_endless_body_is_read_no_further_than_the_cap(
    client: StackClient, mock_api: respx.MockRouter
) -> None:
    body = EndlessBody()
    mock_api.get("/users/me").mock(return_value=httpx.Response(200, stream=body))
    with pytest.raises(StackBadResponseError):
        await client.get_current_user(mint_token())
    assert MAX_BODY_BYTES < body.produced <= MAX_BODY_BYTES + 65536
    assert body.closed


@pytest.mark.parametrize("status", [429, 503])
async def test_an_outage_answer_is_judged_by_its_status_not_its_body(
    stack_settings: dict[str, Any], mock_api: respx.MockRouter, status: int
) -> None:
    body = EndlessBody()
    mock_api.get("/users/me").mock(return_value=httpx.Response(status, stream=body))
    settings = StackAuthSettings(**stack_settings, max_attempts=1)
    async with StackClient(settings) as client:
        with pytest.raises(StackUnavailableError, match=f"HTTP {status}"):
            await client.get_current_user(mint_token())
    assert body.produced == 0
    assert body.closed
