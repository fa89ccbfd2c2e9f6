"""The app's handlers: registered per event class, run in registration order on each event of
that class (``async def`` ones on the event loop, plain functions in the thread pool)."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from starlette.concurrency import run_in_threadpool

from ._events import WebhookEvent

logger = logging.getLogger("fastapi_stack_auth.webhooks")


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


class Handlers:
    """The registered handlers."""

    def __init__(self) -> None:
        self._handlers: list[_Handler] = []

    def __len__(self) -> int:
        return len(self._handlers)

    def add(self, event_type: type[WebhookEvent], call: Callable[[Any], Any]) -> None:
        """Run ``call`` on every event of ``event_type``."""
        self._handlers.append(_Handler(event_type, call, _is_async(call)))

    async def run(self, event: WebhookEvent) -> None:
        """Run the handlers of ``event``; the first that raises is logged and re-raised."""
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
