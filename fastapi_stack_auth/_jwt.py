"""``JwtVerifier``: verifies Stack Auth access tokens locally, against the project's JWKS.

What is checked, in this order (any failure is a 401; nothing here trusts the token's header
to choose how it is verified):

1. The algorithm is ES256, fixed on our side: a header that says anything else (``none``,
   ``HS256``, ``ES384``, ...) is rejected, and so is a ``crit`` header.
2. The signature: 64 raw bytes (JWS ``r || s``), verified with ECDSA P-256/SHA-256 against the
   JWKS key named by ``kid``. ``jku``/``jwk``/``x5u``/``x5c`` headers are never used.
3. Time: ``exp`` is required and must not have passed; ``nbf`` (if any) and ``iat`` (if any)
   must not be in the future. Each allows ``leeway`` seconds of clock skew.
4. Audience and issuer: ``aud`` is the project id (normal users), ``{id}:restricted`` or
   ``{id}:anon``, and ``iss`` must be exactly ``{api_url}/api/v1/projects/{id}``,
   ``.../projects-restricted-users/{id}`` or ``.../projects-anonymous-users/{id}`` to match.
5. Consistency, as Stack checks it: the ``aud`` suffix matches the user type (anonymous ⇒
   restricted, restricted ⇔ ``restricted_reason``), ``branch_id`` is ``main``, ``sub`` is set
   and ``project_id`` (when present) is the project.

Restricted and anonymous users' tokens are verified like any other; whether they are let in is
``StackAuth.authorize``'s decision (403), as in remote mode.
"""

from __future__ import annotations

import binascii
import hashlib
import time
from collections.abc import Callable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from ._errors import invalid_token, token_expired
from ._jwks import MAX_KID_LENGTH, JwksCache
from ._models import StackUser, TokenClaims
from ._tokens import B64URL_ALPHABET, FROM_B64URL, AccessToken
from ._verifiers import Identity

#: ECDSA P-256 over a SHA-256 digest that ``hashlib`` computes: cryptography would otherwise
#: set up an OpenSSL hash of its own (name lookup, fetch) for every token.
_ES256 = ec.ECDSA(Prehashed(hashes.SHA256()))
#: Length of an ES256 JWS signature, base64url without padding (64 bytes).
_SIGNATURE_B64_LENGTH = 86
#: The 86th character carries the last 2 bits of the 64 bytes and 4 padding bits, which must be
#: zero: only these four characters spell a signature canonically.
_CANONICAL_LAST_CHARS = frozenset(b"AQgw")


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


def _user_type(claims: TokenClaims) -> str:
    if claims.is_anonymous:
        return "anonymous"
    return "restricted" if claims.is_restricted else "normal"


def _der_signature(signature: bytes) -> bytes:
    """The DER ``SEQUENCE {INTEGER r, INTEGER s}`` of a JWS ES256 signature (``r || s``, 32
    bytes each), as ``encode_dss_signature`` gives it (tests/test_fast_paths.py compares them), in
    a few bytes operations instead of two int conversions and a trip through Rust."""
    # Each INTEGER is the minimal two's complement of a non-negative number: no leading zero
    # byte, except one when the top bit is set (or for zero itself). At most 70 bytes in all,
    # so every length fits the one-byte short form.
    r = signature[:32].lstrip(b"\x00")
    if not r or r[0] & 0x80:
        r = b"\x00" + r
    s = signature[32:].lstrip(b"\x00")
    if not s or s[0] & 0x80:
        s = b"\x00" + s
    return bytes((0x30, len(r) + len(s) + 4, 0x02, len(r))) + r + bytes((0x02, len(s))) + s


