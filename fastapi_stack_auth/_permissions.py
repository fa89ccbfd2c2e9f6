"""Team membership, team permissions and project permissions: asked of Stack Auth, cached
briefly per (user, team, permission), single-flight, through the shared tier when there is one.

Each answer is Stack's own: ``GET /team-permissions`` and ``GET /project-permissions`` with
``recursive=true`` (a permission held directly or through one that contains it) and the
``permission_id`` filter, which Stack applies after that expansion. Membership has no GET of
its own; ``GET /teams?user_id=`` lists a user's teams in one call, cached per user, so one
answer serves every team of that user (and gives the ``Team`` for free).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from pydantic import BaseModel, ValidationError

from ._cache import TokenCache
from ._client import StackClient
from ._exceptions import StackAuthConfigError, StackBadResponseError
from ._redis_tier import GuardedTier
from ._requirements import Requirement, missing
from ._requirements import all_of as all_of  # re-exported: the package imports them here
from ._requirements import any_of as any_of
from ._settings import StackAuthSettings
from ._shared_cache import SharedCache, namespace, subject_index
from ._subjects import (
    PROJECT_PERMISSION,
    TEAM_PERMISSION,
    TEAMS,
    team_permission_tags,
    teams_tags,
    user_subject,
)
from .models import Team

# Cache keys of permission questions: the ids in clear (they are not secret), NUL-joined. IDs
# are UUIDs and permission ids ``[$a-z0-9_:]``: no NUL, so the join is unambiguous. The shared
# tier hashes them for its key names.


def team_key(user_id: str, team_id: str, permission_id: str) -> str:
    """Cache key of a team permission question (``team_id`` lower-case)."""
    return f"team\x00{user_id}\x00{team_id}\x00{permission_id}"


def project_key(user_id: str, permission_id: str) -> str:
    """Cache key of a project permission question."""
    return f"project\x00{user_id}\x00{permission_id}"


def teams_key(user_id: str) -> str:
    """Cache key of a user's teams."""
    return f"teams\x00{user_id}"


# --- shared-tier codecs ---------------------------------------------------------------------


def dump_flag(value: bool, until: float) -> bytes:
    """A yes/no answer and until when it may be trusted, for the shared tier."""
    return json.dumps([value, until]).encode()


def load_flag(data: bytes) -> tuple[bool, float]:
    """The inverse of ``dump_flag``; ``ValueError`` for anything else."""
    value, until = json.loads(data)
    if not isinstance(value, bool) or type(until) not in (int, float):
        raise ValueError("not a cached permission answer")
    return value, float(until)


class _TeamsRecord(BaseModel):
    until: float
    teams: tuple[Team, ...]


def dump_teams(value: Mapping[str, Team], until: float) -> bytes:
    """A user's teams and until when the list may be trusted, for the shared tier."""
    # round_trip: computed fields (created_at) would come back as extras.
    return (
        _TeamsRecord(until=until, teams=tuple(value.values()))
        .model_dump_json(round_trip=True)
        .encode()
    )


def load_teams(data: bytes) -> tuple[Mapping[str, Team], float]:
    """The inverse of ``dump_teams``."""
    record = _TeamsRecord.model_validate_json(data)
    return {team.id.lower(): team for team in record.teams}, record.until


# --- asking Stack -----------------------------------------------------------------------------


