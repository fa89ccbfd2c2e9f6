"""The emulator's webhooks over real loopback: the emulator served by uvicorn sends to a receiver
served by uvicorn, which records each request; every delivery is checked against the signing
secret as a Svix receiver checks it. Covers the HTTP request, the events each operation sends
(and the ones Stack does not send), retries, timeouts, the endpoint routes, the command line, the
banner, reset and stop, and the pytest plugin's helpers."""

from __future__ import annotations

import asyncio
import base64
import gc
import json
import logging
import re
import signal
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from fastapi_stack_auth.emulator import (
    DEFAULT_PROJECT_ID,
    DEFAULT_SECRET_SERVER_KEY,
    Emulator,
    EmulatorServer,
    Seed,
    WebhookAttempt,
)
from fastapi_stack_auth.emulator._banner import banner
from fastapi_stack_auth.emulator._cli import main
from fastapi_stack_auth.emulator._webhook_records import check_webhook_secret
from fastapi_stack_auth.testing import EmulatedStack
from fastapi_stack_auth.webhooks._settings import secret_key
from tests.emulator_helpers import (
    ADMIN,
    OTHER_PROJECT_ID,
    OTHER_SECRET,
    PROJECT_ID,
    client_headers,
    known_error,
    seed,
    server_headers,
)
from tests.servers import serve_in_thread
from tests.test_emulator_cli import child

pytest_plugins = ["fastapi_stack_auth.testing"]

MESSAGE_ID = re.compile(r"msg_[0-9A-Za-z]{27}")
SIGNATURE = re.compile(r"v1,[A-Za-z0-9+/]{43}=")
#: Retries after 50 ms and 100 ms: Svix's schedule, made fast for tests.
FAST = (0.05, 0.1)
FIXED_SECRET = "whsec_" + base64.b64encode(bytes(range(24))).decode()


