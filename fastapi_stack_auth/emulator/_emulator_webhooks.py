"""The Python API of webhooks (``Emulator`` inherits it): the signing secret, each project's
endpoints, Stack's test event, and the delivery log with a way to wait on it."""

from __future__ import annotations

from pydantic import SecretStr

from . import _webhook_events as events
from ._backend import Backend
from ._webhook_records import WebhookDelivery, WebhookEndpoint


class WebhookApi(Backend):
    """Webhooks without HTTP. Every method takes ``project_id`` (default: the first project).

    Each change made over HTTP or through the Python API sends the events Stack sends for it to
    every endpoint of its project, signed with ``webhook_secret``; ``webhook_deliveries`` shows
    each attempt. ``close`` cancels what is still pending.
    """

    @property
    def webhook_secret(self) -> SecretStr:
        """The signing secret of every endpoint (``whsec_...``), for the receiver."""
        return self.webhooks.secret

    def add_webhook_endpoint(self, url: str, *, project_id: str | None = None) -> WebhookEndpoint:
        """Send the project's events to ``url`` from now on (``ValueError`` unless http(s))."""
        with self.lock:
            project = self._project(project_id)
            return self.webhooks.add_endpoint(project.id, url)

    def remove_webhook_endpoint(self, endpoint_id: str, *, project_id: str | None = None) -> bool:
        """Stop sending to an endpoint (what is under way goes on); False if unknown."""
        with self.lock:
            return self.webhooks.remove_endpoint(self._project(project_id).id, endpoint_id)

    def webhook_endpoints(self, *, project_id: str | None = None) -> list[WebhookEndpoint]:
        """The project's endpoints, oldest first."""
        with self.lock:
            return self.webhooks.endpoints(self._project(project_id).id)

    def send_test_webhook(self, endpoint_id: str, *, project_id: str | None = None) -> bool:
        """Stack's dashboard test: a ``stack.test`` event naming the endpoint's URL, sent to
        every endpoint of the project (as Stack sends it); False if the endpoint is unknown."""
        with self.lock:
            return events.send_test(self.webhooks, self._project(project_id), endpoint_id)

    def webhook_deliveries(self, *, project_id: str | None = None) -> list[WebhookDelivery]:
        """The project's delivery log: one record per event and endpoint, in the order the
        events happened, each with its attempts so far."""
        with self.lock:
            pid = self._project(project_id).id
        return self.webhooks.deliveries(pid)

    def wait_for_webhook_deliveries(
        self, count: int | None = None, *, timeout: float = 10.0, project_id: str | None = None
    ) -> list[WebhookDelivery]:
        """Block until the project's log holds at least ``count`` deliveries (any number if
        ``None``) and none is pending, and return it; ``TimeoutError`` after ``timeout``
        seconds."""
        with self.lock:
            pid = self._project(project_id).id

        def settled(found: list[WebhookDelivery]) -> bool:
            enough = count is None or len(found) >= count
            return enough and all(d.status != "pending" for d in found)

        return self.webhooks.wait(settled, timeout=timeout, project_id=pid)

    def close(self) -> None:
        """Cancel pending deliveries and retries and stop the sending thread (sending again
        later starts it anew). ``EmulatorServer.stop`` calls it."""
        self.webhooks.close()
