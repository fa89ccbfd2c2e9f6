"""The per-request fast paths give exactly what the reference code they shortcut gives.

Each shortcut (credential header scan, one-pass claims parsing, hand-built DER signature,
snapshot users assembled without validation, the header cache) is compared here with the plain
version it replaces, on ordinary and on odd input.
"""

from __future__ import annotations

import base64
import json
import random
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from pydantic import ValidationError

from fastapi_stack_auth import AuthError, StackUser, TokenClaims, _tokens
from fastapi_stack_auth._jwt import _der_signature
from fastapi_stack_auth._tokens import credential_from_headers, parse_access_token
from tests.conftest import mint_token

TOKEN = mint_token()


def _outcome(call: Any, *args: Any) -> tuple[Any, ...]:
    try:
        return ("ok", call(*args))
    except AuthError as error:
        return ("error", error.status_code, error.code, error.detail)


# --- credential_from_headers: the one-pass scan against the general rules ----------------------


def _sdk_bearer(token: str | None, prefix: str = "stackauth_") -> str:
    body = json.dumps({"accessToken": token, "refreshToken": "rt"}).encode()
    return f"Bearer {prefix}{base64.b64encode(body).decode()}"


AUTHORIZATION_VALUES = [
    f"Bearer {TOKEN}",
    f"bearer {TOKEN}",
    f"BEARER {TOKEN}",
    f"Bearer  {TOKEN}  ",
    f"Bearer\t{TOKEN}",
    f" Bearer {TOKEN}",
    f"Bearer {TOKEN}\x1c",  # str.strip() strips it, bytes.strip() would not
    f"Bearer \x1f{TOKEN}",
    f"Bearer {TOKEN} extra",
    "Bearer ",
    "Bearer",
    "Bearer \x0b",
    "Bearer tök",
    "Basic dXNlcjpwYXNz",
    "",
    _sdk_bearer(TOKEN),
    _sdk_bearer(TOKEN, "hexclave_"),
    _sdk_bearer(None),
    "Bearer stackauth_!!",
    "Bearer stackauth",
]
OTHER_VALUES = {
    b"x-stack-access-token": [TOKEN, "tök"],
    b"x-stack-auth": [
        json.dumps({"accessToken": TOKEN}),
        json.dumps({"accessToken": None}),
        "{broken",
    ],
}


def _random_headers(rng: random.Random) -> list[tuple[bytes, bytes]]:
    headers = []
    for _ in range(rng.randint(0, 5)):
        name = rng.choice(
            [b"authorization"] * 3 + [b"x-stack-access-token", b"x-stack-auth", b"host", b"accept"]
        )
        if name == b"authorization":
            value = rng.choice(AUTHORIZATION_VALUES)
        else:
            value = rng.choice(OTHER_VALUES.get(name, ["bench.local"]))
        headers.append((name, value.encode("utf-8")))
    return headers


def test_credential_scan_agrees_with_the_general_rules() -> None:
    rng = random.Random(7)
    seen_fast = 0
    for _ in range(20_000):
        headers = _random_headers(rng)
        expected = _outcome(_tokens._credential, headers)
        assert _outcome(credential_from_headers, headers) == expected, headers
        assert _outcome(credential_from_headers, iter(headers)) == expected, headers
        seen_fast += expected == ("ok", TOKEN)
    assert seen_fast > 1000


# --- parse_access_token: one-pass claims against json.loads + model_validate ---------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _token(payload: bytes, header: bytes = b'{"alg":"ES256","kid":"k"}') -> str:
    return f"{_b64(header)}.{_b64(payload)}.{_b64(bytes(64))}"


def _reference_claims(payload: bytes) -> tuple[Any, ...]:
    try:
        data = json.loads(payload.decode("utf-8"))
    except (ValueError, RecursionError):
        return ("not json",)
    if not isinstance(data, dict):
        return ("not an object",)
    try:
        return _described(TokenClaims.model_validate(data))
    except ValidationError:
        return ("invalid",)


def _described(claims: TokenClaims) -> tuple[Any, ...]:
    # repr: NaN compares unequal to itself
    return ("ok", repr(claims), sorted(claims.model_fields_set), repr(claims.model_extra))