# --- the receiver -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    """One request the receiver got, and the status it answered."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    answered: int

    @property
    def payload(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """A webhook receiver (an ASGI app): records every request on arrival and answers it with
    the next of ``statuses`` (204 once they are used up). With ``hold``, the first request is
    answered only once ``hold`` is set."""

    def __init__(self, statuses: tuple[int, ...] = (), hold: threading.Event | None = None) -> None:
        self.statuses = list(statuses)
        self.hold = hold
        self.received: list[Received] = []
        self.url = ""
        self._changed = threading.Condition()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        with self._changed:
            first = not self.received
            status = self.statuses.pop(0) if self.statuses else 204
            self.received.append(Received(scope["method"], scope["path"], headers, body, status))
            self._changed.notify_all()
        if first and self.hold is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.hold.wait, 10)
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    def wait_for(self, count: int, timeout: float = 10) -> list[Received]:
        """The first ``count`` requests, once they have arrived."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self.received) < count:
                left = deadline - time.monotonic()
                assert left > 0, f"{len(self.received)} of {count} deliveries arrived"
                self._changed.wait(left)
            return list(self.received)


@contextmanager
def receiving(
    statuses: tuple[int, ...] = (), hold: threading.Event | None = None
) -> Iterator[Receiver]:
    """A ``Receiver`` served by uvicorn on 127.0.0.1; its ``url`` is set."""
    app = Receiver(statuses, hold)
    with serve_in_thread(app) as url:
        app.url = f"{url}/hooks/stack"
        try:
            yield app
        finally:
            if hold is not None:
                hold.set()  # let a held request end, so the server can stop


def verify(secret: str, received: Received) -> Any:
    """What a Svix receiver does: check the signature over the raw body (and the timestamp's
    freshness); returns the payload. The same request with a changed body fails."""
    headers = {
        "webhook-id": received.headers["svix-id"],
        "webhook-timestamp": received.headers["svix-timestamp"],
        "webhook-signature": received.headers["svix-signature"],
    }
    payload = Webhook(secret).verify(received.body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(received.body.replace(b'"data"', b'"data" '), headers)
    return payload


#: Server access to the built-in seed's project (the command line's default).
DEFAULT_SERVER = {
    "x-stack-access-type": "server",
    "x-stack-project-id": DEFAULT_PROJECT_ID,
    "x-stack-secret-server-key": DEFAULT_SECRET_SERVER_KEY,
}


def settled_over_http(api: str, headers: dict[str, str], timeout: float = 10) -> Any:
    """The first record of ``GET /emulator/webhook-deliveries`` once it is no longer pending
    (polling the log with a deadline)."""
    deadline = time.monotonic() + timeout
    while True:
        response = httpx.get(f"{api}/api/v1/emulator/webhook-deliveries", headers=headers)
        item = response.json()["items"][0]
        if item["status"] != "pending":
            return item
        assert time.monotonic() < deadline, item
        time.sleep(0.02)


def closed_port_url() -> str:
    """A loopback URL where nothing listens (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/hooks"


# --- the emulator -------------------------------------------------------------------------------


class Hooks:
    """An emulator served on loopback whose main project sends to a receiver."""

    def __init__(
        self, emulator: Emulator, url: str, receiver: Receiver, http: httpx.Client
    ) -> None:
        self.emulator = emulator
        self.api = f"{url}/api/v1"
        self.receiver = receiver
        self.http = http
        self.secret = emulator.webhook_secret.get_secret_value()

    def call(
        self,
        method: str,
        path: str,
        status: int,
        *,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> tuple[list[tuple[str, Any]], httpx.Response]:
        """Make one call; returns the events it sent (``(type, data)`` in order) and the
        response. The events are in the log when the response arrives: they are queued by
        the write, and only their delivery happens later."""
        if method == "POST":
            kwargs.setdefault("json", {})  # Stack wants a JSON object even when it is empty
        before = len(self.emulator.webhook_deliveries())
        response = self.http.request(
            method, f"{self.api}{path}", headers=headers or server_headers(), **kwargs
        )
        assert response.status_code == status, response.text
        new = self.emulator.webhook_deliveries()[before:]
        return [(d.event_type, d.payload["data"]) for d in new], response

    def all_delivered(self) -> list[Received]:
        """Once every delivery is done: each was received once, with its message ID and body
        as logged, and verifies with the secret."""
        log = self.emulator.wait_for_webhook_deliveries()
        assert all(d.status == "delivered" for d in log)
        received = self.receiver.wait_for(len(log))
        assert len(received) == len(log)
        logged = sorted((d.message_id, d.body.encode()) for d in log)
        assert sorted((r.headers["svix-id"], r.body) for r in received) == logged
        for request in received:
            verify(self.secret, request)
        return received


@contextmanager
def hooks(
    statuses: tuple[int, ...] = (), hold: threading.Event | None = None, **options: Any
) -> Iterator[Hooks]:
    with receiving(statuses, hold) as receiver:
        emulator = Emulator(seed(**options.pop("config", {})), **options)
        emulator.add_webhook_endpoint(receiver.url)
        with EmulatorServer(emulator) as server, httpx.Client() as http:
            yield Hooks(emulator, server.url, receiver, http)


def sign_up(h: Hooks, email: str, **headers: str) -> tuple[list[tuple[str, Any]], str]:
    events, response = h.call(
        "POST",
        "/auth/password/sign-up",
        200,
        headers=client_headers(**headers),
        json={"email": email, "password": "password-123"},
    )
    return events, response.json()["user_id"]


# --- the HTTP request ---------------------------------------------------------------------------


def test_a_delivery_is_a_signed_svix_post() -> None:
    with hooks() as h:
        events, response = h.call("POST", "/users", 201, json={"display_name": "Zoë"})
        (received,) = h.receiver.wait_for(1)
        assert (received.method, received.path) == ("POST", "/hooks/stack")
        headers = received.headers
        assert headers["content-type"] == "application/json"
        assert MESSAGE_ID.fullmatch(headers["svix-id"])
        assert abs(int(headers["svix-timestamp"]) - time.time()) < 60
        assert SIGNATURE.fullmatch(headers["svix-signature"])
        assert re.fullmatch(r"Svix-Webhooks/\S+", headers["user-agent"])
        payload = verify(h.secret, received)
        # {"type", "data"} and nothing else, compact, UTF-8 as is.
        assert list(payload) == ["type", "data"]
        assert payload == {"type": "user.created", "data": events[0][1]}
        assert payload["data"]["id"] == response.json()["id"]
        compact = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        assert received.body == compact
        assert "Zoë".encode() in received.body
        with pytest.raises(WebhookVerificationError):  # another secret does not verify it
            verify("whsec_" + base64.b64encode(b"x" * 24).decode(), received)
        (delivery,) = h.emulator.wait_for_webhook_deliveries(1)
        assert delivery.status == "delivered"
        assert delivery.message_id == headers["svix-id"]
        assert delivery.attempts == (WebhookAttempt(int(headers["svix-timestamp"]), 204),)


def test_the_api_answers_without_waiting_for_the_delivery() -> None:
    hold = threading.Event()
    with hooks(hold=hold) as h:
        # The receiver holds the delivery for up to 10 s; the answer comes within 5 s.
        response = httpx.post(f"{h.api}/users", headers=server_headers(), json={}, timeout=5)
        assert response.status_code == 201
        h.receiver.wait_for(1)
        assert [d.status for d in h.emulator.webhook_deliveries()] == ["pending"]
        hold.set()
        (delivery,) = h.emulator.wait_for_webhook_deliveries(1)
        assert delivery.status == "delivered"


def test_one_message_has_one_id_for_every_endpoint() -> None:
    with hooks() as h, receiving() as other:
        h.emulator.add_webhook_endpoint(other.url)
        h.call("POST", "/users", 201, json={})
        (first,) = h.receiver.wait_for(1)
        (second,) = other.wait_for(1)
        assert first.headers["svix-id"] == second.headers["svix-id"]
        assert first.body == second.body


# --- which events each operation sends ---------------------------------------------------------


def test_users_sessions_and_sign_ups() -> None:
    with hooks(config={"client_user_deletion_enabled": True}) as h:
        events, response = h.call("POST", "/users", 201, json={"primary_email": "a@example.com"})
        user_id = response.json()["id"]
        assert [t for t, _ in events] == ["user.created"]
        assert events[0][1]["id"] == user_id
        # Reads, sessions and sign-ins send nothing.
        assert h.call("GET", f"/users/{user_id}", 200)[0] == []
        assert h.call("GET", "/users", 200)[0] == []
        events, response = h.call("POST", "/auth/sessions", 200, json={"user_id": user_id})
        assert events == []
        token = response.json()["access_token"]

        events, _ = h.call("PATCH", f"/users/{user_id}", 200, json={"display_name": "Ada"})
        assert [(t, d["display_name"]) for t, d in events] == [("user.updated", "Ada")]
        me = client_headers(**{"x-stack-access-token": token})
        events, _ = h.call("PATCH", "/users/me", 200, headers=me, json={"display_name": "Ada L"})
        assert [(t, d["display_name"]) for t, d in events] == [("user.updated", "Ada L")]

        # Every sign-up sends user.created; anonymous ones too.
        events, _ = sign_up(h, "b@example.com")
        assert [(t, d["is_anonymous"]) for t, d in events] == [("user.created", False)]
        events, response = h.call("POST", "/auth/anonymous/sign-up", 200, headers=client_headers())
        anonymous = response.json()
        assert [(t, d["is_anonymous"], d["id"]) for t, d in events] == [
            ("user.created", True, anonymous["user_id"])
        ]
        # Signing up with an anonymous user's token upgrades that user: user.updated.
        upgrade = {
            "x-stack-access-token": anonymous["access_token"],
            "x-stack-allow-anonymous-user": "true",
        }
        events, upgraded = sign_up(h, "c@example.com", **upgrade)
        assert upgraded == anonymous["user_id"]
        assert [(t, d["id"], d["is_anonymous"]) for t, d in events] == [
            ("user.updated", upgraded, False)
        ]

        events, _ = h.call("DELETE", "/users/me", 200, headers=me)
        assert events == [("user.deleted", {"id": user_id, "teams": []})]
        h.all_delivered()


def test_a_new_user_has_no_selected_team_in_user_created() -> None:
    with hooks() as h:
        team = h.emulator.create_team("Earlier")
        events, _ = h.call("POST", "/users", 201, json={})
        assert events[0][1]["selected_team"] is None
        assert events[0][1]["selected_team_id"] is None
        user_id = events[0][1]["id"]
        h.call("POST", f"/team-memberships/{team.id}/{user_id}", 201)
        events, _ = h.call("PATCH", f"/users/{user_id}", 200, json={"selected_team_id": team.id})
        assert events[0][1]["selected_team"]["id"] == team.id
        assert events[0][1]["selected_team_id"] == team.id
        h.all_delivered()


def test_teams_memberships_and_permissions() -> None:
    with hooks() as h:
        h.emulator.define_permission("reports:read")
        h.emulator.define_permission("parent", scope="project")
        owner = h.emulator.create_user(email="owner@example.com").id
        member = h.emulator.create_user(email="member@example.com").id

        # The creator's membership and team_admin grant send nothing (Stack's gap).
        body = {"display_name": "Team", "creator_user_id": owner}
        events, response = h.call("POST", "/teams", 201, json=body)
        team = response.json()["id"]
        assert [(t, d["id"]) for t, d in events] == [("team.created", team)]
        events, _ = h.call("PATCH", f"/teams/{team}", 200, json={"display_name": "Renamed"})
        assert [(t, d["display_name"]) for t, d in events] == [("team.updated", "Renamed")]

        # A member: the membership, then each default permission granted directly.
        pair = {"team_id": team, "user_id": member}
        events, _ = h.call("POST", f"/team-memberships/{team}/{member}", 201)
        assert events == [
            ("team_membership.created", pair),
            ("team_permission.created", {"id": "team_member", **pair}),
        ]
        grant = f"/team-permissions/{team}/{member}/reports:read"
        events, _ = h.call("POST", grant, 201)
        assert events == [("team_permission.created", {"id": "reports:read", **pair})]
        events, _ = h.call("DELETE", grant, 200)
        assert events == [("team_permission.deleted", {"id": "reports:read", **pair})]
        h.call("DELETE", grant, 401)  # a failed call (TEAM_PERMISSION_NOT_FOUND) sends nothing
        assert h.emulator.webhook_deliveries()[-1].event_type == "team_permission.deleted"

        project_grant = f"/project-permissions/{member}/parent"
        events, _ = h.call("POST", project_grant, 201)
        assert events == [("project_permission.created", {"id": "parent", "user_id": member})]
        events, _ = h.call("DELETE", project_grant, 200)
        assert events == [("project_permission.deleted", {"id": "parent", "user_id": member})]

        # Leaving a team: no team_permission.deleted for the permissions that go with it.
        events, _ = h.call("DELETE", f"/team-memberships/{team}/{member}", 200)
        assert events == [("team_membership.deleted", pair)]

        # Deleting a team: no team_membership.deleted for its members.
        h.call("POST", f"/team-memberships/{team}/{member}", 201)
        events, _ = h.call("DELETE", f"/teams/{team}", 200)
        assert events == [("team.deleted", {"id": team})]
        h.all_delivered()


def test_deleting_a_user_ends_each_membership() -> None:
    with hooks() as h:
        user = h.emulator.create_user(email="gone@example.com").id
        first = h.emulator.create_team("First", creator=user).id
        second = h.call("POST", "/teams", 201, json={"display_name": "Second"})[1].json()["id"]
        h.call("POST", f"/team-memberships/{second}/{user}", 201)
        events, _ = h.call("DELETE", f"/users/{user}", 200)
        # user.deleted lists the teams oldest first; one membership event per team, and no
        # team_permission.deleted for team_admin or team_member.
        assert events == [
            ("user.deleted", {"id": user, "teams": [{"id": first}, {"id": second}]}),
            ("team_membership.deleted", {"team_id": first, "user_id": user}),
            ("team_membership.deleted", {"team_id": second, "user_id": user}),
        ]
        h.all_delivered()


def test_the_python_api_sends_what_its_endpoint_sends() -> None:
    with hooks() as h:
        emulator = h.emulator
        user = emulator.create_user(email="py@example.com").id
        team = emulator.create_team("Py", creator=user).id
        other = emulator.create_user(email="other@example.com").id
        emulator.add_member(team, other)
        emulator.grant_team_permission(team, other, "$update_team")
        emulator.revoke_team_permission(team, other, "$update_team")
        emulator.revoke_team_permission(team, other, "$update_team")  # not granted: nothing
        emulator.remove_member(team, other)
        emulator.delete_team(team)
        emulator.delete_user(other)
        emulator.sign_in(user)
        emulator.create_api_key(user_id=user)
        assert [d.event_type for d in emulator.webhook_deliveries()] == [
            "user.created",
            "team.created",
            "user.created",
            "team_membership.created",
            "team_permission.created",
            "team_permission.created",
            "team_permission.deleted",
            "team_membership.deleted",
            "team.deleted",
            "user.deleted",
        ]
        h.all_delivered()


def test_events_go_to_their_own_projects_endpoints() -> None:
    with hooks() as h:
        other_server = server_headers(
            **{"x-stack-project-id": OTHER_PROJECT_ID, "x-stack-secret-server-key": OTHER_SECRET}
        )
        events, _ = h.call("POST", "/users", 201, headers=other_server, json={})
        assert events == []
        response = httpx.get(f"{h.api}/emulator/webhook-endpoints", headers=other_server)
        assert response.json() == {"items": [], "is_paginated": False}
        assert h.emulator.webhook_deliveries(project_id=OTHER_PROJECT_ID) == []


# --- retries -----------------------------------------------------------------------------------


def test_retries_keep_the_id_and_sign_each_attempt_anew() -> None:
    # Retries 1 s apart, so that each attempt has its own svix-timestamp (whole seconds).
    with hooks(statuses=(500, 500), webhook_retry_schedule=(1.0, 1.0, 1.0)) as h:
        h.call("POST", "/users", 201, json={})
        attempts = h.receiver.wait_for(3)
        assert [a.answered for a in attempts] == [500, 500, 204]
        assert len({a.headers["svix-id"] for a in attempts}) == 1
        assert len({a.headers["svix-timestamp"] for a in attempts}) == 3
        assert len({a.headers["svix-signature"] for a in attempts}) == 3
        assert len({a.body for a in attempts}) == 1
        for attempt in attempts:
            verify(h.secret, attempt)
        (delivery,) = h.emulator.wait_for_webhook_deliveries(1)
        assert delivery.status == "delivered"
        assert delivery.attempts == tuple(
            WebhookAttempt(int(a.headers["svix-timestamp"]), a.answered) for a in attempts
        )
        # The server API shows the same log.
        response = httpx.get(f"{h.api}/emulator/webhook-deliveries", headers=server_headers())
        (item,) = response.json()["items"]
        assert item["message_id"] == attempts[0].headers["svix-id"]
        assert item["status"] == "delivered"
        assert [a["status_code"] for a in item["attempts"]] == [500, 500, 204]
        assert item["payload"] == attempts[0].payload
        assert item["next_attempt_at_millis"] is None


def test_a_delivery_fails_after_the_last_retry() -> None:
    with hooks(webhook_retry_schedule=FAST) as h:
        h.emulator.add_webhook_endpoint(closed_port_url())
        h.call("POST", "/users", 201, json={})
        delivered, failed = h.emulator.wait_for_webhook_deliveries(2)
        assert delivered.status == "delivered"
        assert failed.status == "failed"
        assert [(a.status_code, a.error) for a in failed.attempts] == [(None, "ConnectError")] * 3


def test_redirects_are_not_followed_and_count_as_failures() -> None:
    with hooks(statuses=(307,), webhook_retry_schedule=FAST) as h:
        h.call("POST", "/users", 201, json={})
        (delivery,) = h.emulator.wait_for_webhook_deliveries(1)
        assert [a.status_code for a in delivery.attempts] == [307, 204]
        assert delivery.status == "delivered"


def test_an_answer_after_the_timeout_is_a_failed_attempt() -> None:
    hold = threading.Event()
    with hooks(hold=hold, webhook_timeout=0.3, webhook_retry_schedule=FAST) as h:
        h.call("POST", "/users", 201, json={})
        (delivery,) = h.emulator.wait_for_webhook_deliveries(1)
        assert [(a.status_code, a.error) for a in delivery.attempts] == [
            (None, "timeout"),
            (204, None),
        ]
        assert delivery.status == "delivered"


def test_stopping_cancels_pending_retries_cleanly(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="asyncio")
    with receiving(statuses=(500,)) as receiver:
        emulator = Emulator(seed(), webhook_endpoints=[receiver.url], webhook_retry_schedule=[60])
        with EmulatorServer(emulator) as server:
            httpx.post(f"{server.url}/api/v1/users", headers=server_headers(), json={})
            emulator.webhooks.wait(
                lambda log: bool(log) and log[0].next_attempt_at is not None, timeout=10
            )
            (pending,) = emulator.webhook_deliveries()
            assert pending.status == "pending"
            assert pending.next_attempt_at is not None
            assert pending.next_attempt_at > time.time() + 50
        (cancelled,) = emulator.webhook_deliveries()
        assert cancelled.status == "cancelled"
        assert len(cancelled.attempts) == 1
        names = [thread.name for thread in threading.enumerate()]
        assert "stack-auth-emulator webhooks" not in names
    gc.collect()  # a pending task would now log "Task was destroyed but it is pending"
    assert [r.getMessage() for r in caplog.records if r.name == "asyncio"] == []


def test_reset_cancels_forgets_added_endpoints_and_keeps_the_first_ones() -> None:
    with receiving(statuses=(500,)) as receiver:
        seeded = Seed.model_validate(
            {
                "projects": [
                    {
                        "id": PROJECT_ID,
                        "secret_server_keys": ["ssk_reset"],
                        "users": [{"email": "seeded@example.com"}],
                        "teams": [{"display_name": "Seeded"}],
                    }
                ]
            }
        )
        emulator = Emulator(seeded, webhook_endpoints=[receiver.url], webhook_retry_schedule=[60])
        try:
            (first,) = emulator.webhook_endpoints()
            assert emulator.webhook_deliveries() == []  # loading the seed sends nothing
            added = emulator.add_webhook_endpoint(closed_port_url())
            emulator.create_user()
            receiver.wait_for(1)
            sent_to = {d.endpoint_id for d in emulator.webhook_deliveries()}
            assert sent_to == {first.id, added.id}
            emulator.reset()
            assert emulator.webhook_endpoints() == [first]
            assert emulator.webhook_deliveries() == []  # nothing pending, none from the seed
            emulator.create_user()
            (delivery,) = emulator.wait_for_webhook_deliveries(1)
            assert delivery.endpoint_id == first.id
        finally:
            emulator.close()


# --- endpoints: the server API, the Python API, the command line --------------------------------


def test_endpoints_through_the_server_api() -> None:
    with receiving() as receiver, EmulatorServer(Emulator(seed())) as server:
        api = f"{server.url}/api/v1/emulator/webhook-endpoints"
        empty = {"items": [], "is_paginated": False}
        assert httpx.get(api, headers=server_headers()).json() == empty
        response = httpx.post(api, headers=server_headers(), json={"url": receiver.url})
        assert response.status_code == 201, response.text
        endpoint = response.json()
        assert list(endpoint) == ["id", "url"]
        assert re.fullmatch(r"ep_[0-9A-Za-z]{27}", endpoint["id"])
        assert endpoint["url"] == receiver.url
        listed = httpx.get(api, headers=server_headers()).json()
        assert listed == {"items": [endpoint], "is_paginated": False}

        created = httpx.post(f"{server.url}/api/v1/users", headers=server_headers(), json={})
        (received,) = receiver.wait_for(1)
        payload = verify(server.emulator.webhook_secret.get_secret_value(), received)
        assert payload["data"]["id"] == created.json()["id"]

        removed = httpx.delete(f"{api}/{endpoint['id']}", headers=server_headers())
        assert removed.json() == {"success": True}
        assert httpx.get(api, headers=server_headers()).json() == empty
        httpx.post(f"{server.url}/api/v1/users", headers=server_headers(), json={})
        assert len(server.emulator.webhook_deliveries()) == 1  # nothing queued any more
        assert httpx.delete(f"{api}/{endpoint['id']}", headers=server_headers()).status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"url": "ftp://127.0.0.1/hooks"},
        {"url": "javascript:alert(1)"},
        {"url": "file:///etc/passwd"},
        {"url": "http://"},
        {"url": "http://127.0.0.1:99999/"},
        {"url": "http://exa mple.com/"},
        {"url": 5},
        {},
        {"url": "http://127.0.0.1/", "secret": "x"},
    ],
)
def test_the_server_api_takes_http_urls_only(body: dict[str, Any]) -> None:
    emulator = Emulator(seed())
    with EmulatorServer(emulator) as server:
        api = f"{server.url}/api/v1/emulator/webhook-endpoints"
        response = httpx.post(api, headers=server_headers(), json=body)
        known_error(response, 400, "SCHEMA_ERROR")
    assert emulator.webhook_endpoints() == []
    with pytest.raises(ValueError, match="http"):
        emulator.add_webhook_endpoint("ftp://127.0.0.1/hooks")


