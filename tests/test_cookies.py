"""Stack's cookies as a credential (contract §8.2): the exact names and encodings a Stack
frontend writes, which refresh cookie wins, the access cookie used only with its refresh token,
anything malformed read as "no credential", and cookies behind header credentials."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import respx
from fastapi import Depends, FastAPI

from fastapi_stack_auth import StackAuth, StackUser, current_user, optional_user
from fastapi_stack_auth._cookies import (
    MAX_COOKIE_HEADER_BYTES,
    MAX_REFRESH_CANDIDATES,
    access_cookie_header,
    choose_refresh_token,
    cookie_credential,
    stack_cookies,
)
from tests.conftest import PROJECT_ID, USER_ID, mint_token, user_body

#: Refresh tokens as Stack makes them: 45 lower-case Crockford base32 characters.
RT = "0123456789abcdefghjkmnpqrstvwxyz0123456789abc"
RT2 = "zyxwvtsrqpnmkjhgfedcba9876543210zyxwvtsrqpnmk"
#: ``example.com`` as the SDK encodes it in a ``--custom-`` cookie name (contract §8.2).
B32 = "CNW62VBGDHJJWRVFDM"
#: The refresh cookie of a plain-HTTP page.
REFRESH = f"stack-refresh-{PROJECT_ID}--default"


def js_cookie(value: Any) -> str:
    """``value`` as the browser SDK stores it: compact JSON through js-cookie, which leaves
    ``{}[]:`` alone and encodes ``"`` and ``,``."""
    text = json.dumps(value, separators=(",", ":"))
    return text.replace("%", "%25").replace('"', "%22").replace(",", "%2C")


def next_js(value: Any) -> str:
    """``value`` as a Next.js server stores it: ``encodeURIComponent`` of the compact JSON."""
    return quote(json.dumps(value, separators=(",", ":")), safe="!'()*")


def refresh_value(token: str, at: Any = 1767225600000, encode: Any = js_cookie) -> str:
    return str(encode({"refresh_token": token, "updated_at_millis": at}))


def headers_of(*cookies: tuple[str, str]) -> list[tuple[bytes, bytes]]:
    line = "; ".join(f"{name}={value}" for name, value in cookies)
    return [(b"host", b"app.test"), (b"cookie", line.encode("latin-1"))]


def read(*cookies: tuple[str, str]) -> tuple[str, str, str] | None:
    found = cookie_credential(headers_of(*cookies), PROJECT_ID)
    return None if found is None else (found.access_token, found.refresh_token, found.access_cookie)


# --- the exact shapes a frontend writes --------------------------------------------------------


def test_js_cookie_encoding_as_the_browser_sdk_writes_it() -> None:
    access = mint_token()
    # Literally what js-cookie stores for these two values (no helper in between).
    refresh_raw = f"{{%22refresh_token%22:%22{RT}%22%2C%22updated_at_millis%22:1767225600000}}"
    access_raw = f"[%22{RT}%22%2C%22{access}%22]"
    assert refresh_raw == refresh_value(RT)
    found = read(
        (f"stack-refresh-{PROJECT_ID}--default", refresh_raw), ("stack-access", access_raw)
    )
    assert found == (access, RT, "stack-access")


def test_next_js_full_encoding() -> None:
    access = mint_token()
    refresh_raw = refresh_value(RT, encode=next_js)
    assert refresh_raw.startswith("%7B%22refresh_token%22%3A%22")  # encodeURIComponent, all of it
    found = read(
        (f"stack-refresh-{PROJECT_ID}--default", refresh_raw),
        ("stack-access", next_js([RT, access])),
    )
    assert found == (access, RT, "stack-access")


def test_hexclave_family() -> None:
    access = mint_token()
    found = read(
        (f"hexclave-refresh-{PROJECT_ID}--default", refresh_value(RT)),
        ("hexclave-access", js_cookie([RT, access])),
    )
    assert found == (access, RT, "hexclave-access")


def test_host_prefixed_cookie_of_an_https_page() -> None:
    access = mint_token()
    for family in ("stack", "hexclave"):
        credential = cookie_credential(
            headers_of(
                (f"__Host-{family}-refresh-{PROJECT_ID}--default", refresh_value(RT)),
                (f"{family}-access", js_cookie([RT, access])),
                (f"{family}-is-https", "true"),
            ),
            PROJECT_ID,
        )
        assert credential is not None
        assert (credential.access_token, credential.refresh_token) == (access, RT)
        assert credential.https_hint


