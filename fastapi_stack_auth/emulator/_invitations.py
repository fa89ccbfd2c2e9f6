"""Team invitations as the emulator records them: Stack's one-time verification codes of type
``TEAM_INVITATION`` (a 45-character code, valid 7 days, used once). Plain data; the rules of
``/team-invitations`` are in ``_invitation_flow.py``."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

#: How long an invitation's code is valid: 7 days, as in Stack.
INVITATION_MILLIS = 7 * 24 * 3600 * 1000


def with_code(url: str, code: str) -> str:
    """``url`` with its ``code`` query parameter set to ``code`` (others kept)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "code"]
    return urlunsplit(parts._replace(query=urlencode([*query, ("code", code)])))


@dataclass
class Invitation:
    """An invitation to ``team_id`` sent to ``recipient_email``."""

    id: str
    team_id: str
    recipient_email: str
    callback_url: str
    created_at_millis: int
    expires_at_millis: int
    code: str = field(repr=False)
    used_at_millis: int | None = None

    @property
    def link(self) -> str:
        """What the email links to: ``callback_url?code=<code>``."""
        return with_code(self.callback_url, self.code)

    def pending(self, now_millis: int) -> bool:
        """Not used and not expired."""
        return self.used_at_millis is None and self.expires_at_millis > now_millis


class Invitations:
    """A project's invitations by ID (revoked ones are deleted, as in Stack)."""

    def __init__(self) -> None:
        self._rows: dict[str, Invitation] = {}

    def add(self, invitation: Invitation) -> Invitation:
        self._rows[invitation.id] = invitation
        return invitation

    def get(self, invitation_id: str) -> Invitation | None:
        return self._rows.get(invitation_id)

    def by_code(self, code: str) -> Invitation | None:
        """The invitation of ``code``, matched case-insensitively (codes are lowercase)."""
        wanted = code.lower()
        return next((i for i in self._rows.values() if i.code == wanted), None)

    def pending(self, now_millis: int) -> list[Invitation]:
        """Every pending invitation, oldest first."""
        found = [i for i in self._rows.values() if i.pending(now_millis)]
        return sorted(found, key=lambda i: i.created_at_millis)

    def remove(self, invitation_id: str) -> bool:
        return self._rows.pop(invitation_id, None) is not None
