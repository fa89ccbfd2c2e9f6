"""Serve-stale: the last identity Stack Auth confirmed for a token, for use while it is down.

Off by default (``STACK_STALE_GRACE=0``). When on, each successful remote verification is kept
here, by token digest, for ``grace`` seconds and never past the token's ``exp``. The pipeline
looks here only when verification failed with ``StackUnavailableError``; any other failure
forgets the token. What is served from here stays in this process: it is never written to the
shared tier. A warning is logged when an outage starts to be bridged, then at most once per
``log_interval`` while it lasts; never a token.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from cachetools import TLRUCache

from .models import Identity

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
        self._clock = clock
        # value: (identity, until when it may be served); TLRUCache expires it then.
        self._entries: TLRUCache[bytes, tuple[Identity, float]] = TLRUCache(
            maxsize, ttu=lambda _key, entry, _now: entry[1], timer=clock
        )
        self._timer = timer
        self._log_interval = log_interval
        self._logged_at: float | None = None  # set while an outage is being bridged
        #: Requests answered from this store in the current outage.
        self.served = 0

    def __len__(self) -> int:
        return len(self._entries)

    def remember(self, key: bytes, identity: Identity) -> None:
        """Stack just confirmed ``identity``: keep it for ``grace`` seconds. A confirmation
        also means Stack is reachable again, which ends an outage."""
        self._entries[key] = (identity, min(self._clock() + self.grace, identity.claims.exp))
        if self._logged_at is not None:
            logger.info(
                "Stack Auth answers again; %d requests were let in on an identity it had "
                "verified earlier (STACK_STALE_GRACE)",
                self.served,
            )
            self._logged_at = None
            self.served = 0

    def forget(self, key: bytes) -> None:
        """Stack said something other than "unavailable" about the token: drop it."""
        self._entries.pop(key, None)

    def recall(self, key: bytes, reason: str) -> tuple[Identity, float] | None:
        """The identity last verified for ``key`` and until when it may be used (epoch
        seconds), if that was at most ``grace`` seconds ago and before ``exp``; else ``None``.
        ``reason`` says why Stack is unavailable, for the log."""
        entry = self._entries.get(key)
        if entry is None:
            return None
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
        return entry