BASE = '"sub":"u","aud":"p","exp":2000000000'
PAYLOADS = [
    "{" + BASE + "}",
    "{" + BASE + ',"is_anonymous":true}',  # legacy: no is_restricted
    "{" + BASE + ',"is_anonymous":true,"is_restricted":false}',
    "{" + BASE + ',"is_anonymous":false,"is_restricted":true,"restricted_reason":'
    '{"type":"email_not_verified"}}',
    "{" + BASE + ',"branchId":"main","refreshTokenId":"r"}',
    "{" + BASE + ',"branch_id":"x","branchId":"y"}',
    "{" + BASE + ',"nbf":NaN,"x":Infinity,"y":[1,{"z":null}]}',
    "{" + BASE + ',"name":"\\ud800"}',  # a lone surrogate: jiter refuses it, json does not
    "{" + BASE + ',"name":"\\ud83d\\ude00","email":"\u00e9@x"}',
    "{" + BASE + ',"sub":"v"}',  # duplicate key: the last one wins
    "{" + BASE + ',"x":' + "[" * 300 + "]" * 300 + "}",  # deeper than jiter goes
    '{"sub":"u","aud":"p","exp":1.0}',
    '{"sub":"u","aud":"p","exp":1e3}',
    '{"sub":"u","aud":"p","exp":true}',
    '{"sub":"u","aud":"p","exp":"1"}',
    '{"sub":"u","aud":"p","exp":-1}',
    '{"sub":"u","aud":"p","exp":253402300800}',
    '{"sub":1,"aud":"p","exp":1}',
    '{"sub":"u","aud":"p","exp":1,"email_verified":1}',
    '{"sub":"u","aud":"p","exp":1,"is_anonymous":null}',
    '{"sub":"u","aud":"p","exp":1,"restricted_reason":{"type":1}}',
    '{"sub":"u","aud":"p"}',
    "[1]",
    '"x"',
    "{broken",
    "",
    "\ufeff{" + BASE + "}",
]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_claims_parse_like_json_loads_and_model_validate(payload: str) -> None:
    raw = payload.encode("utf-8")
    expected = _reference_claims(raw)
    outcome = _outcome(parse_access_token, _token(raw))
    if expected[0] == "ok":
        assert outcome[0] == "ok"
        assert _described(outcome[1].claims) == expected
    else:
        assert outcome[:3] == ("error", 401, "INVALID_TOKEN")
        detail = outcome[3]
        if expected[0] == "invalid":
            assert detail == "The access token lacks the claims of a Stack Auth token"
        else:
            assert detail == "The access token is not a JWT"


def test_claims_parse_like_the_reference_on_random_payloads() -> None:
    rng = random.Random(11)
    keys = ["sub", "aud", "exp", "iat", "signed_up_at", "is_anonymous", "is_restricted"]
    keys += ["email_verified", "restricted_reason", "branchId", "name", "nbf", "custom"]
    values: list[Any] = [None, True, False, 0, 1, -1, 1.5, 10**12, 10**30, "x", "", [], {}]
    values += [{"type": "anonymous"}, {"type": 1}, "1"]
    for _ in range(3000):
        claims: dict[str, Any] = {"sub": "u", "aud": "p", "exp": 1} if rng.random() < 0.8 else {}
        for _ in range(rng.randint(0, 5)):
            claims[rng.choice(keys)] = rng.choice(values)
        raw = json.dumps(claims).encode()
        expected = _reference_claims(raw)
        outcome = _outcome(parse_access_token, _token(raw))
        if expected[0] == "ok":
            assert _described(outcome[1].claims) == expected, raw
        else:
            assert outcome[:3] == ("error", 401, "INVALID_TOKEN"), raw


def test_error_order_is_kept_when_the_payload_is_bad_too() -> None:
    # The header is checked before the claims, as before the one-pass parse.
    error = _outcome(parse_access_token, _token(b'{"sub":1}', header=b'{"alg":"none"}'))
    assert error[3] == "The access token is not signed with ES256"
    error = _outcome(parse_access_token, _token(b"{broken", header=b'{"alg":"none"}'))
    assert error[3] == "The access token is not a JWT"
    error = _outcome(parse_access_token, _token(b'{"sub":"u","aud":"p","exp":1}', header=b"[1]"))
    assert error[3] == "The access token is not a JWT"


def test_legacy_tokens_are_restricted_when_anonymous() -> None:
    for build in (
        lambda data: TokenClaims.model_validate(data),
        lambda data: TokenClaims.model_validate_json(json.dumps(data)),
        lambda data: TokenClaims(**data),
    ):
        anonymous = build({"sub": "u", "aud": "p", "exp": 1, "is_anonymous": True})
        assert anonymous.is_restricted is True
        assert "is_restricted" in anonymous.model_fields_set
        normal = build({"sub": "u", "aud": "p", "exp": 1})
        assert normal.is_restricted is False
        sent = build(
            {"sub": "u", "aud": "p", "exp": 1, "is_anonymous": True, "is_restricted": False}
        )
        assert sent.is_restricted is False  # what is sent is kept (the verifier rejects it)
        with pytest.raises(ValidationError):
            build({"sub": "u", "aud": "p", "exp": 1, "is_anonymous": 1})


