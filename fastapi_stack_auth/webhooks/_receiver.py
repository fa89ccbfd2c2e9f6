"""``StackWebhooks``: the receiver. It verifies a delivery, parses it into a typed event, skips
a message id it has handled already, drops what the event made stale in ``StackAuth``'s caches,
then runs the app's handlers, all before it answers.

It answers 204 when the delivery is handled (or was handled before: a redelivery runs no
handler); every other answer is listed in ``_refusals``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, Optional, TypeVar

from fastapi import APIRouter, Request, Response

from .._answers import AuthError, error_response
from .._settings import ENV_PREFIX
from .._shared_cache import namespace
from ._config import Config, Configuration
from ._dedupe import Seen, Shared
from ._delivery import Delivery, read_delivery
from ._events import WebhookEvent
from ._handlers import Handlers
from ._invalidate import invalidate
from ._refusals import already_handled, busy, handler_failed
from ._settings import WebhookSettings

if TYPE_CHECKING:
    from .._stack import StackAuth

logger = logging.getLogger("fastapi_stack_auth.webhooks")

E = TypeVar("E", bound=WebhookEvent)
# A handler returns None (a plain function, run in the thread pool) or an awaitable (async def).
R = TypeVar("R", bound=Optional[Awaitable[None]])  # noqa: UP045 - evaluated at runtime on 3.10


@dataclass(frozen=True)
class _Claimed:
    """A verified delivery whose message id this worker holds until ``done`` or ``release``."""

    config: Config
    delivery: Delivery
    stack: StackAuth | None
    shared: Shared | None

    async def done(self) -> None:
        await self.config.deliveries.done(self.delivery.key, self.shared)

    async def release(self) -> None:
        await self.config.deliveries.release(self.delivery.key, self.shared)


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
        self._configuration = Configuration(settings, env_prefix, overrides)
        self._stack = stack
        self._clock = clock
        self._handlers = Handlers()

    def __repr__(self) -> str:
        prefix = self._configuration.env_prefix
        return f"StackWebhooks(env_prefix={prefix!r}, handlers={len(self._handlers)})"

    @property
    def settings(self) -> WebhookSettings:
        """The settings in force (read on first use; ``StackAuthConfigError`` if invalid)."""
        return self._configuration.loaded.settings

    def on(self, event_type: type[E]) -> Callable[[Callable[[E], R]], Callable[[E], R]]:
        """Register the decorated function for events of ``event_type`` (and its subclasses:
        ``WebhookEvent`` means every event, ``UnknownEvent`` the types this library does not
        model). Handlers run in registration order; ``async def`` ones on the event loop,
        plain functions in the thread pool."""
        if not (isinstance(event_type, type) and issubclass(event_type, WebhookEvent)):
            raise TypeError("on() takes an event class, e.g. on(UserDeleted)")

        def register(handler: Callable[[E], R]) -> Callable[[E], R]:
            self._handlers.add(event_type, handler)
            return handler

        return register

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
            claimed = await self._claim(request)
            if claimed is None:
                return Response(status_code=204)
            try:
                await invalidate(claimed.stack, claimed.delivery.event)
                await self._handlers.run(claimed.delivery.event)
            except Exception:
                await claimed.release()
                raise handler_failed() from None
            except BaseException:  # cancelled: the sender will try again
                await claimed.release()
                raise
            await claimed.done()
            return Response(status_code=204)
        except AuthError as refusal:
            return error_response(refusal)

    async def verified_event(self, request: Request) -> AsyncIterator[WebhookEvent]:
        """A dependency for your own route: ``event: WebhookEvent = Depends(hooks.verified_event)``.

        It verifies and parses the delivery, skips a message id handled before (answering 200
        ``WEBHOOK_ALREADY_HANDLED`` without calling the route) and invalidates the library's
        caches; the handlers registered with ``on`` are not run. If the route raises, the id
        is released so Stack's retry runs it again. Refusals are raised as ``AuthError``.
        """
        claimed = await self._claim(request)
        if claimed is None:
            raise already_handled()
        try:
            await invalidate(claimed.stack, claimed.delivery.event)
            yield claimed.delivery.event
        except BaseException:
            await claimed.release()
            raise
        await claimed.done()

    async def _claim(self, request: Request) -> _Claimed | None:
        """Verify and parse the delivery and claim its message id: ``None`` when that message
        was handled before; a refusal (``AuthError``) raised when it cannot be taken now."""
        config = self._configuration.usable()
        delivery = await read_delivery(request, config, self._clock)
        stack = self._stack_for(request)
        shared = _shared(stack)
        seen = await config.deliveries.claim(delivery.key, shared)
        if seen is Seen.DONE:
            logger.info("Webhook %s was handled before: skipped", delivery.event.id)
            return None
        if seen is Seen.BUSY:
            raise busy()
        return _Claimed(config, delivery, stack, shared)

    def _stack_for(self, request: Request) -> StackAuth | None:
        if self._stack is not None:
            return self._stack
        stack: StackAuth | None = getattr(request.app.state, "stack_auth", None)
        return stack


def _shared(stack: StackAuth | None) -> Shared | None:
    """The Redis tier of ``stack`` and its prefix for message ids, if it has one."""
    if stack is None or stack.shared_tier is None:
        return None
    return stack.shared_tier, (namespace(stack.settings.project_id) + "webhook:").encode()