def test_the_endpoint_routes_need_server_access() -> None:
    with EmulatorServer(Emulator(seed())) as server:
        api = f"{server.url}/api/v1/emulator"
        for method, path in [
            ("GET", "/webhook-endpoints"),
            ("POST", "/webhook-endpoints"),
            ("DELETE", "/webhook-endpoints/ep_x"),
            ("GET", "/webhook-deliveries"),
        ]:
            response = httpx.request(method, f"{api}{path}", headers=client_headers(), json={})
            known_error(response, 401, "INSUFFICIENT_ACCESS_TYPE")


def test_stacks_test_event_goes_to_every_endpoint() -> None:
    admin = {
        "x-stack-access-type": "admin",
        "x-stack-project-id": PROJECT_ID,
        "x-stack-super-secret-admin-key": ADMIN,
    }
    with hooks() as h, receiving() as other:
        named = h.emulator.add_webhook_endpoint(other.url)
        send_test = f"{h.api}/internal/send-test-webhook"
        response = httpx.post(send_test, headers=admin, json={"endpoint_id": named.id})
        assert response.json() == {"success": True}
        (to_other,) = other.wait_for(1)
        (to_first,) = h.receiver.wait_for(1)
        for received in (to_other, to_first):
            assert verify(h.secret, received)["data"]["endpointUrl"] == other.url
        unknown = httpx.post(send_test, headers=admin, json={"endpoint_id": "ep_unknown"})
        assert unknown.json() == {
            "success": False,
            "error_message": "Endpoint not found. Make sure it still exists.",
        }
        server = httpx.post(send_test, headers=server_headers(), json={"endpoint_id": named.id})
        known_error(server, 401, "INSUFFICIENT_ACCESS_TYPE")
        assert h.emulator.send_test_webhook(named.id) is True
        assert h.emulator.send_test_webhook("ep_unknown") is False