class Permissions:
    """What a user may do, as Stack answers it, with answers reused for
    ``permission_cache_ttl`` seconds (0: every check asks Stack; concurrent identical checks
    still share one call). Stack being unreachable or refusing our keys is raised, never
    cached. ``clock`` (wall time) is replaceable for tests."""

    def __init__(
        self,
        client: StackClient,
        settings: StackAuthSettings,
        tier: GuardedTier | None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._settings = settings
        self._tier = tier
        ttl, size = settings.permission_cache_ttl, settings.cache_max_entries
        self.team_permissions: TokenCache[bool] = TokenCache(maxsize=size, ttl=ttl, clock=clock)
        self.project_permissions: TokenCache[bool] = TokenCache(maxsize=size, ttl=ttl, clock=clock)
        self.teams: TokenCache[Mapping[str, Team]] = TokenCache(maxsize=size, ttl=ttl, clock=clock)
        key = settings.secret_server_key
        if tier is not None and key is not None and ttl > 0:
            prefix, secret = namespace(settings.project_id), key.get_secret_value()
            flags, index = (dump_flag, load_flag), subject_index(settings)
            self.team_permissions.shared = SharedCache(
                tier, f"{prefix}{TEAM_PERMISSION}:", secret, flags, clock, index=index
            )
            self.project_permissions.shared = SharedCache(
                tier, f"{prefix}{PROJECT_PERMISSION}:", secret, flags, clock, index=index
            )
            self.teams.shared = SharedCache(
                tier, f"{prefix}{TEAMS}:", secret, (dump_teams, load_teams), clock, index=index
            )

    async def is_team_member(self, user_id: str, team_id: str) -> bool:
        """Whether ``user_id`` is a member of ``team_id``."""
        return team_id.lower() in await self.teams_of(user_id)

    async def team_of(self, user_id: str, team_id: str) -> Team | None:
        """The team ``team_id`` if ``user_id`` is a member of it, else ``None``."""
        return (await self.teams_of(user_id)).get(team_id.lower())

    async def teams_of(self, user_id: str) -> Mapping[str, Team]:
        """The user's teams by lower-case id (``GET /teams?user_id=``, cached per user)."""
        key = teams_key(user_id)
        found = self.teams.get(key)
        if found is not None:
            return found
        return await self.teams.get_or_load(
            key, partial(self._load_teams, user_id), tags=partial(teams_tags, user_id)
        )

    async def has_team_permission(self, user_id: str, team_id: str, permission_id: str) -> bool:
        """Whether ``user_id`` has ``permission_id`` in ``team_id``, directly or contained.
        A non-member, or a team that does not exist, has none."""
        team_id = team_id.lower()
        key = team_key(user_id, team_id, permission_id)
        found = self.team_permissions.get(key)
        if found is not None:
            return found
        return await self.load_team_permission(key, user_id, team_id, permission_id)

    async def has_project_permission(self, user_id: str, permission_id: str) -> bool:
        """Whether ``user_id`` has the project permission ``permission_id``, directly or
        contained."""
        key = project_key(user_id, permission_id)
        found = self.project_permissions.get(key)
        if found is not None:
            return found
        return await self.load_project_permission(key, user_id, permission_id)

    async def load_team_permission(
        self, key: str, user_id: str, team_id: str, permission_id: str
    ) -> bool:
        """The miss path of ``has_team_permission`` (``key`` from ``team_key``): the shared
        tier, else one call to Stack shared by concurrent askers."""
        load = partial(self._load_team_permission, user_id, team_id, permission_id)
        tags = team_permission_tags(user_id, team_id)
        return await self.team_permissions.get_or_load(key, load, tags=lambda _: tags)

    async def load_project_permission(self, key: str, user_id: str, permission_id: str) -> bool:
        """The miss path of ``has_project_permission`` (``key`` from ``project_key``)."""
        load = partial(self._load_project_permission, user_id, permission_id)
        tags = (user_subject(user_id),)
        return await self.project_permissions.get_or_load(key, load, tags=lambda _: tags)

    async def missing_team(
        self, user_id: str, team_id: str, required: str | Requirement
    ) -> str | None:
        """``None`` if ``user_id`` satisfies ``required`` in ``team_id``, else what is missing."""
        return await missing(required, partial(self.has_team_permission, user_id, team_id))

    async def missing_project(self, user_id: str, required: str | Requirement) -> str | None:
        """``None`` if ``user_id`` satisfies ``required`` in the project, else what is missing."""
        return await missing(required, partial(self.has_project_permission, user_id))

    def clear(self) -> None:
        """Forget every cached answer of this process (the shared tier keeps its own until
        they expire)."""
        self.team_permissions.clear()
        self.project_permissions.clear()
        self.teams.clear()

    # --- loaders: one call to Stack each; what they return is cached for the TTL ------------

    async def _load_teams(self, user_id: str) -> tuple[Mapping[str, Team], float]:
        items = await self._list("/teams", {"user_id": user_id})
        try:
            teams = [Team.model_validate(item) for item in items]
        except ValidationError:
            raise StackBadResponseError("GET /teams returned a team we cannot read") from None
        return {team.id.lower(): team for team in teams}, math.inf

    async def _load_team_permission(
        self, user_id: str, team_id: str, permission_id: str
    ) -> tuple[bool, float]:
        query = {"team_id": team_id, "user_id": user_id, "permission_id": permission_id}
        items = await self._list("/team-permissions", {**query, "recursive": "true"})
        # Stack filtered already; matching every field again means a filter ignored on the
        # way (a proxy, an old server) can only deny, never grant.
        granted = any(
            item.get("id") == permission_id
            and _same_id(item.get("team_id"), team_id)
            and _same_id(item.get("user_id"), user_id)
            for item in items
        )
        return granted, math.inf

    async def _load_project_permission(
        self, user_id: str, permission_id: str
    ) -> tuple[bool, float]:
        query = {"user_id": user_id, "permission_id": permission_id, "recursive": "true"}
        items = await self._list("/project-permissions", query)
        granted = any(
            item.get("id") == permission_id and _same_id(item.get("user_id"), user_id)
            for item in items
        )
        return granted, math.inf

    async def _list(self, path: str, params: dict[str, str]) -> list[dict[str, Any]]:
        if self._settings.secret_server_key is None:
            raise StackAuthConfigError(
                "Team and permission checks ask Stack Auth with the server key: set "
                "STACK_SECRET_SERVER_KEY"
            )
        body = await self._client.request("GET", path, params=params, ok=(200,))
        items = body.get("items") if isinstance(body, dict) else None
        if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
            raise StackBadResponseError(f"GET {path} did not return a list of objects")
        return items


def _same_id(value: Any, expected: str) -> bool:
    return isinstance(value, str) and value.lower() == expected.lower()
