"""Deleting the shared tier's entries about a subject, found through its ``SubjectIndex`` set.

Each entry's key is listed, when the entry is written, in the sorted set of each of its
subject tags. Only keys of this project and of the kinds asked for are deleted, whatever a
set holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ._redis_tier import as_bytes
from ._shared_cache import SubjectIndex

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.client import Pipeline


@dataclass(frozen=True)
class Selector:
    """The entries of the ``kinds`` (``_subjects``) tagged ``tag``."""

    tag: str
    kinds: frozenset[str]


async def purge(client: Redis, index: SubjectIndex, selectors: Sequence[Selector]) -> Pipeline:
    """Read the index sets of ``selectors`` (one round trip); the pipeline returned, not sent
    yet, deletes the entries they list and drops them from the sets."""
    read = client.pipeline(transaction=False)
    for selector in selectors:
        read.zrange(index.key(selector.tag), 0, -1)
    listed: list[list[bytes]] = await read.execute() if selectors else []
    pipe = client.pipeline(transaction=False)
    for selector, members in zip(selectors, listed, strict=True):
        kinds = tuple(index.namespace + kind.encode() + b":" for kind in selector.kinds)
        keys = [m for m in map(as_bytes, members) if m.startswith(kinds)]
        if keys:
            pipe.delete(*keys)
            pipe.zrem(index.key(selector.tag), *keys)
    return pipe