def test_no_https_hint_without_the_helper_cookie() -> None:
    credential = cookie_credential(
        headers_of((REFRESH, refresh_value(RT)), ("stack-access", js_cookie([RT, mint_token()]))),
        PROJECT_ID,
    )
    assert credential is not None
    assert not credential.https_hint


def test_the_newest_refresh_cookie_of_a_family_wins() -> None:
    # A parent-domain (--custom-) cookie newer than the host-only one: its token is used, and
    # so is the access cookie that pairs with it.
    cookies = stack_cookies(
        headers_of(
            (f"stack-refresh-{PROJECT_ID}--default", refresh_value(RT, at=1000)),
            (f"stack-refresh-{PROJECT_ID}--custom-{B32}", refresh_value(RT2, at=2000)),
            (f"__Host-stack-refresh-{PROJECT_ID}--default", refresh_value(RT, at=1500)),
        )
    )
    assert choose_refresh_token(cookies, PROJECT_ID) == RT2
    # Without updated_at_millis a cookie counts as the oldest; a tie keeps the first seen.
    older = stack_cookies(
        headers_of(
            (f"stack-refresh-{PROJECT_ID}--custom-{B32}", js_cookie({"refresh_token": RT2})),
            (f"stack-refresh-{PROJECT_ID}--default", refresh_value(RT, at=1)),
        )
    )
    assert choose_refresh_token(older, PROJECT_ID) == RT
    tie = stack_cookies(
        headers_of(
            (f"stack-refresh-{PROJECT_ID}--default", refresh_value(RT, at=5)),
            (f"stack-refresh-{PROJECT_ID}--custom-{B32}", refresh_value(RT2, at=5)),
        )
    )
    assert choose_refresh_token(tie, PROJECT_ID) == RT


def test_order_between_families_and_legacy_names() -> None:
    # The newer SDK's order: hexclave-refresh-{pid}--*, then the legacy raw names, then
    # stack-refresh-{pid}--*; timestamps are compared within a family only.
    hexclave = (f"hexclave-refresh-{PROJECT_ID}--default", refresh_value(RT, at=1))
    legacy = (f"stack-refresh-{PROJECT_ID}", RT2)
    stack = (f"stack-refresh-{PROJECT_ID}--default", refresh_value(RT2, at=9_999_999_999_999))
    assert choose_refresh_token(stack_cookies(headers_of(stack, hexclave)), PROJECT_ID) == RT
    assert choose_refresh_token(stack_cookies(headers_of(stack, legacy)), PROJECT_ID) == RT2
    assert choose_refresh_token(stack_cookies(headers_of(legacy, hexclave)), PROJECT_ID) == RT
    oldest = ("stack-refresh", RT)
    assert choose_refresh_token(stack_cookies(headers_of(oldest)), PROJECT_ID) == RT
    both = headers_of(oldest, (f"stack-refresh-{PROJECT_ID}", RT2))
    assert choose_refresh_token(stack_cookies(both), PROJECT_ID) == RT2


def test_legacy_raw_refresh_cookie_with_the_access_cookie() -> None:
    access = mint_token()
    found = read((f"stack-refresh-{PROJECT_ID}", RT), ("stack-access", js_cookie([RT, access])))
    assert found == (access, RT, "stack-access")


def test_access_cookie_of_another_session_is_ignored() -> None:
    access = mint_token()
    refresh = (f"stack-refresh-{PROJECT_ID}--default", refresh_value(RT))
    assert read(refresh, ("stack-access", js_cookie([RT2, access]))) is None
    # hexclave-access is read first, but only a pair that matches counts.
    other = mint_token()
    found = read(
        refresh,
        ("hexclave-access", js_cookie([RT2, other])),
        ("stack-access", js_cookie([RT, access])),
    )
    assert found == (access, RT, "stack-access")


def test_no_refresh_cookie_means_no_credential() -> None:
    assert read(("stack-access", js_cookie([RT, mint_token()]))) is None
    assert read(("hexclave-access", js_cookie([RT, mint_token()]))) is None


def test_another_projects_cookies_are_not_ours() -> None:
    access = mint_token()
    other = "11111111-2222-4333-8444-555555555555"
    assert (
        read(
            (f"stack-refresh-{other}--default", refresh_value(RT)),
            (f"stack-refresh-{other}", RT),
            ("stack-access", js_cookie([RT, access])),
        )
        is None
    )


