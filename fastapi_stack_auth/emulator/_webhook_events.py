"""The events Stack sends and their ``data`` (contract §13.5), built from the store's rows at the
moment of the change; ``send`` hands them to the project's endpoints. ``_changes`` (for the
routes and the Python API alike) and the few routes with a change of their own decide which
events a change sends -- and which it does not, as in Stack."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ._store import Project, Team, User
from ._views import team_json, user_json
from ._webhooks import WebhookSender

#: The ``data.message`` of Stack's test event.
TEST_MESSAGE = "Stack webhook test event triggered from the Stack dashboard."


@dataclass(frozen=True)
class Event:
    """An event type and its ``data``."""

    type: str
    data: dict[str, Any]


def send(sender: WebhookSender, project: Project, *events: Event) -> None:
    """Queue ``events``, in order, for every endpoint of ``project``."""
    for event in events:
        sender.send(project.id, event.type, event.data)


def user_created(project: Project, user: User) -> Event:
    """The server user, with no selected team: Stack builds it before any personal team."""
    data = user_json(user, project, server=True)
    data["selected_team"] = data["selected_team_id"] = None
    return Event("user.created", data)


def user_updated(project: Project, user: User) -> Event:
    return Event("user.updated", user_json(user, project, server=True))


def user_deleted(project: Project, user_id: str) -> list[Event]:
    """``user.deleted`` with the user's teams (oldest first) and a ``team_membership.deleted``
    per team; build it *before* the deletion. No ``team_permission.deleted``, as in Stack."""
    teams = [team.id for team in project.teams_of(user_id)]
    deleted = Event("user.deleted", {"id": user_id, "teams": [{"id": t} for t in teams]})
    return [deleted, *(member_removed(team_id, user_id) for team_id in teams)]


def team_created(team: Team) -> Event:
    return Event("team.created", team_json(team, server=True))


def team_updated(team: Team) -> Event:
    return Event("team.updated", team_json(team, server=True))


def team_deleted(team_id: str) -> Event:
    """``{id}`` only: the members' memberships end without an event of their own."""
    return Event("team.deleted", {"id": team_id})


def member_added(team_id: str, user_id: str, granted: list[str]) -> list[Event]:
    """``team_membership.created``, then a ``team_permission.created`` per default permission
    granted directly with it (never for a team's creator: Stack sends nothing for them)."""
    created = Event("team_membership.created", {"team_id": team_id, "user_id": user_id})
    return [created, *(team_permission_created(team_id, user_id, pid) for pid in granted)]


def member_removed(team_id: str, user_id: str) -> Event:
    return Event("team_membership.deleted", {"team_id": team_id, "user_id": user_id})


def team_permission_created(team_id: str, user_id: str, permission_id: str) -> Event:
    data = {"id": permission_id, "team_id": team_id, "user_id": user_id}
    return Event("team_permission.created", data)


def team_permission_deleted(team_id: str, user_id: str, permission_id: str) -> Event:
    data = {"id": permission_id, "team_id": team_id, "user_id": user_id}
    return Event("team_permission.deleted", data)


def project_permission_created(user_id: str, permission_id: str) -> Event:
    return Event("project_permission.created", {"id": permission_id, "user_id": user_id})


def project_permission_deleted(user_id: str, permission_id: str) -> Event:
    return Event("project_permission.deleted", {"id": permission_id, "user_id": user_id})


def stack_test(endpoint_url: str) -> Event:
    """The dashboard's test event (its ``endpointUrl`` is camelCase, as in Stack)."""
    return Event("stack.test", {"message": TEST_MESSAGE, "endpointUrl": endpoint_url})


def send_test(sender: WebhookSender, project: Project, endpoint_id: str) -> bool:
    """Stack's dashboard test: ``stack.test`` naming the endpoint's URL, sent to every endpoint
    of the project (Stack sends it to the whole application); False if the endpoint is not
    one of the project's."""
    found = [e for e in sender.endpoints(project.id) if e.id == endpoint_id]
    if found:
        send(sender, project, stack_test(found[0].url))
    return bool(found)
