"""Verifiers: turn a well-shaped access token into an ``Identity``, or raise.

A verifier is plain async Python (no FastAPI). It raises the library's exceptions
(``StackAPIError`` and kin, ``StackUnavailableError``, ``StackBadResponseError``); ``StackAuth``
maps them to HTTP answers in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from pydantic import ValidationError

from ._client import StackClient
from ._errors import StackBadResponseError
from ._models import StackUser, TokenClaims
from ._tokens import AccessToken


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a verified token belongs to: its claims and the user.

    ``user`` is the full profile from Stack Auth, or, when ``snapshot`` is true (JWT mode), the
    user as the token's claims describe them (``StackUser.from_claims``).
    """

    claims: TokenClaims
    user: StackUser
    snapshot: bool = False


class Verifier(Protocol):
    """What ``StackAuth`` needs from a way of verifying tokens."""

    async def verify(self, token: AccessToken) -> Identity:
        """Verify ``token`` or raise; the identity is cached until the token's ``exp``."""
        ...


class RemoteVerifier:
    """Asks Stack Auth (``GET /api/v1/users/me``): sees deleted users and fresh profile data."""

    def __init__(self, client: StackClient) -> None:
        self._client = client

    async def verify(self, token: AccessToken) -> Identity:
        """Verify ``token`` by fetching its user from Stack Auth."""
        body = await self._client.get_current_user(token.raw)
        try:
            user = StackUser.model_validate(body)
        except ValidationError as exc:
            raise StackBadResponseError(
                f"GET /users/me returned an unexpected user ({exc.error_count()} problems)"
            ) from None
        if user.id != token.claims.sub:
            raise StackBadResponseError("GET /users/me returned another user than the token's")
        # Stack accepted the token, so its signature, issuer and expiry are good: its claims
        # can be trusted as they are.
        return Identity(claims=token.claims, user=user)
