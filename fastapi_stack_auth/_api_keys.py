"""User and team API keys as credentials: a format pre-check, then Stack's check endpoints,
cached by the key's digest.

SKELETON: filled in by the API-key work (issue 10).
"""

from __future__ import annotations

from ._client import StackClient
from ._settings import StackAuthSettings
from ._shared_cache import GuardedTier
from .models import Principal


class ApiKeys:
    """Turns an API key into the ``Principal`` it stands for, or raises."""

    def __init__(
        self, client: StackClient, settings: StackAuthSettings, tier: GuardedTier | None
    ) -> None:
        self._client = client
        self._settings = settings
        self._tier = tier

    async def verify(self, raw_key: str) -> Principal:
        """The user or team behind ``raw_key``; ``AuthError`` 401 when it is not a live key."""
        raise NotImplementedError
