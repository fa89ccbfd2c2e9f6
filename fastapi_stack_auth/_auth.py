"""``StackAuth``: the one object an app configures; policy and error mapping live here."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.requests import HTTPConnection
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
    not_authenticated,
    restricted_not_allowed,
    server_misconfigured,
    stack_bad_response,
    stack_unavailable,
    token_expired,
    user_not_found,
)
from ._jwks import JwksCache
from ._jwt import JwtVerifier
from ._models import StackUser
from ._settings import StackAuthSettings, load_settings
from ._shared_cache import GuardedTier, shared_caches
from ._stale import StaleIdentities
from ._tokens import AccessToken, credential_from_headers, parse_access_token
from ._verifiers import Identity, RemoteVerifier, Verifier

logger = logging.getLogger("fastapi_stack_auth")
_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


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
        s = self.settings
        self.client = StackClient(s, transport=transport)
        self._remote = RemoteVerifier(self.client)
        if verifier is None and s.verify == "jwt":
            verifier = JwtVerifier(
                JwksCache(self.client, s.project_id),
                project_id=s.project_id,
                api_url=s.api_url,
                leeway=s.jwt_leeway,
            )
        self.verifier: Verifier = verifier or self._remote
        jwt_mode = s.verify == "jwt" or isinstance(verifier, JwtVerifier)
        # JWT mode: asking again could not give another answer before ``exp`` (no revocation
        # is visible locally), so a verified token is cached until then; remote mode re-asks
        # Stack after ``cache_ttl`` to notice revoked sessions and deleted users.
        self.cache: TokenCache[Identity] = TokenCache(
            maxsize=s.cache_max_entries, ttl=math.inf if jwt_mode else s.cache_ttl
        )
        #: Remote mode, ``stale_grace`` > 0: last-good identities, used while Stack is down.
        self.stale: StaleIdentities | None = None
        if not jwt_mode and s.stale_grace > 0:
            self.stale = StaleIdentities(grace=s.stale_grace, maxsize=s.cache_max_entries)
        #: Full profiles fetched for JWT-mode identities (``fetch_user``), for ``cache_ttl``.
        self.profiles: TokenCache[StackUser] = TokenCache(
            maxsize=s.cache_max_entries, ttl=s.cache_ttl
        )
        #: The shared cache tier under both caches (Redis, ``STACK_CACHE_URL``), or ``None``.
        self.shared_tier: GuardedTier | None
        self.shared_tier, self.cache.shared, self.profiles.shared = shared_caches(
            s, jwt_mode=jwt_mode
        )
        self._leeway = s.jwt_leeway if jwt_mode else 0.0
        pid = s.project_id
        self._audiences = frozenset({pid, f"{pid}:restricted", f"{pid}:anon"})
        url = httpx.URL(s.api_url)
        if url.scheme == "http" and url.host not in _LOOPBACK_HOSTS:
            logger.warning(
                "STACK_API_URL is plain http to %s: the secret server key and users' tokens "
                "cross the network unencrypted. Use https outside local development.",
                url.host,
            )

    @property
    def jwks(self) -> JwksCache | None:
        """The project's key set in JWT mode (``None`` in remote mode)."""
        verifier = self.verifier
        return verifier.jwks if isinstance(verifier, JwtVerifier) else None

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
        """Open the shared HTTP client, check our keys once and, in JWT mode, load the JWKS
        (a failure is logged, not raised: public routes keep working and protected ones answer
        500/503; the JWKS is fetched again on first use). An unreachable shared cache (Redis)
        is a warning too: requests go on without it until it is back."""
        await self.client.open()
        if self.shared_tier is not None:
            await self.shared_tier.start()
        if self.settings.check_keys_on_startup and self.settings.secret_server_key is not None:
            await self._check_keys()
        jwks = self.jwks
        if jwks is not None:
            try:
                await jwks.load()
            except Exception as exc:  # startup must never crash on what an upstream answers
                logger.warning(
                    "Could not load the Stack Auth JWKS from %s at startup (%s); it is fetched "
                    "again on first use.",
                    self.settings.api_url,
                    exc.reason if isinstance(exc, StackUnavailableError) else type(exc).__name__,
                )
            else:
                logger.info("Loaded the Stack Auth JWKS (%d keys)", len(jwks.kids))

    async def stop(self) -> None:
        """Stop a JWKS fetch in flight, close the shared cache's connections and the shared
        HTTP client."""
        jwks = self.jwks
        if jwks is not None:
            await jwks.aclose()
        if self.shared_tier is not None:
            await self.shared_tier.aclose()
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
        except StackAPIError as exc:
            logger.error(
                "Stack Auth refused the key check at startup with HTTP %s %s%s",
                exc.status_code,
                exc.code or "(no code)",
                _url_hint(exc),
            )
        except Exception as exc:  # startup must never crash on what an upstream answers
            logger.error("Stack Auth key check at startup failed: %s", exc)
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
        # The deadline runs on the monotonic clock, which stops while a machine is suspended:
        # check the token's own exp against wall time too (a float compare).
        if cached is not None:
            if cached.claims.exp + self._leeway > time.time():
                return cached
            self.cache.discard(key)
        token = parse_access_token(raw_token)
        self._precheck(token)
        verifier = self.verifier
        if isinstance(verifier, JwtVerifier):
            # JWT mode, keys loaded: verification is pure CPU (about 100 us), so it runs inline
            # rather than in a single-flight task (which would cost half as much again).
            # Nothing awaits in between, so a concurrent request for the same token still
            # finds it in the cache.
            identity = verifier.verify_now(token)
            if identity is not None:
                self.cache.put(key, identity, float(identity.claims.exp))
                return identity
        try:
            return await self.cache.get_or_load(key, lambda: self._verify(token))
        except AuthError as shared:
            # Concurrent waiters share one failure: give each request its own exception, so
            # tracebacks and error trackers do not tie unrelated requests together.
            raise shared.copy() from None

    def _precheck(self, token: AccessToken) -> None:
        # Unverified claims may only ever *reject*: a token that is expired or names another
        # project would be refused by Stack too, so we spare the upstream call.
        claims = token.claims
        if claims.exp + self._leeway <= time.time():
            raise token_expired()
        if claims.aud not in self._audiences:
            if claims.aud.split(":", 1)[0] == self._project:
                raise invalid_token("The access token has an unknown audience")
            raise invalid_token("The access token was issued for another project")

    async def _verify(self, token: AccessToken) -> tuple[Identity, float]:
        stale = self.stale
        try:
            identity = await self.verifier.verify(token)
        except StackUnavailableError as exc:
            if stale is not None:
                # Serve-stale: an identity Stack confirmed within the grace window, cached no
                # longer than that window (nor past exp).
                last_good = stale.recall(token_key(token.raw), exc.reason)
                if last_good is not None:
                    return last_good
            raise self._http_error(exc) from None
        except StackAuthError as exc:
            if stale is not None:
                stale.forget(token_key(token.raw))
            raise self._http_error(exc) from None
        if stale is not None:
            stale.remember(token_key(token.raw), identity)
        return identity, float(identity.claims.exp)

    async def fetch_user(self, credential: str | HTTPConnection) -> StackUser:
        """The full, current profile of the user behind ``credential`` (a raw access token, or
        a request/WebSocket to take it from), from Stack Auth's ``GET /users/me``.

        In remote mode that is the user ``current_user`` already has: no extra call. In JWT mode
        the token is verified locally first, then Stack is asked; the answer is cached for
        ``cache_ttl`` seconds (never past ``exp``). Stack also notices a user deleted since the
        token was issued (401 ``USER_NOT_FOUND``). Needs ``STACK_SECRET_SERVER_KEY``.

        The anonymous/restricted policy is not applied here: call it from a route that depends
        on ``current_user``/``token_claims``, or use ``Depends(full_user)``.
        """
        if isinstance(credential, str):
            raw: str | None = credential
        else:
            raw = credential_from_headers(credential.scope["headers"])
        if raw is None:
            raise not_authenticated()
        return await self.full_profile(raw, await self.authenticate(raw))

    async def full_profile(self, raw_token: str, identity: Identity) -> StackUser:
        """The full profile for a token ``authenticate`` accepted: ``identity.user`` when it is
        one already (remote mode), else fetched as in ``fetch_user``."""
        if not identity.snapshot:
            return identity.user
        key = token_key(raw_token)
        cached = self.profiles.get(key)
        if cached is not None:
            return cached
        return await self.profiles.get_or_load(key, lambda: self._load_profile(raw_token))

    async def _load_profile(self, raw_token: str) -> tuple[StackUser, float]:
        if self.settings.secret_server_key is None:
            logger.error(
                "A full Stack Auth user profile was requested, which needs the "
                "STACK_SECRET_SERVER_KEY setting; it is not set"
            )
            raise server_misconfigured()
        try:
            identity = await self._remote.verify(parse_access_token(raw_token))
        except StackAuthError as exc:
            raise self._http_error(exc) from None
        return identity.user, float(identity.claims.exp)

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
                "misconfiguration%s",
                exc.status_code,
                exc.code or "(no code)",
                _url_hint(exc),
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


def _url_hint(exc: StackAPIError) -> str:
    # A 404 without Stack's error envelope is the router's "no such path": the base URL is off.
    if exc.status_code == 404 and exc.code is None:
        return " (a plain 404: check the STACK_API_URL setting)"
    return ""


async def _auth_error_response(request: Request, exc: AuthError) -> JSONResponse:
    return JSONResponse(
        {"detail": exc.detail, "code": exc.code},
        status_code=exc.status_code,
        headers=exc.headers,
    )
