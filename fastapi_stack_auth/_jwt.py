"""``JwtVerifier``: verifies Stack Auth access tokens locally, against the project's JWKS.

PyJWT does the JOSE work: the algorithm pinned to ES256 (``none``, ``HS256`` and the rest are
refused whatever the header says), the signature with the key named by ``kid`` (we build the
key objects from the JWKS ourselves, see ``_jwks``), ``exp`` (required), ``nbf`` and ``iat``
with ``leeway`` seconds of clock skew, and ``aud``. What is Stack's own is checked here: the
signing key is one Stack publishes for the token's ``aud`` (each audience has its own keys), the
issuer is the one of that audience (``{id}``, ``{id}:restricted``, ``{id}:anon``) under Stack's
URL (``issuer_url``, else ``api_url``; scheme, host and port compared case-insensitively and
without a default port), the user flags agree with it, ``branch_id`` is ``main`` and
``project_id`` is ours.

Restricted and anonymous users' tokens are verified like any other; whether they are let in is
the policy's decision (403), as in remote mode.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from typing import Any

import httpx
import jwt

from ._answers import AuthError, invalid_token, token_expired
from ._jwks import MAX_KID_LENGTH, JwksCache
from ._tokens import read_claims, read_header
from .models import Identity, StackUser, TokenClaims

logger = logging.getLogger("fastapi_stack_auth")

#: At most one issuer-mismatch warning per this many seconds (per verifier).
ISSUER_WARNING_INTERVAL = 60.0
#: Longest issuer quoted in that warning.
MAX_LOGGED_ISSUER = 200
_DEFAULT_PORTS = {"http": 80, "https": 443}


@functools.lru_cache(maxsize=64)  # every token of a project carries one of three issuers
def split_url(url: str) -> tuple[str, str] | None:
    """``(origin, path)`` of an absolute http(s) URL, the origin spelled one way (scheme and
    host in lower case, IDNA host as ASCII, no default port); ``None`` for anything else,
    including a URL with user info, a query or a fragment. The path is left as it is."""
    try:
        parsed = httpx.URL(url)
        scheme, host, port = parsed.scheme.lower(), parsed.raw_host.decode("ascii"), parsed.port
    except (httpx.InvalidURL, TypeError, ValueError):
        return None
    if scheme not in _DEFAULT_PORTS or not host or parsed.userinfo or "?" in url or "#" in url:
        return None
    if ":" in host:
        host = f"[{host}]"
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        host = f"{host}:{port}"
    return f"{scheme}://{host.lower()}", parsed.raw_path.decode("ascii")


def _printable(text: str) -> str:
    """``text`` fit for a log line: control characters dropped, length capped."""
    clean = "".join(char for char in text[:MAX_LOGGED_ISSUER] if char.isprintable())
    return clean + ("..." if len(text) > MAX_LOGGED_ISSUER else "")


def issuers(api_url: str, project_id: str) -> dict[str, tuple[str, str]]:
    """``{aud: (user type, iss)}`` of the three kinds of tokens Stack issues for a project."""
    base = f"{api_url.rstrip('/')}/api/v1"
    return {
        project_id: ("normal", f"{base}/projects/{project_id}"),
        f"{project_id}:restricted": (
            "restricted",
            f"{base}/projects-restricted-users/{project_id}",
        ),
        f"{project_id}:anon": ("anonymous", f"{base}/projects-anonymous-users/{project_id}"),
    }


class JwtVerifier:
    """Verifies tokens with the project's public keys: no network per request.

    The identity's ``user`` is built from the claims (``StackUser.from_claims``) and marked
    ``snapshot``. It cannot know about a session revoked, a password changed or a user deleted
    since the token was issued; that shows only at ``exp`` (10 minutes by default).

    ``issuer_url`` is the base URL Stack puts in ``iss`` (its own public URL) when this app
    reaches Stack by another one (``api_url``, e.g. an internal hostname); ``None``: ``api_url``.
    """

    def __init__(
        self,
        jwks: JwksCache,
        *,
        project_id: str,
        api_url: str,
        issuer_url: str | None = None,
        leeway: float = 5.0,
    ) -> None:
        base = split_url(issuer_url or api_url)
        if base is None or base[1].strip("/"):
            raise ValueError(
                f"{'issuer_url' if issuer_url else 'api_url'} must be a bare http(s) base URL"
            )
        self.jwks = jwks
        self._project_id = project_id
        self._audiences = issuers(base[0], project_id)
        self._leeway = leeway
        self._issuer_warned_at = -math.inf

    async def verify(self, raw: str) -> Identity:
        """Verify ``raw`` or raise ``AuthError`` 401 (or ``StackAuthError`` when the JWKS
        cannot be loaded at all)."""
        # PyJWT allows '=' padding, which RFC 7515 forbids and Stack never sends. Refused, so a
        # token has no other spelling (a cache entry and a signature check each) than ECDSA's own.
        if "=" in raw:
            raise invalid_token("The access token is not a JWT")
        header = read_header(raw)
        kid = header.get("kid")
        if not isinstance(kid, str) or not 0 < len(kid) <= MAX_KID_LENGTH:
            raise invalid_token("The access token names no signing key")
        key = self.jwks.cached(kid) or await self.jwks.get(kid)
        if key is None:
            raise invalid_token("The access token is signed with an unknown key")
        claims = read_claims(self._decode(raw, key))
        # As Stack: a key verifies only the tokens of its own audience (no await since `key`).
        if self.jwks.audience_of(kid) != claims.aud:
            raise invalid_token("The access token is signed with another audience's key")
        self._check_stack_claims(claims)
        return Identity(claims=claims, user=StackUser.from_claims(claims), snapshot=True)

    def _decode(self, raw: str, key: Any) -> dict[str, Any]:
        try:
            payload: dict[str, Any] = jwt.decode(
                raw,
                key,
                algorithms=["ES256"],
                audience=list(self._audiences),
                leeway=self._leeway,
                options={"require": ["exp", "sub", "aud", "iss"]},
            )
        except jwt.InvalidTokenError as exc:
            raise self._rejection(exc, raw) from None
        return payload

    def _rejection(self, exc: jwt.InvalidTokenError, raw: str) -> AuthError:
        if isinstance(exc, jwt.ExpiredSignatureError):
            return token_expired()
        if isinstance(exc, jwt.ImmatureSignatureError):
            return invalid_token("The access token is not valid yet")
        if isinstance(exc, jwt.InvalidSignatureError):
            return invalid_token("The access token's signature is invalid")
        if isinstance(exc, jwt.InvalidAudienceError):
            # The signature is good (PyJWT checks it first): the audience names another project.
            aud = jwt.decode(raw, options={"verify_signature": False}).get("aud")
            if isinstance(aud, str) and aud.split(":", 1)[0] == self._project_id:
                return invalid_token("The access token has an unexpected audience")
            return invalid_token("The access token was issued for another project")
        if isinstance(exc, jwt.DecodeError):
            return invalid_token("The access token is not a JWT")
        return invalid_token("The access token lacks the claims of a Stack Auth token")

    def _check_stack_claims(self, claims: TokenClaims) -> None:
        user_type, issuer = self._audiences[claims.aud]  # PyJWT checked aud is one of them
        if claims.iss is None or split_url(claims.iss) != split_url(issuer):
            self._warn_issuer(issuer, claims.iss)
            raise invalid_token("The access token has an unexpected issuer")
        if claims.project_id is not None and claims.project_id != self._project_id:
            raise invalid_token("The access token was issued for another project")
        if claims.branch_id != "main":
            raise invalid_token("The access token is for another branch")
        if not claims.sub:
            raise invalid_token("The access token names no user")
        if claims.is_anonymous and not claims.is_restricted:
            raise invalid_token("The access token's user flags are inconsistent")
        if claims.is_restricted != (claims.restricted_reason is not None):
            raise invalid_token("The access token's user flags are inconsistent")
        if claims.is_anonymous:
            actual = "anonymous"
        elif claims.is_restricted:
            actual = "restricted"
        else:
            actual = "normal"
        if actual != user_type:
            raise invalid_token("The access token's audience does not match its user")

    def _warn_issuer(self, expected: str, came: str | None) -> None:
        # A genuine token (its signature checked) with another issuer: most likely STACK_API_URL
        # is not the URL Stack puts in its tokens. Said once a minute, not once per request.
        now = time.monotonic()
        if now < self._issuer_warned_at + ISSUER_WARNING_INTERVAL:
            return
        self._issuer_warned_at = now
        logger.warning(
            "Rejected a Stack Auth token issued by %r; expected %r. If Stack Auth's public URL "
            "differs from STACK_API_URL, set STACK_JWT_ISSUER_URL to it.",
            _printable(str(came)),
            expected,
        )
