"""The webhook receiver: verification with the contract's signed delivery, every event type
typed, redeliveries, handlers and their failures, the library's own cache invalidation, the
settings, the dependency for your own route, and the signing helpers.

Hostile inputs are in test_webhooks_hostile.py, several workers over a real Redis in
test_webhooks_redis.py. The helpers at the top are shared by all three.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI, HTTPException
from fastapi.testclient import TestClient
from standardwebhooks import Webhook

from fastapi_stack_auth import StackAuthConfigError
from fastapi_stack_auth.models import StackUser, Team
from fastapi_stack_auth.testing import WEBHOOK_TEST_SECRET, WebhookSigner
from fastapi_stack_auth.webhooks import (
    ProjectPermissionCreated,
    ProjectPermissionDeleted,
    StackTestEvent,
    StackWebhooks,
    TeamCreated,
    TeamDeleted,
    TeamMembershipCreated,
    TeamMembershipDeleted,
    TeamPermissionCreated,
    TeamPermissionDeleted,
    TeamUpdated,
    UnknownEvent,
    UserCreated,
    UserDeleted,
    UserUpdated,
    WebhookEvent,
    WebhookSettings,
    new_message_id,
    new_webhook_secret,
    sign_webhook,
)
from fastapi_stack_auth.webhooks._dedupe import RecentDeliveries, Seen
from tests.conftest import USER_ID

pytest_plugins = ["fastapi_stack_auth.testing"]

# --- shared helpers ------------------------------------------------------------------------------

WEBHOOKS = Path(__file__).parent / "fixtures" / "stack-auth-api" / "webhooks"
SIGNED = json.loads((WEBHOOKS / "signed-delivery.TEST-ONLY.json").read_text())
SIGNED_AT = int(SIGNED["headers"]["svix-timestamp"])
EVENT_FILES = sorted(p.name for p in WEBHOOKS.glob("*.json") if "TEST-ONLY" not in p.name)
NOW = SIGNED_AT
PATH = "/webhooks/stack"
SECRET = new_webhook_secret()
LOGGER = "fastapi_stack_auth.webhooks"
VERIFICATION_FAILED = {
    "detail": "Webhook verification failed",
    "code": "WEBHOOK_VERIFICATION_FAILED",
}
TEAM_ID = "5b6c7d8e-9f0a-4b1c-8d2e-3f4a5b6c7d8e"


def payload(name: str) -> dict[str, Any]:
    """The body of one event fixture (``user.created.json``, ...)."""
    body: dict[str, Any] = json.loads((WEBHOOKS / name).read_text())
    return body


class Clock:
    """Epoch seconds that a test sets."""

    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Recorder:
    """A handler that records the events it gets."""

    events: list[WebhookEvent] = field(default_factory=list)

    async def __call__(self, event: WebhookEvent) -> None:
        self.events.append(event)

    @property
    def ids(self) -> list[str]:
        return [e.id for e in self.events]


@dataclass
class FakeInvalidation:
    """Records each call of the ``StackAuth.invalidation`` protocol."""

    calls: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    fail: bool = False
    #: What each method answers: False when "the other workers were not told".
    result: bool = True

    async def _record(self, name: str, *args: str) -> bool:
        self.calls.append((name, args))
        if self.fail:
            raise RuntimeError("invalidation broke")
        return self.result

    async def user_deleted(self, user_id: str) -> bool:
        return await self._record("user_deleted", user_id)

    async def user_changed(self, user_id: str) -> bool:
        return await self._record("user_changed", user_id)

    async def memberships_changed(self, user_id: str, team_id: str) -> bool:
        return await self._record("memberships_changed", user_id, team_id)

    async def team_permissions_changed(self, user_id: str, team_id: str) -> bool:
        return await self._record("team_permissions_changed", user_id, team_id)

    async def project_permissions_changed(self, user_id: str) -> bool:
        return await self._record("project_permissions_changed", user_id)

    async def team_changed(self, team_id: str) -> bool:
        return await self._record("team_changed", team_id)

    async def team_deleted(self, team_id: str) -> bool:
        return await self._record("team_deleted", team_id)


@dataclass
class FakeStack:
    """What the receiver uses of a ``StackAuth``: its invalidation, and no Redis tier."""

    invalidation: FakeInvalidation = field(default_factory=FakeInvalidation)
    shared_tier: None = None


def receiver(
    secret: str | list[str] = SECRET, clock: Clock | None = None, **options: Any
) -> tuple[FastAPI, StackWebhooks, Recorder]:
    """An app with a receiver at ``PATH`` whose catch-all handler records every event."""
    hooks = StackWebhooks(webhook_secret=secret, clock=clock or Clock(), **options)
    recorder = Recorder()
    hooks.on(WebhookEvent)(recorder)
    app = FastAPI()
    app.include_router(hooks.router, prefix=PATH)
    return app, hooks, recorder


def signed(
    body: dict[str, Any] | str | bytes,
    secret: str | list[str] = SECRET,
    **options: Any,
) -> tuple[bytes, dict[str, str]]:
    """``sign_webhook`` at ``NOW`` unless told otherwise."""
    options.setdefault("timestamp", NOW)
    return sign_webhook(body, secret, **options)


def post(client: TestClient, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return client.post(PATH, content=body, headers=headers)


def messages(caplog: pytest.LogCaptureFixture, level: int = logging.INFO) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno >= level]


# --- the contract's signed delivery ------------------------------------------------------------


def test_the_signed_fixture_verifies_with_the_clock_pinned() -> None:
    app, _, recorder = receiver(SIGNED["secret"], Clock(SIGNED_AT))
    response = post(TestClient(app), SIGNED["body"].encode(), SIGNED["headers"])
    assert response.status_code == 204
    assert response.content == b""
    (event,) = recorder.events
    assert isinstance(event, TeamCreated)
    assert event.id == SIGNED["headers"]["svix-id"]
    assert event.timestamp == datetime.fromtimestamp(SIGNED_AT, tz=timezone.utc)
    assert event.data.display_name == "New Team"


def test_the_signed_fixture_is_what_sign_webhook_makes() -> None:
    body, headers = sign_webhook(
        SIGNED["body"],
        SIGNED["secret"],
        msg_id=SIGNED["headers"]["svix-id"],
        timestamp=SIGNED_AT,
    )
    assert body == SIGNED["body"].encode()
    assert headers == SIGNED["headers"]


def test_any_one_byte_change_to_the_signed_fixture_fails() -> None:
    app, _, recorder = receiver(SIGNED["secret"], Clock(SIGNED_AT))
    client = TestClient(app)
    body = SIGNED["body"].encode()
    for i in range(len(body)):
        changed = body[:i] + bytes([body[i] ^ 0x01]) + body[i + 1 :]
        response = post(client, changed, SIGNED["headers"])
        assert response.status_code == 400, i
        assert response.json() == VERIFICATION_FAILED
    for name in ("svix-id", "svix-signature", "svix-timestamp"):
        value = SIGNED["headers"][name]
        for i in range(len(value)):
            char = value[i]
            replacement = "0" if char == "1" else "1" if char.isdigit() else chr(ord(char) ^ 1)
            headers = {**SIGNED["headers"], name: value[:i] + replacement + value[i + 1 :]}
            response = post(client, body, headers)
            assert response.status_code == 400, (name, i)
    assert recorder.events == []


# --- typed events -------------------------------------------------------------------------------

EXPECTED_CLASS: dict[str, type[WebhookEvent]] = {
    "user.created": UserCreated,
    "user.updated": UserUpdated,
    "user.deleted": UserDeleted,
    "team.created": TeamCreated,
    "team.updated": TeamUpdated,
    "team.deleted": TeamDeleted,
    "team_membership.created": TeamMembershipCreated,
    "team_membership.deleted": TeamMembershipDeleted,
    "team_permission.created": TeamPermissionCreated,
    "team_permission.deleted": TeamPermissionDeleted,
    "project_permission.created": ProjectPermissionCreated,
    "project_permission.deleted": ProjectPermissionDeleted,
    "stack.test": StackTestEvent,
}


def test_every_event_type_of_the_contract_has_a_fixture_and_a_class() -> None:
    assert sorted(f.removesuffix(".json") for f in EVENT_FILES) == sorted(EXPECTED_CLASS)


@pytest.mark.parametrize("name", EVENT_FILES)
def test_every_fixture_body_parses_into_its_typed_event(name: str) -> None:
    app, _, recorder = receiver()
    body = payload(name)
    response = post(TestClient(app), *signed(body, msg_id="msg_fixture"))
    assert response.status_code == 204
    (event,) = recorder.events
    assert type(event) is EXPECTED_CLASS[body["type"]]
    assert event.type == body["type"]
    assert event.id == "msg_fixture"
    # Every field of the fixture made it into the typed data, with its value.
    dumped = event.data.model_dump(exclude_computed_fields=True)
    for key, value in body["data"].items():
        key = "endpoint_url" if key == "endpointUrl" else key
        assert _plain(dumped[key]) == value, key


def _plain(value: Any) -> Any:
    # Tuples from the models compare equal to the fixture's lists.
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def test_user_events_carry_the_librarys_user_and_team_models() -> None:
    app, _, recorder = receiver()
    client = TestClient(app)
    for name in ("user.created.json", "user.updated.json", "team.updated.json"):
        assert post(client, *signed(payload(name))).status_code == 204
    created, updated, team = recorder.events
    assert isinstance(created, UserCreated)
    assert isinstance(created.data, StackUser)
    assert created.data.selected_team is None  # built before the personal team exists
    assert isinstance(updated, UserUpdated)
    assert isinstance(updated.data.selected_team, Team)
    assert isinstance(team, TeamUpdated)
    assert isinstance(team.data, Team)


def test_stack_test_reads_its_camel_case_field() -> None:
    app, _, recorder = receiver()
    assert post(TestClient(app), *signed(payload("stack.test.json"))).status_code == 204
    (event,) = recorder.events
    assert isinstance(event, StackTestEvent)
    assert event.data.endpoint_url == "https://app.example.com/api/webhooks/stack"


def test_fields_stack_adds_later_are_kept() -> None:
    app, _, recorder = receiver()
    body = payload("team_membership.created.json")
    body["data"]["role"] = "owner"
    assert post(TestClient(app), *signed(body)).status_code == 204
    (event,) = recorder.events
    assert isinstance(event, TeamMembershipCreated)
    assert event.data.model_extra == {"role": "owner"}


def test_an_unknown_type_goes_to_the_catch_all_handlers() -> None:
    app, hooks, everything = receiver()
    unknown: list[UnknownEvent] = []
    deleted: list[UserDeleted] = []
    hooks.on(UnknownEvent)(unknown.append)
    hooks.on(UserDeleted)(deleted.append)
    client = TestClient(app)
    body = {"type": "session.revoked", "data": {"id": "s1", "nested": [1, {"a": None}]}}
    assert post(client, *signed(body)).status_code == 204
    assert post(client, *signed(payload("user.deleted.json"))).status_code == 204
    (event,) = unknown
    assert event.type == "session.revoked"
    assert event.data == {"id": "s1", "nested": [1, {"a": None}]}
    assert [e.type for e in deleted] == ["user.deleted"]
    assert [e.type for e in everything.events] == ["session.revoked", "user.deleted"]


def test_events_are_frozen() -> None:
    app, _, recorder = receiver()
    post(TestClient(app), *signed(payload("team.deleted.json")))
    with pytest.raises(ValueError, match="frozen"):
        recorder.events[0].id = "msg_other"


# --- handlers -----------------------------------------------------------------------------------


def test_handlers_run_in_registration_order_async_and_plain() -> None:
    hooks = StackWebhooks(webhook_secret=SECRET, clock=Clock())
    calls: list[str] = []

    @hooks.on(UserDeleted)
    async def first(event: UserDeleted) -> None:
        calls.append(f"first {event.data.id}")

    @hooks.on(WebhookEvent)
    def second(event: WebhookEvent) -> None:  # a plain function: run in the thread pool
        calls.append(f"second {event.type}")

    @hooks.on(UserDeleted)
    async def third(event: UserDeleted) -> None:
        calls.append(f"third {[t.id for t in event.data.teams]}")

    app = FastAPI()
    app.include_router(hooks.router, prefix=PATH)
    assert post(TestClient(app), *signed(payload("user.deleted.json"))).status_code == 204
    assert calls == [
        f"first {USER_ID}",
        "second user.deleted",
        f"third {['c4e7a9b1-2d3f-4a5b-9c6d-7e8f9a0b1c2d', TEAM_ID]}",
    ]


def test_on_returns_the_handler_and_refuses_what_is_not_an_event_class() -> None:
    hooks = StackWebhooks(webhook_secret=SECRET)

    async def forget(event: UserDeleted) -> None:
        pass

    assert hooks.on(UserDeleted)(forget) is forget
    with pytest.raises(TypeError, match="event class"):
        hooks.on(dict)  # type: ignore[type-var]


def test_an_event_without_handlers_is_acknowledged() -> None:
    hooks = StackWebhooks(webhook_secret=SECRET, clock=Clock())
    app = FastAPI()
    app.include_router(hooks.router, prefix=PATH)
    assert post(TestClient(app), *signed(payload("team.created.json"))).status_code == 204


def test_a_redelivery_runs_the_handlers_once() -> None:
    app, _, recorder = receiver()
    client = TestClient(app)
    body = payload("user.updated.json")
    first = signed(body, msg_id="msg_same")
    # Svix's retry: the same id, a later timestamp and so another signature.
    retry = signed(body, msg_id="msg_same", timestamp=NOW + 5)
    assert post(client, *first).status_code == 204
    assert post(client, *retry).status_code == 204
    assert post(client, *first).status_code == 204
    assert recorder.ids == ["msg_same"]
    # Another message with the same payload is another event.
    assert post(client, *signed(body, msg_id="msg_other")).status_code == 204
    assert recorder.ids == ["msg_same", "msg_other"]


def test_events_out_of_order_all_run() -> None:
    # Svix promises no order: a user deleted before they are created, a membership before the
    # team. Each is handled as it comes.
    app, _, recorder = receiver()
    client = TestClient(app)
    for name in ("user.deleted.json", "team_membership.created.json", "user.created.json"):
        assert post(client, *signed(payload(name))).status_code == 204
    assert [e.type for e in recorder.events] == [
        "user.deleted",
        "team_membership.created",
        "user.created",
    ]


def test_a_failing_handler_answers_500_and_the_retry_runs_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    hooks = StackWebhooks(webhook_secret=SECRET, clock=Clock())
    attempts: list[str] = []

    @hooks.on(UserDeleted)
    async def flaky(event: UserDeleted) -> None:
        attempts.append(event.id)
        if len(attempts) == 1:
            raise RuntimeError("database down")

    app = FastAPI()
    app.include_router(hooks.router, prefix=PATH)
    client = TestClient(app)
    body = payload("user.deleted.json")
    response = post(client, *signed(body, msg_id="msg_retry"))
    assert response.status_code == 500
    assert response.json() == {
        "detail": "A webhook handler failed",
        "code": "WEBHOOK_HANDLER_FAILED",
    }
    assert any("flaky failed on msg_retry" in m for m in messages(caplog, logging.ERROR))
    assert post(client, *signed(body, msg_id="msg_retry", timestamp=NOW + 5)).status_code == 204
    assert post(client, *signed(body, msg_id="msg_retry", timestamp=NOW + 10)).status_code == 204
    assert attempts == ["msg_retry", "msg_retry"]


def test_a_failing_plain_handler_answers_500() -> None:
    hooks = StackWebhooks(webhook_secret=SECRET, clock=Clock())

    @hooks.on(WebhookEvent)
    def broken(event: WebhookEvent) -> None:
        raise ValueError("nope")

    app = FastAPI()
    app.include_router(hooks.router, prefix=PATH)
    response = post(TestClient(app), *signed(payload("team.deleted.json")))
    assert response.status_code == 500


async def test_a_duplicate_arriving_while_the_first_runs_is_answered_409() -> None:
    hooks = StackWebhooks(webhook_secret=SECRET, clock=Clock())
    started, release = asyncio.Event(), asyncio.Event()
    runs: list[str] = []

    @hooks.on(UserDeleted)
    async def slow(event: UserDeleted) -> None:
        runs.append(event.id)
        started.set()
        await release.wait()

    app = FastAPI()
    app.include_router(hooks.router, prefix=PATH)
    body, headers = signed(payload("user.deleted.json"), msg_id="msg_busy")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as client:
        first = asyncio.create_task(client.post(PATH, content=body, headers=headers))
        await started.wait()
        duplicate = await client.post(PATH, content=body, headers=headers)
        assert duplicate.status_code == 409
        assert duplicate.json()["code"] == "WEBHOOK_IN_PROGRESS"
        assert int(duplicate.headers["retry-after"]) > 0
        release.set()
        assert (await first).status_code == 204
        again = await client.post(PATH, content=body, headers=headers)
        assert again.status_code == 204
    assert runs == ["msg_busy"]


# --- the library's own subscription -------------------------------------------------------------

INVALIDATIONS: dict[str, list[tuple[str, tuple[str, ...]]]] = {
    "user.created.json": [],
    "user.updated.json": [("user_changed", (USER_ID,))],
    "user.deleted.json": [("user_deleted", (USER_ID,))],
    "team.created.json": [],
    "team.updated.json": [("team_changed", (TEAM_ID,))],
    "team.deleted.json": [("team_deleted", (TEAM_ID,))],
    "team_membership.created.json": [
        ("memberships_changed", ("9d2e4f6a-1b3c-4d5e-8f7a-6b5c4d3e2f1a", TEAM_ID))
    ],
    "team_membership.deleted.json": [
        ("memberships_changed", ("9d2e4f6a-1b3c-4d5e-8f7a-6b5c4d3e2f1a", TEAM_ID))
    ],
    "team_permission.created.json": [
        ("team_permissions_changed", ("9d2e4f6a-1b3c-4d5e-8f7a-6b5c4d3e2f1a", TEAM_ID))
    ],
    "team_permission.deleted.json": [("team_permissions_changed", (USER_ID, TEAM_ID))],
    "project_permission.created.json": [("project_permissions_changed", (USER_ID,))],
    "project_permission.deleted.json": [("project_permissions_changed", (USER_ID,))],
    "stack.test.json": [],
}


def test_every_event_type_has_an_invalidation_row() -> None:
    assert sorted(INVALIDATIONS) == EVENT_FILES


@pytest.mark.parametrize("name", EVENT_FILES)
def test_events_drop_what_they_made_stale_before_the_handlers_run(name: str) -> None:
    stack = FakeStack()
    hooks = StackWebhooks(webhook_secret=SECRET, clock=Clock(), stack=stack)  # type: ignore[arg-type]
    seen_by_handler: list[list[tuple[str, tuple[str, ...]]]] = []

    @hooks.on(WebhookEvent)
    async def handler(event: WebhookEvent) -> None:
        seen_by_handler.append(list(stack.invalidation.calls))

    app = FastAPI()
    app.include_router(hooks.router, prefix=PATH)
    assert post(TestClient(app), *signed(payload(name))).status_code == 204
    assert stack.invalidation.calls == INVALIDATIONS[name]
    assert seen_by_handler == [INVALIDATIONS[name]]


def test_the_apps_default_stack_auth_is_invalidated() -> None:
    stack = FakeStack()
    app, _, recorder = receiver()
    app.state.stack_auth = stack  # what StackAuth.init_app sets
    assert post(TestClient(app), *signed(payload("user.deleted.json"))).status_code == 204
    assert stack.invalidation.calls == [("user_deleted", (USER_ID,))]
    assert len(recorder.events) == 1


def test_an_unknown_type_invalidates_nothing() -> None:
    stack = FakeStack()
    app, _, recorder = receiver()
    app.state.stack_auth = stack
    body = {"type": "user.banned", "data": {"id": USER_ID}}
    assert post(TestClient(app), *signed(body)).status_code == 204
    assert stack.invalidation.calls == []
    assert len(recorder.events) == 1


def test_a_failed_invalidation_is_logged_and_the_event_still_handled(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stack = FakeStack(FakeInvalidation(fail=True))
    app, _, recorder = receiver()
    app.state.stack_auth = stack
    client = TestClient(app)
    body, headers = signed(payload("user.deleted.json"), msg_id="msg_inv")
    assert post(client, body, headers).status_code == 204
    assert recorder.ids == ["msg_inv"]
    assert any("msg_inv" in m and "expire" in m for m in messages(caplog, logging.ERROR))
    assert post(client, body, headers).status_code == 204  # handled: not run again
    assert recorder.ids == ["msg_inv"]


def test_other_workers_not_told_is_a_warning_and_the_event_still_handled(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stack = FakeStack(FakeInvalidation(result=False))
    app, _, recorder = receiver()
    app.state.stack_auth = stack
    body, headers = signed(payload("team.deleted.json"), msg_id="msg_untold")
    assert post(TestClient(app), body, headers).status_code == 204
    assert recorder.ids == ["msg_untold"]
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "msg_untold" in warning
    assert "did not take the news" in warning


def test_without_a_stack_auth_events_are_handled_without_invalidation() -> None:
    app, _, recorder = receiver()
    assert post(TestClient(app), *signed(payload("user.deleted.json"))).status_code == 204
    assert len(recorder.events) == 1


# --- settings -----------------------------------------------------------------------------------


def test_settings_are_read_at_the_first_delivery_not_at_construction(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hooks = StackWebhooks(clock=Clock())  # no variable set yet: construction reads nothing
    recorder = Recorder()
    hooks.on(WebhookEvent)(recorder)
    app = FastAPI()
    app.include_router(hooks.router, prefix=PATH)
    monkeypatch.setenv("STACK_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("STACK_WEBHOOK_TOLERANCE", "60")
    assert post(TestClient(app), *signed(payload("team.deleted.json"))).status_code == 204
    assert hooks.settings.webhook_tolerance == 60
    assert len(recorder.events) == 1


def test_without_a_secret_every_delivery_is_500_and_an_error_names_the_variable(
    caplog: pytest.LogCaptureFixture,
) -> None:
    hooks = StackWebhooks(clock=Clock())
    app = FastAPI()
    app.include_router(hooks.router, prefix=PATH)
    client = TestClient(app)
    for _ in range(3):
        response = post(client, *signed(payload("team.deleted.json")))
        assert response.status_code == 500
        assert response.json() == {
            "detail": "Webhook receiver is not configured",
            "code": "WEBHOOK_NOT_CONFIGURED",
        }
    errors = messages(caplog, logging.ERROR)
    assert len(errors) == 1  # not once per request
    assert "STACK_WEBHOOK_SECRET is not set" in errors[0]


@pytest.mark.parametrize(
    "value",
    [
        "ssk_test_0123456789abcdef_SECRET",  # another key in the wrong variable
        "whsec_====",
        "whsec_not*base64",
        f"{SECRET} whsec_###",
    ],
)
def test_an_invalid_secret_is_500_and_never_logged(
    value: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STACK_WEBHOOK_SECRET", value)
    hooks = StackWebhooks(clock=Clock())
    app = FastAPI()
    app.include_router(hooks.router, prefix=PATH)
    response = post(TestClient(app), *signed(payload("team.deleted.json")))
    assert response.status_code == 500
    assert response.json()["code"] == "WEBHOOK_NOT_CONFIGURED"
    (error,) = messages(caplog, logging.ERROR)
    assert "STACK_WEBHOOK_SECRET is invalid" in error
    assert value not in caplog.text
    assert SECRET not in caplog.text
    with pytest.raises(StackAuthConfigError, match="STACK_WEBHOOK_SECRET") as raised:
        _ = hooks.settings
    assert value not in str(raised.value)


@pytest.mark.parametrize("separator", [",", " ", ", ", "\n"])
def test_several_secrets_in_one_variable(separator: str, monkeypatch: pytest.MonkeyPatch) -> None:
    old, new = new_webhook_secret(), new_webhook_secret()
    monkeypatch.setenv("STACK_WEBHOOK_SECRET", old + separator + new)
    hooks = StackWebhooks(clock=Clock())
    assert [s.get_secret_value() for s in hooks.settings.secrets] == [old, new]
    app = FastAPI()
    app.include_router(hooks.router, prefix=PATH)
    client = TestClient(app)
    assert post(client, *signed(payload("team.deleted.json"), old)).status_code == 204
    assert post(client, *signed(payload("team.deleted.json"), new)).status_code == 204


def test_settings_never_show_the_secret() -> None:
    settings = WebhookSettings(webhook_secret=SECRET)
    assert SECRET not in repr(settings)
    assert SECRET not in str(settings.secrets)
    assert SECRET[6:] not in repr(StackWebhooks(settings))


def test_unpadded_secrets_are_accepted() -> None:
    # Svix's own libraries accept a secret without its base64 padding.
    padded = base64.b64encode(bytes(range(25))).decode()  # a 25-byte key ends in "=="
    assert padded.endswith("==")
    secret = "whsec_" + padded.rstrip("=")
    app, _, recorder = receiver(secret)
    assert post(TestClient(app), *signed(payload("team.deleted.json"), secret)).status_code == 204
    assert len(recorder.events) == 1


def test_an_env_prefix_reads_other_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STACK_B_WEBHOOK_SECRET", SECRET)
    hooks = StackWebhooks(env_prefix="STACK_B_")
    assert hooks.settings.secrets[0].get_secret_value() == SECRET


def test_settings_and_overrides_do_not_mix() -> None:
    with pytest.raises(TypeError):
        StackWebhooks(WebhookSettings(), webhook_secret=SECRET)


def test_an_empty_secret_means_not_configured() -> None:
    assert WebhookSettings(webhook_secret="").secrets == ()
    assert WebhookSettings(webhook_secret=" , ").secrets == ()


def test_the_tolerance_setting_is_used() -> None:
    clock = Clock()
    app, _, _ = receiver(clock=clock, webhook_tolerance=10)
    client = TestClient(app)
    body, headers = signed(payload("team.deleted.json"))
    clock.now = NOW + 11
    assert post(client, body, headers).status_code == 400
    clock.now = NOW + 10
    assert post(client, body, headers).status_code == 204


# --- the dependency, for your own route ---------------------------------------------------------


def own_route(hooks: StackWebhooks, fail_first: bool = False) -> tuple[FastAPI, list[str]]:
    app = FastAPI()
    seen: list[str] = []

    @app.post("/hooks", status_code=204)
    async def receive(event: WebhookEvent = Depends(hooks.verified_event)) -> None:
        seen.append(f"{event.type} {event.id}")
        if fail_first and len(seen) == 1:
            raise HTTPException(503, "try later")

    return app, seen


def test_the_dependency_gives_the_verified_event_once() -> None:
    stack = FakeStack()
    hooks = StackWebhooks(webhook_secret=SECRET, clock=Clock(), stack=stack)  # type: ignore[arg-type]
    app, seen = own_route(hooks)
    client = TestClient(app)
    body, headers = signed(payload("user.deleted.json"), msg_id="msg_dep")
    assert client.post("/hooks", content=body, headers=headers).status_code == 204
    duplicate = client.post("/hooks", content=body, headers=headers)
    assert duplicate.status_code == 200  # acknowledged; the route is not called again
    assert seen == ["user.deleted msg_dep"]
    assert stack.invalidation.calls == [("user_deleted", (USER_ID,))]


def test_the_dependency_releases_the_id_when_the_route_fails() -> None:
    hooks = StackWebhooks(webhook_secret=SECRET, clock=Clock())
    app, seen = own_route(hooks, fail_first=True)
    client = TestClient(app)
    body, headers = signed(payload("team.deleted.json"), msg_id="msg_dep_fail")
    assert client.post("/hooks", content=body, headers=headers).status_code == 503
    assert client.post("/hooks", content=body, headers=headers).status_code == 204
    assert client.post("/hooks", content=body, headers=headers).status_code == 200
    assert seen == ["team.deleted msg_dep_fail", "team.deleted msg_dep_fail"]


def test_the_dependency_refuses_what_the_router_refuses() -> None:
    hooks = StackWebhooks(webhook_secret=SECRET, clock=Clock())
    app, seen = own_route(hooks)
    body, headers = signed(payload("team.deleted.json"), new_webhook_secret())
    response = TestClient(app).post("/hooks", content=body, headers=headers)
    assert response.status_code == 400
    assert response.json()["detail"] == "Webhook verification failed"
    assert seen == []


async def test_the_dependency_answers_with_codes_under_stack_auth(
    stack_settings: dict[str, Any], mock_api: Any
) -> None:
    from fastapi_stack_auth import StackAuth

    stack = StackAuth(**stack_settings)
    hooks = StackWebhooks(webhook_secret=SECRET, clock=Clock())
    app, seen = own_route(hooks)
    stack.init_app(app)  # its error handler renders {"detail", "code"}
    body, headers = signed(payload("team.deleted.json"), msg_id="msg_codes")
    transport = httpx.ASGITransport(app=app)
    async with stack, httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        forged = await client.post("/hooks", content=body, headers={**headers, "svix-id": "x"})
        assert forged.json() == VERIFICATION_FAILED
        assert (await client.post("/hooks", content=body, headers=headers)).status_code == 204
        again = await client.post("/hooks", content=body, headers=headers)
        assert again.status_code == 200
        assert again.json()["code"] == "WEBHOOK_ALREADY_HANDLED"
    assert seen == ["team.deleted msg_codes"]


# --- signing, for users' tests ------------------------------------------------------------------


def test_sign_webhook_passes_the_reference_verifier() -> None:
    body, headers = sign_webhook(payload("user.created.json"), SECRET, header_prefix="webhook")
    # The Standard Webhooks reference verifier, against the wall clock.
    assert Webhook(SECRET).verify(body, headers) == payload("user.created.json")
    assert headers["content-type"] == "application/json"


def test_sign_webhook_signs_with_each_secret_given() -> None:
    a, b = new_webhook_secret(), new_webhook_secret()
    _, headers = sign_webhook({"type": "x", "data": {}}, [a, b])
    assert headers["svix-signature"].count("v1,") == 2
    assert headers["svix-id"].startswith("msg_")
    assert len(headers["svix-id"]) == 31


def test_new_ids_and_secrets_are_fresh() -> None:
    assert new_message_id() != new_message_id()
    assert new_webhook_secret() != new_webhook_secret()


def test_the_signer_fixture_sets_the_secret_and_signs_with_it(
    stack_webhook_signer: WebhookSigner,
) -> None:
    import os

    assert stack_webhook_signer.secret == WEBHOOK_TEST_SECRET
    assert WEBHOOK_TEST_SECRET not in repr(stack_webhook_signer)  # e.g. in pytest -l output
    assert os.environ["STACK_WEBHOOK_SECRET"] == WEBHOOK_TEST_SECRET
    hooks = StackWebhooks()  # reads the variable the fixture set
    recorder = Recorder()
    hooks.on(WebhookEvent)(recorder)
    app = FastAPI()
    app.include_router(hooks.router, prefix=PATH)
    body, headers = stack_webhook_signer(payload("user.deleted.json"), msg_id="msg_fixture")
    assert TestClient(app).post(PATH, content=body, headers=headers).status_code == 204
    assert recorder.ids == ["msg_fixture"]


# --- the memory of message ids ------------------------------------------------------------------


class Ticks:
    """A monotonic timer that a test moves."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_a_done_id_is_remembered_for_the_ttl_then_forgotten() -> None:
    ticks = Ticks()
    memory = RecentDeliveries(ttl=600, maxsize=10, processing_ttl=120, timer=ticks)
    assert await memory.claim("a", None) is Seen.NEW
    assert await memory.claim("a", None) is Seen.BUSY
    await memory.done("a", None)
    ticks.now = 599
    assert await memory.claim("a", None) is Seen.DONE
    ticks.now = 601
    assert await memory.claim("a", None) is Seen.NEW


