"""Team membership, team permissions and project permissions: asked of Stack Auth, cached
briefly per (user, team, permission), single-flight, through the shared tier when there is one.

SKELETON: filled in by the authorization work (issue 10).
"""

from __future__ import annotations

from ._client import StackClient
from ._settings import StackAuthSettings
from ._shared_cache import GuardedTier


class Permissions:
    """What a user may do, as Stack answers it, with answers reused for
    ``permission_cache_ttl`` seconds."""

    def __init__(
        self, client: StackClient, settings: StackAuthSettings, tier: GuardedTier | None
    ) -> None:
        self._client = client
        self._settings = settings
        self._tier = tier

    async def is_team_member(self, user_id: str, team_id: str) -> bool:
        """Whether ``user_id`` is a member of ``team_id``."""
        raise NotImplementedError

    async def has_team_permission(self, user_id: str, team_id: str, permission_id: str) -> bool:
        """Whether ``user_id`` has ``permission_id`` in ``team_id``, directly or contained."""
        raise NotImplementedError

    async def has_project_permission(self, user_id: str, permission_id: str) -> bool:
        """Whether ``user_id`` has the project permission ``permission_id``."""
        raise NotImplementedError
