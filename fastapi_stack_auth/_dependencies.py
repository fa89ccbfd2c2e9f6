"""The FastAPI dependencies, and the edge where every failure becomes an HTTP or WebSocket
answer: ``current_user``, ``optional_user``, ``require_user``, ``token_claims``, ``full_user``.

Where the credential comes from: the request's headers (``_tokens``); when none is sent and
``STACK_COOKIES`` is on, Stack's cookies (``_cookies``), which on an unsafe method or a
WebSocket must pass the cross-site check (``_csrf``) first. A token rejected as expired and
sent with its refresh token is refreshed when ``STACK_SILENT_REFRESH`` is on (``_refresh``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from fastapi.openapi.models import HTTPBearer as HTTPBearerModel
from fastapi.security.base import SecurityBase
from starlette.exceptions import WebSocketException
from starlette.requests import HTTPConnection
from starlette.status import (
    WS_1008_POLICY_VIOLATION,
    WS_1011_INTERNAL_ERROR,
    WS_1013_TRY_AGAIN_LATER,
)

from ._answers import AuthError, api_key_not_accepted, not_authenticated, to_auth_error
from ._cookies import CookieCredential, cookie_credential
from ._csrf import check_same_origin
from ._exceptions import StackAuthError
from ._refresh import is_expired, refresh_silently
from ._stack import StackAuth
from ._tokens import API_KEY_PREFIXES, credential_pair_from_headers
from .models import Identity, StackUser, TokenClaims

_SCHEME_DESCRIPTION = (
    "A Stack Auth access token. Send it as `Authorization: Bearer <token>`, "
    "`x-stack-access-token: <token>`, the Stack JS SDK's `x-stack-auth` JSON header, or "
    "`Authorization: Bearer stackauth_<base64 JSON>`; where the app enables it, Stack's "
    "cookies are read when no header is sent."
)


class UserDependency(SecurityBase):
    """A dependency that resolves the request's Stack Auth user.

    ``current_user``, ``optional_user``, ``require_user`` and ``full_user`` are instances; make
    your own for a route-level policy (``UserDependency(allow_anonymous=True)``) or another
    project (``UserDependency(stack=second)``). It is a ``fastapi.security`` scheme (HTTP
    Bearer), so ``/docs`` shows an Authorize button. It serves HTTP requests and WebSockets
    (closed with 1008 when authentication fails), and sets ``request.state.stack_user`` and
    ``request.state.stack_claims``.
    """

    def __init__(
        self,
        *,
        optional: bool = False,
        allow_anonymous: bool | None = None,
        allow_restricted: bool | None = None,
        stack: StackAuth | None = None,
        full_profile: bool = False,
    ) -> None:
        self.model = HTTPBearerModel(bearerFormat="JWT", description=_SCHEME_DESCRIPTION)
        self.scheme_name = "StackAuth"
        self.optional = optional
        self.allow_anonymous = allow_anonymous
        self.allow_restricted = allow_restricted
        self.stack = stack
        #: Return the full profile from Stack (JWT mode: ``GET /users/me``), not the snapshot.
        self.full_profile = full_profile

    def __repr__(self) -> str:
        return (
            f"UserDependency(optional={self.optional}, allow_anonymous={self.allow_anonymous}, "
            f"allow_restricted={self.allow_restricted})"
        )

    async def __call__(self, conn: HTTPConnection) -> StackUser | None:
        try:
            found = await self._resolve(conn)
        except StackAuthError as exc:
            raise answer(conn, exc) from None
        identity, user = found or (None, None)
        state = conn.state
        state.stack_user = user
        state.stack_claims = identity.claims if identity is not None else None
        return user

    async def _resolve(self, conn: HTTPConnection) -> tuple[Identity, StackUser] | None:
        stack = self.stack or default_stack(conn)
        raw, refresh = credential_pair_from_headers(conn.scope["headers"])
        cookie: CookieCredential | None = None
        if raw is None:
            settings = stack.settings
            if settings.cookies:  # header credentials always win: cookies are read last
                cookie = cookie_credential(conn.scope["headers"], settings.project_id)
            if cookie is None:
                if self.optional:
                    return None
                raise not_authenticated()
            check_same_origin(conn.scope, settings.trusted_origins)
            raw, refresh = cookie.access_token, cookie.refresh_token
        if raw.startswith(API_KEY_PREFIXES):  # a machine's key where a user's token is wanted
            raise api_key_not_accepted()
        pipeline = stack.pipeline
        try:
            identity = await pipeline.authenticate(raw)
        except StackAuthError as exc:
            if refresh is None or not is_expired(exc) or not stack.settings.silent_refresh:
                raise
            raw, identity = await refresh_silently(stack, conn, raw, refresh, cookie)
        user = identity.user
        try:
            pipeline.authorize(
                user, allow_anonymous=self.allow_anonymous, allow_restricted=self.allow_restricted
            )
            if self.full_profile and identity.snapshot:
                # The token's own claims passed (or a refused user would cost a call); the
                # policy then applies to the profile as Stack sees it now.
                user = await pipeline.full_profile(raw, identity)
                pipeline.authorize(
                    user,
                    allow_anonymous=self.allow_anonymous,
                    allow_restricted=self.allow_restricted,
                )
        except AuthError as exc:
            if self.optional and exc.status_code == 403:
                return None  # a public route treats a user it may not let in as signed out
            raise
        return identity, user


class ClaimsDependency(UserDependency):
    """Like ``UserDependency`` (same arguments and checks), but resolves the verified
    ``TokenClaims``: in JWT mode no I/O once the JWKS is loaded."""

    async def __call__(self, conn: HTTPConnection) -> TokenClaims | None:  # type: ignore[override]
        await super().__call__(conn)
        claims: TokenClaims | None = conn.state.stack_claims
        return claims


def answer(conn: HTTPConnection, exc: StackAuthError) -> Exception:
    """The edge: what to raise for ``exc`` on this connection (an HTTP answer, or the
    WebSocket close code that means the same)."""
    error = to_auth_error(exc)
    if conn.scope["type"] == "websocket":
        return WebSocketException(_ws_close_code(error), error.detail)
    return error


def default_stack(conn: HTTPConnection) -> StackAuth:
    """The app's default ``StackAuth`` (the first ``init_app`` attached)."""
    stack = getattr(conn.app.state, "stack_auth", None)
    if not isinstance(stack, StackAuth):
        raise RuntimeError(
            "No StackAuth is attached to this app: create one and call stack.init_app(app)"
        )
    return stack


