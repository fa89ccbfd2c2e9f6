"""The emulator's webhooks against the contract's fixtures (§13): every event type is sent, each
delivered body has its fixture's field names and JSON types, and the HTTP request and signature
have the format of the signed-delivery fixture. One scenario over real loopback (the emulator
and a receiver, each served by uvicorn) makes every event type once or more."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from fastapi_stack_auth.emulator import Emulator, EmulatorServer
from fastapi_stack_auth.emulator._webhooks import WebhookSender
from tests.emulator_helpers import (
    ADMIN,
    FIXTURES,
    PROJECT_ID,
    assert_same_shape,
    client_headers,
    fixture,
    seed,
    server_headers,
)
from tests.test_emulator_webhooks import Received, receiving, verify

#: One fixture per event type, named after it.
EVENT_TYPES = sorted(
    path.stem for path in (FIXTURES / "webhooks").glob("*.json") if "TEST-ONLY" not in path.name
)
SIGNED = fixture("webhooks/signed-delivery.TEST-ONLY.json")


def _scenario(http: httpx.Client, admin: dict[str, str], endpoint_id: str) -> None:
    """Every event type, the users and teams shaped like the fixtures' (no metadata, a
    display name and a selected team in ``user.updated``, two teams in ``user.deleted``)."""

    def ok(method: str, path: str, status: int = 200, **kwargs: Any) -> Any:
        if method == "POST":
            kwargs.setdefault("json", {})
        response = http.request(method, path, **kwargs)
        assert response.status_code == status, response.text
        return response.json()

    sign_up = {"email": "fidelity@example.com", "password": "password-123"}
    user = ok("POST", "/auth/password/sign-up", headers=client_headers(), json=sign_up)["user_id"]
    team = ok("POST", "/teams", 201, json={"display_name": "New Team", "creator_user_id": user})
    update = {"display_name": "Test User", "selected_team_id": team["id"]}
    ok("PATCH", f"/users/{user}", json=update)
    ok("PATCH", f"/teams/{team['id']}", json={"display_name": "Updated Team Name"})
    member = ok("POST", "/users", 201, json={"primary_email": "member@example.com"})["id"]
    ok("POST", f"/team-memberships/{team['id']}/{member}", 201)
    ok("POST", f"/team-permissions/{team['id']}/{member}/$update_team", 201)
    ok("DELETE", f"/team-permissions/{team['id']}/{member}/$update_team")
    ok("POST", f"/project-permissions/{member}/parent", 201)
    ok("DELETE", f"/project-permissions/{member}/parent")
    ok("DELETE", f"/team-memberships/{team['id']}/{member}")
    ok("POST", "/teams", 201, json={"display_name": "Second", "creator_user_id": user})
    ok("DELETE", f"/users/{user}")
    doomed = ok("POST", "/teams", 201, json={"display_name": "Doomed"})["id"]
    ok("DELETE", f"/teams/{doomed}")
    send_test = {"endpoint_id": endpoint_id}
    answer = ok("POST", "/internal/send-test-webhook", headers=admin, json=send_test)
    assert answer == {"success": True}


@pytest.fixture(scope="module")
def delivered() -> Iterator[list[Received]]:
    """Every delivery of the scenario, verified with the secret, in the order of the events."""
    admin = {
        "x-stack-access-type": "admin",
        "x-stack-project-id": PROJECT_ID,
        "x-stack-super-secret-admin-key": ADMIN,
    }
    with receiving() as receiver:
        emulator = Emulator(seed())
        emulator.define_permission("parent", scope="project")
        endpoint = emulator.add_webhook_endpoint(receiver.url)
        with EmulatorServer(emulator) as server:
            api = f"{server.url}/api/v1"
            with httpx.Client(base_url=api, headers=server_headers()) as http:
                _scenario(http, admin, endpoint.id)
            log = emulator.wait_for_webhook_deliveries()
            assert all(d.status == "delivered" for d in log)
            by_id = {r.headers["svix-id"]: r for r in receiver.wait_for(len(log))}
            secret = emulator.webhook_secret.get_secret_value()
            for received in by_id.values():
                verify(secret, received)
            yield [by_id[d.message_id] for d in log]


def test_every_event_type_is_sent(delivered: list[Received]) -> None:
    assert sorted({r.payload["type"] for r in delivered}) == EVENT_TYPES


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_the_body_has_the_fixtures_fields_and_types(
    event_type: str, delivered: list[Received]
) -> None:
    expected = fixture(f"webhooks/{event_type}.json")
    sent = [r.payload for r in delivered if r.payload["type"] == event_type]
    assert sent
    for payload in sent:
        assert list(payload) == ["type", "data"]  # nothing else, as Stack sends it
        assert payload["type"] == expected["type"]
        assert_same_shape(payload, expected)


def test_the_body_is_serialised_like_the_signed_fixture(delivered: list[Received]) -> None:
    """Compact JSON, ``type`` before ``data``, the team's fields in the fixture's order."""
    ours = next(r for r in delivered if r.payload["type"] == "team.created")
    theirs = json.loads(SIGNED["body"])
    assert list(ours.payload) == list(theirs)
    assert list(ours.payload["data"]) == list(theirs["data"])
    assert ours.body == json.dumps(ours.payload, separators=(",", ":")).encode()
    assert SIGNED["body"] == json.dumps(theirs, separators=(",", ":"))


def test_the_headers_have_the_signed_fixtures_names_and_formats(
    delivered: list[Received],
) -> None:
    theirs = SIGNED["headers"]
    for received in delivered:
        ours = received.headers
        assert set(theirs) <= set(ours)
        assert ours["content-type"] == theirs["content-type"]
        for name in ("svix-id", "svix-timestamp", "svix-signature"):
            pattern = {
                "svix-id": r"msg_[0-9A-Za-z]{27}",
                "svix-timestamp": r"[0-9]{10}",
                "svix-signature": r"v1,[A-Za-z0-9+/]{43}=",
            }[name]
            assert re.fullmatch(pattern, theirs[name]), name  # the pattern fits Svix's ...
            assert re.fullmatch(pattern, ours[name]), name  # ... and ours
        assert ours["user-agent"].startswith("Svix-Webhooks/")


def test_the_signature_is_svixs() -> None:
    """The sender signs the fixture's message as Svix signed it (same secret, ID, timestamp
    and body: the same signature), and a changed body gets another one."""
    sender = WebhookSender(secret=SIGNED["secret"])
    headers = SIGNED["headers"]
    message_id, timestamp = headers["svix-id"], int(headers["svix-timestamp"])
    assert sender.sign(message_id, timestamp, SIGNED["body"]) == headers["svix-signature"]
    assert SIGNED["signed_content"] == f"{message_id}.{timestamp}.{SIGNED['body']}"
    changed = SIGNED["body"].replace("New Team", "New Team!")
    assert sender.sign(message_id, timestamp, changed) != headers["svix-signature"]
