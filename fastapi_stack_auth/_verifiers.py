"""Verifiers turn a raw access token into an ``Identity``, or raise.

A verifier is plain async Python (no FastAPI). It raises ``AuthError`` for a token it rejects
and the library's other exceptions (``StackAPIError`` and kin, ``StackUnavailableError``,
``StackBadResponseError``) for what went wrong on the way; the dependencies turn those into
HTTP answers in one place.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

import jwt
from pydantic import ValidationError

from ._answers import invalid_token, token_expired
from ._client import StackClient
from ._exceptions import StackBadResponseError
from ._jwks import JwksCache
from ._tokens import read_unverified
from .models import Identity, StackUser


class Verifier(Protocol):
    """What the pipeline needs from a way of verifying tokens."""

    async def verify(self, raw: str) -> Identity:
        """Verify ``raw`` or raise; the identity may be cached until the token's ``exp``."""
        ...


class RemoteVerifier:
    """Asks Stack Auth (``GET /api/v1/users/me``): sees deleted users and fresh profile data.

    Before asking, it spares Stack the call for a token that is not an ES256 JWT, has expired
    or was issued for another project (unverified claims are only ever used to reject), and,
    once the project's JWKS is loaded (``jwks``), for one whose signature does not verify: a
    flood of forged tokens costs no upstream call.
    """

    def __init__(
        self,
        client: StackClient,
        project_id: str,
        *,
        jwks: JwksCache | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._jwks = jwks
        self._project_id = project_id
        self._audiences = (project_id, f"{project_id}:restricted", f"{project_id}:anon")
        self._clock = clock

    async def verify(self, raw: str) -> Identity:
        """Verify ``raw`` by fetching its user from Stack Auth."""
        header, claims = read_unverified(raw)
        if claims.exp <= self._clock():
            raise token_expired()
        if claims.aud not in self._audiences:
            if claims.aud.split(":", 1)[0] == self._project_id:
                raise invalid_token("The access token has an unknown audience")
            raise invalid_token("The access token was issued for another project")
        jwks = self._jwks
        if (
            jwks is not None
            and jwks.loaded
            and await signature_audience(jwks, raw, header) != claims.aud
        ):
            raise invalid_token("The access token is signed with another audience's key")
        user = await self.fetch_user(raw)
        if user.id != claims.sub:
            raise StackBadResponseError("GET /users/me returned another user than the token's")
        # Stack accepted the token, so its signature, issuer and expiry are good.
        return Identity(claims=claims, user=user)

    async def fetch_user(self, raw: str) -> StackUser:
        """The full profile of ``raw``'s user from ``GET /users/me`` (no checks of our own)."""
        body = await self._client.get_current_user(raw)
        try:
            return StackUser.model_validate(body)
        except ValidationError as exc:
            raise StackBadResponseError(
                f"GET /users/me returned an unexpected user ({exc.error_count()} problems)"
            ) from None


async def signature_audience(jwks: JwksCache, raw: str, header: dict[str, Any]) -> str | None:
    """Check only the signature of ``raw`` against the project's keys, and return the audience
    of the key that signed it (the caller compares it with the token's ``aud``). Expiry, issuer
    and revocation are left to the caller. Raises ``AuthError`` 401 for an unknown key or a bad
    signature."""
    kid = header.get("kid")
    key = await jwks.get(kid) if isinstance(kid, str) else None
    if key is None or not isinstance(kid, str):
        raise invalid_token("The access token is signed with an unknown key")
    try:
        jwt.decode(
            raw,
            key,
            algorithms=["ES256"],
            options={
                "verify_exp": False,
                "verify_aud": False,
                "verify_iss": False,
                "verify_nbf": False,
                "verify_iat": False,
            },
        )
    except jwt.InvalidTokenError:
        raise invalid_token("The access token's signature is invalid") from None
    return jwks.audience_of(kid)
