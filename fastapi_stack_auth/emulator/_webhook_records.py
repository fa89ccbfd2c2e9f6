"""What the webhook sender hands out and keeps, in Svix's formats (contract §13.2, §13.3): message
and endpoint IDs, the signing secret, endpoint URLs, and the delivery log's records."""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

#: The alphabet of KSUIDs (the 27 characters after ``msg_`` and ``ep_`` in Svix's IDs).
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_KSUID_EPOCH = 1_400_000_000
SECRET_PREFIX = "whsec_"
#: Svix's server makes 24 random bytes; it accepts keys of 24 to 75 bytes (32 to 100 base64
#: characters), and so does the emulator.
SECRET_BYTES = 24
_MAX_SECRET_BYTES = 75
_MAX_URL_LENGTH = 2048

DeliveryStatus = Literal["pending", "delivered", "failed", "cancelled"]


def ksuid(prefix: str) -> str:
    """``prefix`` and a KSUID: 4 bytes of seconds since 2014-05-13 and 16 random bytes, in 27
    base62 characters (``msg_2KWPBgLlAfxdpx2AI54pPJ85f4W``)."""
    stamp = max(int(time.time()) - _KSUID_EPOCH, 0).to_bytes(4, "big")
    number = int.from_bytes(stamp + secrets.token_bytes(16), "big")
    digits = []
    for _ in range(27):
        number, digit = divmod(number, 62)
        digits.append(_BASE62[digit])
    return prefix + "".join(reversed(digits))


def new_webhook_secret() -> str:
    """A fresh signing secret as Svix makes one: ``whsec_`` and the base64 of 24 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def check_webhook_secret(secret: str) -> str:
    """``secret`` if it is ``whsec_`` and the standard base64 of 24 to 75 bytes (padding
    optional); otherwise ``ValueError`` (whose message never repeats the secret)."""
    problem = f"a webhook secret is {SECRET_PREFIX!r} followed by the base64 of 24 to 75 bytes"
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(problem)
    encoded = secret[len(SECRET_PREFIX) :]
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(problem) from None
    if not SECRET_BYTES <= len(key) <= _MAX_SECRET_BYTES:
        raise ValueError(problem)
    return secret


def check_webhook_url(url: str) -> str:
    """``url`` if it is an absolute ``http``/``https`` URL with a host; else ``ValueError``."""
    if not isinstance(url, str) or len(url) > _MAX_URL_LENGTH:
        raise ValueError(f"a webhook URL is a string of at most {_MAX_URL_LENGTH} characters")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        raise ValueError("a webhook URL has no spaces or control characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError on a bad port
    except ValueError:
        raise ValueError(f"not a URL: {url!r}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"a webhook URL must be http:// or https:// with a host, not {url!r}")
    return url


@dataclass(frozen=True)
class WebhookEndpoint:
    """A URL the events of one project are sent to (an endpoint of its Svix application)."""

    id: str
    url: str
    project_id: str


@dataclass(frozen=True)
class WebhookAttempt:
    """One POST of a delivery: its ``svix-timestamp``, and the answer's status code (``None``
    when there was no answer: ``error`` says why, e.g. ``ConnectError`` or ``timeout``)."""

    timestamp: int
    status_code: int | None
    error: str | None = None


@dataclass(frozen=True)
class WebhookDelivery:
    """A message on its way to one endpoint, as the delivery log shows it at one moment.

    ``status`` is ``pending`` (being sent, or waiting for a retry at ``next_attempt_at``),
    ``delivered`` (a 2xx answer), ``failed`` (every attempt failed) or ``cancelled`` (the
    emulator stopped or was reset first). ``body`` is the exact JSON that was signed.
    """

    message_id: str
    endpoint_id: str
    url: str
    project_id: str
    event_type: str
    body: str
    status: DeliveryStatus
    attempts: tuple[WebhookAttempt, ...]
    next_attempt_at: float | None = None

    @property
    def payload(self) -> Any:
        """The body, parsed: ``{"type": ..., "data": ...}``."""
        return json.loads(self.body)
