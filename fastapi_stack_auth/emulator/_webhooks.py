"""``WebhookSender``: delivers the emulator's webhooks as Svix delivers Stack's (contract §13.3,
§13.4) -- signed with ``standardwebhooks``, POSTed by ``httpx`` from an event loop of its own in
a background thread, retried on Svix's schedule, each attempt kept in a delivery log."""

from __future__ import annotations

import asyncio
import json
import math
import threading
import time
from collections.abc import Callable, Coroutine, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import httpx
from pydantic import SecretStr
from standardwebhooks import Webhook

from .._version import __version__
from ._webhook_records import (
    DeliveryStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    check_webhook_secret,
    check_webhook_url,
    ksuid,
    new_webhook_secret,
)
from ._webhook_worker import LoopWorker

#: Svix's default ``retry_schedule``, in seconds after the first attempt fails: 5 s, 5 min,
#: 30 min, 2 h, 5 h, 10 h, 10 h.
SVIX_RETRY_SCHEDULE: tuple[float, ...] = (5, 300, 1800, 7200, 18000, 36000, 36000)
#: Svix's default request timeout: an answer later than this is a failed attempt.
SVIX_TIMEOUT = 30.0
#: What the open-source Svix server sends (``Svix-Webhooks/<version>``; here the package's).
USER_AGENT = f"Svix-Webhooks/{__version__}"
#: Finished deliveries the log keeps (the oldest go first); pending ones are always kept.
MAX_LOGGED_DELIVERIES = 1000


@dataclass
class _Delivery:
    """A delivery's mutable state (``WebhookDelivery`` is its snapshot)."""

    message_id: str
    endpoint: WebhookEndpoint
    event_type: str
    body: str
    status: DeliveryStatus = "pending"
    attempts: list[WebhookAttempt] = field(default_factory=list)
    next_attempt_at: float | None = None

    def snapshot(self) -> WebhookDelivery:
        return WebhookDelivery(
            message_id=self.message_id,
            endpoint_id=self.endpoint.id,
            url=self.endpoint.url,
            project_id=self.endpoint.project_id,
            event_type=self.event_type,
            body=self.body,
            status=self.status,
            attempts=tuple(self.attempts),
            next_attempt_at=self.next_attempt_at,
        )


def check_retry_schedule(schedule: Iterable[float]) -> tuple[float, ...]:
    """The schedule as a tuple, or ``ValueError`` unless every delay is finite and >= 0."""
    delays = tuple(float(delay) for delay in schedule)
    if not all(math.isfinite(delay) and delay >= 0 for delay in delays):
        raise ValueError("every webhook retry delay must be a finite number of seconds >= 0")
    return delays


