"""Token extraction (every header shape, precedence) and shape checks, all without I/O."""

from __future__ import annotations

import base64
import json

import pytest

from fastapi_stack_auth import AuthError
from fastapi_stack_auth._tokens import (
    MAX_TOKEN_BYTES,
    credential_from_headers,
    parse_access_token,
)
from tests.conftest import mint_token

TOKEN = mint_token()
OTHER = mint_token()


def headers(**values: str | bytes) -> list[tuple[bytes, bytes]]:
    out = []
    for name, value in values.items():
        raw = value if isinstance(value, bytes) else value.encode("latin-1")
        out.append((name.replace("_", "-").lower().encode(), raw))
    return out


def sdk_json(access: str | None, refresh: str | None = "rt") -> str:
    return json.dumps({"accessToken": access, "refreshToken": refresh})


def sdk_bearer(access: str | None, prefix: str = "stackauth_") -> str:
    encoded = base64.b64encode(sdk_json(access).encode()).decode()
    return f"Bearer {prefix}{encoded}"


def reject(raw: list[tuple[bytes, bytes]]) -> AuthError:
    with pytest.raises(AuthError) as info:
        credential_from_headers(raw)
    assert info.value.status_code == 401
    assert "WWW-Authenticate" in (info.value.headers or {})
    return info.value


# --- each shape ---------------------------------------------------------------------------


def test_no_credential() -> None:
    assert credential_from_headers(headers(accept="application/json")) is None


def test_x_stack_access_token() -> None:
    assert credential_from_headers(headers(x_stack_access_token=TOKEN)) == TOKEN


def test_x_stack_auth_json() -> None:
    assert credential_from_headers(headers(x_stack_auth=sdk_json(TOKEN))) == TOKEN


def test_plain_bearer() -> None:
    assert credential_from_headers(headers(authorization=f"Bearer {TOKEN}")) == TOKEN


def test_bearer_scheme_is_case_insensitive() -> None:
    assert credential_from_headers(headers(authorization=f"bearer {TOKEN}")) == TOKEN


@pytest.mark.parametrize("prefix", ["stackauth_", "hexclave_"])
def test_sdk_authorization_header(prefix: str) -> None:
    raw = headers(authorization=sdk_bearer(TOKEN, prefix))
    assert credential_from_headers(raw) == TOKEN


def test_other_authorization_scheme_is_not_ours() -> None:
    assert credential_from_headers(headers(authorization="Basic dXNlcjpwYXNz")) is None


# --- null tokens mean "no credential" --------------------------------------------------------


def test_null_access_token_in_x_stack_auth_is_no_credential() -> None:
    assert credential_from_headers(headers(x_stack_auth=sdk_json(None, None))) is None


def test_null_access_token_in_stackauth_bearer_is_no_credential() -> None:
    assert credential_from_headers(headers(authorization=sdk_bearer(None))) is None


def test_null_x_stack_auth_falls_through_to_authorization() -> None:
    raw = headers(x_stack_auth=sdk_json(None), authorization=f"Bearer {TOKEN}")
    assert credential_from_headers(raw) == TOKEN


# --- precedence ---------------------------------------------------------------------------


def test_precedence_access_token_header_wins() -> None:
    raw = headers(
        authorization=f"Bearer {OTHER}",
        x_stack_auth=sdk_json(OTHER),
        x_stack_access_token=TOKEN,
    )
    assert credential_from_headers(raw) == TOKEN


def test_precedence_x_stack_auth_beats_authorization() -> None:
    raw = headers(authorization=f"Bearer {OTHER}", x_stack_auth=sdk_json(TOKEN))
    assert credential_from_headers(raw) == TOKEN


def test_unusable_winner_is_an_error_not_a_fallthrough() -> None:
    error = reject(headers(x_stack_auth="{not json", authorization=f"Bearer {TOKEN}"))
    assert error.code == "MALFORMED_CREDENTIALS"


# --- malformed credentials ------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "{not json",
        "[1, 2]",
        '"just a string"',
        '{"accessToken": 42}',
        '{"accessToken": ["a"]}',
        "[" * 5000 + "]" * 5000,  # a JSON bomb: deep nesting must not crash the parser
        '{"a": "' + "x" * 20000 + '"}',  # too large
    ],
)
def test_malformed_x_stack_auth(value: str) -> None:
    assert reject(headers(x_stack_auth=value)).code == "MALFORMED_CREDENTIALS"


@pytest.mark.parametrize(
    "value",
    [
        "Bearer stackauth_!!!notbase64",
        "Bearer stackauth_" + base64.b64encode(b"{broken").decode(),
        "Bearer stackauth_" + base64.b64encode(b"\xff\xfe").decode(),
        "Bearer ",
        "Bearer",
    ],
)
def test_malformed_authorization(value: str) -> None:
    assert reject(headers(authorization=value)).code == "MALFORMED_CREDENTIALS"


@pytest.mark.parametrize("name", ["authorization", "x-stack-access-token", "x-stack-auth"])
def test_repeated_credential_header_is_rejected(name: str) -> None:
    value = f"Bearer {TOKEN}" if name == "authorization" else TOKEN
    raw = [(name.encode(), value.encode()), (name.encode(), value.encode())]
    assert reject(raw).code == "MALFORMED_CREDENTIALS"


