"""JWT mode's issuer check (review finding 9.7): the URL is compared the way URLs are equal
(scheme and host in any case, a default port or not), against Stack's public URL when the app
reaches Stack by another one (``issuer_url``); a genuine token with another issuer is refused,
and said in the log once a minute, not once per request."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import jwt
import pytest
from fastapi import Depends, FastAPI

from fastapi_stack_auth import StackAuth, StackUser, current_user
from fastapi_stack_auth._client import StackClient
from fastapi_stack_auth._jwks import JwksCache
from fastapi_stack_auth._jwt import ISSUER_WARNING_INTERVAL, MAX_LOGGED_ISSUER, JwtVerifier
from fastapi_stack_auth._settings import load_settings
from fastapi_stack_auth.errors import AuthError
from tests.conftest import API_URL, PROJECT_ID
from tests.jwt_helpers import JWKS_PATH, KINDS, JwksEndpoint, KeyRing, claims_for, sign_jwt

PUBLIC_URL = "https://auth.example.com"
INTERNAL_URL = "https://stack-backend.internal:8102"
UNEXPECTED_ISSUER = "The access token has an unexpected issuer"


@pytest.fixture
async def verifier(
    stack_settings: dict[str, Any], endpoint: JwksEndpoint
) -> AsyncIterator[Callable[..., JwtVerifier]]:
    """Makes a ``JwtVerifier`` for given Stack URLs; its keys come from the mocked JWKS."""
    async with StackClient(load_settings(**stack_settings, verify="jwt")) as http:
        jwks = JwksCache(http, PROJECT_ID)

        def make(api_url: str = API_URL, issuer_url: str | None = None) -> JwtVerifier:
            return JwtVerifier(jwks, project_id=PROJECT_ID, api_url=api_url, issuer_url=issuer_url)

        yield make


def token(
    ring: KeyRing, kind: str = "normal", *, base: str = API_URL, iss: str | None = None
) -> str:
    """A genuine ``kind`` token whose issuer is under ``base`` (or is ``iss``)."""
    payload = claims_for(kind, api_url=base)
    if iss is not None:
        payload["iss"] = iss
    return sign_jwt(ring.signer(kind), payload)


async def rejection(verifier: JwtVerifier, raw: str) -> str:
    with pytest.raises(AuthError) as info:
        await verifier.verify(raw)
    assert (info.value.status_code, info.value.code) == (401, "INVALID_TOKEN")
    return str(info.value.detail)


def issuer_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "fastapi_stack_auth"
        and record.levelno == logging.WARNING
        and "STACK_JWT_ISSUER_URL" in record.getMessage()
    ]


@pytest.mark.parametrize(
    ("configured", "issued"),
    [
        ("http://LOCALHOST:8102", "http://localhost:8102"),
        ("HTTP://LocalHost:8102/", "http://localhost:8102"),
        ("https://api.stack-auth.com:443", "https://api.stack-auth.com"),
        ("HTTPS://API.Stack-Auth.com:443/", "https://api.stack-auth.com"),
        ("http://stack.test:80", "http://stack.test"),
        ("http://[::1]:8102", "http://[::1]:8102"),
        # Stack's own spelling is canonical, but the token's side is compared the same way.
        ("https://api.stack-auth.com", "HTTPS://API.STACK-AUTH.COM:443"),
        ("http://localhost:8102", "http://LocalHost:8102"),
    ],
)
async def test_one_url_in_any_spelling_is_one_issuer(
    verifier: Callable[..., JwtVerifier], ring: KeyRing, configured: str, issued: str
) -> None:
    for kind in KINDS:
        raw = token(ring, kind, base=issued)
        identity = await verifier(api_url=configured).verify(raw)
        assert identity.claims.aud.startswith(PROJECT_ID), kind
        # The same URL given as the explicit issuer base.
        await verifier(api_url=INTERNAL_URL, issuer_url=configured).verify(raw)


async def test_an_internal_api_url_with_the_public_issuer_url(
    verifier: Callable[..., JwtVerifier], ring: KeyRing
) -> None:
    check = verifier(api_url=INTERNAL_URL, issuer_url=PUBLIC_URL)
    for kind in KINDS:
        await check.verify(token(ring, kind, base=PUBLIC_URL))
    # The issuer is Stack's public URL alone: the URL we reach it by is not one.
    assert await rejection(check, token(ring, base=INTERNAL_URL)) == UNEXPECTED_ISSUER
    # Without issuer_url, the URL we reach Stack by is the issuer (as before).
    assert await rejection(verifier(api_url=INTERNAL_URL), token(ring, base=PUBLIC_URL)) == (
        UNEXPECTED_ISSUER
    )


async def test_the_public_issuer_url_through_the_app(ring: KeyRing) -> None:
    """An app that reaches Stack by an internal name, as a self-hosted deployment does."""
    served = JwksEndpoint(ring)

    def stack_backend(request: httpx.Request) -> httpx.Response:
        assert request.url.host == "stack-backend.internal"
        assert request.url.path == JWKS_PATH
        return served(request)

    transport = httpx.MockTransport(stack_backend)
    settings = {
        "project_id": PROJECT_ID,
        "api_url": INTERNAL_URL,
        "verify": "jwt",
        "check_keys_on_startup": False,
    }
    async with StackClient(load_settings(**settings), transport=transport) as http:
        jwks = JwksCache(http, PROJECT_ID)
        check = JwtVerifier(
            jwks, project_id=PROJECT_ID, api_url=INTERNAL_URL, issuer_url=PUBLIC_URL
        )
        stack = StackAuth(**settings, transport=transport, verifier=check)
        app = FastAPI()
        stack.init_app(app)

        @app.get("/me")
        async def me(user: StackUser = Depends(current_user)) -> dict[str, str]:
            return {"id": user.id}

        async with stack:
            client = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://app.test"
            )
            async with client:
                good = token(ring, base=PUBLIC_URL)
                response = await client.get("/me", headers={"Authorization": f"Bearer {good}"})
                assert response.status_code == 200, response.text
                assert response.json()["id"] == claims_of_sub(good)
                bad = token(ring, base=INTERNAL_URL)
                response = await client.get("/me", headers={"Authorization": f"Bearer {bad}"})
                assert response.status_code == 401
                assert response.json()["detail"] == UNEXPECTED_ISSUER
    assert served.fetches == 1


def claims_of_sub(raw: str) -> str:
    sub: str = jwt.decode(raw, options={"verify_signature": False})["sub"]
    return sub


@pytest.mark.parametrize(
    "iss",
    [
        f"{API_URL}/api/v1/projects/{PROJECT_ID}/",  # a trailing slash in the path
        f"{API_URL}/API/v1/projects/{PROJECT_ID}",  # paths are case-sensitive
        f"{API_URL}/api/v1/projects/{PROJECT_ID.upper()}",
        f"http://stack.test/api/v1/projects/{PROJECT_ID}",  # another scheme
        f"https://stack.test:8443/api/v1/projects/{PROJECT_ID}",  # another port
        f"https://stack.test:80/api/v1/projects/{PROJECT_ID}",  # http's default port on https
        f"https://user@stack.test/api/v1/projects/{PROJECT_ID}",  # user info
        f"{API_URL}/api/v1/projects/{PROJECT_ID}?",  # a query, even empty
        f"{API_URL}/api/v1/projects/{PROJECT_ID}#x",  # a fragment
        f"{API_URL}/api/v1/projects-anonymous-users/{PROJECT_ID}",  # another audience's
        f"https://stack.test.evil.test/api/v1/projects/{PROJECT_ID}",
        f"//stack.test/api/v1/projects/{PROJECT_ID}",
        "not a URL",
        "",
    ],
)
async def test_other_issuers_are_still_refused(
    verifier: Callable[..., JwtVerifier], ring: KeyRing, iss: str
) -> None:
    assert await rejection(verifier(), token(ring, iss=iss)) == UNEXPECTED_ISSUER


async def test_a_wrong_issuer_is_refused_and_logged_once_a_minute(
    verifier: Callable[..., JwtVerifier], ring: KeyRing, caplog: pytest.LogCaptureFixture
) -> None:
    check = verifier()
    wrong = f"{PUBLIC_URL}/api/v1/projects/{PROJECT_ID}"
    with caplog.at_level(logging.WARNING, logger="fastapi_stack_auth"):
        for _ in range(20):
            assert await rejection(check, token(ring, iss=wrong)) == UNEXPECTED_ISSUER
        (warning,) = issuer_warnings(caplog)
        # Which issuer came and which was expected: enough to set STACK_JWT_ISSUER_URL right.
        assert repr(wrong) in warning
        assert repr(f"{API_URL}/api/v1/projects/{PROJECT_ID}") in warning
        # A minute later it is said again.
        check._issuer_warned_at -= ISSUER_WARNING_INTERVAL
        assert await rejection(check, token(ring, "anonymous", base=PUBLIC_URL)) == (
            UNEXPECTED_ISSUER
        )
        assert len(issuer_warnings(caplog)) == 2
        assert (
            repr(f"{API_URL}/api/v1/projects-anonymous-users/{PROJECT_ID}")
            in (issuer_warnings(caplog)[1])
        )


async def test_the_logged_issuer_is_capped_and_has_no_control_characters(
    verifier: Callable[..., JwtVerifier], ring: KeyRing, caplog: pytest.LogCaptureFixture
) -> None:
    iss = "https://evil.test/\x1b[2J\r\n2026-01-01 CRITICAL forged line\x00\u2028" + "a" * 5000
    with caplog.at_level(logging.WARNING, logger="fastapi_stack_auth"):
        assert await rejection(verifier(), token(ring, iss=iss)) == UNEXPECTED_ISSUER
    (warning,) = issuer_warnings(caplog)
    logged = warning.split("issued by ", 1)[1].split("; expected", 1)[0]
    assert logged.startswith("'https://evil.test/[2J2026-01-01 CRITICAL forged line")
    assert logged.endswith("...'")
    assert len(logged) <= MAX_LOGGED_ISSUER + len("''...")
    for char in "\x1b\r\n\x00\u2028":
        assert char not in warning


@pytest.mark.parametrize(
    "issuer_url",
    [
        "https://auth.example.com/stack",  # Stack's issuer is built from the origin alone
        "https://user:secret@auth.example.com",
        "https://auth.example.com?x=1",
        "ftp://auth.example.com",
        "auth.example.com",
    ],
)
def test_issuer_url_must_be_a_bare_base_url(issuer_url: str) -> None:
    jwks: Any = object()
    with pytest.raises(ValueError, match="issuer_url must be a bare http"):
        JwtVerifier(jwks, project_id=PROJECT_ID, api_url=API_URL, issuer_url=issuer_url)
