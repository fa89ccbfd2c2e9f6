"""Silent refresh: an expired access token sent with its refresh token is exchanged for a new
one through Stack's refresh grant, and the new one is handed back to the frontend.

- ``Refresher`` sends the grant (``POST /api/v1/auth/oauth/token``, contract §7.2) and caches
  the new access token by the SHA-256 digest of the refresh token (never the token itself) until
  ``REFRESH_MARGIN`` seconds before the new token's ``exp``, read from the JWT (Stack's
  ``expires_in`` is wrong). Concurrent requests with the same refresh token share one grant; a
  refresh token Stack refused is remembered for ``REJECTION_TTL`` seconds.
- ``refresh_silently`` is what a dependency calls for an access token rejected as expired: it
  first checks the expired token's signature against the project's JWKS (a forged token never
  triggers a grant), then gets the new token, verifies it like any other, checks that it
  belongs to the same user and session, and records it for the response.
- ``_refresh_relay`` carries the new token back on the response.
"""

from __future__ import annotations

import logging
import math
import time
import weakref
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, TypeGuard

from cachetools import TTLCache
from starlette.requests import HTTPConnection

from ._answers import AuthError, invalid_token, refresh_token_invalid
from ._cache import REJECTION_TTL, TokenCache, load_unless_refused, token_key
from ._client import StackClient
from ._cookies import CookieCredential
from ._csrf import is_secure
from ._exceptions import (
    InvalidAccessTokenError,
    StackAPIError,
    StackAuthError,
    StackBadResponseError,
)
from ._jwks import JwksCache
from ._refresh_relay import RELAY_KEY, SCOPE_KEY, Refreshed, warn_no_relay
from ._settings import StackAuthSettings
from ._tokens import read_unverified
from ._verifiers import signature_audience
from .models import Identity, TokenClaims

if TYPE_CHECKING:
    from ._stack import StackAuth

logger = logging.getLogger("fastapi_stack_auth")

#: A refreshed token is handed out from the cache until this many seconds before its ``exp``
#: (the JS SDK refreshes a token with 20 s or less left).
REFRESH_MARGIN = 20.0
#: The OAuth client secret of a project without a publishable key (the SDK's sentinel).
PUBLIC_CLIENT_SECRET = "__stack_public_client__"


def is_expired(exc: StackAuthError) -> bool:
    """``exc`` rejects an access token only because its ``exp`` has passed."""
    if isinstance(exc, AuthError):
        return exc.code == "TOKEN_EXPIRED"
    return isinstance(exc, InvalidAccessTokenError) and exc.expired


