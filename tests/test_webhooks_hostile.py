"""What an attacker (or a broken proxy) can send the webhook receiver: forged, replayed,
stale, oversized, malformed and wrongly signed deliveries. None may run a handler, none may
get a 500, and every verification failure gets the same answer."""

from __future__ import annotations

import base64
import itertools
import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastapi_stack_auth.webhooks import new_webhook_secret
from tests.servers import serve_in_thread
from tests.test_webhooks import (
    LOGGER,
    NOW,
    PATH,
    SECRET,
    VERIFICATION_FAILED,
    Clock,
    Recorder,
    payload,
    post,
    receiver,
    signed,
)

HOSTILE = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
PAYLOAD_INVALID = {"detail": "Webhook payload is invalid", "code": "WEBHOOK_PAYLOAD_INVALID"}
TOO_LARGE = {"detail": "Webhook body is too large", "code": "WEBHOOK_TOO_LARGE"}
MAX_BODY = 4096


@pytest.fixture
def app_and_recorder() -> tuple[FastAPI, Recorder]:
    app, _, recorder = receiver(webhook_max_body=MAX_BODY)
    return app, recorder


@pytest.fixture
def client(app_and_recorder: tuple[FastAPI, Recorder]) -> TestClient:
    return TestClient(app_and_recorder[0])


@pytest.fixture
def recorder(app_and_recorder: tuple[FastAPI, Recorder]) -> Recorder:
    return app_and_recorder[1]


def info_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER]


def refused(response: httpx.Response) -> bool:
    return response.status_code == 400 and response.json() == VERIFICATION_FAILED


# --- forged and wrongly signed ------------------------------------------------------------------