class JwtVerifier:
    """Verifies tokens with the project's public keys: no network per request.

    The identity's ``user`` is built from the claims (``StackUser.from_claims``) and marked
    ``snapshot``. It cannot know about a session revoked, a password changed or a user deleted
    since the token was issued; that shows only at ``exp`` (10 minutes by default).
    """

    def __init__(
        self,
        jwks: JwksCache,
        *,
        project_id: str,
        api_url: str,
        leeway: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.jwks = jwks
        self._project_id = project_id
        self._audiences = issuers(api_url, project_id)
        self._leeway = leeway
        self._clock = clock

    async def verify(self, token: AccessToken) -> Identity:
        """Verify ``token`` or raise ``AuthError`` 401 (or ``StackAuthError`` when the JWKS
        cannot be loaded at all)."""
        kid = self._kid(token)
        key = self.jwks.cached(kid)
        if key is None:
            key = await self.jwks.get(kid)
            if key is None:
                raise invalid_token("The access token is signed with an unknown key")
        return self._verified(token, key)

    def verify_now(self, token: AccessToken) -> Identity | None:
        """``verify`` without awaiting: the identity, or ``None`` when the key set must be
        (re)fetched first (then call ``verify``). Raises ``AuthError`` 401 like ``verify``.

        This is the whole first-sight path once the JWKS is loaded: no I/O, no task, no
        event-loop round trip.
        """
        key = self.jwks.cached(self._kid(token))
        return None if key is None else self._verified(token, key)

    @staticmethod
    def _kid(token: AccessToken) -> str:
        header = token.header
        if header.get("alg") != "ES256":
            raise invalid_token("The access token is not signed with ES256")
        if "crit" in header:
            raise invalid_token("The access token has critical header parameters")
        kid = header.get("kid")
        if not isinstance(kid, str) or not 0 < len(kid) <= MAX_KID_LENGTH:
            raise invalid_token("The access token names no signing key")
        return kid

    def _verified(self, token: AccessToken, key: ec.EllipticCurvePublicKey) -> Identity:
        self._check_signature(token.raw, key)
        claims = token.claims
        self._check_claims(claims)
        return Identity(claims=claims, user=StackUser.from_claims(claims), snapshot=True)

    @staticmethod
    def _check_signature(raw: str, key: ec.EllipticCurvePublicKey) -> None:
        signing_input, _, signature_b64 = raw.encode().rpartition(b".")
        if (
            len(signature_b64) != _SIGNATURE_B64_LENGTH
            or signature_b64.translate(None, B64URL_ALPHABET)  # a character that is not base64url
            # Non-zero padding bits: one signature, several spellings. Accept only the canonical.
            or signature_b64[-1] not in _CANONICAL_LAST_CHARS
        ):
            raise invalid_token("The access token's signature is invalid")
        # 86 base64url characters, padded: always exactly 64 bytes.
        signature = binascii.a2b_base64(signature_b64.translate(FROM_B64URL) + b"==")
        digest = hashlib.sha256(signing_input).digest()
        try:
            key.verify(_der_signature(signature), digest, _ES256)
        except InvalidSignature:
            raise invalid_token("The access token's signature is invalid") from None

    def _check_claims(self, claims: TokenClaims) -> None:
        now = self._clock()
        leeway = self._leeway
        if now - leeway >= claims.exp:
            raise token_expired()
        nbf = (claims.model_extra or {}).get("nbf")
        if nbf is not None:
            if isinstance(nbf, bool) or not isinstance(nbf, (int, float)):
                raise invalid_token("The access token has an invalid nbf claim")
            if nbf > now + leeway:
                raise invalid_token("The access token is not valid yet")
        if claims.iat is not None and claims.iat > now + leeway:
            raise invalid_token("The access token is not valid yet")

        expected = self._audiences.get(claims.aud)
        if expected is None:
            if claims.aud.split(":", 1)[0] != self._project_id:
                raise invalid_token("The access token was issued for another project")
            raise invalid_token("The access token has an unexpected audience")
        user_type, issuer = expected
        if claims.iss != issuer:
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
        if _user_type(claims) != user_type:
            raise invalid_token("The access token's audience does not match its user")