def test_first_of_a_repeated_name_wins_and_cookie_headers_add_up() -> None:
    access = mint_token()
    name = f"stack-refresh-{PROJECT_ID}--default"
    # HTTP/2 may split cookies over several headers; a name sent twice: the first counts.
    raw = [
        (b"cookie", f"{name}={refresh_value(RT)}; theme=dark".encode()),
        (
            b"cookie",
            f"{name}={refresh_value(RT2)}; stack-access={js_cookie([RT, access])}".encode(),
        ),
    ]
    found = cookie_credential(raw, PROJECT_ID)
    assert found is not None
    assert (found.access_token, found.refresh_token) == (access, RT)


def test_quoted_cookie_value_is_unquoted() -> None:
    access = mint_token()
    found = read(
        (f"stack-refresh-{PROJECT_ID}--default", f'"{refresh_value(RT)}"'),
        ("stack-access", f'"{js_cookie([RT, access])}"'),
    )
    assert found == (access, RT, "stack-access")


# --- malformed, hostile, oversized: no credential, never an error ------------------------------


@pytest.mark.parametrize(
    "cookies",
    [
        [(REFRESH, "{not json"), ("stack-access", js_cookie([RT, "a.b.c"]))],
        [(REFRESH, js_cookie(["list"])), ("stack-access", js_cookie([RT, "a.b.c"]))],
        [(REFRESH, js_cookie({"refresh_token": 42})), ("stack-access", js_cookie([42, "a.b.c"]))],
        [(REFRESH, js_cookie({"refresh_token": ""})), ("stack-access", js_cookie(["", "a.b.c"]))],
        [(REFRESH, js_cookie({"refresh_token": "has space"})), ("stack-access", "x")],
        [(REFRESH, refresh_value(RT)), ("stack-access", js_cookie([RT, "a.b.c", "extra"]))],
        [(REFRESH, refresh_value(RT)), ("stack-access", js_cookie([RT, None]))],
        [(REFRESH, refresh_value(RT)), ("stack-access", js_cookie([RT, "not a jwt"]))],
        [(REFRESH, refresh_value(RT)), ("stack-access", js_cookie({"0": RT, "1": "a.b.c"}))],
        [(REFRESH, refresh_value(RT)), ("stack-access", "%E2%28%A1")],  # not UTF-8
        [(REFRESH, refresh_value(RT)), ("stack-access", "[" * 5000)],
        [(REFRESH, refresh_value(RT)), ("stack-access", js_cookie([RT, "a." + "b" * 9000 + ".c"]))],
        [(REFRESH, js_cookie({"refresh_token": "r" * 5000})), ("stack-access", "x")],
        [(f"stack-refresh-{PROJECT_ID}", "%ff%fe"), ("stack-access", "x")],
        [
            (f"stack-refresh-{PROJECT_ID}", "tab\there"),
            ("stack-access", js_cookie(["tab\there", "a.b.c"])),
        ],
        [(REFRESH, refresh_value(RT)), ("stack-access", "")],
        [(REFRESH, "")],
        [("stack-access", js_cookie([RT, "a.b.c"]))],
    ],
)
def test_malformed_cookies_are_no_credential(cookies: list[tuple[str, str]]) -> None:
    assert read(*cookies) is None


@pytest.mark.parametrize("odd", [True, "2000", None, float("nan"), [1]])
def test_what_is_no_timestamp_counts_as_oldest(odd: Any) -> None:
    newer = (f"stack-refresh-{PROJECT_ID}--custom-{B32}", refresh_value(RT2, at=odd))
    cookies = stack_cookies(headers_of((REFRESH, refresh_value(RT, at=1)), newer))
    assert choose_refresh_token(cookies, PROJECT_ID) == RT


def test_a_huge_timestamp_is_compared_exactly() -> None:
    newer = (f"stack-refresh-{PROJECT_ID}--custom-{B32}", refresh_value(RT2, at=10**400))
    cookies = stack_cookies(headers_of((REFRESH, refresh_value(RT, at=1)), newer))
    assert choose_refresh_token(cookies, PROJECT_ID) == RT2


def test_non_ascii_is_no_credential() -> None:
    access = mint_token()
    access_cookie = f"stack-access={js_cookie([RT, access])}"
    raw_utf8 = f"{REFRESH}=\u00e9{refresh_value(RT)}; {access_cookie}".encode()
    assert cookie_credential([(b"cookie", raw_utf8)], PROJECT_ID) is None
    # A percent-encoded non-ASCII refresh token decodes, and is refused as a token.
    escaped = headers_of((REFRESH, refresh_value("t\u00e9st")), ("stack-access", "x"))
    assert cookie_credential(escaped, PROJECT_ID) is None
    # Non-ASCII in somebody else's cookie does not stop ours from being read.
    mixed = f"other=caf\u00e9; {REFRESH}={refresh_value(RT)}; {access_cookie}".encode()
    found = cookie_credential([(b"cookie", mixed)], PROJECT_ID)
    assert found is not None
    assert found.access_token == access