def test_a_forged_signature_is_refused(
    client: TestClient, recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    body, headers = signed(payload("user.deleted.json"))
    forged = "v1," + base64.b64encode(b"\x00" * 32).decode()
    assert refused(post(client, body, {**headers, "svix-signature": forged}))
    assert recorder.events == []
    # The log says which check failed, and never repeats a signature.
    (line,) = info_lines(caplog)
    assert "no signature matched" in line
    assert forged[3:] not in caplog.text
    assert headers["svix-signature"][3:] not in caplog.text


def test_a_signature_of_another_delivery_is_refused(client: TestClient, recorder: Recorder) -> None:
    body, headers = signed(payload("user.deleted.json"), msg_id="msg_a")
    other_body, other = signed(payload("user.updated.json"), msg_id="msg_b")
    assert refused(post(client, other_body, {**other, "svix-signature": headers["svix-signature"]}))
    assert refused(post(client, body, {**headers, "svix-id": "msg_b"}))
    assert recorder.events == []


def test_the_wrong_secret_is_refused(client: TestClient, recorder: Recorder) -> None:
    assert refused(post(client, *signed(payload("team.deleted.json"), new_webhook_secret())))
    assert recorder.events == []


def test_the_secret_string_itself_is_not_the_key(client: TestClient) -> None:
    # The key is the base64-decoded part of whsec_...: signing with the text is a forgery.
    body, headers = signed(payload("team.deleted.json"))
    import hashlib
    import hmac

    content = f"{headers['svix-id']}.{NOW}.{body.decode()}".encode()
    digest = hmac.new(SECRET.encode(), content, hashlib.sha256).digest()
    headers["svix-signature"] = "v1," + base64.b64encode(digest).decode()
    assert refused(post(client, body, headers))


@pytest.mark.parametrize("order", ["old first", "new first"])
def test_rotation_either_signature_of_two_is_enough(order: str) -> None:
    old, new = new_webhook_secret(), new_webhook_secret()
    secrets = [old, new] if order == "old first" else [new, old]
    body, headers = signed(payload("team.deleted.json"), secrets)  # two v1 entries
    for configured in (old, new, [old, new], [new_webhook_secret(), old]):
        app, _, recorder = receiver(configured)
        assert post(TestClient(app), body, headers).status_code == 204, configured
        assert len(recorder.events) == 1
    app, _, recorder = receiver([new_webhook_secret(), new_webhook_secret()])
    assert refused(post(TestClient(app), body, headers))


def test_asymmetric_and_unknown_versions_are_skipped(client: TestClient) -> None:
    body, headers = signed(payload("team.deleted.json"))
    good = headers["svix-signature"]
    signature = good.partition(",")[2]
    for value in (f"v1a,{signature}", f"v2,{signature}", f"V1,{signature}"):
        assert refused(post(client, body, {**headers, "svix-signature": value})), value
    mixed = f"v1a,{base64.b64encode(b'x' * 64).decode()} v2,abc {good}"
    assert post(client, body, {**headers, "svix-signature": mixed}).status_code == 204


def test_garbage_next_to_a_good_signature_is_ignored(client: TestClient) -> None:
    body, headers = signed(payload("team.deleted.json"))
    value = f"v1,!!! v1 ,,, v1,a,b {headers['svix-signature']} v1,"
    assert post(client, body, {**headers, "svix-signature": value}).status_code == 204


@pytest.mark.parametrize(
    "value",
    [
        "",
        " ",
        "v1",
        "v1,",
        ",",
        "v1,!!!!",
        "v1,a,b",
        "v1,====",
        "v1,YQ",  # valid base64, wrong length
        "v1," + "A" * 10_000,
        "\t",
        "v1,é",
    ],
)
def test_malformed_signature_lists_are_refused_not_500(
    value: str, client: TestClient, recorder: Recorder
) -> None:
    body, headers = signed(payload("team.deleted.json"))
    raw = [(k.encode(), v.encode()) for k, v in headers.items() if k != "svix-signature"]
    raw.append((b"svix-signature", value.encode("latin-1", "replace")))
    response = client.post(PATH, content=body, headers=raw)
    assert refused(response)
    assert recorder.events == []


# --- headers ------------------------------------------------------------------------------------


@pytest.mark.parametrize("missing", ["svix-id", "svix-timestamp", "svix-signature"])
def test_a_missing_header_is_refused(missing: str, client: TestClient) -> None:
    body, headers = signed(payload("team.deleted.json"))
    del headers[missing]
    assert refused(post(client, body, headers))


def test_no_headers_at_all_is_refused(client: TestClient) -> None:
    assert refused(client.post(PATH, content=b"{}"))


def test_the_webhook_prefix_is_accepted(client: TestClient, recorder: Recorder) -> None:
    body, headers = signed(payload("team.deleted.json"), header_prefix="webhook")
    assert "svix-id" not in headers
    assert post(client, body, headers).status_code == 204
    assert len(recorder.events) == 1


def test_svix_headers_win_over_webhook_headers(client: TestClient, recorder: Recorder) -> None:
    body, svix = signed(payload("team.deleted.json"), msg_id="msg_svix")
    _, webhook = signed(payload("team.deleted.json"), new_webhook_secret(), header_prefix="webhook")
    assert post(client, body, {**webhook, **svix}).status_code == 204
    assert recorder.ids == ["msg_svix"]
    # A mix of the two spellings is not a delivery.
    mixed = {
        "svix-id": svix["svix-id"],
        "webhook-timestamp": svix["svix-timestamp"],
        "webhook-signature": svix["svix-signature"],
    }
    assert refused(post(client, body, mixed))


@pytest.mark.parametrize("name", ["svix-id", "svix-timestamp", "svix-signature"])
def test_a_header_sent_twice_is_refused(name: str, client: TestClient) -> None:
    body, headers = signed(payload("team.deleted.json"))
    raw = [(k.encode(), v.encode()) for k, v in headers.items()]
    raw.append((name.encode(), headers[name].encode()))
    assert refused(client.post(PATH, content=body, headers=raw))


@pytest.mark.parametrize(
    "timestamp", ["", "abc", "-1", f"{NOW}.0", f"0{NOW}", "1e9", "0x10", f" {NOW}x", "9" * 13]
)
def test_a_malformed_timestamp_is_refused(timestamp: str, client: TestClient) -> None:
    body, headers = signed(payload("team.deleted.json"))
    assert refused(post(client, body, {**headers, "svix-timestamp": timestamp}))


@pytest.mark.parametrize("msg_id", ["", "msg with space", "m" * 257, "msg\x7f"])
def test_a_malformed_id_is_refused(msg_id: str, client: TestClient) -> None:
    body, headers = signed(payload("team.deleted.json"), msg_id="msg_ok")
    raw = [(k.encode(), v.encode()) for k, v in headers.items() if k != "svix-id"]
    raw.append((b"svix-id", msg_id.encode()))
    assert refused(client.post(PATH, content=body, headers=raw))


# --- stale, future and replayed -----------------------------------------------------------------


def test_stale_and_future_timestamps_are_refused() -> None:
    clock = Clock()
    app, _, recorder = receiver(clock=clock)
    client = TestClient(app)
    body, headers = signed(payload("team.deleted.json"))
    for now in (NOW + 301, NOW - 301, NOW + 10**9, NOW - 10**9):
        clock.now = now
        assert refused(post(client, body, headers)), now
    for now in (NOW + 300, NOW - 300):  # the edges of the 5-minute default
        clock.now = now
        assert post(client, body, headers).status_code == 204
    assert len(recorder.events) == 1


def test_a_replay_after_the_tolerance_is_refused_and_within_it_runs_nothing() -> None:
    clock = Clock()
    app, _, recorder = receiver(clock=clock)
    client = TestClient(app)
    delivery = signed(payload("user.deleted.json"), msg_id="msg_replayed")
    assert post(client, *delivery).status_code == 204
    clock.now = NOW + 60
    assert post(client, *delivery).status_code == 204  # acknowledged, not run
    clock.now = NOW + 3600
    assert refused(post(client, *delivery))
    assert recorder.ids == ["msg_replayed"]


def test_a_replay_with_a_fresh_timestamp_needs_a_fresh_signature(client: TestClient) -> None:
    body, headers = signed(payload("team.deleted.json"), timestamp=NOW - 3600)
    assert refused(post(client, body, {**headers, "svix-timestamp": str(NOW)}))


# --- bodies -------------------------------------------------------------------------------------


def test_a_body_that_is_not_utf8_is_refused(client: TestClient, recorder: Recorder) -> None:
    _, headers = signed(payload("team.deleted.json"))
    assert refused(post(client, b'{"type": "team.deleted", "data": {"id": "\xff"}}', headers))
    assert recorder.events == []


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        "",
        "[]",
        "null",
        '"user.deleted"',
        '{"type": 1, "data": {}}',
        '{"type": "user.deleted"}',
        '{"data": {"id": "u"}}',
        '{"type": "user.deleted", "data": {"teams": []}}',  # no id
        '{"type": "user.deleted", "data": []}',
        '{"type": "team_membership.created", "data": {"team_id": "t"}}',
        '{"type": "user.created", "data": {"id": "u", "primary_email": "a@b.example"}}',
        '{"type": "stack.test", "data": {"message": "hi"}}',
        '{"type": "team.created", "data": {"id": "t", "display_name": 5}}',
        '{"type": "x", "data": ' + "[" * 20_000 + "]" * 20_000 + "}",
    ],
)
def test_a_signed_body_that_is_not_a_valid_event_is_400(body: str) -> None:
    app, _, recorder = receiver(webhook_max_body=1_048_576)
    response = post(TestClient(app), *signed(body))
    assert response.status_code == 400
    assert response.json() == PAYLOAD_INVALID
    assert recorder.events == []