def test_endpoints_from_the_command_line() -> None:
    with receiving(statuses=(500, 500)) as receiver:
        args = [
            "--port",
            "0",
            "--webhook",
            receiver.url,
            "--webhook-secret",
            FIXED_SECRET,
            "--webhook-retry-schedule",
            "0.05,0.1",
        ]
        with child(["-m", "fastapi_stack_auth.emulator", *args]) as proc:
            api = proc.wait_for(r"API URL \(STACK_API_URL\)\s+(http://\S+)").group(1)
            proc.wait_for(re.escape(receiver.url))
            line = proc.wait_for(r"^\s*export STACK_WEBHOOK_SECRET=(\S+)$")
            assert line.group(1) == FIXED_SECRET
            proc.wait_for("Ctrl-C stops everything")
            headers = DEFAULT_SERVER
            created = httpx.post(f"{api}/api/v1/users", headers=headers, json={})
            assert created.status_code == 201
            attempts = receiver.wait_for(3)
            assert [a.answered for a in attempts] == [500, 500, 204]
            assert len({a.headers["svix-id"] for a in attempts}) == 1
            for attempt in attempts:
                assert verify(FIXED_SECRET, attempt)["data"]["id"] == created.json()["id"]
            item = settled_over_http(api, headers)
            assert item["status"] == "delivered"
            assert [a["status_code"] for a in item["attempts"]] == [500, 500, 204]
            proc.process.send_signal(signal.SIGINT)
            assert proc.process.wait(timeout=30) == 0
            output = proc.rest()
    assert "Traceback" not in output
    assert "Task was destroyed" not in output


