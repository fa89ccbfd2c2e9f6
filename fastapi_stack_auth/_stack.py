"""``StackAuth``: wiring and lifecycle. It builds its parts from the settings (``_assembly``),
opens and closes them with the app, and attaches itself to apps."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import cached_property
from types import TracebackType
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.requests import HTTPConnection
from starlette.types import Lifespan

from ._answers import AuthError, error_response, not_authenticated, to_auth_error
from ._api_keys import ApiKeys
from ._assembly import Parts, build_parts
from ._client import StackClient
from ._exceptions import ProjectCredentialsError, StackAuthError, StackUnavailableError
from ._invalidation import Invalidation
from ._jwks import JwksCache
from ._jwt import JwtVerifier
from ._permissions import Permissions
from ._pipeline import Pipeline
from ._redis_tier import GuardedTier
from ._refresh_relay import RefreshRelay
from ._settings import ENV_PREFIX, StackAuthSettings, load_settings
from ._tokens import credential_from_headers
from ._verifiers import Verifier
from .models import Identity, StackUser
from .server import StackServer

logger = logging.getLogger("fastapi_stack_auth")


class StackAuth:
    """Stack Auth for FastAPI: one per Stack project.

    Construction reads nothing: settings (``STACK_*`` environment variables, or ``env_prefix``
    + name, and ``.env``; keyword arguments win) are read and validated when the app starts,
    or at the first use of ``settings``, ``client`` or the other parts. ``init_app(app)``
    attaches it: the dependencies find it, it opens and closes with the app's lifespan, and
    errors are answered as ``{"detail": ..., "code": ...}``. The first instance attached to
    an app is its default for good; routes use another with ``UserDependency(stack=...)``.
    """

    def __init__(
        self,
        settings: StackAuthSettings | None = None,
        *,
        env_prefix: str = ENV_PREFIX,
        transport: httpx.AsyncBaseTransport | None = None,
        verifier: Verifier | None = None,
        **overrides: Any,
    ) -> None:
        if settings is not None and overrides:
            raise TypeError("pass either settings=... or keyword overrides, not both")
        self._given_settings = settings
        self._env_prefix = env_prefix
        self._overrides = overrides
        self._transport = transport
        self._verifier = verifier

    def __repr__(self) -> str:
        if "_parts" not in self.__dict__:
            return f"StackAuth(env_prefix={self._env_prefix!r}, not started)"
        s = self.settings
        return f"StackAuth(project_id={s.project_id!r}, api_url={s.api_url!r})"

    @cached_property
    def _parts(self) -> Parts:
        s = self._given_settings or load_settings(self._env_prefix, **self._overrides)
        return build_parts(s, transport=self._transport, verifier=self._verifier)

    @property
    def settings(self) -> StackAuthSettings:
        """The settings in force (read from the environment on first use)."""
        return self._parts.settings

    @property
    def client(self) -> StackClient:
        """The one shared HTTP client to Stack Auth."""
        return self._parts.client

    @property
    def pipeline(self) -> Pipeline:
        """Cache → verifier → policy, for one token."""
        return self._parts.pipeline

    @property
    def jwks(self) -> JwksCache:
        """The project's public keys (JWT mode verifies with them; remote mode pre-checks)."""
        return self._parts.jwks

    @property
    def permissions(self) -> Permissions:
        """Team membership and team/project permissions, asked of Stack and cached briefly."""
        return self._parts.permissions

    @property
    def api_keys(self) -> ApiKeys:
        """User and team API keys as credentials."""
        return self._parts.api_keys

    @property
    def server(self) -> StackServer:
        """Stack Auth's server API (users, teams, permissions, ...) on the shared client."""
        return self._parts.server

    @property
    def invalidation(self) -> Invalidation:
        """Drops cached answers Stack says are stale (its webhooks), here and in the other
        workers; refuses deleted users."""
        return self._parts.invalidation

    @property
    def shared_tier(self) -> GuardedTier | None:
        """The Redis tier under the caches (``STACK_CACHE_URL``), or ``None``."""
        return self._parts.shared_tier

    # --- attaching and lifetime -------------------------------------------------------------

    def init_app(self, app: FastAPI) -> None:
        """Attach to ``app``: run with its lifespan (around any lifespan it has), render this
        library's errors as JSON, and become its default ``StackAuth`` if it has none yet."""
        state = app.state
        attached: list[StackAuth] = getattr(state, "stack_auth_instances", [])
        if self in attached:
            return
        state.stack_auth_instances = [*attached, self]
        if getattr(state, "stack_auth", None) is None:
            state.stack_auth = self
            # AuthError too: it is an HTTPException, whose own handler would come first.
            for exc_class in (AuthError, StackAuthError):
                app.add_exception_handler(exc_class, _error_response)  # type: ignore[arg-type]
            # Hands a silently refreshed access token back to the frontend (a response header,
            # and the cookie in cookie mode); a pass-through when STACK_SILENT_REFRESH is off.
            app.add_middleware(RefreshRelay)
        inner: Lifespan[Any] = app.router.lifespan_context

        @asynccontextmanager
        async def lifespan(app: Any) -> AsyncIterator[Any]:
            async with self, inner(app) as state:
                yield state

        app.router.lifespan_context = lifespan

    async def start(self) -> None:
        """Read the settings, open the client and the shared cache, check our keys once and,
        in JWT mode, load the JWKS. Upstream failures are logged, not raised: public routes
        keep working and protected ones answer 500/503 until they are fixed."""
        parts = self._parts
        await parts.client.open()
        if parts.shared_tier is not None:
            await parts.shared_tier.start()
        channel = parts.invalidation.channel
        if channel is not None:
            await channel.start()  # after its first attempt: deleted users known, or logged
        s = parts.settings
        if s.check_keys_on_startup and s.secret_server_key is not None:
            await self._check_keys()
        jwt_mode = isinstance(parts.pipeline.verifier, JwtVerifier)
        try:
            await parts.jwks.load()
        except Exception as exc:  # startup must never crash on what an upstream answers
            reason = exc.reason if isinstance(exc, StackUnavailableError) else type(exc).__name__
            logger.log(
                logging.WARNING if jwt_mode else logging.INFO,
                "Could not load the Stack Auth JWKS from %s at startup (%s); %s",
                s.api_url,
                reason,
                "it is fetched again on first use"
                if jwt_mode
                else "tokens are checked by Stack Auth alone, without a local signature check",
            )
        else:
            logger.info("Loaded the Stack Auth JWKS (%d keys)", len(parts.jwks.kids))

    async def stop(self) -> None:
        """Stop a JWKS fetch in flight and close the invalidation channel, the shared cache
        and the HTTP client."""
        parts = self._parts
        await parts.jwks.aclose()
        if parts.invalidation.channel is not None:
            await parts.invalidation.channel.stop()
        if parts.shared_tier is not None:
            await parts.shared_tier.aclose()
        await parts.client.aclose()

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
        s = self.settings
        try:
            await self.client.get_current_project()
        except StackAuthError as exc:
            if isinstance(exc, ProjectCredentialsError) and exc.setting == "STACK_PROJECT_ID":
                self.pipeline.misconfigured = exc  # every request is our fault now
            status = to_auth_error(exc).status_code  # logs what is wrong, naming the setting
            if status == 503:
                logger.warning(
                    "Stack Auth at %s is unreachable at startup; authenticated requests are "
                    "answered 503 until it is back.",
                    s.api_url,
                )
            else:
                logger.error(
                    "The Stack Auth key check at startup failed: authenticated requests are "
                    "answered %d until it is fixed.",
                    status,
                )
        except Exception as exc:  # startup must never crash on what an upstream answers
            logger.error("Stack Auth key check at startup failed: %s", type(exc).__name__)
        else:
            logger.info("Stack Auth accepted this server's keys for project %s", s.project_id)

    # --- for code outside a dependency --------------------------------------------------------

    async def authenticate(self, raw_token: str) -> Identity:
        """The identity behind ``raw_token`` (no anonymous/restricted policy applied).

        Raises ``AuthError``, as a route would answer (401, 500, 502, 503 ...).
        """
        try:
            return await self.pipeline.authenticate(raw_token)
        except StackAuthError as exc:
            raise to_auth_error(exc) from None

    async def fetch_user(self, credential: str | HTTPConnection) -> StackUser:
        """The full, current profile of the user behind ``credential`` (a raw access token, or
        a request/WebSocket to take it from), from Stack Auth's ``GET /users/me``.

        In remote mode that is the user ``current_user`` already has: no extra call. In JWT mode
        the token is verified locally first, then Stack is asked; the answer is cached for
        ``cache_ttl`` seconds (never past ``exp``). Needs ``STACK_SECRET_SERVER_KEY``. The
        anonymous/restricted policy is not applied: ``Depends(full_user)`` does that. Raises
        ``AuthError`` as ``authenticate`` does.
        """
        try:
            if isinstance(credential, str):
                raw: str | None = credential
            else:
                raw = credential_from_headers(credential.scope["headers"])
            if raw is None:
                raise not_authenticated()
            pipeline = self.pipeline
            return await pipeline.full_profile(raw, await pipeline.authenticate(raw))
        except StackAuthError as exc:
            raise to_auth_error(exc) from None


async def _error_response(request: Request, exc: StackAuthError) -> JSONResponse:
    return error_response(to_auth_error(exc))
