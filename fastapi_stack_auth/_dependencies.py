"""The FastAPI dependencies: ``current_user``, ``optional_user``, ``require_user``,
``token_claims`` and ``full_user``."""

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
from starlette.types import Scope

from ._auth import StackAuth
from ._errors import AuthError, not_authenticated
from ._models import StackUser, TokenClaims
from ._tokens import credential_from_headers

_SCHEME_DESCRIPTION = (
    "A Stack Auth access token. Send it as `Authorization: Bearer <token>`, "
    "`x-stack-access-token: <token>`, the Stack JS SDK's `x-stack-auth` JSON header, or "
    "`Authorization: Bearer stackauth_<base64 JSON>`."
)


def _stack_of(scope: Scope) -> StackAuth:
    state = scope["app"].state
    try:
        # Item access: ``getattr(state, name)`` first fails the normal attribute lookup
        # (raising and catching an AttributeError) before ``State.__getattr__`` finds the
        # value, about 1.5 us on every request.
        stack = state["stack_auth"]
    except (KeyError, TypeError):
        stack = getattr(state, "stack_auth", None)
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


class UserDependency(SecurityBase):
    """A dependency that resolves the request's Stack Auth user.

    ``current_user``, ``optional_user`` and ``require_user`` are instances; make your own for
    a route-level policy, e.g. ``Depends(UserDependency(allow_anonymous=True))``.

    It is a ``fastapi.security`` scheme (HTTP Bearer), so ``/docs`` shows an Authorize button.
    It accepts HTTP requests and WebSockets (closed with 1008 when authentication fails), and
    stores the user in ``request.state.stack_user``.
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
        #: In JWT mode, fetch the full profile from Stack instead of returning the token's
        #: snapshot (``full_user``); remote mode has the full profile anyway.
        self.full_profile = full_profile

    def __repr__(self) -> str:
        return (
            f"UserDependency(optional={self.optional}, allow_anonymous={self.allow_anonymous}, "
            f"allow_restricted={self.allow_restricted})"
        )

    async def __call__(self, conn: HTTPConnection) -> StackUser | None:
        # This runs on every request: one coroutine for all of it (a cache hit never
        # suspends), and as few Python calls as it takes (each costs about 1 us in a request).
        scope = conn.scope
        try:
            stack = self.stack or _stack_of(scope)
            raw = credential_from_headers(scope["headers"])
            if raw is None:
                if self.optional:
                    _signed_out(scope)
                    return None
                raise not_authenticated()
            identity = await stack.authenticate(raw)
            try:
                stack.authorize(
                    identity,
                    allow_anonymous=self.allow_anonymous,
                    allow_restricted=self.allow_restricted,
                )
            except AuthError:
                if self.optional:
                    # A public route treats a user it may not let in as signed out.
                    _signed_out(scope)
                    return None
                raise
            user = identity.user
            # ``request.state`` is Starlette's ``State`` over ``scope["state"]`` itself, so the
            # app reads ``request.state.stack_user`` from this dict. Writing it directly spares
            # building the ``State`` and its Python ``__setattr__`` per attribute (1.5 us).
            state = scope.setdefault("state", {})
            state["stack_user"] = user
            state["stack_claims"] = identity.claims
            if self.full_profile and identity.snapshot:
                user = await stack.full_profile(raw, identity)
                state["stack_user"] = user
            return user
        except AuthError as error:
            if scope["type"] == "websocket":
                raise WebSocketException(_ws_close_code(error), error.detail) from None
            raise


def _signed_out(scope: Scope) -> None:
    state = scope.setdefault("state", {})
    state["stack_user"] = None
    state["stack_claims"] = None


class ClaimsDependency(SecurityBase):
    """A dependency that resolves the verified ``TokenClaims`` of the request's access token.

    It applies the same checks and anonymous/restricted policy as ``UserDependency`` (same
    arguments). In JWT mode it needs no I/O once the JWKS is loaded; in remote mode the claims
    are those of the token Stack Auth accepted.
    """

    def __init__(
        self,
        *,
        optional: bool = False,
        allow_anonymous: bool | None = None,
        allow_restricted: bool | None = None,
        stack: StackAuth | None = None,
    ) -> None:
        self._users = UserDependency(
            optional=optional,
            allow_anonymous=allow_anonymous,
            allow_restricted=allow_restricted,
            stack=stack,
        )
        self.model = self._users.model
        self.scheme_name = self._users.scheme_name

    def __repr__(self) -> str:
        return repr(self._users).replace("UserDependency", "ClaimsDependency", 1)

    async def __call__(self, conn: HTTPConnection) -> TokenClaims | None:
        if await self._users(conn) is None:
            return None
        claims: TokenClaims = conn.scope["state"]["stack_claims"]  # set by the user dependency
        return claims


#: ``Depends(current_user)``: the signed-in ``StackUser``; 401/403 otherwise.
current_user = UserDependency()
#: ``Depends(optional_user)``: the ``StackUser``, or ``None`` when no credential is sent.
#: A credential that is sent but invalid is still answered 401.
optional_user = UserDependency(optional=True)
#: ``dependencies=[Depends(require_user)]``: protect a router or route. The same object as
#: ``current_user``, so a route that also asks for ``current_user`` verifies only once.
require_user = current_user
#: ``Depends(token_claims)``: the verified ``TokenClaims`` (a snapshot taken when the token was
#: issued); 401/403 as ``current_user``.
token_claims = ClaimsDependency()
#: ``Depends(full_user)``: the full, current ``StackUser`` from Stack Auth. In JWT mode this is
#: the explicit call to ``GET /users/me`` (cached for ``cache_ttl``); in remote mode it is
#: ``current_user``'s user.
full_user = UserDependency(full_profile=True)

#: ``user: CurrentUser``: shorthand for ``user: StackUser = Depends(current_user)``.
CurrentUser = Annotated[StackUser, Depends(current_user)]
#: ``user: OptionalUser``: shorthand for ``user: StackUser | None = Depends(optional_user)``.
OptionalUser = Annotated[StackUser | None, Depends(optional_user)]
#: ``claims: CurrentClaims``: shorthand for ``claims: TokenClaims = Depends(token_claims)``.
CurrentClaims = Annotated[TokenClaims, Depends(token_claims)]
