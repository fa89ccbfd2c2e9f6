"""Invalidation across workers: ``Event`` messages on the channel ``...:invalidate``.

``send`` deletes the tier's entries about the subjects (``_subject_purge``), records a deleted
user (``_deleted_users_set``), then publishes. Each worker subscribes on a connection of its
own (no socket timeout: it waits for messages) and applies the others' events; at each
(re)subscription it reads the deleted users, so a worker started after a deletion still
refuses the user. Messages are sealed like the tier's values (an HMAC bound to the channel);
anything else is ignored: someone who can write to Redis can at most replay a genuine
invalidation. Nothing here raises or holds up a request: an outage is logged once when it
starts and once when it ends, the subscriber tries again every ``retry_interval`` seconds
and, having been away, asks the receiver to resynchronise (see ``bind``).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ._deleted_users_set import DeletedUsersSet
from ._denied import DeniedUsers
from ._redis_tier import RETRY_INTERVAL, GuardedTier, _within
from ._shared_cache import SubjectIndex, mac_key, open_sealed, seal
from ._subject_purge import Selector, purge
from ._subjects import MAX_ID_LENGTH

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.client import PubSub

logger = logging.getLogger("fastapi_stack_auth")

EventName = Literal[
    "user_deleted",
    "user_changed",
    "memberships_changed",
    "team_permissions_changed",
    "project_permissions_changed",
    "team_changed",
    "team_deleted",
]
#: Seconds the subscriber waits for a message before it checks its connection (PING).
HEARTBEAT = 30.0
#: Seconds at most for (re)subscribing and reading the deleted users.
CONNECT_TIMEOUT = 2.0
_MAX_MESSAGE = 4096  # bytes; ours are a few hundred


@dataclass(frozen=True)
class Event:
    """One invalidation: the ``Invalidation`` method called, its ids, and when (epoch s)."""

    name: EventName
    user_id: str | None = None
    team_id: str | None = None
    at: float = 0.0


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
    origin: str = Field(max_length=64)
    name: EventName
    user_id: str | None = Field(default=None, max_length=MAX_ID_LENGTH)
    team_id: str | None = Field(default=None, max_length=MAX_ID_LENGTH)
    at: float = Field(allow_inf_nan=False)


#: Called with each event another worker sent.
OnEvent = Callable[[Event], Awaitable[None]]
#: Called at each (re)subscription with the deleted users on record (id, when), and whether
#: messages may have been missed before it (anything but the first success).
OnSync = Callable[[Sequence[tuple[str, float]], bool], None]


class InvalidationChannel:
    """The Redis side of ``Invalidation``: see the module's docstring."""

    def __init__(
        self,
        tier: GuardedTier,
        url: str,
        secret: str,
        index: SubjectIndex,
        denied: DeniedUsers,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.tier = tier
        self._url = url  # may hold a password: never logged
        self._mac_key = mac_key(secret)
        self._index = index
        self.channel = index.namespace + b"invalidate"
        self._deleted = DeletedUsersSet(index.namespace, self._mac_key, denied, clock=clock)
        #: Seconds between two attempts to subscribe again.
        self.retry_interval = RETRY_INTERVAL
        #: Tells this worker's messages from the others'.
        self.origin = secrets.token_hex(8)
        self._on_event: OnEvent | None = None
        self._on_sync: OnSync | None = None
        self._task: asyncio.Task[None] | None = None
        self._client: Redis | None = None
        self._subscribed = False
        self._down = False
        self._stopping = False  # set by stop(): the listener ends at its next turn
        self._warned_forged = False

    def __repr__(self) -> str:
        state = "subscribed" if self._subscribed else "not subscribed"
        return f"InvalidationChannel({self.tier.where!r}, {state})"

    def bind(self, on_event: OnEvent, on_sync: OnSync) -> None:
        """Where received events and (re)subscriptions go."""
        self._on_event, self._on_sync = on_event, on_sync

    @property
    def subscribed(self) -> bool:
        """Listening to the other workers now."""
        return self._subscribed

    # --- lifetime -------------------------------------------------------------------------

    async def start(self) -> None:
        """Subscribe (and read the deleted users) in a background task; returns after its
        first attempt, so a worker that starts while Redis is up knows them at once."""
        if self._task is not None:
            return
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        self._client = Redis.from_url(
            self._url,
            socket_connect_timeout=CONNECT_TIMEOUT,
            socket_keepalive=True,
            health_check_interval=HEARTBEAT,
            retry=Retry(NoBackoff(), 0),  # the loop below tries again, and logs it
            client_name="fastapi-stack-auth-invalidation",
        )
        first = asyncio.Event()
        self._stopping = False
        self._task = asyncio.get_running_loop().create_task(self._listen(first))
        await first.wait()

    async def stop(self) -> None:
        """Stop listening and close the connection (nothing is raised)."""
        task, self._task = self._task, None
        if task is not None:
            self._stopping = True
            # redis-py's read under a timeout can swallow a cancellation on Python 3.10
            # (it comes back as a timeout, or as no message): cancel until the task ends.
            while not task.done():
                task.cancel()
                await asyncio.wait({task}, timeout=1.0)
            await asyncio.gather(task, return_exceptions=True)
        client, self._client = self._client, None
        self._subscribed = False
        if client is not None:
            try:
                await client.aclose()
            except Exception as exc:
                logger.warning("Closing the invalidation channel failed (%s)", type(exc).__name__)

    # --- sending --------------------------------------------------------------------------

    async def send(self, event: Event, selectors: Sequence[Selector]) -> bool:
        """Delete the tier's entries of ``selectors``, record a deleted user, then publish
        ``event``, in that order (a worker told to drop its entries must not find them in
        Redis); ``False`` if Redis did not take it."""
        body = _Message(origin=self.origin, **asdict(event)).model_dump_json().encode()
        message = seal(self._mac_key, self.channel, body)

        async def send(client: Redis) -> bool:
            pipe = await purge(client, self._index, selectors)
            if event.name == "user_deleted" and event.user_id is not None:
                self._deleted.record(pipe, event.user_id, event.at)
            pipe.publish(self.channel, message)
            await pipe.execute()
            return True

        return await self.tier.run(send) is True

    async def forget(self, selectors: Sequence[Selector]) -> None:
        """Delete the tier's entries of ``selectors`` (unless Redis is unavailable)."""

        async def forget(client: Redis) -> None:
            await (await purge(client, self._index, selectors)).execute()

        await self.tier.run(forget)

    # --- receiving ------------------------------------------------------------------------

    async def _listen(self, first: asyncio.Event) -> None:
        missed = False  # whether messages may have gone by unheard
        while not self._stopping:
            pubsub: PubSub | None = None
            try:
                assert self._client is not None
                pubsub = self._client.pubsub()
                deleted = await _within(CONNECT_TIMEOUT, self._subscribe(pubsub))
                self._subscribed = True
                if self._down:
                    self._down = False
                    logger.info(
                        "The invalidation channel (Redis at %s) is available again: this "
                        "worker's in-process caches were cleared, as it may have missed "
                        "invalidations meanwhile",
                        self.tier.where,
                    )
                if self._on_sync is not None:
                    self._on_sync(deleted, missed)
                first.set()
                while not self._stopping:
                    message = await pubsub.get_message(True, timeout=HEARTBEAT)
                    if message is not None and message.get("type") == "message":
                        await self._received(message.get("data"))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._stopping:  # a swallowed cancellation, come back as an error
                    return
                missed, self._subscribed = True, False
                self._failed(exc)
                first.set()
            finally:
                if pubsub is not None:
                    await _close(pubsub)
            if not self._stopping:
                await asyncio.sleep(self.retry_interval)

    async def _subscribe(self, pubsub: PubSub) -> list[tuple[str, float]]:
        assert self._client is not None
        await pubsub.subscribe(self.channel)
        # Wait for Redis to confirm: from then on, no message published is missed. Only then
        # read the deleted users, so none recorded in between is missed either.
        while True:
            reply = await pubsub.get_message(timeout=None)
            if reply is not None and reply.get("type") == "subscribe":
                break
        deleted, forged = await self._deleted.read(self._client)
        if forged:
            self._forged("record of a deleted user")
        return deleted

    async def _received(self, data: Any) -> None:
        if not isinstance(data, bytes) or len(data) > _MAX_MESSAGE:
            self._forged("message")
            return
        message = open_sealed(self._mac_key, self.channel, data, _Message.model_validate_json)
        if message is None:
            self._forged("message")
            return
        if message.origin == self.origin or self._on_event is None:
            return
        event = Event(message.name, message.user_id, message.team_id, message.at)
        try:
            await self._on_event(event)
        except Exception as exc:  # the subscriber must outlive any one message
            logger.error("Applying an invalidation failed: %s", type(exc).__name__)

    def _forged(self, what: str) -> None:
        if not self._warned_forged:
            self._warned_forged = True
            logger.warning(
                "Ignored a %s on the invalidation channel (Redis at %s) that failed its "
                "integrity check: sent with another STACK_SECRET_SERVER_KEY, by another "
                "version, or forged (logged once)",
                what,
                self.tier.where,
            )

    def _failed(self, exc: Exception) -> None:
        if self._down:
            return
        self._down = True
        timed_out = isinstance(exc, (asyncio.TimeoutError, TimeoutError))
        logger.warning(
            "The invalidation channel (Redis at %s) is unavailable (%s): this worker does not "
            "hear the other workers' invalidations; trying again every %g s",
            self.tier.where,
            # The type only: a driver's message is not ours to vouch for.
            "no answer in time" if timed_out else type(exc).__name__,
            self.retry_interval,
        )


async def _close(pubsub: PubSub) -> None:
    try:
        await pubsub.aclose()  # type: ignore[no-untyped-call]
    except Exception:  # a connection that broke may fail to close: it is gone either way
        logger.debug("Closing a broken invalidation subscription failed")
