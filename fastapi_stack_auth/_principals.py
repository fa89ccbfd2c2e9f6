"""The principal dependencies: who calls, by a user's access token or by an API key.

``current_principal`` takes either; ``api_key_principal`` an API key only. Both resolve a
``Principal`` (a user, or a team for a team key), serve HTTP requests and WebSockets (closed
with 1008 on 401/403), and answer through the same edge as ``current_user``.
"""

from __future__ import annotations

import copy
from typing import Annotated, Literal

from fastapi import Depends
from fastapi.openapi.models import APIKey as APIKeyModel
from fastapi.openapi.models import APIKeyIn
from fastapi.openapi.models import HTTPBearer as HTTPBearerModel
from fastapi.security.base import SecurityBase
from starlette.requests import HTTPConnection

from ._answers import api_key_required, not_authenticated
from ._dependencies import answer, default_stack
from ._exceptions import StackAuthError
from ._stack import StackAuth
from ._tokens import credentials_from_headers
from .models import Principal

_BEARER_DESCRIPTION = (
    "A Stack Auth access token or a Stack Auth API key (`sk_…`/`pk_…`), as "
    "`Authorization: Bearer <token or key>`; the key also as `x-stack-api-key: <key>`, the "
    "token in any shape `current_user` reads. Send one credential, not both."
)
_API_KEY_DESCRIPTION = (
    "A Stack Auth user or team API key (`sk_…`/`pk_…`); `Authorization: Bearer <key>` works too."
)


class PrincipalDependency(SecurityBase):
    """A dependency that resolves who calls as a ``Principal``.

    By default a user's access token or an API key of either kind is accepted.
    ``api_key_only=True`` refuses access tokens (401 ``API_KEY_REQUIRED``); ``kind="user"`` or
    ``kind="team"`` accepts only that kind of principal (a key of the other kind: 401
    ``WRONG_API_KEY_TYPE``; ``kind="team"`` implies API keys, as no token belongs to a team).
    ``allow_anonymous``/``allow_restricted`` override the policy, which applies to the user
    behind a token and the user behind a user key alike. ``stack`` picks another project.
    Sets ``request.state.stack_principal`` (and ``stack_user``, ``stack_claims``).
    """

    def __init__(
        self,
        *,
        kind: Literal["user", "team"] | None = None,
        api_key_only: bool = False,
        allow_anonymous: bool | None = None,
        allow_restricted: bool | None = None,
        stack: StackAuth | None = None,
    ) -> None:
        self.kind = kind
        self.api_key_only = api_key_only or kind == "team"
        self.allow_anonymous = allow_anonymous
        self.allow_restricted = allow_restricted
        self.stack = stack
        self.model: APIKeyModel | HTTPBearerModel
        if self.api_key_only:
            self.model = APIKeyModel(
                **{"in": APIKeyIn.header},  # type: ignore[arg-type]
                name="x-stack-api-key",
                description=_API_KEY_DESCRIPTION,
            )
            self.scheme_name = "StackApiKey"
        else:
            self.model = HTTPBearerModel(description=_BEARER_DESCRIPTION)
            self.scheme_name = "StackAuthOrApiKey"

    def users_only(self) -> PrincipalDependency:
        """This dependency accepting user principals only: a copy whose ``kind`` is ``"user"``
        (a team key is then refused from its own text, 401 ``WRONG_API_KEY_TYPE``, before any
        call). ``ValueError`` if it accepts team keys only."""
        if self.kind == "team":
            raise ValueError(
                "PrincipalDependency(kind='team') resolves teams, which hold no user "
                "permissions: pass kind='user', or no kind"
            )
        if self.kind == "user":
            return self
        users = copy.copy(self)
        users.kind = "user"
        return users

    def __repr__(self) -> str:
        return (
            f"PrincipalDependency(kind={self.kind!r}, api_key_only={self.api_key_only}, "
            f"allow_anonymous={self.allow_anonymous}, allow_restricted={self.allow_restricted})"
        )

    async def __call__(self, conn: HTTPConnection) -> Principal:
        try:
            principal = await self._resolve(conn)
        except StackAuthError as exc:
            raise answer(conn, exc) from None
        conn.state.stack_principal = principal
        conn.state.stack_user = principal.user
        conn.state.stack_claims = principal.claims
        return principal

    async def _resolve(self, conn: HTTPConnection) -> Principal:
        stack = self.stack or default_stack(conn)
        token, api_key = credentials_from_headers(conn.scope["headers"])
        pipeline = stack.pipeline
        if api_key is not None:
            principal = await stack.api_keys.verify(api_key, kind=self.kind)
        elif token is not None:
            if self.api_key_only:
                # Refused unread: whatever the token is worth, it is not what this route takes.
                wanted = f"A {self.kind} API key" if self.kind else "An API key"
                raise api_key_required(f"{wanted} is required here, not an access token")
            identity = await pipeline.authenticate(token)
            principal = Principal(kind="user", user=identity.user, claims=identity.claims)
        else:
            raise not_authenticated()
        if principal.user is not None:
            # A key never grants more than its user: an anonymous user's key is anonymous too.
            pipeline.authorize(
                principal.user,
                allow_anonymous=self.allow_anonymous,
                allow_restricted=self.allow_restricted,
            )
        return principal


#: ``Depends(current_principal)``: the caller, by a user's access token or any API key.
current_principal = PrincipalDependency()
#: ``Depends(api_key_principal)``: the caller by a user or team API key only.
api_key_principal = PrincipalDependency(api_key_only=True)

#: ``caller: CurrentPrincipal``: shorthand for ``Principal = Depends(current_principal)``.
CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
#: ``caller: ApiKeyPrincipal``: shorthand for ``Principal = Depends(api_key_principal)``.
ApiKeyPrincipal = Annotated[Principal, Depends(api_key_principal)]
