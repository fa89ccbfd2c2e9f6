"""Is this delivery from Stack (through Svix)? The three signed headers, the timestamp, and the
HMAC-SHA256 signature over ``{id}.{timestamp}.{raw body}``.

The signature itself is computed by ``standardwebhooks.Webhook.sign`` (the reference
implementation of the scheme Svix uses). ``Webhook.verify`` is deliberately not called: it reads
only the ``webhook-*`` headers (Svix sends ``svix-*``), checks the timestamp against the wall
clock with a fixed 5-minute tolerance (no configurable tolerance, no clock a test can pin), and
raises ``ValueError``/``binascii.Error`` instead of its own error on a malformed signature list,
which would surface as a 500. So the headers, the timestamp and the comparison are done here:
each ``v1`` entry against each configured secret, with ``hmac.compare_digest``.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

from standardwebhooks import Webhook

from ._settings import secret_key

_ID = re.compile(r"[\x21-\x7e]{1,256}")
_TIMESTAMP = re.compile(r"0|[1-9][0-9]{0,11}")
_SIGNATURES = re.compile(r"[\x20-\x7e]{1,16384}")
_NAMES = ("id", "timestamp", "signature")
_PREFIXES = ("svix-", "webhook-")


class VerificationFailed(Exception):
    """The delivery is not verified; ``str(exc)`` says which check failed, for the server log
    only (never the signature or a secret)."""


@dataclass(frozen=True)
class SigningSecret:
    """One configured endpoint secret, ready to sign with."""

    webhook: Webhook = field(repr=False)
    key: bytes = field(repr=False)

    @classmethod
    def from_secret(cls, secret: str) -> SigningSecret:
        """From ``whsec_<base64>``; raises ``ValueError`` for anything else."""
        key = secret_key(secret)
        return cls(Webhook(key), key)


@dataclass(frozen=True)
class SignedHeaders:
    """The three headers a signature covers, checked for shape (not yet for authenticity)."""

    msg_id: str
    timestamp: int
    signatures: str


def signed_headers(raw_headers: Iterable[tuple[bytes, bytes]]) -> SignedHeaders:
    """The ``svix-*`` headers if any is present, else the ``webhook-*`` ones."""
    found: dict[str, list[bytes]] = {}
    for raw_name, value in raw_headers:
        key = raw_name.decode("latin-1").lower()
        if key.startswith(_PREFIXES):
            found.setdefault(key, []).append(value)
    prefix = "svix-" if any(f"svix-{n}" in found for n in _NAMES) else "webhook-"
    values: list[str] = []
    for name in _NAMES:
        sent = found.get(prefix + name, [])
        if not sent:
            raise VerificationFailed(f"no {prefix}{name} header")
        if len(sent) > 1:
            raise VerificationFailed(f"the {prefix}{name} header was sent more than once")
        values.append(sent[0].decode("latin-1").strip())
    msg_id, timestamp, signatures = values
    if _ID.fullmatch(msg_id) is None:
        raise VerificationFailed(f"a malformed {prefix}id header")
    if _TIMESTAMP.fullmatch(timestamp) is None:
        raise VerificationFailed(f"a malformed {prefix}timestamp header")
    if _SIGNATURES.fullmatch(signatures) is None:
        raise VerificationFailed(f"a malformed {prefix}signature header")
    return SignedHeaders(msg_id, int(timestamp), signatures)


def check_timestamp(timestamp: int, now: float, tolerance: int) -> None:
    """Refuse a timestamp more than ``tolerance`` seconds before or after ``now``."""
    skew = now - timestamp
    if skew > tolerance:
        raise VerificationFailed(f"a timestamp {skew:.0f} s old (tolerance {tolerance} s)")
    if -skew > tolerance:
        raise VerificationFailed(f"a timestamp {-skew:.0f} s ahead (tolerance {tolerance} s)")


def _decoded(signature: str) -> bytes | None:
    try:
        return base64.b64decode(signature + "=" * (-len(signature) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None


def matching_secret(
    secrets: Sequence[SigningSecret], headers: SignedHeaders, body: str
) -> SigningSecret:
    """The first configured secret (in the configured order) that signed ``body`` with these
    headers; one ``v1`` entry matching is enough: during a rotation Svix sends one per valid
    secret. ``v1a`` (asymmetric) and unknown versions are skipped. The timestamp must be checked
    first."""
    given = []
    for entry in headers.signatures.split():
        version, comma, signature = entry.partition(",")
        decoded = _decoded(signature) if version == "v1" and comma else None
        if decoded is not None:
            given.append(decoded)
    when = datetime.fromtimestamp(headers.timestamp, tz=timezone.utc)
    for secret in secrets:
        signed = secret.webhook.sign(msg_id=headers.msg_id, timestamp=when, data=body)
        expected = base64.b64decode(signed.partition(",")[2])
        # Every entry is compared (a list, not a generator: no early exit), each in constant time.
        if any([hmac.compare_digest(expected, signature) for signature in given]):
            return secret
    raise VerificationFailed("no signature matched a configured secret")
