"""``stack.invalidation``: what Stack says changed, dropped from every cache that answers
about it, in this worker and (through Redis, when ``STACK_CACHE_URL`` is set) in the others.

A webhook receiver calls one method per event. Each drops the in-process entries tagged with
the subject (``_subjects``) from the caches the event concerns, with a scan of each such
cache (O(entries), 2-3 ms at 10,000: webhooks are rare, and the cache-hit path gains no
lookup), and makes the loads in flight there cache nothing. With a shared tier it then deletes
the subject's entries there and tells the other workers (``_invalidation_channel``).

``user_deleted`` also refuses the user's access tokens and user API keys from then on
(``_denied``): in JWT mode a deleted user's token keeps a valid signature until ``exp``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from ._api_keys import ApiKeys
from ._cache import TokenCache
from ._denied import DeniedUsers
from ._invalidation_channel import Event, EventName, InvalidationChannel
from ._permissions import Permissions
from ._pipeline import Pipeline
from ._subject_purge import Selector
from ._subjects import (
    ALL_KINDS,
    API_KEY,
    IDENTITY,
    MAX_ID_LENGTH,
    PROFILE,
    PROJECT_PERMISSION,
    TEAM_PERMISSION,
    TEAMS,
    member_subject,
    team_subject,
    user_subject,
)

logger = logging.getLogger("fastapi_stack_auth")


class Invalidation:
    """Tells the caches what Stack says changed (from its webhooks): each method drops the
    answers the change makes stale, here and in the other workers.

    Each method answers ``True`` when the other workers hear of it too, or when there is no
    shared tier to tell them through (one worker, or workers that share nothing); ``False``
    when Redis did not take it: this worker dropped its entries, the others did not hear of it
    (a webhook receiver can answer with an error, so that it is delivered again). None raises
    because of Redis.
    """

    def __init__(
        self,
        pipeline: Pipeline,
        permissions: Permissions,
        api_keys: ApiKeys,
        denied: DeniedUsers,
        channel: InvalidationChannel | None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._pipeline = pipeline
        self._permissions = permissions
        self._api_keys = api_keys
        #: Users deleted recently, refused until ``denied.seconds`` after the deletion.
        self.denied = denied
        #: The Redis side (``None`` without a shared tier); ``channel.subscribed`` says
        #: whether this worker hears the others now.
        self.channel = channel
        self._clock = clock
        if channel is not None:
            channel.bind(self._received, self._synced)

    def __repr__(self) -> str:
        return f"Invalidation(denied={len(self.denied)}, channel={self.channel!r})"

    # --- one method per change Stack reports ------------------------------------------------

    async def user_deleted(self, user_id: str) -> bool:
        """The user was deleted (``user.deleted``): refuse their access tokens (401
        ``USER_NOT_FOUND``, in JWT mode too) and user API keys from now on, and drop every
        cached answer about them (identities, profiles, teams, team and project permissions,
        API-key principals)."""
        return await self._announce("user_deleted", _id(user_id), None)

    async def user_changed(self, user_id: str) -> bool:
        """The user's profile changed (``user.updated``): drop their identities, profiles
        and user API-key principals, so that the next request fetches them again."""
        return await self._announce("user_changed", _id(user_id), None)

    async def memberships_changed(self, user_id: str, team_id: str) -> bool:
        """The user joined or left the team (``team_membership.*``): drop the user's teams
        and their team-permission answers for that team."""
        return await self._announce("memberships_changed", _id(user_id), _id(team_id))

    async def team_permissions_changed(self, user_id: str, team_id: str) -> bool:
        """A team permission of the user was granted or revoked (``team_permission.*``):
        drop all their team-permission answers for that team (a permission may contain
        others, so one grant can change several answers)."""
        return await self._announce("team_permissions_changed", _id(user_id), _id(team_id))

    async def project_permissions_changed(self, user_id: str) -> bool:
        """A project permission of the user was granted or revoked
        (``project_permission.*``): drop all their project-permission answers."""
        return await self._announce("project_permissions_changed", _id(user_id), None)

    async def team_changed(self, team_id: str) -> bool:
        """The team was updated (``team.updated``): drop every answer that mentions it: the
        teams lists that hold it, team-permission answers in it, its team API-key
        principals, and the full profiles (and the identities and user API-key principals
        that embed one) whose selected team it is."""
        return await self._announce("team_changed", None, _id(team_id))

    async def team_deleted(self, team_id: str) -> bool:
        """The team was deleted (``team.deleted``): drop every answer that mentions it, as
        ``team_changed`` does (Stack sends no ``team_membership.deleted`` for its members)."""
        return await self._announce("team_deleted", None, _id(team_id))

    # --- how ----------------------------------------------------------------------------------

    async def _announce(self, name: EventName, user_id: str | None, team_id: str | None) -> bool:
        event = Event(name, user_id, team_id, self._clock())
        selectors = self._apply(event)
        if self.channel is None:
            return True
        return await self.channel.send(event, selectors)

    async def _received(self, event: Event) -> None:
        # Another worker's event: drop ours, and the tier entries this worker may have
        # written since that worker deleted them (a load that ended just before the news).
        selectors = self._apply(event)
        if self.channel is not None:
            await self.channel.forget(selectors)

    def _synced(self, deleted: Sequence[tuple[str, float]], missed: bool) -> None:
        added = [user_id for user_id, at in deleted if self.denied.add(user_id, at)]
        if missed:
            # Invalidations may have gone by unheard: anything cached may be stale.
            for cache in self._caches().values():
                cache.clear()
            return
        for user_id in added:  # at startup: the caches hold (next to) nothing yet
            self._drop([Selector(user_subject(user_id), ALL_KINDS)])

    def _apply(self, event: Event) -> list[Selector]:
        selectors = _selectors(event)
        if event.name == "user_deleted" and event.user_id is not None:
            self.denied.add(event.user_id, event.at)
        dropped = self._drop(selectors)
        logger.debug("Invalidation %s dropped %d cached entries", event.name, dropped)
        return selectors

    def _drop(self, selectors: Sequence[Selector]) -> int:
        caches = self._caches()
        return sum(
            caches[kind].drop(selector.tag) for selector in selectors for kind in selector.kinds
        )

    def _caches(self) -> dict[str, TokenCache[Any]]:
        # Read each time: a cache may be replaced (tests do).
        pipeline, permissions = self._pipeline, self._permissions
        return {
            IDENTITY: pipeline.cache,
            PROFILE: pipeline.profiles,
            TEAMS: permissions.teams,
            TEAM_PERMISSION: permissions.team_permissions,
            PROJECT_PERMISSION: permissions.project_permissions,
            API_KEY: self._api_keys.cache,
        }


def _id(value: object) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_ID_LENGTH:
        raise ValueError(f"user and team ids are non-empty strings of at most {MAX_ID_LENGTH}")
    return value


def _selectors(event: Event) -> list[Selector]:
    """The entries ``event`` makes stale."""
    user, team = event.user_id or "", event.team_id or ""
    if event.name == "user_deleted":
        return [Selector(user_subject(user), ALL_KINDS)]
    if event.name == "user_changed":
        return [Selector(user_subject(user), frozenset({IDENTITY, PROFILE, API_KEY}))]
    if event.name == "memberships_changed":
        return [
            Selector(user_subject(user), frozenset({TEAMS})),
            Selector(member_subject(user, team), frozenset({TEAM_PERMISSION})),
        ]
    if event.name == "team_permissions_changed":
        return [Selector(member_subject(user, team), frozenset({TEAM_PERMISSION}))]
    if event.name == "project_permissions_changed":
        return [Selector(user_subject(user), frozenset({PROJECT_PERMISSION}))]
    # team_changed, team_deleted: only the entries that embed the team carry its tag.
    return [Selector(team_subject(team), ALL_KINDS)]
