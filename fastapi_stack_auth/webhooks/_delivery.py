"""Reading a delivery: its signed headers, its body (capped), the signature check, and the
payload parsed into a typed event, with the digest its message id is remembered by."""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

import pydantic_core
from fastapi import Request
from pydantic import ValidationError
from starlette.requests import ClientDisconnect

from .._responses import declares_over
from ._config import Config
from ._events import WebhookEvent, build_event
from ._refusals import not_verified, payload_invalid, too_large
from ._verify import VerificationFailed, check_timestamp, matching_secret, signed_headers

logger = logging.getLogger("fastapi_stack_auth.webhooks")

_ID_CONTEXT = b"fastapi-stack-auth webhook message id\x00"


@dataclass(frozen=True)
class Delivery:
    """A verified delivery."""

    event: WebhookEvent
    key: str  # the message id's digest, keyed with the secret that signed it


async def read_delivery(request: Request, config: Config, clock: Callable[[], float]) -> Delivery:
    """The verified delivery of ``request``, or a refusal (``AuthError``) 400/413."""
    settings = config.settings
    if declares_over(request.headers.get("content-length", ""), settings.webhook_max_body):
        logger.info("Refused a webhook delivery: Content-Length over the limit")
        raise too_large()
    try:
        headers = signed_headers(request.scope["headers"])
        check_timestamp(headers.timestamp, clock(), settings.webhook_tolerance)
        body = await _read_body(request, settings.webhook_max_body)
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise VerificationFailed("a body that is not UTF-8") from None
        secret = matching_secret(config.secrets, headers, text)
    except VerificationFailed as exc:
        logger.info("Refused a webhook delivery: %s", exc)
        raise not_verified() from None
    timestamp = datetime.fromtimestamp(headers.timestamp, tz=timezone.utc)
    event = _parse(text, headers.msg_id, timestamp)
    digest = hmac.new(secret.key, _ID_CONTEXT + headers.msg_id.encode(), hashlib.sha256)
    return Delivery(event, digest.hexdigest())


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, or 413 as soon as it grows past ``limit`` (never more than one chunk over)."""
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                logger.info("Refused a webhook delivery: a body over the limit")
                raise too_large()
            chunks.append(chunk)
    except ClientDisconnect:
        raise VerificationFailed("the sender disconnected before the end of the body") from None
    return b"".join(chunks)


def _parse(text: str, msg_id: str, timestamp: datetime) -> WebhookEvent:
    try:
        payload = pydantic_core.from_json(text)
    except ValueError:
        logger.warning("Webhook %s is signed but its body is not JSON", msg_id)
        raise payload_invalid() from None
    if not (isinstance(payload, dict) and isinstance(payload.get("type"), str)):
        logger.warning("Webhook %s is signed but has no string 'type'", msg_id)
        raise payload_invalid()
    if "data" not in payload:
        logger.warning("Webhook %s is signed but has no 'data'", msg_id)
        raise payload_invalid()
    event_type = payload["type"]
    try:
        return build_event(event_type, payload["data"], msg_id=msg_id, timestamp=timestamp)
    except ValidationError as exc:
        # Where and what, never the values: they are users' personal data.
        problems = "; ".join(
            f"{'.'.join(map(str, error['loc']))}: {error['msg']}"
            for error in exc.errors(include_input=False, include_url=False)
        )
        logger.warning(
            "Webhook %s of type %r does not fit its model (%s): answering 400",
            msg_id,
            event_type[:100],
            problems,
        )
        raise payload_invalid() from None
