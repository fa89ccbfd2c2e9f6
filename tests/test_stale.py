"""The serve-stale store (``_stale.StaleIdentities``), with hand-driven clocks.

How the pipeline uses it (only on ``StackUnavailableError``, never through the shared tier) is
tested in ``test_faults.py`` and, with two apps on a real Redis, in ``test_shared_cache.py``.
"""

from __future__ import annotations

import logging
import time

import jwt
import pytest

from fastapi_stack_auth import StackUser
from fastapi_stack_auth._stale import StaleIdentities
from fastapi_stack_auth._tokens import read_claims
from fastapi_stack_auth.models import Identity
from tests.conftest import mint_token, user_body


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def identity(exp_in: float = 600) -> Identity:
    payload = jwt.decode(mint_token(exp_in=exp_in), options={"verify_signature": False})
    return Identity(claims=read_claims(payload), user=StackUser.model_validate(user_body()))


def store(grace: float = 60, maxsize: int = 100) -> tuple[StaleIdentities, Clock, Clock]:
    wall, timer = Clock(time.time()), Clock(1000.0)
    return StaleIdentities(grace=grace, maxsize=maxsize, clock=wall, timer=timer), wall, timer


def stale_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "STACK_STALE_GRACE" in r.getMessage()]


def test_an_identity_is_recalled_for_the_grace_window_after_stack_confirmed_it() -> None:
    stale, wall, _ = store(grace=60)
    confirmed = identity()
    stale.remember(b"k", confirmed)
    confirmed_at = wall.now
    wall.now += 59.9
    assert stale.recall(b"k", "refused") == (confirmed, confirmed_at + 60)
    wall.now = confirmed_at + 60
    assert stale.recall(b"k", "refused") is None
    assert len(stale) == 0
    assert stale.recall(b"never-confirmed", "refused") is None


def test_a_new_confirmation_restarts_the_grace_window() -> None:
    stale, wall, _ = store(grace=60)
    stale.remember(b"k", identity())
    wall.now += 50
    again = identity()
    stale.remember(b"k", again)
    wall.now += 50  # 100 s after the first confirmation, 50 s after the second
    assert stale.recall(b"k", "refused") == (again, wall.now + 10)


def test_never_past_the_token_exp() -> None:
    stale, wall, _ = store(grace=3600)
    short = identity(exp_in=20)
    stale.remember(b"k", short)
    hit = stale.recall(b"k", "refused")
    assert hit == (short, short.claims.exp)
    wall.now = short.claims.exp
    assert stale.recall(b"k", "refused") is None
    assert len(stale) == 0
    # A confirmation of a token already past exp keeps nothing, and drops what was kept.
    stale.remember(b"fresh", identity())
    wall.now += 3000
    stale.remember(b"fresh", short)
    assert stale.recall(b"fresh", "refused") is None
    assert len(stale) == 0


def test_bounded_the_least_recently_used_goes() -> None:
    stale, _, _ = store(maxsize=2)
    a, b, c = identity(), identity(), identity()
    stale.remember(b"a", a)
    stale.remember(b"b", b)
    assert stale.recall(b"a", "refused") is not None  # a is now the most recently used
    stale.remember(b"c", c)
    assert len(stale) == 2
    assert stale.recall(b"b", "refused") is None
    assert stale.recall(b"a", "refused") == (a, pytest.approx(time.time() + 60, abs=5))
    assert stale.recall(b"c", "refused") is not None


def test_forget_drops_a_token_stack_no_longer_vouches_for() -> None:
    stale, _, _ = store()
    stale.remember(b"k", identity())
    stale.remember(b"other", identity())
    stale.forget(b"k")
    stale.forget(b"never-seen")  # no error
    assert stale.recall(b"k", "refused") is None
    assert stale.recall(b"other", "refused") is not None
    assert len(stale) == 1


def test_an_outage_is_logged_once_per_interval_and_its_end_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="fastapi_stack_auth")
    wall, timer = Clock(time.time()), Clock(1000.0)
    stale = StaleIdentities(grace=300, maxsize=10, clock=wall, timer=timer, log_interval=60)
    key = b"\x01" * 32
    stale.remember(key, identity())
    assert stale_records(caplog) == []  # a confirmation outside an outage says nothing
    for _ in range(5):
        assert stale.recall(key, "ConnectError") is not None
        timer.now += 10
    assert stale.recall(b"never-confirmed", "ConnectError") is None  # neither counted nor logged
    [first] = stale_records(caplog)
    assert first.levelno == logging.WARNING
    assert "ConnectError" in first.getMessage()
    assert "1 such requests" in first.getMessage()
    timer.now += 10  # 60 s after the first warning
    assert stale.recall(key, "HTTP 503") is not None
    [_, second] = stale_records(caplog)
    assert second.levelno == logging.WARNING
    assert "HTTP 503" in second.getMessage()
    assert "6 such requests" in second.getMessage()
    assert stale.served == 6

    stale.remember(key, identity())  # Stack confirmed a token: the outage is over
    [*_, back] = stale_records(caplog)
    assert back.levelno == logging.INFO
    assert "answers again" in back.getMessage()
    assert "6 requests" in back.getMessage()
    assert stale.served == 0
    stale.remember(key, identity())  # logged once, not at every confirmation
    assert len(stale_records(caplog)) == 3

    # The next outage is logged at once, whatever the interval.
    timer.now += 1
    assert stale.recall(key, "ReadTimeout") is not None
    assert len(stale_records(caplog)) == 4
    assert "1 such requests" in stale_records(caplog)[-1].getMessage()
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert key.hex() not in text