def test_an_invalid_event_is_logged_without_its_values(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    data = payload("user.created.json")["data"]
    del data["is_restricted"]
    response = post(client, *signed({"type": "user.created", "data": data}, msg_id="msg_bad"))
    assert response.json() == PAYLOAD_INVALID
    (line,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "msg_bad" in line
    assert "is_restricted" in line
    assert data["primary_email"] not in caplog.text


def test_unknown_types_may_carry_any_json(client: TestClient, recorder: Recorder) -> None:
    for data in (None, 1, "text", [1, 2], {"a": {"b": [None]}}):
        assert post(client, *signed({"type": "future.thing", "data": data})).status_code == 204
    assert [e.data for e in recorder.events] == [None, 1, "text", [1, 2], {"a": {"b": [None]}}]


# --- oversized ----------------------------------------------------------------------------------


def padded(size: int) -> bytes:
    """A valid event body of exactly ``size`` bytes."""
    head = b'{"type":"padding","data":"'
    return head + b"x" * (size - len(head) - 2) + b'"}'


def test_a_body_at_the_limit_is_accepted_one_byte_more_is_413(client: TestClient) -> None:
    assert post(client, *signed(padded(MAX_BODY))).status_code == 204
    response = post(client, *signed(padded(MAX_BODY + 1)))
    assert response.status_code == 413
    assert response.json() == TOO_LARGE


class Body:
    """An ASGI ``receive`` that hands out ``chunk``-sized pieces and counts what was taken."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks = chunks
        self.read = 0
        self.calls = 0

    async def __call__(self) -> dict[str, Any]:
        self.calls += 1
        chunk = next(self.chunks, None)
        if chunk is None:
            return {"type": "http.request", "body": b"", "more_body": False}
        self.read += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": True}


async def call(app: FastAPI, headers: dict[str, str], body: Body) -> tuple[int, bytes]:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": PATH,
        "raw_path": PATH.encode(),
        "root_path": "",
        "query_string": b"",
        # Latin-1, as Starlette reads header values: a test can send any byte.
        "headers": [(k.lower().encode(), v.encode("latin-1")) for k, v in headers.items()],
        "client": ("127.0.0.1", 1234),
        "server": ("receiver", 80),
    }
    await app(scope, body, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    content = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, content


async def test_an_announced_oversize_body_is_refused_before_reading_it(
    app_and_recorder: tuple[FastAPI, Recorder],
) -> None:
    _, headers = signed(payload("team.deleted.json"))
    body = Body(itertools.repeat(b"x" * 1024, 10_000))
    status, content = await call(
        app_and_recorder[0], {**headers, "content-length": str(10_000 * 1024)}, body
    )
    assert status == 413
    assert json.loads(content) == TOO_LARGE
    assert body.read == 0


@pytest.mark.parametrize(
    ("length", "status"),
    [
        ("\u00b2", 204),  # isdigit() says yes, int() says no: declares nothing, the body is read
        ("9" * 5000, 413),  # too long for int(): over any limit
        ("0" * 30 + "1", 204),  # leading zeros: one byte, not a long number
    ],
)
async def test_an_odd_content_length_is_never_a_500(
    length: str, status: int, app_and_recorder: tuple[FastAPI, Recorder]
) -> None:
    body, headers = signed(payload("team.deleted.json"))
    chunks = Body(iter([body]))
    answer, _ = await call(app_and_recorder[0], {**headers, "content-length": length}, chunks)
    assert answer == status


@pytest.mark.parametrize("chunk_size", [1, 1000, 65_536])
async def test_a_streamed_oversize_body_is_cut_off_after_one_chunk_too_many(
    chunk_size: int, app_and_recorder: tuple[FastAPI, Recorder]
) -> None:
    _, headers = signed(payload("team.deleted.json"))  # no content-length: chunked
    body = Body(itertools.repeat(b"x" * chunk_size, 100 * 1_048_576 // chunk_size))
    status, content = await call(app_and_recorder[0], headers, body)
    assert status == 413
    assert json.loads(content) == TOO_LARGE
    assert MAX_BODY < body.read <= MAX_BODY + chunk_size
    assert app_and_recorder[1].events == []


async def test_a_stale_delivery_is_refused_before_its_body_is_read(
    app_and_recorder: tuple[FastAPI, Recorder],
) -> None:
    _, headers = signed(payload("team.deleted.json"), timestamp=NOW - 3600)
    body = Body(itertools.repeat(b"x" * 100, 10))
    status, _ = await call(app_and_recorder[0], headers, body)
    assert status == 400
    assert body.read == 0


def test_an_oversize_chunked_body_over_a_real_server_is_413() -> None:
    app, _, recorder = receiver(webhook_max_body=MAX_BODY)
    _, headers = signed(payload("team.deleted.json"))

    def chunks() -> Iterator[bytes]:
        for _ in range(1024):  # 16 MiB, sent only as far as the server reads
            yield b"x" * 16_384

    with serve_in_thread(app) as url, httpx.Client(base_url=url, timeout=10) as client:
        try:
            response = client.post(PATH, content=chunks(), headers=headers)
        except httpx.TransportError:  # the server may close before the client finished
            pytest.fail("the server closed the connection without an answer")
        assert response.status_code == 413
        assert response.json() == TOO_LARGE
    assert recorder.events == []


# --- properties ---------------------------------------------------------------------------------

header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=120)
VALID_BODY, VALID_HEADERS = signed(payload("team.deleted.json"), msg_id="msg_property")
HYPOTHESIS_APP, _, HYPOTHESIS_RECORDER = receiver(webhook_max_body=MAX_BODY)


@HOSTILE
@given(
    msg_id=st.one_of(st.just(VALID_HEADERS["svix-id"]), header_text),
    timestamp=st.one_of(st.just(VALID_HEADERS["svix-timestamp"]), header_text),
    signature=st.one_of(
        header_text,
        header_text.map(lambda s: f"v1,{s}"),
        st.binary(min_size=32, max_size=32).map(lambda b: "v1," + base64.b64encode(b).decode()),
        st.lists(header_text, max_size=5).map(" ".join),
    ),
)
def test_no_header_values_get_a_500_or_run_a_handler(
    msg_id: str, timestamp: str, signature: str
) -> None:
    headers = {"svix-id": msg_id, "svix-timestamp": timestamp, "svix-signature": signature}
    response = post(TestClient(HYPOTHESIS_APP), VALID_BODY, headers)
    assert response.status_code == 400
    assert response.json() == VERIFICATION_FAILED
    assert HYPOTHESIS_RECORDER.events == []


@HOSTILE
@given(body=st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode)))
def test_no_signed_body_gets_a_500(body: bytes) -> None:
    app, _, _ = receiver(webhook_max_body=MAX_BODY)
    client = TestClient(app)
    try:
        body.decode()
    except UnicodeDecodeError:  # cannot be signed: any signature is refused
        _, headers = signed(b"{}")
        assert refused(post(client, body, headers))
    else:
        assert post(client, *signed(body)).status_code in (204, 400)
