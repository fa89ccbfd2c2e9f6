"""The per-request pipeline: cache → verifier → policy, for one raw access token.

Plain async Python: it knows no FastAPI. It raises ``AuthError`` for a token it rejects itself
and the library's other exceptions for Stack's verdicts and what went wrong on the way; the
edge (the dependencies, the app's exception handler, ``StackAuth.authenticate``) turns every
one of them into an answer with ``errors.to_auth_error``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeGuard

from cachetools import TTLCache

from ._answers import AuthError, anonymous_not_allowed, restricted_not_allowed, user_not_found
from ._cache import REJECTION_TTL, TokenCache, load_unless_refused, token_key
from ._denied import DeniedUsers
from ._exceptions import (
    InvalidAccessTokenError,
    ProjectCredentialsError,
    StackAuthConfigError,
    StackAuthError,
    StackBadResponseError,
    StackUnavailableError,
    UserGoneError,
)
from ._stale import StaleIdentities
from ._subjects import identity_tags, user_tags
from ._verifiers import RemoteVerifier, Verifier
from .models import Identity, StackUser

__all__ = ["REJECTION_TTL", "Pipeline"]


class Pipeline:
    """Verifies tokens (through the cache), fetches full profiles and applies the policy.

    ``allow_anonymous`` / ``allow_restricted`` are the defaults a route may override.
    ``remote`` fetches full profiles for JWT-mode identities (``None``: no secret server key,
    so none can be fetched). A verdict on a token (401: forged, expired, revoked, user gone) is
    remembered for ``REJECTION_TTL`` seconds; a fault (Stack unavailable, our own settings) is
    never remembered, so it can never become a rejection. A user in ``denied`` (deleted, as
    Stack told ``stack.invalidation``) is refused on the miss path, as Stack itself would:
    401 ``USER_NOT_FOUND``.
    """

    def __init__(
        self,
        *,
        verifier: Verifier,
        cache: TokenCache[Identity],
        profiles: TokenCache[StackUser],
        remote: RemoteVerifier | None,
        stale: StaleIdentities | None = None,
        denied: DeniedUsers | None = None,
        allow_anonymous: bool = False,
        allow_restricted: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.verifier = verifier
        self.cache = cache
        self.profiles = profiles
        self.stale = stale
        #: Users deleted recently (see ``_denied``).
        self.denied = DeniedUsers() if denied is None else denied
        self._remote = remote
        self.rejected: TTLCache[bytes, StackAuthError] = TTLCache(cache.maxsize, REJECTION_TTL)
        #: Set when the startup check found the project id itself wrong: every request is
        #: then our fault (500), not the client's.
        self.misconfigured: ProjectCredentialsError | None = None
        self._allow_anonymous = allow_anonymous
        self._allow_restricted = allow_restricted

    async def authenticate(self, raw: str) -> Identity:
        """The identity behind ``raw``, from the cache or the verifier (no policy applied)."""
        if self.misconfigured is not None:
            raise self.misconfigured.with_traceback(None)
        key = token_key(raw)
        identity = self.cache.get(key)
        if identity is not None:
            return identity
        try:
            return await load_unless_refused(
                self.cache,
                self.rejected,
                key,
                lambda: self._verify(key, raw),
                _is_verdict,
                tags=identity_tags,
                vet=self._vet,
            )
        except StackUnavailableError as exc:
            last_good = self.stale.recall(key, exc.reason) if self.stale is not None else None
            if last_good is None:
                raise
            self._vet(last_good[0])
            # Cached in this process only: a stale answer never reaches the shared tier.
            self.cache.put(key, *last_good, identity_tags(last_good[0]))
            return last_good[0]

    def _vet(self, identity: Identity) -> None:
        if identity.claims.sub in self.denied:
            raise user_not_found()

    async def _verify(self, key: bytes, raw: str) -> tuple[Identity, float]:
        stale = self.stale
        try:
            identity = await self.verifier.verify(raw)
        except StackUnavailableError:
            raise
        except StackAuthError:
            if stale is not None:
                stale.forget(key)
            raise
        if stale is not None:
            stale.remember(key, identity)
        return identity, float(identity.claims.exp)

    async def full_profile(self, raw: str, identity: Identity) -> StackUser:
        """The full, current profile for a token ``authenticate`` accepted: ``identity.user``
        when it is one already (remote mode), else ``GET /users/me``, cached for the TTL."""
        if not identity.snapshot:
            return identity.user
        return await self.profiles.get_or_load(
            token_key(raw), lambda: self._load_profile(raw, identity), tags=user_tags
        )

    async def _load_profile(self, raw: str, identity: Identity) -> tuple[StackUser, float]:
        if self._remote is None:
            raise StackAuthConfigError(
                "A full Stack Auth user profile needs the STACK_SECRET_SERVER_KEY setting, "
                "which is not set"
            )
        user = await self._remote.fetch_user(raw)
        if user.id != identity.claims.sub:
            raise StackBadResponseError("GET /users/me returned another user than the token's")
        return user, float(identity.claims.exp)

    def authorize(
        self,
        user: StackUser,
        *,
        allow_anonymous: bool | None = None,
        allow_restricted: bool | None = None,
    ) -> None:
        """Apply the anonymous/restricted policy (arguments override the defaults); raises
        ``AuthError`` 403 when ``user`` is not let in."""
        if user.is_anonymous:
            if not (self._allow_anonymous if allow_anonymous is None else allow_anonymous):
                raise anonymous_not_allowed()
        elif user.is_restricted and not (
            self._allow_restricted if allow_restricted is None else allow_restricted
        ):
            raise restricted_not_allowed()


def _is_verdict(exc: Exception) -> TypeGuard[StackAuthError]:
    if isinstance(exc, AuthError):
        return exc.status_code == 401
    return isinstance(exc, (InvalidAccessTokenError, UserGoneError))