def test_the_command_stops_with_a_retry_pending() -> None:
    with receiving(statuses=(500,)) as receiver:
        args = ["--port", "0", "--webhook", receiver.url, "--webhook-retry-schedule", "3600"]
        with child(["-m", "fastapi_stack_auth.emulator", *args]) as proc:
            api = proc.wait_for(r"API URL \(STACK_API_URL\)\s+(http://\S+)").group(1)
            proc.wait_for("Ctrl-C stops everything")
            headers = DEFAULT_SERVER
            assert httpx.post(f"{api}/api/v1/users", headers=headers, json={}).status_code == 201
            receiver.wait_for(1)
            started = time.monotonic()
            proc.process.send_signal(signal.SIGINT)
            assert proc.process.wait(timeout=30) == 0
            assert time.monotonic() - started < 20
            output = proc.rest()
    assert "Stack Auth emulator stopped." in output
    assert "Traceback" not in output
    assert "Task was destroyed" not in output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--webhook", "ftp://127.0.0.1/x"], "http"),
        (["--webhook", "not a url"], "webhook"),
        (["--webhook-secret", "whsec_c2hvcnQ="], "whsec_"),
        (["--webhook-secret", "s3cr3t-value-not-echoed"], "whsec_"),
        (["--webhook-retry-schedule", "5,soon"], "delays"),
        (["--webhook-retry-schedule", "-1"], "delays"),
    ],
)
def test_bad_webhook_flags(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--port", "0", *args])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    assert "s3cr3t" not in err  # a secret is never echoed


@pytest.mark.parametrize(("size", "ok"), [(23, False), (24, True), (75, True), (76, False)])
def test_the_emulator_takes_the_secrets_svix_and_the_library_take(size: int, ok: bool) -> None:
    secret = "whsec_" + base64.b64encode(bytes(range(size))).decode()
    for check in (check_webhook_secret, secret_key):
        if ok:
            check(secret)
        else:
            with pytest.raises(ValueError, match="byte"):
                check(secret)


def test_a_timeout_of_zero_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--port", "0", "--webhook-timeout", "0"]) == 2
    assert "timeout" in capsys.readouterr().err


# --- the banner ---------------------------------------------------------------------------------


def test_the_banner_prints_a_fresh_svix_secret_on_its_own_line() -> None:
    secrets = []
    for _ in range(2):
        emulator = Emulator()
        lines = banner(emulator, ttl=600).splitlines()
        (line,) = [line for line in lines if "STACK_WEBHOOK_SECRET=" in line]
        match = re.fullmatch(r"    export STACK_WEBHOOK_SECRET=(whsec_([A-Za-z0-9+/]{32}))", line)
        assert match is not None, line
        assert len(base64.b64decode(match.group(2), validate=True)) == 24
        assert match.group(1) == emulator.webhook_secret.get_secret_value()
        assert "webhook-endpoints" in "\n".join(lines)  # how to add an endpoint
        secrets.append(match.group(1))
    assert secrets[0] != secrets[1]
    fixed = Emulator(webhook_secret=FIXED_SECRET, webhook_endpoints=["http://127.0.0.1:9/h"])
    text = banner(fixed, ttl=600)
    assert f"    export STACK_WEBHOOK_SECRET={FIXED_SECRET}" in text.splitlines()
    assert "    http://127.0.0.1:9/h" in text.splitlines()
    assert FIXED_SECRET not in repr(fixed.webhook_secret)


# --- the pytest plugin --------------------------------------------------------------------------


def test_the_plugin_helpers(stack_emulator: EmulatedStack) -> None:
    with receiving() as receiver:
        endpoint = stack_emulator.add_webhook_endpoint(receiver.url)
        try:
            user = stack_emulator.create_user()
            team = stack_emulator.create_team(user)
            other = stack_emulator.create_user()
            stack_emulator.grant_team_permission(other, team, "docs:read")
            log = stack_emulator.wait_for_webhooks(6)
            assert [(d.event_type, d.status) for d in log] == [
                ("user.created", "delivered"),
                ("team.created", "delivered"),
                ("user.created", "delivered"),
                ("team_membership.created", "delivered"),
                ("team_permission.created", "delivered"),
                ("team_permission.created", "delivered"),
            ]
            assert [d.payload["data"].get("id") for d in log[4:]] == ["team_member", "docs:read"]
            assert stack_emulator.webhook_deliveries() == log
            secret = stack_emulator.webhook_secret.get_secret_value()
            for received in receiver.wait_for(6):
                verify(secret, received)
        finally:
            assert stack_emulator.remove_webhook_endpoint(endpoint)
        assert not stack_emulator.remove_webhook_endpoint(endpoint.id)
