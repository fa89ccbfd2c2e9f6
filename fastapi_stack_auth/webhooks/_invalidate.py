"""The library's own subscription: what each event makes stale in ``StackAuth``'s caches.

It runs after verification and before the app's handlers. A failure (an exception, or the
other workers not told because Redis is down) is logged and the delivery goes on: the cached
answers expire on their own (``STACK_CACHE_TTL``, ``STACK_PERMISSION_CACHE_TTL``), which is
how the library behaves without a webhook receiver at all, while answering 500 would make the
app's handlers wait on Redis and run again on every retry for as long as the failure lasts.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from ._events import (
    ProjectPermissionCreated,
    ProjectPermissionDeleted,
    TeamDeleted,
    TeamMembershipCreated,
    TeamMembershipDeleted,
    TeamPermissionCreated,
    TeamPermissionDeleted,
    TeamUpdated,
    UserDeleted,
    UserUpdated,
    WebhookEvent,
)

logger = logging.getLogger("fastapi_stack_auth.webhooks")


class Invalidation(Protocol):
    """What ``StackAuth.invalidation`` offers: drop what a change in Stack made stale. Each
    method answers ``False`` when this worker dropped its entries but the other workers could
    not be told (Redis did not take it)."""

    async def user_deleted(self, user_id: str) -> object: ...
    async def user_changed(self, user_id: str) -> object: ...
    async def memberships_changed(self, user_id: str, team_id: str) -> object: ...
    async def team_permissions_changed(self, user_id: str, team_id: str) -> object: ...
    async def project_permissions_changed(self, user_id: str) -> object: ...
    async def team_changed(self, team_id: str) -> object: ...
    async def team_deleted(self, team_id: str) -> object: ...


async def _apply(invalidation: Invalidation, event: WebhookEvent) -> object:
    if isinstance(event, UserDeleted):
        # Its memberships go with it; Stack sends their team_membership.deleted separately.
        return await invalidation.user_deleted(event.data.id)
    if isinstance(event, UserUpdated):
        return await invalidation.user_changed(event.data.id)
    if isinstance(event, (TeamMembershipCreated, TeamMembershipDeleted)):
        return await invalidation.memberships_changed(event.data.user_id, event.data.team_id)
    if isinstance(event, (TeamPermissionCreated, TeamPermissionDeleted)):
        return await invalidation.team_permissions_changed(event.data.user_id, event.data.team_id)
    if isinstance(event, (ProjectPermissionCreated, ProjectPermissionDeleted)):
        return await invalidation.project_permissions_changed(event.data.user_id)
    if isinstance(event, TeamUpdated):
        return await invalidation.team_changed(event.data.id)
    if isinstance(event, TeamDeleted):
        return await invalidation.team_deleted(event.data.id)
    return None  # user.created, team.created, stack.test, unknown types: nothing is stale


async def invalidate(stack: Any, event: WebhookEvent) -> None:
    """Drop what ``event`` made stale in ``stack``'s caches (``stack``: a ``StackAuth`` or
    ``None``). Never raises: a failure is logged."""
    try:
        invalidation: Invalidation | None = getattr(stack, "invalidation", None)
        told_everyone = None if invalidation is None else await _apply(invalidation, event)
    except Exception:
        logger.exception(
            "Dropping cached answers after webhook %s (%s) failed; they expire on their own",
            event.id,
            event.type,
        )
        return
    if told_everyone is False:
        logger.warning(
            "Webhook %s (%s): cached answers were dropped in this worker, but Redis did not "
            "take the news to the others; theirs expire on their own",
            event.id,
            event.type,
        )
