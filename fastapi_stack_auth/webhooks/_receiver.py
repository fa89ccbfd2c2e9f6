"""``StackWebhooks``: the receiver. It verifies a delivery, parses it into a typed event, skips
a message id it has handled already, drops what the event made stale in ``StackAuth``'s caches,
then runs the app's handlers, all before it answers.

Answers (the body is ``{"detail": ..., "code": ...}``, except 204):

- 204: handled (or handled before: a redelivery runs no handler).
- 400 ``WEBHOOK_VERIFICATION_FAILED``: a header missing or malformed, a timestamp outside the
  tolerance, no signature made with a configured secret, a body that is not UTF-8. The same
  answer for each; the server log (INFO) says which check failed.
- 400 ``WEBHOOK_PAYLOAD_INVALID``: verified, but not ``{"type": str, "data": ...}`` JSON, or a
  known event type whose data does not fit its model.
- 409 ``WEBHOOK_IN_PROGRESS``: the same message id is being handled right now (``Retry-After``).
- 413 ``WEBHOOK_TOO_LARGE``: a body over ``STACK_WEBHOOK_MAX_BODY``.
- 500 ``WEBHOOK_HANDLER_FAILED``: a handler raised; Stack retries, and the retry runs them again.
- 500 ``WEBHOOK_NOT_CONFIGURED``: no valid ``STACK_WEBHOOK_SECRET`` (an ERROR log says so).
"""

from __future__ import annotations

import hashlib
import hmac
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cached_property, partial
from typing import TYPE_CHECKING, Any, Optional, TypeVar

import pydantic_core
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from .._answers import AuthError
from .._exceptions import StackAuthConfigError
from .._settings import ENV_PREFIX, env_name
from .._shared_cache import KEY_PREFIX
from ._dedupe import RecentDeliveries, Seen, Shared
from ._events import WebhookEvent, build_event
from ._invalidate import invalidate
from ._settings import WebhookSettings, load_webhook_settings
from ._verify import (
    SigningSecret,
    VerificationFailed,
    check_timestamp,
    matching_secret,
    signed_headers,
)

if TYPE_CHECKING:
    from .._stack import StackAuth

logger = logging.getLogger("fastapi_stack_auth.webhooks")

E = TypeVar("E", bound=WebhookEvent)
# A handler returns None (a plain function, run in the thread pool) or an awaitable (async def).
R = TypeVar("R", bound=Optional[Awaitable[None]])  # noqa: UP045 - evaluated at runtime on 3.10

#: Seconds a sender is asked to wait when the same message is being handled right now.
BUSY_RETRY_AFTER = 30
#: Seconds between two ERROR lines about a missing or invalid secret.
_CONFIG_LOG_INTERVAL = 60.0
_ID_CONTEXT = b"fastapi-stack-auth webhook message id\x00"


