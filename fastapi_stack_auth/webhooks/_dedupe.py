"""Message ids seen recently, so a redelivered message runs the handlers once.

Each id is first claimed as "processing" (for ``PROCESSING_TTL`` seconds: a worker that dies
mid-delivery does not block it for good), then marked "done" for the dedupe TTL, or released
when a handler failed so the retry runs them again. The memory is this process's (bounded), and
Redis when a shared tier is given, so that several workers agree; if Redis is unavailable, this
process's memory alone decides.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

from cachetools import TLRUCache

logger = logging.getLogger("fastapi_stack_auth.webhooks")

#: Seconds a claim holds while the handlers run (Svix itself gives up on an attempt after 30).
PROCESSING_TTL = 120
_PROCESSING = b"processing"
_DONE = b"done"


class Seen(enum.Enum):
    """What a claim found."""

    NEW = "new"  # claimed: run the handlers
    DONE = "done"  # handled already: skip
    BUSY = "busy"  # being handled right now: try again later


class SharedTier(Protocol):
    """What deduplication needs of the Redis tier (``GuardedTier``): calls that never raise and
    answer ``None`` when Redis is unavailable."""

    async def claim(self, key: bytes, value: bytes, ttl_seconds: int) -> bool | None: ...
    async def get(self, key: bytes) -> bytes | None: ...
    async def set(self, key: bytes, value: bytes, ttl_seconds: int) -> None: ...
    async def delete(self, key: bytes) -> None: ...


#: A shared tier and the prefix of this project's keys in it.
Shared = tuple[SharedTier, bytes]


class RecentDeliveries:
    """Claims on message ids (``key`` is a digest of the id): in this process, then in Redis."""

    def __init__(
        self,
        *,
        ttl: int,
        maxsize: int,
        processing_ttl: int = PROCESSING_TTL,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.processing_ttl = processing_ttl
        self._local: TLRUCache[str, bytes] = TLRUCache(maxsize, ttu=self._expiry, timer=timer)
        self._lock = threading.Lock()
        self._redis_down = False

    def _expiry(self, _key: str, state: bytes, now: float) -> float:
        return now + (self.ttl if state == _DONE else self.processing_ttl)

    async def claim(self, key: str, shared: Shared | None) -> Seen:
        """Claim ``key`` for this delivery, unless it is done or being processed elsewhere."""
        with self._lock:
            state = self._local.get(key)
            if state is None:
                self._local[key] = _PROCESSING
        if state is not None:
            return Seen.DONE if state == _DONE else Seen.BUSY
        if shared is None:
            return Seen.NEW
        tier, prefix = shared
        claimed = await tier.claim(prefix + key.encode(), _PROCESSING, self.processing_ttl)
        if claimed is None:
            if not self._redis_down:
                self._redis_down = True
                logger.warning(
                    "Redis is unavailable: webhook deliveries are deduplicated by this "
                    "process alone until it answers again (logged once per outage)"
                )
            return Seen.NEW
        self._redis_down = False
        if claimed:
            return Seen.NEW
        # Another worker claimed it: it is theirs, not ours.
        found = await tier.get(prefix + key.encode())
        with self._lock:
            if found == _DONE:
                self._local[key] = _DONE
            else:
                self._local.pop(key, None)
        return Seen.DONE if found == _DONE else Seen.BUSY

    async def done(self, key: str, shared: Shared | None) -> None:
        """The handlers succeeded: skip this id for ``ttl`` seconds."""
        with self._lock:
            self._local[key] = _DONE
        if shared is not None:
            tier, prefix = shared
            await tier.set(prefix + key.encode(), _DONE, self.ttl)

    async def release(self, key: str, shared: Shared | None) -> None:
        """The handlers failed: the next attempt of this id runs them again."""
        with self._lock:
            self._local.pop(key, None)
        if shared is not None:
            tier, prefix = shared
            await tier.delete(prefix + key.encode())
