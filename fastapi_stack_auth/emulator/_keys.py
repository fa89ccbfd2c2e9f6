"""Signing keys: two P-256 key pairs per audience (``{project}``, ``{project}:restricted``,
``{project}:anon``), the first signs, as Stack publishes them. They are derived (HMAC-SHA256 of a
secret, the audience and the index) from a random secret per ``KeyRing``, or from a given seed
for keys that survive restarts."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

#: Order of the P-256 group.
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_COORDINATE_BYTES = 32
KEYS_PER_AUDIENCE = 2


def b64url(data: bytes) -> str:
    """Unpadded base64url, as JOSE writes it."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode unpadded base64url; raises ``ValueError`` on anything else."""
    if not text.isascii():
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class SigningKey:
    """One P-256 key pair with its ``kid``."""

    kid: str
    private_key: ec.EllipticCurvePrivateKey

    @property
    def public_jwk(self) -> dict[str, str]:
        """The public key as a JWK, in the member order Stack publishes."""
        numbers = self.private_key.public_key().public_numbers()
        return {
            "kty": "EC",
            "crv": "P-256",
            "alg": "ES256",
            "kid": self.kid,
            "x": b64url(numbers.x.to_bytes(_COORDINATE_BYTES, "big")),
            "y": b64url(numbers.y.to_bytes(_COORDINATE_BYTES, "big")),
        }

    def sign(self, signing_input: bytes) -> bytes:
        """An ES256 signature (``r || s``, 64 bytes) of ``signing_input``."""
        der = self.private_key.sign(signing_input, ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        return r.to_bytes(_COORDINATE_BYTES, "big") + s.to_bytes(_COORDINATE_BYTES, "big")

    def verify(self, signing_input: bytes, signature: bytes) -> bool:
        """True when ``signature`` (``r || s``) is this key's ES256 signature of the input."""
        if len(signature) != 2 * _COORDINATE_BYTES:
            return False
        r = int.from_bytes(signature[:_COORDINATE_BYTES], "big")
        s = int.from_bytes(signature[_COORDINATE_BYTES:], "big")
        try:
            self.private_key.public_key().verify(
                encode_dss_signature(r, s), signing_input, ec.ECDSA(hashes.SHA256())
            )
        except InvalidSignature:
            return False
        return True


def _derive(secret: bytes, audience: str, index: int) -> SigningKey:
    counter = 0
    while True:  # a scalar of 0 (or >= the order) is astronomically unlikely; retry anyway
        digest = hmac.new(
            secret, f"stack-emulator-jwt|{audience}|{index}|{counter}".encode(), hashlib.sha256
        ).digest()
        scalar = int.from_bytes(digest, "big")
        if 0 < scalar < _P256_ORDER:
            break
        counter += 1
    private_key = ec.derive_private_key(scalar, ec.SECP256R1())
    public = private_key.public_key().public_numbers()
    fingerprint = hashlib.sha256(
        public.x.to_bytes(_COORDINATE_BYTES, "big") + public.y.to_bytes(_COORDINATE_BYTES, "big")
    ).digest()
    return SigningKey(kid=b64url(fingerprint[:9]), private_key=private_key)


class KeyRing:
    """The key pairs of every audience, derived on first use and kept.

    ``seed`` (any non-empty text) makes the keys deterministic; without it they are random.
    """

    def __init__(self, seed: str | None = None) -> None:
        if seed == "":
            raise ValueError("the key seed must not be empty")
        self._secret = seed.encode() if seed is not None else secrets.token_bytes(32)
        self._keys: dict[str, tuple[SigningKey, ...]] = {}
        self._lock = threading.Lock()

    def keys_for(self, audience: str) -> tuple[SigningKey, ...]:
        """The keys of ``audience``: the first signs, the second is published alongside."""
        with self._lock:
            keys = self._keys.get(audience)
            if keys is None:
                keys = tuple(_derive(self._secret, audience, i) for i in range(KEYS_PER_AUDIENCE))
                self._keys[audience] = keys
            return keys

    def signing_key(self, audience: str) -> SigningKey:
        """The key that signs tokens for ``audience``."""
        return self.keys_for(audience)[0]
