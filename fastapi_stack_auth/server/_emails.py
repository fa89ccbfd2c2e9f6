"""``stack.server.emails``: send email to users through the project's email server."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal

from pydantic import JsonValue

from .._exceptions import StackBadResponseError
from ._base import UNSET, Api, Unset, fields, parse
from ._models import SentEmail


class EmailsApi(Api):
    """``POST /emails/send-email``: mail addressed to users, never to raw addresses."""

    async def send(
        self,
        *,
        user_ids: Iterable[str] | None = None,
        all_users: bool = False,
        html: str | None = None,
        template_id: str | None = None,
        variables: Mapping[str, JsonValue] | None = None,
        draft_id: str | None = None,
        subject: str | Unset = UNSET,
        notification_category_name: Literal["Transactional", "Marketing"] | Unset = UNSET,
        theme_id: str | Literal[False] | Unset | None = UNSET,
        is_high_priority: bool | Unset = UNSET,
        scheduled_at_millis: int | Unset = UNSET,
    ) -> list[SentEmail]:
        """Queue an email to ``user_ids`` (or ``all_users``, anonymous ones included) with one
        content: ``html``, ``template_id`` (+ ``variables``) or ``draft_id``. One result per
        user, also for a user without an email or who unsubscribed (Marketing only).

        ``CustomEmailServerRequiredError`` while the project uses Stack's shared email server;
        ``UserNotFoundError`` for an unknown user id.
        """
        recipients = None if user_ids is None else list(user_ids)
        if (recipients is None) == (not all_users):
            raise ValueError("give exactly one of user_ids and all_users=True")
        contents = [c for c in (html, template_id, draft_id) if c is not None]
        if len(contents) != 1:
            raise ValueError("give exactly one of html, template_id and draft_id")
        if variables is not None and template_id is None:
            raise ValueError("variables go with template_id")
        body = fields(
            user_ids=UNSET if recipients is None else recipients,
            all_users=True if all_users else UNSET,
            html=UNSET if html is None else html,
            template_id=UNSET if template_id is None else template_id,
            variables=UNSET if variables is None else dict(variables),
            draft_id=UNSET if draft_id is None else draft_id,
            subject=subject,
            notification_category_name=notification_category_name,
            theme_id=theme_id,
            is_high_priority=is_high_priority,
            scheduled_at_millis=scheduled_at_millis,
        )
        answer = await self._client.request("POST", "/emails/send-email", json_body=body, ok=(200,))
        results = answer.get("results") if isinstance(answer, Mapping) else None
        if not isinstance(results, list):
            raise StackBadResponseError("POST /emails/send-email: the answer has no results")
        return [parse(SentEmail, item, "POST /emails/send-email") for item in results]