def test_signature_segment_must_be_decodable() -> None:
    header, payload, _ = _token(b"{" + BASE.encode() + b"}").split(".")
    for signature in ("A", "AAAAA", "A" * 85):
        error = _outcome(parse_access_token, f"{header}.{payload}.{signature}")
        assert error[:3] == ("error", 401, "INVALID_TOKEN"), signature
    assert _outcome(parse_access_token, f"{header}.{payload}.AA")[0] == "ok"


def test_header_cache_is_bounded_and_read_only() -> None:
    _tokens._HEADERS.clear()
    payload = b"{" + BASE.encode() + b"}"
    for n in range(3 * _tokens._MAX_CACHED_HEADERS):
        header = json.dumps({"alg": "ES256", "kid": f"k{n}"}).encode()
        token = parse_access_token(_token(payload, header=header))
        assert token.header["kid"] == f"k{n}"
        assert len(_tokens._HEADERS) <= _tokens._MAX_CACHED_HEADERS
    with pytest.raises(TypeError):
        token.header["kid"] = "other"  # type: ignore[index]
    again = parse_access_token(_token(payload, header=header))
    assert again.header is token.header


# --- the DER signature, against cryptography's encoder -----------------------------------------


def test_der_signature_is_encode_dss_signature() -> None:
    rng = random.Random(3)
    signatures = [bytes(64), b"\xff" * 64, b"\x80" + bytes(63), bytes(31) + b"\x80" + bytes(32)]
    signatures += [bytes(32) + b"\x01" + bytes(31), bytes(63) + b"\x01"]
    for _ in range(20_000):
        signature = bytearray(rng.randbytes(64))
        for half in (0, 32):
            zeros = rng.choice([0, 0, 1, 2, 31, 32])
            signature[half : half + zeros] = bytes(zeros)
            if zeros < 32 and rng.random() < 0.3:
                signature[half + zeros] |= 0x80
        signatures.append(bytes(signature))
    for signature in signatures:
        r = int.from_bytes(signature[:32], "big")
        s = int.from_bytes(signature[32:], "big")
        assert _der_signature(signature) == encode_dss_signature(r, s), signature.hex()


# --- StackUser.from_claims: assembled without validation, equal to the validated one ---------


CLAIMS = [
    {"sub": "u", "aud": "p", "exp": 2_000_000_000},
    {
        "sub": "u",
        "aud": "p:anon",
        "exp": 2_000_000_000,
        "is_anonymous": True,
        "restricted_reason": {"type": "anonymous"},
        "signed_up_at": 253_402_300_799,
        "name": "N",
        "email": "e@x",
        "email_verified": True,
        "selected_team_id": "t",
        "requires_totp_mfa": True,
    },
    {
        "sub": "u",
        "aud": "p:restricted",
        "exp": 2_000_000_000,
        "is_restricted": True,
        "restricted_reason": {"type": "restricted_by_administrator"},
    },
]


@pytest.mark.parametrize("data", CLAIMS)
def test_snapshot_user_equals_the_validated_user(data: dict[str, Any]) -> None:
    claims = TokenClaims.model_validate(data)
    user = StackUser.from_claims(claims)
    reason = claims.restricted_reason
    validated = StackUser(
        id=claims.sub,
        primary_email=claims.email,
        primary_email_verified=claims.email_verified,
        display_name=claims.name,
        signed_up_at_millis=(claims.signed_up_at or 0) * 1000,
        requires_totp_mfa=claims.requires_totp_mfa,
        selected_team_id=claims.selected_team_id,
        is_anonymous=claims.is_anonymous,
        is_restricted=claims.is_restricted,
        restricted_reason=reason,
        restricted_by_admin=reason is not None and reason.type == "restricted_by_administrator",
    )
    assert type(user) is StackUser
    assert user == validated
    assert repr(user) == repr(validated)
    assert user.model_fields_set == validated.model_fields_set
    assert user.model_extra == validated.model_extra == {}
    assert user.model_dump() == validated.model_dump()
    assert user.model_dump_json() == validated.model_dump_json()
    with pytest.raises(ValidationError):
        user.id = "other"  # type: ignore[misc]  # frozen


def test_snapshot_user_subclass_is_validated() -> None:
    class Tagged(StackUser):
        tag: str = "t"

    claims = TokenClaims.model_validate(CLAIMS[1])
    user = Tagged.from_claims(claims)
    assert type(user) is Tagged
    assert user.tag == "t"
    assert user.id == claims.sub