def _ws_close_code(error: AuthError) -> int:
    if error.status_code == 503:
        return WS_1013_TRY_AGAIN_LATER
    if error.status_code >= 500:
        return WS_1011_INTERNAL_ERROR
    return WS_1008_POLICY_VIOLATION


#: ``Depends(current_user)``: the signed-in ``StackUser``; 401/403 otherwise.
current_user = UserDependency()
#: ``Depends(optional_user)``: the ``StackUser``, or ``None`` when no credential is sent (or
#: the user may not be let in). A credential that is sent but invalid is still answered 401.
optional_user = UserDependency(optional=True)
#: ``dependencies=[Depends(require_user)]``: protect a router or route. The same object as
#: ``current_user``, so a route that also asks for ``current_user`` verifies only once.
require_user = current_user
#: ``Depends(token_claims)``: the verified ``TokenClaims``; 401/403 as ``current_user``.
token_claims = ClaimsDependency()
#: ``Depends(full_user)``: the full, current ``StackUser`` from Stack Auth (JWT mode: one
#: ``GET /users/me``, cached for ``cache_ttl``), the policy applied to that fresh profile.
full_user = UserDependency(full_profile=True)

#: ``user: CurrentUser``: shorthand for ``user: StackUser = Depends(current_user)``.
CurrentUser = Annotated[StackUser, Depends(current_user)]
#: ``user: OptionalUser``: shorthand for ``user: StackUser | None = Depends(optional_user)``.
OptionalUser = Annotated[StackUser | None, Depends(optional_user)]
#: ``claims: CurrentClaims``: shorthand for ``claims: TokenClaims = Depends(token_claims)``.
CurrentClaims = Annotated[TokenClaims, Depends(token_claims)]