class _Refusal(Exception):
    def __init__(
        self, status: int, code: str, detail: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(code)
        self.status, self.code, self.detail, self.headers = status, code, detail, headers

    def response(self) -> Response:
        return JSONResponse(
            {"detail": self.detail, "code": self.code},
            status_code=self.status,
            headers=self.headers,
        )

    def error(self) -> AuthError:
        return AuthError(self.status, self.code, self.detail, self.headers)


def _not_verified() -> _Refusal:
    return _Refusal(400, "WEBHOOK_VERIFICATION_FAILED", "Webhook verification failed")


def _payload_invalid() -> _Refusal:
    return _Refusal(400, "WEBHOOK_PAYLOAD_INVALID", "Webhook payload is invalid")


def _too_large() -> _Refusal:
    return _Refusal(413, "WEBHOOK_TOO_LARGE", "Webhook body is too large")


def _not_configured() -> _Refusal:
    return _Refusal(500, "WEBHOOK_NOT_CONFIGURED", "Webhook receiver is not configured")


def _handler_failed() -> _Refusal:
    return _Refusal(500, "WEBHOOK_HANDLER_FAILED", "A webhook handler failed")


def _busy() -> _Refusal:
    return _Refusal(
        409,
        "WEBHOOK_IN_PROGRESS",
        "This delivery is being processed",
        {"Retry-After": str(BUSY_RETRY_AFTER)},
    )


@dataclass(frozen=True)
class _Config:
    settings: WebhookSettings
    secrets: tuple[SigningSecret, ...]
    deliveries: RecentDeliveries


@dataclass(frozen=True)
class _Verified:
    event: WebhookEvent
    key: str  # the message id's digest, keyed with the secret that signed it


@dataclass(frozen=True)
class _Handler:
    event_type: type[WebhookEvent]
    call: Callable[[Any], Any]
    is_async: bool


def _is_async(call: Callable[..., Any]) -> bool:
    while isinstance(call, partial):
        call = call.func
    return inspect.iscoroutinefunction(call) or inspect.iscoroutinefunction(
        getattr(call, "__call__", None)  # noqa: B004 - an instance with an async __call__
    )


class StackWebhooks:
    """Receives Stack Auth's webhooks (sent by Svix) and runs your handlers on typed events.

    Construction reads nothing: the settings (``STACK_WEBHOOK_SECRET``, ...; or ``env_prefix``
    + name; keyword arguments win) are read at the first delivery, or at the first use of
    ``settings``. ``stack`` is the ``StackAuth`` whose caches the events invalidate and whose
    Redis tier deduplicates across workers; by default, the app's (``StackAuth.init_app``),
    else none. ``clock`` (epoch seconds) is for tests.
    """

    def __init__(
        self,
        settings: WebhookSettings | None = None,
        *,
        stack: StackAuth | None = None,
        env_prefix: str = ENV_PREFIX,
        clock: Callable[[], float] = time.time,
        **overrides: Any,
    ) -> None:
        if settings is not None and overrides:
            raise TypeError("pass either settings=... or keyword overrides, not both")
        self._given_settings = settings
        self._env_prefix = env_prefix
        self._overrides = overrides
        self._stack = stack
        self._clock = clock
        self._handlers: list[_Handler] = []
        self._config_logged_at = -_CONFIG_LOG_INTERVAL

    def __repr__(self) -> str:
        return f"StackWebhooks(env_prefix={self._env_prefix!r}, handlers={len(self._handlers)})"

    # --- configuration ----------------------------------------------------------------------

    @cached_property
    def _config(self) -> _Config:
        s = self._given_settings or load_webhook_settings(self._env_prefix, **self._overrides)
        deliveries = RecentDeliveries(
            ttl=s.webhook_dedupe_ttl, maxsize=s.webhook_dedupe_max_entries
        )
        secrets = tuple(SigningSecret.from_secret(x.get_secret_value()) for x in s.secrets)
        return _Config(s, secrets, deliveries)

    @property
    def settings(self) -> WebhookSettings:
        """The settings in force (read on first use; ``StackAuthConfigError`` if invalid)."""
        return self._config.settings

    def _configured(self) -> _Config:
        name = env_name("webhook_secret", self._env_prefix)
        try:
            config = self._config
        except StackAuthConfigError as exc:
            self._config_error(f"{exc}: every delivery is answered 500 until it is fixed")
            raise _not_configured() from None
        if not config.secrets:
            self._config_error(
                f"{name} is not set: every webhook delivery is answered 500 (Stack retries "
                "it) until it is set to the endpoint's signing secret (whsec_...) from the "
                "Stack dashboard"
            )
            raise _not_configured()
        return config

    def _config_error(self, message: str) -> None:
        now = time.monotonic()
        if now - self._config_logged_at >= _CONFIG_LOG_INTERVAL:
            self._config_logged_at = now
            logger.error("%s", message)

    # --- handlers ---------------------------------------------------------------------------

    def on(self, event_type: type[E]) -> Callable[[Callable[[E], R]], Callable[[E], R]]:
        """Register the decorated function for events of ``event_type`` (and its subclasses:
        ``WebhookEvent`` means every event, ``UnknownEvent`` the types this library does not
        model). Handlers run in registration order; ``async def`` ones on the event loop,
        plain functions in the thread pool."""
        if not (isinstance(event_type, type) and issubclass(event_type, WebhookEvent)):
            raise TypeError("on() takes an event class, e.g. on(UserDeleted)")

        def register(handler: Callable[[E], R]) -> Callable[[E], R]:
            self._handlers.append(_Handler(event_type, handler, _is_async(handler)))
            return handler

        return register

    async def _dispatch(self, event: WebhookEvent) -> None:
        for handler in self._handlers:
            if not isinstance(event, handler.event_type):
                continue
            try:
                if handler.is_async:
                    await handler.call(event)
                else:
                    result = await run_in_threadpool(handler.call, event)
                    if inspect.isawaitable(result):
                        await result
            except Exception:
                logger.exception(
                    "Webhook handler %s failed on %s (%s): answering 500 so that Stack retries it",
                    getattr(handler.call, "__qualname__", repr(handler.call)),
                    event.id,
                    event.type,
                )
                raise

    # --- receiving ----------------------------------------------------------------------------

    @cached_property
    def router(self) -> APIRouter:
        """One ``POST`` route at the prefix you include it under:
        ``app.include_router(hooks.router, prefix="/webhooks/stack")``."""
        router = APIRouter()
        router.add_api_route(
            "", self._endpoint, methods=["POST"], include_in_schema=False, status_code=204
        )
        return router

    async def _endpoint(self, request: Request) -> Response:
        try:
            config = self._configured()
            verified = await self._verify(request, config)
            stack = self._stack_for(request)
            shared = _shared(stack)
            seen = await config.deliveries.claim(verified.key, shared)
            if seen is Seen.DONE:
                logger.info("Webhook %s was handled before: skipped", verified.event.id)
                return Response(status_code=204)
            if seen is Seen.BUSY:
                raise _busy()
            try:
                await invalidate(stack, verified.event)
                await self._dispatch(verified.event)
            except Exception:
                await config.deliveries.release(verified.key, shared)
                raise _handler_failed() from None
            except BaseException:  # cancelled: the sender will try again
                await config.deliveries.release(verified.key, shared)
                raise
            await config.deliveries.done(verified.key, shared)
            return Response(status_code=204)
        except _Refusal as refusal:
            return refusal.response()

    async def verified_event(self, request: Request) -> AsyncIterator[WebhookEvent]:
        """A dependency for your own route: ``event: WebhookEvent = Depends(hooks.verified_event)``.

        It verifies and parses the delivery, skips a message id handled before (answering 200
        ``WEBHOOK_ALREADY_HANDLED`` without calling the route) and invalidates the library's
        caches; the handlers registered with ``on`` are not run. If the route raises, the id
        is released so Stack's retry runs it again. Refusals are raised as ``AuthError``.
        """
        try:
            config = self._configured()
            verified = await self._verify(request, config)
            stack = self._stack_for(request)
            shared = _shared(stack)
            seen = await config.deliveries.claim(verified.key, shared)
            if seen is Seen.DONE:
                logger.info("Webhook %s was handled before: skipped", verified.event.id)
                raise _Refusal(200, "WEBHOOK_ALREADY_HANDLED", "This delivery was handled before")
            if seen is Seen.BUSY:
                raise _busy()
        except _Refusal as refusal:
            raise refusal.error() from None
        try:
            await invalidate(stack, verified.event)
            yield verified.event
        except BaseException:
            await config.deliveries.release(verified.key, shared)
            raise
        await config.deliveries.done(verified.key, shared)

    def _stack_for(self, request: Request) -> StackAuth | None:
        if self._stack is not None:
            return self._stack
        stack: StackAuth | None = getattr(request.app.state, "stack_auth", None)
        return stack

    async def _verify(self, request: Request, config: _Config) -> _Verified:
        settings = config.settings
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > settings.webhook_max_body:
            logger.info("Refused a webhook delivery: Content-Length over the limit")
            raise _too_large()
        try:
            headers = signed_headers(request.scope["headers"])
            check_timestamp(headers.timestamp, self._clock(), settings.webhook_tolerance)
            body = await _read_body(request, settings.webhook_max_body)
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError:
                raise VerificationFailed("a body that is not UTF-8") from None
            secret = matching_secret(config.secrets, headers, text)
        except VerificationFailed as exc:
            logger.info("Refused a webhook delivery: %s", exc)
            raise _not_verified() from None
        timestamp = datetime.fromtimestamp(headers.timestamp, tz=timezone.utc)
        event = _parse(text, headers.msg_id, timestamp)
        digest = hmac.new(secret.key, _ID_CONTEXT + headers.msg_id.encode(), hashlib.sha256)
        return _Verified(event, digest.hexdigest())


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, or 413 as soon as it grows past ``limit`` (never more than one chunk over)."""
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                logger.info("Refused a webhook delivery: a body over the limit")
                raise _too_large()
            chunks.append(chunk)
    except ClientDisconnect:
        raise VerificationFailed("the sender disconnected before the end of the body") from None
    return b"".join(chunks)


def _parse(text: str, msg_id: str, timestamp: datetime) -> WebhookEvent:
    try:
        payload = pydantic_core.from_json(text)
    except ValueError:
        logger.warning("Webhook %s is signed but its body is not JSON", msg_id)
        raise _payload_invalid() from None
    if not (isinstance(payload, dict) and isinstance(payload.get("type"), str)):
        logger.warning("Webhook %s is signed but has no string 'type'", msg_id)
        raise _payload_invalid()
    if "data" not in payload:
        logger.warning("Webhook %s is signed but has no 'data'", msg_id)
        raise _payload_invalid()
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
        raise _payload_invalid() from None


def _shared(stack: StackAuth | None) -> Shared | None:
    """The Redis tier of ``stack`` and its prefix for message ids, if it has one."""
    if stack is None or stack.shared_tier is None:
        return None
    return stack.shared_tier, f"{KEY_PREFIX}:{stack.settings.project_id}:webhook:".encode()
