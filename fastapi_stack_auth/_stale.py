"""Serve-stale: the last identity Stack Auth confirmed for a token, for use while it is down.

Off by default (``STACK_STALE_GRACE=0``). When on, every successful remote verification is
remembered here, under the token's SHA-256 digest like the main cache, for ``grace`` seconds
after it happened and never past the token's ``exp``. ``StackAuth`` looks here only when
verification failed with ``StackUnavailableError``; any other failure for the token (Stack
rejected it, its user is gone, ...) forgets it. A warning is logged when an outage starts to be
bridged, then at most once per ``log_interval`` while it lasts; never a token.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable

from ._verifiers import Identity

logger = logging.getLogger("fastapi_stack_auth")

#: While an outage lasts, the warning is repeated at most once per this many seconds.
LOG_INTERVAL = 60.0


class StaleIdentities:
    """A bounded store of last-good identities, by token digest (least recently used goes)."""

    def __init__(
        self,
        *,
        grace: float,
        maxsize: int,
        clock: Callable[[], float] = time.time,
        timer: Callable[[], float] = time.monotonic,
        log_interval: float = LOG_INTERVAL,
    ) -> None:
        self.grace = grace
        self.maxsize = maxsize
        self._clock = clock
        self._timer = timer
        self._log_interval = log_interval
        # key -> (wall time of the last successful verification, identity)
        self._entries: OrderedDict[bytes, tuple[float, Identity]] = OrderedDict()
        self._logged_at: float | None = None  # set while an outage is being bridged
        #: Requests answered from this store in the current outage.
        self.served = 0

    def __len__(self) -> int:
        return len(self._entries)

    def remember(self, key: bytes, identity: Identity) -> None:
        """Stack just confirmed ``identity`` for ``key``: keep it for ``grace`` seconds. A
        confirmation also means Stack is reachable again, which ends an outage."""
        entries = self._entries
        entries[key] = (self._clock(), identity)
        entries.move_to_end(key)
        while len(entries) > self.maxsize:
            entries.popitem(last=False)
        if self._logged_at is not None:
            logger.info(
                "Stack Auth answers again; %d requests were let in on an identity it had "
                "verified earlier (STACK_STALE_GRACE)",
                self.served,
            )
            self._logged_at = None
            self.served = 0

    def forget(self, key: bytes) -> None:
        """Stack said something other than "unavailable" about ``key``'s token: drop it."""
        self._entries.pop(key, None)

    def recall(self, key: bytes, reason: str) -> tuple[Identity, float] | None:
        """The identity last verified for ``key`` and until when (epoch seconds) it may be
        used, if that verification is at most ``grace`` seconds old and the token has not
        expired; else ``None``. ``reason`` says why Stack is unavailable, for the log."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        verified_at, identity = entry
        now = self._clock()
        until = min(verified_at + self.grace, float(identity.claims.exp))
        if until <= now:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        self.served += 1
        timer = self._timer()
        if self._logged_at is None or timer - self._logged_at >= self._log_interval:
            self._logged_at = timer
            logger.warning(
                "Stack Auth is unavailable (%s): letting in users it verified in the last "
                "%g s (STACK_STALE_GRACE); %d such requests so far in this outage",
                reason,
                self.grace,
                self.served,
            )
        return identity, until
