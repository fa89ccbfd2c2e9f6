"""The rules of team invitations on a project (contract §9.10): sending (trusted callback URL,
known team, a message in the outbox), listing the pending ones, the code checks, and accepting
(which adds the membership like any other)."""

from __future__ import annotations

from typing import Any

from . import _changes as changes
from . import _messaging_errors as merr
from ._crypto import new_id, new_refresh_token
from ._invitations import INVITATION_MILLIS, Invitation
from ._outbox import OutboxEmail
from ._redirect_urls import redirect_url_allowed
from ._store import Project, User
from ._webhooks import WebhookSender


def send_invitation(
    project: Project, *, team_id: str, email: str, callback_url: str, now_millis: int
) -> Invitation:
    """Record an invitation and its email (``REDIRECT_URL_NOT_WHITELISTED``, then
    ``TEAM_NOT_FOUND``)."""
    config = project.config
    if not redirect_url_allowed(
        callback_url, config.domains, allow_localhost=config.allow_localhost
    ):
        raise merr.redirect_url_not_whitelisted()
    team = project.team_or_404(team_id)
    invitation = project.invitations.add(
        Invitation(
            id=new_id(),
            team_id=team.id,
            recipient_email=email,
            callback_url=callback_url,
            created_at_millis=now_millis,
            expires_at_millis=now_millis + INVITATION_MILLIS,
            code=new_refresh_token(),
        )
    )
    project.outbox.add(
        OutboxEmail(
            id=new_id(),
            kind="team_invitation",
            created_at_millis=now_millis,
            to=email,
            subject=f"You are invited to join {team.display_name}",
            team_id=team.id,
            invitation_id=invitation.id,
            link=invitation.link,
        )
    )
    return invitation


def invitation_json(project: Project, invitation: Invitation) -> dict[str, Any]:
    """An invitation as ``GET /team-invitations`` lists it."""
    team = project.teams.get(invitation.team_id)
    return {
        "id": invitation.id,
        "team_id": invitation.team_id,
        "team_display_name": team.display_name if team is not None else "",
        "expires_at_millis": invitation.expires_at_millis,
        "recipient_email": invitation.recipient_email,
    }


def of_team(project: Project, team_id: str, now_millis: int) -> list[Invitation]:
    """The team's pending invitations, oldest first."""
    return [i for i in project.invitations.pending(now_millis) if i.team_id == team_id]


def for_user(project: Project, user: User, now_millis: int) -> list[Invitation]:
    """Pending invitations addressed to the user's verified email, skipping deleted teams."""
    if user.primary_email is None or not user.primary_email_verified:
        return []
    return [
        i
        for i in project.invitations.pending(now_millis)
        if i.recipient_email == user.primary_email and i.team_id in project.teams
    ]


def by_code(project: Project, code: str, now_millis: int) -> Invitation:
    """The invitation of a code, or ``VERIFICATION_CODE_NOT_FOUND`` / ``_EXPIRED`` /
    ``_ALREADY_USED``, checked in Stack's order."""
    invitation = project.invitations.by_code(code)
    if invitation is None:
        raise merr.verification_code_not_found()
    if invitation.expires_at_millis < now_millis:
        raise merr.verification_code_expired()
    if invitation.used_at_millis is not None:
        raise merr.verification_code_already_used()
    return invitation


def check_not_restricted(project: Project, user: User) -> None:
    """``TEAM_INVITATION_RESTRICTED_USER_NOT_ALLOWED`` for anonymous or restricted users."""
    reason = project.restricted_reason(user)
    if reason is not None:
        raise merr.team_invitation_restricted_user_not_allowed(reason)


def accept(
    sender: WebhookSender,
    project: Project,
    invitation: Invitation,
    user_id: str,
    now_millis: int,
) -> None:
    """Use the invitation for ``user_id``: a membership with the default member permissions and
    its webhooks; nothing (and no error) when already a member."""
    if not project.is_member(invitation.team_id, user_id):
        changes.add_member(sender, project, invitation.team_id, user_id)
    invitation.used_at_millis = now_millis
