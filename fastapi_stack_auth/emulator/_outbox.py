"""The outbox: every email the emulator would have sent (it sends none), newest last, for tests
and the ``/emulator/sent-emails`` route to read."""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

#: Messages the outbox keeps (the oldest go first).
MAX_OUTBOX = 1000

EmailKind = Literal["email", "team_invitation"]


@dataclass(frozen=True)
class OutboxEmail:
    """One message: ``send-email`` (``kind="email"``, one per recipient user) or a team
    invitation (``kind="team_invitation"``, with its ``link``). ``to`` is ``None`` for a user
    without a primary email: Stack lists them in its results but mails nobody."""

    id: str
    kind: EmailKind
    created_at_millis: int
    to: str | None
    user_id: str | None = None
    subject: str | None = None
    html: str | None = None
    template_id: str | None = None
    variables: dict[str, Any] | None = None
    draft_id: str | None = None
    notification_category_name: str = "Transactional"
    theme_id: str | Literal[False] | None = None
    is_high_priority: bool = False
    scheduled_at_millis: int | None = None
    team_id: str | None = None
    invitation_id: str | None = None
    #: The invitation's link: its callback URL with ``?code=...``.
    link: str | None = field(default=None, repr=False)

    def as_json(self) -> dict[str, Any]:
        """The message as ``GET /emulator/sent-emails`` lists it."""
        return asdict(self)


class Outbox:
    """A project's sent messages, oldest first, at most ``MAX_OUTBOX``."""

    def __init__(self) -> None:
        self._emails: deque[OutboxEmail] = deque(maxlen=MAX_OUTBOX)

    def add(self, email: OutboxEmail) -> OutboxEmail:
        self._emails.append(email)
        return email

    def emails(
        self, *, user_id: str | None = None, kind: EmailKind | None = None
    ) -> list[OutboxEmail]:
        """The messages, oldest first, optionally of one recipient user or one kind."""
        return [
            e
            for e in self._emails
            if (user_id is None or e.user_id == user_id) and (kind is None or e.kind == kind)
        ]

    def clear(self) -> None:
        self._emails.clear()