def test_non_ascii_header_is_rejected() -> None:
    raw = [(b"x-stack-access-token", "tök.en.x".encode())]
    assert reject(raw).code == "MALFORMED_CREDENTIALS"


# --- shape checks ---------------------------------------------------------------------------


def test_parse_valid_token() -> None:
    token = parse_access_token(TOKEN)
    assert token.raw == TOKEN
    assert token.header["alg"] == "ES256"
    assert token.claims.sub == "3f5c8e21-7a4b-4c9d-8e2f-1a6b3c4d5e6f"


def test_parse_real_fixture_token() -> None:
    from tests.conftest import fixture_json

    fixture = fixture_json("tokens/access-token.normal.json")
    token = parse_access_token(fixture["token"])
    assert token.claims.model_dump(include={"sub", "aud", "exp"}) == {
        k: fixture["payload"][k] for k in ("sub", "aud", "exp")
    }


def _token_from(header: object, payload: object) -> str:
    def enc(part: object) -> str:
        raw = part if isinstance(part, bytes) else json.dumps(part).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return f"{enc(header)}.{enc(payload)}.c2ln"


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("", "empty"),
        ("abc", "one segment"),
        ("a.b", "two segments"),
        ("a.b.c.d", "four segments"),
        ("a.b.c d", "space"),
        ("ä.b.c", "non-ascii"),
        ("a.b.c\x00", "NUL"),
        ("x" * (MAX_TOKEN_BYTES + 1), "oversized"),
        (_token_from(b"not json", {"sub": "u"}), "header not JSON"),
        (_token_from([1], {"sub": "u"}), "header not an object"),
        (_token_from({"alg": "none"}, {"sub": "u", "aud": "p", "exp": 1}), "alg none"),
        (_token_from({"alg": "HS256"}, {"sub": "u", "aud": "p", "exp": 1}), "alg HS256"),
        (_token_from({"alg": "RS256"}, {"sub": "u", "aud": "p", "exp": 1}), "alg RS256"),
        (_token_from({"alg": "ES256"}, {"aud": "p", "exp": 1}), "no sub"),
        (_token_from({"alg": "ES256"}, {"sub": "u", "exp": 1}), "no aud"),
        (_token_from({"alg": "ES256"}, {"sub": "u", "aud": "p"}), "no exp"),
        (_token_from({"alg": "ES256"}, {"sub": "u", "aud": 5, "exp": 1}), "aud not a string"),
        (_token_from({"alg": "ES256"}, {"sub": "u", "aud": "p", "exp": "x"}), "exp not int"),
    ],
)
def test_parse_rejects_what_cannot_be_a_stack_token(raw: str, why: str) -> None:
    with pytest.raises(AuthError) as info:
        parse_access_token(raw)
    assert info.value.status_code == 401, why
    assert info.value.code == "INVALID_TOKEN", why


# --- found by review: odd but legal inputs --------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        json.dumps({"accessToken": "\ud800"}),  # a lone surrogate, written as a JSON escape
        '{"accessToken": "\\ud800.a.b"}',
        '{"accessToken": "t\\u00f6ken.a.b"}',
    ],
)
def test_json_credential_with_non_ascii_token_is_401_not_500(value: str) -> None:
    assert reject(headers(x_stack_auth=value)).code == "INVALID_TOKEN"
    encoded = base64.b64encode(value.encode()).decode()
    assert reject(headers(authorization=f"Bearer stackauth_{encoded}")).code == "INVALID_TOKEN"


@pytest.mark.parametrize(
    "raw",
    [
        [(b"authorization", "Basic üser".encode("latin-1"))],
        [(b"authorization", b"Basic dXNlcjpwYXNz"), (b"authorization", b"Basic b3RoZXI6eA==")],
        [(b"authorization", b"Digest username=x"), (b"authorization", b"")],
    ],
)
def test_other_schemes_are_ignored_whatever_they_hold(raw: list[tuple[bytes, bytes]]) -> None:
    assert credential_from_headers(raw) is None


def test_bearer_next_to_another_scheme_still_counts() -> None:
    raw = [
        (b"authorization", b"Basic dXNlcjpwYXNz"),
        (b"authorization", f"Bearer {TOKEN}".encode()),
    ]
    assert credential_from_headers(raw) == TOKEN


def test_bearer_separated_by_a_tab() -> None:
    assert credential_from_headers(headers(authorization=f"Bearer\t{TOKEN}")) == TOKEN


def test_payload_must_be_utf8_json() -> None:
    header = base64.urlsafe_b64encode(b'{"alg":"ES256"}').rstrip(b"=").decode()
    payload_json = json.dumps({"sub": "u", "aud": "p", "exp": 2_000_000_000})
    payload = base64.urlsafe_b64encode(payload_json.encode("utf-16")).rstrip(b"=").decode()
    with pytest.raises(AuthError) as info:
        parse_access_token(f"{header}.{payload}.c2ln")
    assert info.value.code == "INVALID_TOKEN"