async def test_a_processing_claim_lapses_so_a_crashed_delivery_is_not_blocked() -> None:
    ticks = Ticks()
    memory = RecentDeliveries(ttl=600, maxsize=10, processing_ttl=120, timer=ticks)
    assert await memory.claim("a", None) is Seen.NEW
    ticks.now = 119
    assert await memory.claim("a", None) is Seen.BUSY
    ticks.now = 121
    assert await memory.claim("a", None) is Seen.NEW


async def test_a_released_id_can_be_claimed_again() -> None:
    memory = RecentDeliveries(ttl=600, maxsize=10)
    assert await memory.claim("a", None) is Seen.NEW
    await memory.release("a", None)
    assert await memory.claim("a", None) is Seen.NEW


async def test_the_memory_is_bounded() -> None:
    memory = RecentDeliveries(ttl=600, maxsize=2)
    for key in ("a", "b", "c"):
        assert await memory.claim(key, None) is Seen.NEW
        await memory.done(key, None)
    assert await memory.claim("c", None) is Seen.DONE
    assert await memory.claim("a", None) is Seen.NEW  # the oldest was let go


def test_the_dedupe_size_setting_bounds_the_receivers_memory() -> None:
    app, _, recorder = receiver(webhook_dedupe_max_entries=1)
    client = TestClient(app)
    first = signed(payload("team.deleted.json"), msg_id="msg_1")
    assert post(client, *first).status_code == 204
    assert post(client, *signed(payload("team.deleted.json"), msg_id="msg_2")).status_code == 204
    assert post(client, *first).status_code == 204
    assert recorder.ids == ["msg_1", "msg_2", "msg_1"]