class WebhookSender:
    """The endpoints of each project, the delivery log, and the background sending.

    ``send`` returns at once: each endpoint of the project gets the message from the sender's
    own thread (started on first use), immediately and then after each delay of
    ``retry_schedule`` until an attempt is answered 2xx within ``timeout`` seconds. Every
    attempt has the same ``svix-id`` and a new ``svix-timestamp`` and signature. ``close``
    cancels what is still pending; sending again afterwards starts a new thread.
    """

    def __init__(
        self,
        *,
        secret: str | SecretStr | None = None,
        retry_schedule: Iterable[float] = SVIX_RETRY_SCHEDULE,
        timeout: float = SVIX_TIMEOUT,
    ) -> None:
        raw = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
        checked = check_webhook_secret(raw) if raw is not None else new_webhook_secret()
        #: The signing secret of every endpoint (``whsec_...``).
        self.secret = SecretStr(checked)
        self._signer = Webhook(checked)
        self.retry_schedule = check_retry_schedule(retry_schedule)
        if not (math.isfinite(timeout) and timeout > 0):
            raise ValueError("the webhook timeout must be a number of seconds > 0")
        self.timeout = float(timeout)
        self._changed = threading.Condition(threading.Lock())
        self._endpoints: list[WebhookEndpoint] = []
        #: Endpoints that ``reset`` keeps (those given at start-up).
        self._permanent: set[str] = set()
        self._log: list[_Delivery] = []
        self._muted = False
        self._worker: LoopWorker | None = None

    # --- endpoints ---------------------------------------------------------------------------

    def add_endpoint(
        self, project_id: str, url: str, *, permanent: bool = False
    ) -> WebhookEndpoint:
        """A new endpoint of ``project_id`` (``ValueError`` unless ``url`` is http(s)).
        ``permanent`` ones survive ``reset``."""
        endpoint = WebhookEndpoint(ksuid("ep_"), check_webhook_url(url), project_id)
        with self._changed:
            self._endpoints.append(endpoint)
            if permanent:
                self._permanent.add(endpoint.id)
        return endpoint

    def remove_endpoint(self, project_id: str, endpoint_id: str) -> bool:
        """Forget an endpoint (what is on its way to it goes on); False if the project has no
        such endpoint."""
        with self._changed:
            for endpoint in self._endpoints:
                if endpoint.id == endpoint_id and endpoint.project_id == project_id:
                    self._endpoints.remove(endpoint)
                    self._permanent.discard(endpoint_id)
                    return True
        return False

    def endpoints(self, project_id: str | None = None) -> list[WebhookEndpoint]:
        """The endpoints of ``project_id`` (of every project for ``None``), oldest first."""
        with self._changed:
            return [e for e in self._endpoints if project_id in (None, e.project_id)]

    # --- sending -------------------------------------------------------------------------------

    @contextmanager
    def muted(self) -> Iterator[None]:
        """Send nothing inside the block (loading a seed is not an event)."""
        with self._changed:
            self._muted = True
        try:
            yield
        finally:
            with self._changed:
                self._muted = False

    def send(self, project_id: str, event_type: str, data: Any) -> str | None:
        """Queue ``{"type": event_type, "data": data}`` for every endpoint of ``project_id``;
        returns its message ID (``None`` when there is no endpoint, or while muted). The body
        is serialised now: later changes to ``data`` do not show."""
        with self._changed:
            targets = [e for e in self._endpoints if e.project_id == project_id]
            if self._muted or not targets:
                return None
            body = json.dumps(
                {"type": event_type, "data": data}, separators=(",", ":"), ensure_ascii=False
            )
            message_id = ksuid("msg_")
            deliveries = [_Delivery(message_id, e, event_type, body) for e in targets]
            self._log.extend(deliveries)
            self._trim_log()
            if self._worker is None or not self._worker.alive:
                self._worker = LoopWorker("stack-auth-emulator webhooks")
            for delivery in deliveries:
                self._worker.start(self._job(delivery))
            self._changed.notify_all()
        return message_id

    def _trim_log(self) -> None:
        finished = [d for d in self._log if d.status != "pending"]
        excess = len(finished) - MAX_LOGGED_DELIVERIES
        if excess > 0:
            dropped = {id(d) for d in finished[:excess]}
            self._log = [d for d in self._log if id(d) not in dropped]

    # --- on the worker's loop --------------------------------------------------------------------

    def _job(self, delivery: _Delivery) -> Callable[[LoopWorker], Coroutine[Any, Any, None]]:
        async def deliver(worker: LoopWorker) -> None:
            try:
                for delay in (0.0, *self.retry_schedule):
                    if delay > 0:
                        self._update(delivery, next_attempt_at=time.time() + delay)
                        await asyncio.sleep(delay)
                    if await self._attempt(worker.client(), delivery):
                        self._update(delivery, status="delivered")
                        return
                self._update(delivery, status="failed")
            except asyncio.CancelledError:
                self._update(delivery, status="cancelled")
                raise

        return deliver

    def sign(self, message_id: str, timestamp: int, body: str) -> str:
        """The ``svix-signature`` of one attempt: ``v1,`` and the base64 HMAC-SHA256 of
        ``{message_id}.{timestamp}.{body}`` under the secret (by ``standardwebhooks``)."""
        signed_at = datetime.fromtimestamp(timestamp, tz=timezone.utc)
        return self._signer.sign(message_id, signed_at, body)

    async def _attempt(self, client: httpx.AsyncClient, delivery: _Delivery) -> bool:
        """One signed POST; True when answered 2xx within the timeout."""
        timestamp = int(time.time())
        headers = {
            "content-type": "application/json",
            "svix-id": delivery.message_id,
            "svix-timestamp": str(timestamp),
            "svix-signature": self.sign(delivery.message_id, timestamp, delivery.body),
            "user-agent": USER_AGENT,
        }
        status_code: int | None = None
        error: str | None = None
        try:
            # The URL was checked (http(s) only) by add_endpoint, the one way in; the endpoint is
            # frozen. httpx's own timeout (connect, send, wait for the answer), not
            # asyncio.wait_for: that one can swallow a cancellation that comes as the answer
            # does (bpo-42130).
            response = await client.post(
                delivery.endpoint.url,
                content=delivery.body.encode(),
                headers=headers,
                timeout=self.timeout,
            )
            status_code = response.status_code
        except httpx.TimeoutException:
            error = "timeout"
        except Exception as exc:  # refused, reset, a bad URL...: a failed attempt, retried
            error = type(exc).__name__
        with self._changed:
            delivery.attempts.append(WebhookAttempt(timestamp, status_code, error))
            self._changed.notify_all()
        return status_code is not None and 200 <= status_code < 300

    def _update(
        self,
        delivery: _Delivery,
        *,
        status: DeliveryStatus | None = None,
        next_attempt_at: float | None = None,
    ) -> None:
        with self._changed:
            if status is not None:
                delivery.status = status
            delivery.next_attempt_at = next_attempt_at
            self._changed.notify_all()

    # --- the log ---------------------------------------------------------------------------------

    def deliveries(self, project_id: str | None = None) -> list[WebhookDelivery]:
        """The log of ``project_id`` (every project for ``None``) in the order the events
        happened, one record per message and endpoint."""
        with self._changed:
            return self._snapshot(project_id)

    def _snapshot(self, project_id: str | None) -> list[WebhookDelivery]:
        return [d.snapshot() for d in self._log if project_id in (None, d.endpoint.project_id)]

    def wait(
        self,
        predicate: Callable[[list[WebhookDelivery]], bool],
        *,
        timeout: float,
        project_id: str | None = None,
    ) -> list[WebhookDelivery]:
        """Block until ``predicate(deliveries)`` holds, and return them; ``TimeoutError`` if it
        still does not after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = self._snapshot(project_id)
                if predicate(found):
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = ", ".join(f"{d.event_type} {d.status}" for d in found) or "none"
                    raise TimeoutError(f"webhook deliveries after {timeout} s: {seen}")
                self._changed.wait(left)

    # --- stopping --------------------------------------------------------------------------------

    def reset(self) -> None:
        """Cancel what is pending, empty the log, and keep only the permanent endpoints."""
        with self._changed:
            worker = self._worker
        if worker is not None:
            worker.cancel_tasks()
        with self._changed:
            self._log.clear()
            self._endpoints = [e for e in self._endpoints if e.id in self._permanent]
            self._changed.notify_all()

    def close(self) -> None:
        """Cancel pending deliveries and retries, close the HTTP client, end the thread."""
        with self._changed:
            worker, self._worker = self._worker, None
        if worker is not None:
            worker.stop()
