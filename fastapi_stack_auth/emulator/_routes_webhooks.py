"""Webhook routes. Stack has no public API for endpoints (its dashboard talks to Svix), so the
emulator adds its own under ``/emulator/``, with server access: ``webhook-endpoints`` (add,
list, remove) and ``webhook-deliveries`` (the log). ``/internal/send-test-webhook`` is Stack's
admin route behind the dashboard's test button (contract §13.2)."""

from __future__ import annotations

from typing import Any

from . import _webhook_events as events
from ._errors import PlainError
from ._http import Ctx, FieldCheck, Reply, f_str, validate
from ._webhook_records import WebhookDelivery, WebhookEndpoint, check_webhook_url

ENDPOINTS = "/emulator/webhook-endpoints"
DELIVERIES = "/emulator/webhook-deliveries"
SEND_TEST = "/internal/send-test-webhook"


def _f_url(value: Any) -> str | None:
    if not isinstance(value, str):
        return "must be a string"
    try:
        check_webhook_url(value)
    except ValueError:
        return "must be an absolute http:// or https:// URL"
    return None


def endpoint_json(endpoint: WebhookEndpoint) -> dict[str, Any]:
    return {"id": endpoint.id, "url": endpoint.url}


def delivery_json(delivery: WebhookDelivery) -> dict[str, Any]:
    """A log record: the message, its endpoint, its status and every attempt so far."""
    next_at = delivery.next_attempt_at
    return {
        "message_id": delivery.message_id,
        "endpoint_id": delivery.endpoint_id,
        "url": delivery.url,
        "event_type": delivery.event_type,
        "payload": delivery.payload,
        "status": delivery.status,
        "attempts": [
            {"timestamp": a.timestamp, "status_code": a.status_code, "error": a.error}
            for a in delivery.attempts
        ],
        "next_attempt_at_millis": int(next_at * 1000) if next_at is not None else None,
    }


def list_endpoints(ctx: Ctx) -> Reply:
    validate(ctx)
    found = ctx.backend.webhooks.endpoints(ctx.need_auth.project.id)
    return Reply(body={"items": [endpoint_json(e) for e in found], "is_paginated": False})


def add_endpoint(ctx: Ctx) -> Reply:
    fields: dict[str, FieldCheck] = {"url": _f_url}
    body = validate(ctx, body=fields, required=("url",))
    endpoint = ctx.backend.webhooks.add_endpoint(ctx.need_auth.project.id, body["url"])
    return Reply(status=201, body=endpoint_json(endpoint))


def remove_endpoint(ctx: Ctx) -> Reply:
    validate(ctx)
    project_id = ctx.need_auth.project.id
    if not ctx.backend.webhooks.remove_endpoint(project_id, ctx.params["endpoint_id"]):
        raise PlainError(404, "Webhook endpoint not found.")
    return Reply(body={"success": True})


def list_deliveries(ctx: Ctx) -> Reply:
    validate(ctx)
    found = ctx.backend.webhooks.deliveries(ctx.need_auth.project.id)
    return Reply(body={"items": [delivery_json(d) for d in found], "is_paginated": False})


def send_test_webhook(ctx: Ctx) -> Reply:
    """Stack's answer: ``success``, or ``false`` with Stack's message for an unknown endpoint.
    Unlike Stack it does not wait for the delivery: read the log for that."""
    body = validate(ctx, body={"endpoint_id": f_str()}, required=("endpoint_id",))
    if not events.send_test(ctx.backend.webhooks, ctx.need_auth.project, body["endpoint_id"]):
        message = "Endpoint not found. Make sure it still exists."
        return Reply(body={"success": False, "error_message": message})
    return Reply(body={"success": True})
