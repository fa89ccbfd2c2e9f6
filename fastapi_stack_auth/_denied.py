"""Users Stack deleted recently: their access tokens and user API keys are refused.

A deleted user's access tokens keep a valid signature until ``exp`` (JWT mode would accept
them) and another worker may still hold a verified answer about them. This process remembers
each deletion for ``DENY_SECONDS`` after it happened, longer than any access token issued
before it lives (Stack's default lifetime is 10 minutes): by then every such token has
expired, and remote mode hears it from Stack anyway. The set is consulted on the miss path
only (after a verification or a shared-tier read), never on a cache hit: the invalidation
that records a user here also drops the user's cached entries.
"""

from __future__ import annotations

import time
from collections.abc import Callable

#: Seconds a deleted user is remembered, counted from the deletion.
DENY_SECONDS = 3600.0


class DeniedUsers:
    """User ids (lower-case) and until when (epoch seconds) they are refused: ``seconds``
    after their deletion (raise it before the app starts for a Stack whose access tokens
    live longer than an hour)."""

    def __init__(
        self, *, seconds: float = DENY_SECONDS, clock: Callable[[], float] = time.time
    ) -> None:
        self.seconds = seconds
        self._clock = clock
        self._until: dict[str, float] = {}
        self._prune_at = 64  # size at which the expired ones are dropped

    def __contains__(self, user_id: object) -> bool:
        if not self._until or not isinstance(user_id, str):  # the usual case: nobody
            return False
        until = self._until.get(user_id.lower())
        return until is not None and until > self._clock()

    def __len__(self) -> int:
        return len(self._until)

    def add(self, user_id: str, deleted_at: float) -> bool:
        """Refuse ``user_id`` until ``deleted_at + seconds``; ``False`` if that has passed
        already (a record too old to matter)."""
        now, until = self._clock(), deleted_at + self.seconds
        if until <= now:
            return False
        if len(self._until) >= self._prune_at:  # amortised: O(1) per deletion
            self._until = {uid: t for uid, t in self._until.items() if t > now}
            self._prune_at = max(64, 2 * len(self._until))
        uid = user_id.lower()
        self._until[uid] = max(until, self._until.get(uid, until))
        return True