def test_oversized_cookie_header_is_not_read() -> None:
    access = mint_token()
    good = headers_of((REFRESH, refresh_value(RT)), ("stack-access", js_cookie([RT, access])))
    padding = (b"cookie", b"pad=" + b"x" * MAX_COOKIE_HEADER_BYTES)
    assert cookie_credential(good, PROJECT_ID) is not None
    assert cookie_credential([*good, padding], PROJECT_ID) is None


def test_many_refresh_cookies_are_bounded() -> None:
    # Only the first MAX_REFRESH_CANDIDATES are compared: later (even newer) ones cost nothing.
    first = [(f"{REFRESH}{i}", refresh_value(RT, at=i)) for i in range(MAX_REFRESH_CANDIDATES)]
    later = [(f"{REFRESH}x{i}", refresh_value(RT2, at=10**6 + i)) for i in range(200)]
    found = stack_cookies(headers_of(*first, *later))
    assert len(found) == MAX_REFRESH_CANDIDATES + 200
    assert choose_refresh_token(found, PROJECT_ID) == RT


def test_credential_repr_holds_no_token() -> None:
    access = mint_token()
    found = cookie_credential(
        headers_of((REFRESH, refresh_value(RT)), ("stack-access", js_cookie([RT, access]))),
        PROJECT_ID,
    )
    assert found is not None
    assert RT not in repr(found)
    assert access not in repr(found)


# --- writing the access cookie back --------------------------------------------------------------


def test_access_cookie_is_written_as_js_cookie_writes_it() -> None:
    header = access_cookie_header("stack-access", RT, "aa.bb.cc", secure=False).decode()
    assert header == (
        f"stack-access=[%22{RT}%22%2C%22aa.bb.cc%22]; Path=/; Max-Age=86400; SameSite=Lax"
    )
    secure = access_cookie_header("hexclave-access", RT, "aa.bb.cc", secure=True).decode()
    assert secure.startswith("hexclave-access=[%22")
    assert secure.endswith("; SameSite=Lax; Secure")
    assert "HttpOnly" not in secure
    # What is written reads back as the same pair.
    value = header.split(";", 1)[0].split("=", 1)[1]
    found = read((REFRESH, refresh_value(RT)), ("stack-access", value))
    assert found == ("aa.bb.cc", RT, "stack-access")


# --- as a credential of the dependencies ---------------------------------------------------------


def cookie_app(stack: StackAuth) -> FastAPI:
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
async def cookie_client(
    stack_settings: dict[str, Any], mock_api: respx.MockRouter
) -> AsyncIterator[httpx.AsyncClient]:
    async with StackAuth(**stack_settings, cookies=True) as stack:
        transport = httpx.ASGITransport(app=cookie_app(stack))
        async with httpx.AsyncClient(transport=transport, base_url="http://app.test") as client:
            yield client


def browser_cookies(access: str, refresh: str = RT) -> dict[str, str]:
    return {
        "Cookie": f"{REFRESH}={refresh_value(refresh)}; stack-access={js_cookie([refresh, access])}"
    }


async def test_cookie_credential_authenticates(
    cookie_client: httpx.AsyncClient, mock_api: respx.MockRouter
) -> None:
    access = mint_token()
    route = mock_api.get("/users/me").respond(200, json=user_body())
    response = await cookie_client.get("/me", headers=browser_cookies(access))
    assert response.status_code == 200, response.text
    assert response.json() == {"id": USER_ID}
    assert route.calls.last.request.headers["x-stack-access-token"] == access


async def test_a_header_credential_beats_the_cookies(
    cookie_client: httpx.AsyncClient, mock_api: respx.MockRouter
) -> None:
    header_token, cookie_token = mint_token(), mint_token()
    route = mock_api.get("/users/me").respond(200, json=user_body())
    response = await cookie_client.get(
        "/me",
        headers={"Authorization": f"Bearer {header_token}", **browser_cookies(cookie_token)},
    )
    assert response.status_code == 200
    assert [c.request.headers["x-stack-access-token"] for c in route.calls] == [header_token]
    # Even a header that cannot be read is not passed over for the cookies.
    bad = await cookie_client.get(
        "/me", headers={"x-stack-auth": "{broken", **browser_cookies(cookie_token)}
    )
    assert bad.status_code == 401
    assert bad.json()["code"] == "MALFORMED_CREDENTIALS"
    assert route.call_count == 1


