"""The changes that send webhooks, each written once: change the store, then queue the events
Stack sends for that change. The HTTP routes and the Python API both call these, after their
own checks, so the two cannot send different events for the same change."""

from __future__ import annotations

from . import _webhook_events as events
from ._store import Project, Team, User
from ._webhooks import WebhookSender


def add_user(sender: WebhookSender, project: Project, user: User) -> User:
    """Store a new user (with the default project permissions); ``user.created``."""
    project.add_user(user)
    events.send(sender, project, events.user_created(project, user))
    return user


def delete_user(sender: WebhookSender, project: Project, user_id: str) -> bool:
    """Delete a user and everything of theirs; ``user.deleted`` and a
    ``team_membership.deleted`` per team. False (nothing sent) if there is no such user."""
    deleted = events.user_deleted(project, user_id)  # the teams, before they are forgotten
    if not project.delete_user(user_id):
        return False
    events.send(sender, project, *deleted)
    return True


def add_team(
    sender: WebhookSender, project: Project, team: Team, *, creator_user_id: str | None
) -> None:
    """Store a new team (and its creator's membership); ``team.created`` only."""
    project.add_team(team, creator_user_id=creator_user_id)
    # No membership or permission event for the creator, as in Stack (contract §13.5).
    events.send(sender, project, events.team_created(team))


def delete_team(sender: WebhookSender, project: Project, team_id: str) -> bool:
    """Delete a team with its memberships; ``team.deleted``. False (nothing sent) if unknown."""
    deleted = project.delete_team(team_id)
    if deleted:
        events.send(sender, project, events.team_deleted(team_id))
    return deleted


def add_member(sender: WebhookSender, project: Project, team_id: str, user_id: str) -> None:
    """Add a member with the default member permissions; ``team_membership.created`` and a
    ``team_permission.created`` per permission granted."""
    granted = project.add_member(team_id, user_id)
    events.send(sender, project, *events.member_added(team_id, user_id, granted))


def remove_member(sender: WebhookSender, project: Project, team_id: str, user_id: str) -> bool:
    """End a membership and its permissions; ``team_membership.deleted``. False (nothing
    sent) if there was no membership."""
    removed = project.remove_member(team_id, user_id)
    if removed:
        events.send(sender, project, events.member_removed(team_id, user_id))
    return removed


def grant_team_permission(
    sender: WebhookSender, project: Project, team_id: str, user_id: str, permission_id: str
) -> None:
    """Grant a team permission (the caller checked the membership);
    ``team_permission.created``."""
    project.permissions.grant_team(team_id, user_id, permission_id)
    created = events.team_permission_created(team_id, user_id, permission_id)
    events.send(sender, project, created)


def revoke_team_permission(
    sender: WebhookSender, project: Project, team_id: str, user_id: str, permission_id: str
) -> bool:
    """Revoke a directly granted team permission; ``team_permission.deleted``. False (nothing
    sent) if it was not granted directly."""
    revoked = project.permissions.revoke_team(team_id, user_id, permission_id)
    if revoked:
        deleted = events.team_permission_deleted(team_id, user_id, permission_id)
        events.send(sender, project, deleted)
    return revoked


def grant_project_permission(
    sender: WebhookSender, project: Project, user_id: str, permission_id: str
) -> None:
    """Grant a project permission (the caller checked the user);
    ``project_permission.created``."""
    project.permissions.grant_project(user_id, permission_id)
    events.send(sender, project, events.project_permission_created(user_id, permission_id))


def revoke_project_permission(
    sender: WebhookSender, project: Project, user_id: str, permission_id: str
) -> bool:
    """Revoke a directly granted project permission; ``project_permission.deleted``. False
    (nothing sent) if it was not granted directly."""
    revoked = project.permissions.revoke_project(user_id, permission_id)
    if revoked:
        events.send(sender, project, events.project_permission_deleted(user_id, permission_id))
    return revoked
