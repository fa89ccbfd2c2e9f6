"""Signing a delivery as Svix does for Stack, for testing your own webhook handlers."""

from __future__ import annotations

import base64
import json
import math
import secrets
import string
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, Literal

from ._verify import SigningSecret

_BASE62 = string.digits + string.ascii_letters


def new_webhook_secret() -> str:
    """A fresh random secret in Svix's format (``whsec_`` + base64 of 24 bytes)."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def new_message_id() -> str:
    """A fresh message id in Svix's format (``msg_`` + 27 base62 characters)."""
    return "msg_" + "".join(secrets.choice(_BASE62) for _ in range(27))


def sign_webhook(
    payload: Mapping[str, Any] | str | bytes,
    secret: str | Sequence[str],
    *,
    msg_id: str | None = None,
    timestamp: float | datetime | None = None,
    header_prefix: Literal["svix", "webhook"] = "svix",
) -> tuple[bytes, dict[str, str]]:
    """The body and headers of a delivery of ``payload`` signed with ``secret``, as Svix sends it.

    ``payload`` is a mapping (sent as compact JSON) or the exact body; ``secret`` is one
    ``whsec_...`` secret or several (one signature each, as during a rotation). ``msg_id``
    defaults to a fresh id, ``timestamp`` (epoch seconds or an aware datetime) to now.
    Post both with your test client: ``client.post(url, content=body, headers=headers)``.
    """
    if isinstance(payload, Mapping):
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    elif isinstance(payload, str):
        body = payload.encode()
    else:
        body = bytes(payload)
    if msg_id is None:
        msg_id = new_message_id()
    if timestamp is None:
        timestamp = time.time()
    if isinstance(timestamp, datetime):
        timestamp = timestamp.timestamp()
    when = datetime.fromtimestamp(math.floor(timestamp), tz=timezone.utc)
    keys = [secret] if isinstance(secret, str) else list(secret)
    text = body.decode()
    signatures = " ".join(
        SigningSecret.from_secret(key).webhook.sign(msg_id=msg_id, timestamp=when, data=text)
        for key in keys
    )
    return body, {
        "content-type": "application/json",
        f"{header_prefix}-id": msg_id,
        f"{header_prefix}-timestamp": str(math.floor(timestamp)),
        f"{header_prefix}-signature": signatures,
    }