async def test_null_sdk_header_counts_as_absent(
    cookie_client: httpx.AsyncClient, mock_api: respx.MockRouter
) -> None:
    access = mint_token()
    mock_api.get("/users/me").respond(200, json=user_body())
    nulls = json.dumps({"accessToken": None, "refreshToken": None})
    response = await cookie_client.get(
        "/me", headers={"x-stack-auth": nulls, **browser_cookies(access)}
    )
    assert response.status_code == 200


async def test_broken_cookies_are_no_credential(
    cookie_client: httpx.AsyncClient, mock_api: respx.MockRouter
) -> None:
    route = mock_api.get("/users/me").respond(200, json=user_body())
    cookie = {"Cookie": f"{REFRESH}={{oops; stack-access=[[["}
    response = await cookie_client.get("/me", headers=cookie)
    assert response.status_code == 401
    assert response.json()["code"] == "NOT_AUTHENTICATED"
    optional = await cookie_client.get("/hello", headers=cookie)
    assert optional.json() == {"id": None}
    assert route.call_count == 0


async def test_cookies_are_ignored_when_the_setting_is_off(
    stack: StackAuth, mock_api: respx.MockRouter
) -> None:
    assert stack.settings.cookies is False
    route = mock_api.get("/users/me").respond(200, json=user_body())
    transport = httpx.ASGITransport(app=cookie_app(stack))
    async with httpx.AsyncClient(transport=transport, base_url="http://app.test") as client:
        response = await client.get("/me", headers=browser_cookies(mint_token()))
        optional = await client.get("/hello", headers=browser_cookies(mint_token()))
    assert response.status_code == 401
    assert response.json()["code"] == "NOT_AUTHENTICATED"
    assert optional.json() == {"id": None}
    assert route.call_count == 0


async def test_an_expired_token_in_a_cookie_is_401_token_expired(
    cookie_client: httpx.AsyncClient, mock_api: respx.MockRouter
) -> None:
    mock_api.get("/users/me").respond(200, json=user_body())
    response = await cookie_client.get("/me", headers=browser_cookies(mint_token(exp_in=-60)))
    assert response.status_code == 401
    assert response.json()["code"] == "TOKEN_EXPIRED"


async def test_no_cookie_or_token_in_logs(
    cookie_client: httpx.AsyncClient, mock_api: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    access = mint_token()
    answers = iter([httpx.Response(200, json=user_body())])

    def upstream(request: httpx.Request) -> httpx.Response:
        answer = next(answers, None)
        if answer is None:
            raise httpx.ConnectError("down")
        return answer

    mock_api.get("/users/me").mock(side_effect=upstream)
    with caplog.at_level(logging.DEBUG):
        await cookie_client.get("/me", headers=browser_cookies(access))
        await cookie_client.get("/me", headers=browser_cookies(mint_token()))
        await cookie_client.get("/me", headers={"Cookie": f"{REFRESH}=%ff; stack-access=%00"})
    text = caplog.text
    assert caplog.records  # the outage is logged
    for secret in (access, RT, js_cookie([RT, access]), "stack-access=", REFRESH):
        assert secret not in text


@pytest.mark.parametrize(
    "encode",
    [
        js_cookie,
        next_js,
        lambda value: json.dumps(value, separators=(",", ":")),  # not encoded at all
        lambda value: quote(json.dumps(value)),  # spaces after ':' and ','
        # Keys the other way round.
        lambda value: js_cookie(
            dict(reversed(value.items())) if isinstance(value, dict) else value
        ),
        lambda value: js_cookie(value).replace("%2C", "%2c"),  # lower-case hex
        lambda value: f'"{js_cookie(value)}"',  # an RFC 6265 quoted value
    ],
)
def test_every_encoding_reads_alike(encode: Any) -> None:
    # The usual shapes take a one-pass fast path, the others the full decode: same answers.
    access = mint_token()
    older = (
        f"stack-refresh-{PROJECT_ID}--custom-{B32}",
        encode({"refresh_token": RT2, "updated_at_millis": 5}),
    )
    newer = (REFRESH, encode({"refresh_token": RT, "updated_at_millis": 6}))
    pair = ("stack-access", encode([RT, access]))
    assert read(older, newer, pair) == (access, RT, "stack-access")
    assert read(newer, older, pair) == (access, RT, "stack-access")
    assert read(older, newer, ("stack-access", encode([RT2, access]))) is None
