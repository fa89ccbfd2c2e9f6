"""Stack Auth webhooks: a verified, deduplicated receiver with typed events.

::

    from fastapi import FastAPI
    from fastapi_stack_auth.webhooks import StackWebhooks, UserDeleted

    hooks = StackWebhooks()      # STACK_WEBHOOK_SECRET (whsec_...), read at the first delivery

    @hooks.on(UserDeleted)
    async def forget(event: UserDeleted) -> None:
        ...

    app = FastAPI()
    app.include_router(hooks.router, prefix="/webhooks/stack")

``sign_webhook`` signs a payload as Stack's sender (Svix) does, for testing your handlers.
"""

from ._events import (
    ProjectPermissionCreated,
    ProjectPermissionData,
    ProjectPermissionDeleted,
    StackTestData,
    StackTestEvent,
    TeamCreated,
    TeamDeleted,
    TeamDeletedData,
    TeamMembershipCreated,
    TeamMembershipData,
    TeamMembershipDeleted,
    TeamPermissionCreated,
    TeamPermissionData,
    TeamPermissionDeleted,
    TeamRef,
    TeamUpdated,
    UnknownEvent,
    UserCreated,
    UserDeleted,
    UserDeletedData,
    UserUpdated,
    WebhookEvent,
)
from ._receiver import StackWebhooks
from ._settings import WebhookSettings
from ._signing import new_message_id, new_webhook_secret, sign_webhook

__all__ = [
    "ProjectPermissionCreated",
    "ProjectPermissionData",
    "ProjectPermissionDeleted",
    "StackTestData",
    "StackTestEvent",
    "StackWebhooks",
    "TeamCreated",
    "TeamDeleted",
    "TeamDeletedData",
    "TeamMembershipCreated",
    "TeamMembershipData",
    "TeamMembershipDeleted",
    "TeamPermissionCreated",
    "TeamPermissionData",
    "TeamPermissionDeleted",
    "TeamRef",
    "TeamUpdated",
    "UnknownEvent",
    "UserCreated",
    "UserDeleted",
    "UserDeletedData",
    "UserUpdated",
    "WebhookEvent",
    "WebhookSettings",
    "new_message_id",
    "new_webhook_secret",
    "sign_webhook",
]
