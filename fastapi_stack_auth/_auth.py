"""``StackAuth``: the one object an app configures; policy and error mapping live here."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.types import Lifespan

from ._cache import TokenCache, token_key
from ._client import StackClient
from ._errors import (
    AuthError,
    InvalidAccessTokenError,
    ProjectCredentialsError,
    StackAPIError,
    StackAuthError,
    StackBadResponseError,
    StackUnavailableError,
    UserGoneError,
    UserNotAllowedError,
    anonymous_not_allowed,
    invalid_token,
    restricted_not_allowed,
    server_misconfigured,
    stack_bad_response,
    stack_unavailable,
    token_expired,
    user_not_found,
)
from ._settings import StackAuthSettings, load_settings
from ._tokens import AccessToken, parse_access_token
from ._verifiers import Identity, RemoteVerifier, Verifier

logger = logging.getLogger("fastapi_stack_auth")


class StackAuth:
    """Stack Auth for one FastAPI app: settings, the shared client, the cache and the policy.

    ``StackAuth()`` reads ``STACK_*`` settings (keyword arguments override them) and fails at
    once, naming the environment variable, when one is missing. ``init_app(app)`` attaches it:
    the dependencies then find it, its client opens and closes with the app's lifespan, and its
    errors are answered as ``{"detail": ..., "code": ...}``.
    """

    def __init__(
        self,
        settings: StackAuthSettings | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        verifier: Verifier | None = None,
        **overrides: Any,
    ) -> None:
        if settings is not None and overrides:
            raise TypeError("pass either settings=... or keyword overrides, not both")
        self.settings: StackAuthSettings = settings or load_settings(**overrides)
        self.client = StackClient(self.settings, transport=transport)
        self.cache: TokenCache[Identity] = TokenCache(
            maxsize=self.settings.cache_max_entries, ttl=self.settings.cache_ttl
        )
        self.verifier: Verifier = verifier or RemoteVerifier(self.client)

    def __repr__(self) -> str:
        s = self.settings
        return f"StackAuth(project_id={s.project_id!r}, api_url={s.api_url!r})"

    # --- lifetime -------------------------------------------------------------------------

    def init_app(self, app: FastAPI) -> None:
        """Attach to ``app``: make it the app's ``StackAuth``, run with its lifespan (around
        any lifespan the app already has) and render ``AuthError`` as JSON."""
        app.state.stack_auth = self
        app.add_exception_handler(AuthError, _auth_error_response)  # type: ignore[arg-type]
        inner: Lifespan[Any] = app.router.lifespan_context
        app.router.lifespan_context = self._wrap_lifespan(inner)

    def _wrap_lifespan(self, inner: Lifespan[Any]) -> Callable[[Any], Any]:
        @asynccontextmanager
        async def lifespan(app: Any) -> AsyncIterator[Any]:
            async with self, inner(app) as state:
                yield state

        return lifespan

    async def start(self) -> None:
        """Open the shared HTTP client and check our keys once (a failure is logged, not
        raised: public routes keep working and protected ones answer 500/503)."""
        await self.client.open()
        if self.settings.check_keys_on_startup:
            await self._check_keys()

    async def stop(self) -> None:
        """Close the shared HTTP client."""
        await self.client.aclose()

    async def __aenter__(self) -> StackAuth:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _check_keys(self) -> None:
        try:
            await self.client.get_current_project()
        except ProjectCredentialsError as exc:
            logger.error(
                "Stack Auth rejected this server's credentials at startup (%s): check the %s "
                "setting. Every authenticated request will be answered 500 until it is fixed.",
                exc.code,
                exc.setting,
            )
        except StackUnavailableError as exc:
            logger.warning(
                "Stack Auth at %s is unreachable at startup (%s); authenticated requests are "
                "answered 503 until it is back.",
                self.settings.api_url,
                exc.reason,
            )
        except StackAuthError as exc:
            logger.error("Stack Auth key check at startup failed: %s", type(exc).__name__)
        else:
            logger.info("Stack Auth accepted this server's keys for project %s", self._project)

    @property
    def _project(self) -> str:
        return self.settings.project_id

    # --- verification -----------------------------------------------------------------------

    async def authenticate(self, raw_token: str) -> Identity:
        """The identity behind ``raw_token``, from the cache or the verifier.

        Raises ``AuthError`` with the status that says whose fault it is. No anonymous /
        restricted policy is applied here (see ``authorize``).
        """
        key = token_key(raw_token)
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        token = parse_access_token(raw_token)
        self._precheck(token)
        return await self.cache.get_or_load(key, lambda: self._verify(token))

    def _precheck(self, token: AccessToken) -> None:
        # Unverified claims may only ever *reject*: a token that is expired or names another
        # project would be refused by Stack too, so we spare the upstream call.
        claims = token.claims
        if claims.exp <= time.time():
            raise token_expired()
        if claims.aud.split(":", 1)[0] != self._project:
            raise invalid_token("The access token was issued for another project")

    async def _verify(self, token: AccessToken) -> tuple[Identity, float]:
        try:
            identity = await self.verifier.verify(token)
        except StackAuthError as exc:
            raise self._http_error(exc) from None
        return identity, float(identity.claims.exp)

    def _http_error(self, exc: StackAuthError) -> AuthError:
        """The one mapping from what went wrong to what our client is told."""
        if isinstance(exc, AuthError):
            return exc
        if isinstance(exc, InvalidAccessTokenError):
            if exc.expired:
                return token_expired()
            if exc.code == "INVALID_PROJECT_FOR_ACCESS_TOKEN":
                return invalid_token("The access token was issued for another project")
            return invalid_token()
        if isinstance(exc, UserGoneError):
            return user_not_found()
        if isinstance(exc, UserNotAllowedError):
            if exc.code == "ANONYMOUS_AUTHENTICATION_NOT_ALLOWED":
                return anonymous_not_allowed()
            return restricted_not_allowed()
        if isinstance(exc, ProjectCredentialsError):
            logger.error(
                "Stack Auth rejected this server's credentials (%s): check the %s setting",
                exc.code,
                exc.setting,
            )
            return server_misconfigured()
        if isinstance(exc, StackAPIError):
            logger.error(
                "Stack Auth refused our request with HTTP %s %s; treating it as a server "
                "misconfiguration",
                exc.status_code,
                exc.code or "(no code)",
            )
            return server_misconfigured()
        if isinstance(exc, StackUnavailableError):
            logger.warning("Stack Auth is unavailable (%s)", exc.reason)
            return stack_unavailable(exc.retry_after)
        if isinstance(exc, StackBadResponseError):
            logger.error("Stack Auth sent a response we cannot use: %s", exc)
            return stack_bad_response()
        # Our own exceptions carry our own words only (never a token or key): log them whole.
        logger.error("Stack Auth verification failed: %s", exc)
        return server_misconfigured()

    def authorize(
        self,
        identity: Identity,
        *,
        allow_anonymous: bool | None = None,
        allow_restricted: bool | None = None,
    ) -> None:
        """Apply the anonymous/restricted policy (arguments override the settings).

        Raises ``AuthError`` 403 when the user is not let in.
        """
        user = identity.user
        if user.is_anonymous:
            allowed = self.settings.allow_anonymous if allow_anonymous is None else allow_anonymous
            if not allowed:
                raise anonymous_not_allowed()
        elif user.is_restricted:
            allowed = (
                self.settings.allow_restricted if allow_restricted is None else allow_restricted
            )
            if not allowed:
                raise restricted_not_allowed()


async def _auth_error_response(request: Request, exc: AuthError) -> JSONResponse:
    return JSONResponse(
        {"detail": exc.detail, "code": exc.code},
        status_code=exc.status_code,
        headers=exc.headers,
    )
