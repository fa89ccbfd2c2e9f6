"""The library's own subscription: what each event makes stale in ``StackAuth``'s caches.

It runs after verification and before the app's handlers. A failure (an exception, or the
other workers not told because Redis is down) is logged and the delivery goes on: the cached
answers expire on their own (``STACK_CACHE_TTL``, ``STACK_PERMISSION_CACHE_TTL``), which is
how the library behaves without a webhook receiver at all, while answering 500 would make the
app's handlers wait on Redis and run again on every retry for as long as the failure lasts.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

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

if TYPE_CHECKING:
    from .._invalidation import Invalidation
    from .._stack import StackAuth

logger = logging.getLogger("fastapi_stack_auth.webhooks")


async def _apply(invalidation: Invalidation, event: WebhookEvent) -> bool | None:
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


async def invalidate(stack: StackAuth | None, event: WebhookEvent) -> None:
    """Drop what ``event`` made stale in ``stack``'s caches (nothing without a ``StackAuth``).
    Never raises: a failure is logged."""
    if stack is None:
        return
    try:
        told_everyone = await _apply(stack.invalidation, event)
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
