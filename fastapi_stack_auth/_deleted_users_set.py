"""The deleted users on record in Redis, for the workers that start or reconnect later.

The sorted set ``fastapi-stack-auth:v1:<project id>:deleted-users`` holds one sealed record
(user id, when) per deletion, scored by its time and pruned after ``DeniedUsers.seconds``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from ._denied import DeniedUsers
from ._redis_tier import as_bytes
from ._shared_cache import open_sealed, seal
from ._subjects import MAX_ID_LENGTH

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.client import Pipeline


class _Deletion(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
    user_id: str = Field(max_length=MAX_ID_LENGTH)
    at: float = Field(allow_inf_nan=False)


class DeletedUsersSet:
    """The set in the namespace ``namespace``, records sealed with ``mac_key``, kept as long
    as ``denied`` remembers a deletion."""

    def __init__(
        self,
        namespace: bytes,
        mac_key: bytes,
        denied: DeniedUsers,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.key = namespace + b"deleted-users"
        self._mac_key = mac_key
        self._denied = denied  # for how long deletions are remembered
        self._clock = clock

    def record(self, pipe: Pipeline, user_id: str, at: float) -> None:
        """Add to ``pipe`` the recording of ``user_id``, deleted at ``at`` (epoch s)."""
        body = _Deletion(user_id=user_id, at=at).model_dump_json().encode()
        pipe.zadd(self.key, {seal(self._mac_key, self.key, body): at})
        seconds = self._denied.seconds
        pipe.zremrangebyscore(self.key, "-inf", self._clock() - seconds)
        pipe.expire(self.key, math.ceil(seconds) + 1)

    async def read(self, client: Redis) -> tuple[list[tuple[str, float]], bool]:
        """The deleted users on record (id, when), and whether a record was ignored for
        failing its integrity check."""
        since = self._clock() - self._denied.seconds
        records = await client.zrangebyscore(self.key, since, "+inf")
        deleted, forged = [], False
        for record in records:
            entry = open_sealed(
                self._mac_key, self.key, as_bytes(record), _Deletion.model_validate_json
            )
            if entry is None:
                forged = True
                continue
            deleted.append((entry.user_id, entry.at))
        return deleted, forged