class Refresher:
    """Stack's refresh grant, single-flight and cached by the refresh token's digest.

    ``clock`` (epoch seconds, like ``exp``) is replaceable for tests. ``grants`` counts the
    grants sent.
    """

    def __init__(
        self,
        client: StackClient,
        settings: StackAuthSettings,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._settings = settings
        self.cache: TokenCache[str] = TokenCache(
            maxsize=settings.cache_max_entries, ttl=math.inf, clock=clock
        )
        self.rejected: TTLCache[bytes, AuthError] = TTLCache(
            settings.cache_max_entries, REJECTION_TTL, timer=clock
        )
        self.grants = 0

    async def access_token(self, refresh_token: str) -> str:
        """A valid access token for ``refresh_token``: from the cache, or from one grant.

        Raises ``AuthError`` 401 ``REFRESH_TOKEN_INVALID`` when Stack no longer knows the
        refresh token, and the client's exceptions for anything else that went wrong.
        """
        key = token_key(refresh_token)
        token = self.cache.get(key)
        if token is not None:
            return token
        grant = partial(self._grant, refresh_token)
        return await load_unless_refused(self.cache, self.rejected, key, grant, _is_refusal)

    async def _grant(self, refresh_token: str) -> tuple[str, float]:
        self.grants += 1
        s = self._settings
        publishable = s.publishable_client_key
        secret = publishable.get_secret_value() if publishable else PUBLIC_CLIENT_SECRET
        body = {
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": s.project_id,
            "client_secret": secret,
        }
        # Stack checks the keys of any access type sent. Without a secret server key, ours
        # would be refused as "server": go as the frontend's client does.
        headers = None if s.secret_server_key is not None else {"x-stack-access-type": "client"}
        try:
            answer = await self._client.request(
                "POST", "/auth/oauth/token", headers=headers, json_body=body, ok=(200,)
            )
        except StackAPIError as exc:
            if exc.code == "REFRESH_TOKEN_NOT_FOUND_OR_EXPIRED":
                raise refresh_token_invalid() from None
            raise
        token = answer.get("access_token") if isinstance(answer, dict) else None
        if not isinstance(token, str):
            raise StackBadResponseError("POST /auth/oauth/token returned no usable access token")
        return token, _exp_of(token) - REFRESH_MARGIN


def _exp_of(token: str) -> float:
    try:
        return float(read_unverified(token)[1].exp)
    except AuthError:
        raise StackBadResponseError(
            "POST /auth/oauth/token returned no usable access token"
        ) from None


async def verify_expired(jwks: JwksCache, project_id: str, raw: str) -> TokenClaims:
    """The claims of ``raw``, an access token rejected as expired, once its signature is
    checked against the project's JWKS (by a key of its own audience); ``AuthError`` 401 for a
    token Stack did not sign for this project. Remote mode judges the expiry before asking
    Stack, so this is where a forged token with a past ``exp`` is told apart."""
    header, claims = read_unverified(raw)
    audience = await signature_audience(jwks, raw, header)
    if audience != claims.aud or claims.aud.split(":", 1)[0] != project_id:
        raise invalid_token("The access token is signed with another audience's key")
    return claims


_refreshers: weakref.WeakKeyDictionary[StackAuth, Refresher] = weakref.WeakKeyDictionary()


def refresher_for(stack: StackAuth) -> Refresher:
    """``stack``'s ``Refresher``, built on first use from its client and settings."""
    refresher = _refreshers.get(stack)
    if refresher is None:
        refresher = _refreshers[stack] = Refresher(stack.client, stack.settings)
    return refresher


def use_refresher(stack: StackAuth, refresher: Refresher) -> None:
    """Make ``refresher`` the one ``stack`` uses (tests: a ``Refresher`` with its own clock)."""
    _refreshers[stack] = refresher


async def refresh_silently(
    stack: StackAuth,
    conn: HTTPConnection,
    raw: str,
    refresh_token: str,
    cookie: CookieCredential | None,
) -> tuple[str, Identity]:
    """The new access token and its identity for ``raw``, an access token rejected as expired
    and sent with ``refresh_token``; records the new token for the response (``RefreshRelay``)
    and as ``conn.state.stack_refreshed_access_token``."""
    expired = await verify_expired(stack.jwks, stack.settings.project_id, raw)
    new_raw = await refresher_for(stack).access_token(refresh_token)
    identity = await stack.pipeline.authenticate(new_raw)
    claims = identity.claims
    if claims.sub != expired.sub or (
        expired.refresh_token_id is not None
        and claims.refresh_token_id is not None
        and claims.refresh_token_id != expired.refresh_token_id
    ):
        raise invalid_token("The refresh token sent is not the one of the access token's session")
    secure = is_secure(conn.scope) or (cookie is not None and cookie.https_hint)
    conn.scope[SCOPE_KEY] = Refreshed(
        new_raw,
        refresh_token,
        cookie.access_cookie if cookie is not None else None,
        secure,
    )
    conn.state.stack_refreshed_access_token = new_raw
    if conn.scope["type"] == "http" and RELAY_KEY not in conn.scope:
        warn_no_relay()
    logger.debug("Refreshed an expired access token through Stack's refresh grant")
    return new_raw, identity


def _is_refusal(exc: Exception) -> TypeGuard[AuthError]:
    return isinstance(exc, AuthError)
