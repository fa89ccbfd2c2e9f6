"""The receiver's refusals: each non-204 answer, an ``AuthError`` answered as
``{"detail": ..., "code": ...}``.

- 400 ``WEBHOOK_VERIFICATION_FAILED``: a header missing or malformed, a timestamp outside the
  tolerance, no signature made with a configured secret, a body that is not UTF-8. The same
  answer for each; the server log (INFO) says which check failed.
- 400 ``WEBHOOK_PAYLOAD_INVALID``: verified, but not ``{"type": str, "data": ...}`` JSON, or a
  known event type whose data does not fit its model.
- 409 ``WEBHOOK_IN_PROGRESS``: the same message id is being handled right now (``Retry-After``).
- 413 ``WEBHOOK_TOO_LARGE``: a body over ``STACK_WEBHOOK_MAX_BODY``.
- 500 ``WEBHOOK_HANDLER_FAILED``: a handler raised; Stack retries, and the retry runs them again.
- 500 ``WEBHOOK_NOT_CONFIGURED``: no valid ``STACK_WEBHOOK_SECRET`` (an ERROR log says so).
- 200 ``WEBHOOK_ALREADY_HANDLED``: from ``verified_event`` only, for a message id handled before.
"""

from __future__ import annotations

from .._answers import AuthError

#: Seconds a sender is asked to wait when the same message is being handled right now.
BUSY_RETRY_AFTER = 30


def not_verified() -> AuthError:
    """400: the delivery is not verified."""
    return AuthError(400, "WEBHOOK_VERIFICATION_FAILED", "Webhook verification failed")


def payload_invalid() -> AuthError:
    """400: verified, but not a payload this library can read."""
    return AuthError(400, "WEBHOOK_PAYLOAD_INVALID", "Webhook payload is invalid")


def too_large() -> AuthError:
    """413: a body over the limit."""
    return AuthError(413, "WEBHOOK_TOO_LARGE", "Webhook body is too large")


def not_configured() -> AuthError:
    """500: no valid signing secret."""
    return AuthError(500, "WEBHOOK_NOT_CONFIGURED", "Webhook receiver is not configured")


def handler_failed() -> AuthError:
    """500: a handler raised."""
    return AuthError(500, "WEBHOOK_HANDLER_FAILED", "A webhook handler failed")


def busy() -> AuthError:
    """409: the same message id is being handled right now."""
    return AuthError(
        409,
        "WEBHOOK_IN_PROGRESS",
        "This delivery is being processed",
        {"Retry-After": str(BUSY_RETRY_AFTER)},
    )


def already_handled() -> AuthError:
    """200 (the dependency only): the message id was handled before."""
    return AuthError(200, "WEBHOOK_ALREADY_HANDLED", "This delivery was handled before")
