"""The typed async server client: Stack Auth's server API on the library's shared HTTP client.

SKELETON: filled in by the server-client work (issue 10).
"""

from __future__ import annotations

from .._client import StackClient

__all__ = ["StackServer"]


class StackServer:
    """Stack Auth's server API (``stack.server``): users, teams, memberships, permissions, API
    keys, sessions, invitations, connected accounts and email."""

    def __init__(self, client: StackClient) -> None:
        self._client = client
