"""Typed webhook events: one model per event type Stack sends, and ``UnknownEvent`` for the rest.

Stack's payload is only ``{"type": ..., "data": ...}``. Each event here also carries the
delivery's ``id`` (the ``svix-id`` header: the same on every retry) and ``timestamp`` (the
``svix-timestamp`` header: when *this attempt* was sent, not when the change happened).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, JsonValue

from ..models import StackUser, Team, _StackModel


class WebhookEvent(BaseModel):
    """Base class of every event: ``on(WebhookEvent)`` is called for all of them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(description="The delivery's svix-id: the same on every retry of it.")
    timestamp: datetime = Field(description="The svix-timestamp of this attempt (UTC).")
    type: str
    data: Any


class UnknownEvent(WebhookEvent):
    """An event type this library does not know yet (Stack adds types): ``data`` as sent."""

    data: JsonValue


# --- the data of events that are not a whole user or team ---------------------------------------


class TeamRef(_StackModel):
    """A team named by its id."""

    id: str


class UserDeletedData(_StackModel):
    """``user.deleted``: the user's id and the teams they were in (oldest first)."""

    id: str
    teams: tuple[TeamRef, ...] = ()


class TeamDeletedData(_StackModel):
    """``team.deleted``: the team's id."""

    id: str


class TeamMembershipData(_StackModel):
    """``team_membership.*``: who joined or left which team."""

    team_id: str
    user_id: str


class TeamPermissionData(_StackModel):
    """``team_permission.*``: the permission ``id`` granted to or revoked from a member."""

    id: str
    team_id: str
    user_id: str


class ProjectPermissionData(_StackModel):
    """``project_permission.*``: the project permission ``id`` granted to or revoked from a
    user."""

    id: str
    user_id: str


class StackTestData(_StackModel):
    """``stack.test``: the dashboard's test message (Stack sends ``endpointUrl`` in camelCase)."""

    message: str
    endpoint_url: str = Field(validation_alias=AliasChoices("endpointUrl", "endpoint_url"))


# --- one class per event type ----------------------------------------------------------------


class UserCreated(WebhookEvent):
    """``user.created``: a user signed up or was created (anonymous ones too). ``data`` is built
    before the personal team exists: ``selected_team`` is ``None``."""

    type: Literal["user.created"] = "user.created"
    data: StackUser


class UserUpdated(WebhookEvent):
    """``user.updated``: the user after the change (also sent when an anonymous user signs up)."""

    type: Literal["user.updated"] = "user.updated"
    data: StackUser


class UserDeleted(WebhookEvent):
    """``user.deleted``."""

    type: Literal["user.deleted"] = "user.deleted"
    data: UserDeletedData


class TeamCreated(WebhookEvent):
    """``team.created`` (personal teams too)."""

    type: Literal["team.created"] = "team.created"
    data: Team


class TeamUpdated(WebhookEvent):
    """``team.updated``: the team after the change."""

    type: Literal["team.updated"] = "team.updated"
    data: Team


class TeamDeleted(WebhookEvent):
    """``team.deleted`` (no ``team_membership.deleted`` follows for its members)."""

    type: Literal["team.deleted"] = "team.deleted"
    data: TeamDeletedData


class TeamMembershipCreated(WebhookEvent):
    """``team_membership.created`` (not sent for a team's creator)."""

    type: Literal["team_membership.created"] = "team_membership.created"
    data: TeamMembershipData


class TeamMembershipDeleted(WebhookEvent):
    """``team_membership.deleted`` (also one per team when a user is deleted)."""

    type: Literal["team_membership.deleted"] = "team_membership.deleted"
    data: TeamMembershipData


class TeamPermissionCreated(WebhookEvent):
    """``team_permission.created``."""

    type: Literal["team_permission.created"] = "team_permission.created"
    data: TeamPermissionData


class TeamPermissionDeleted(WebhookEvent):
    """``team_permission.deleted``."""

    type: Literal["team_permission.deleted"] = "team_permission.deleted"
    data: TeamPermissionData


class ProjectPermissionCreated(WebhookEvent):
    """``project_permission.created``."""

    type: Literal["project_permission.created"] = "project_permission.created"
    data: ProjectPermissionData


class ProjectPermissionDeleted(WebhookEvent):
    """``project_permission.deleted``."""

    type: Literal["project_permission.deleted"] = "project_permission.deleted"
    data: ProjectPermissionData


class StackTestEvent(WebhookEvent):
    """``stack.test``: sent by the dashboard's test button."""

    type: Literal["stack.test"] = "stack.test"
    data: StackTestData


#: Every event type this library models, by its ``type``.
EVENT_TYPES: dict[str, type[WebhookEvent]] = {
    cls.model_fields["type"].default: cls
    for cls in (
        UserCreated,
        UserUpdated,
        UserDeleted,
        TeamCreated,
        TeamUpdated,
        TeamDeleted,
        TeamMembershipCreated,
        TeamMembershipDeleted,
        TeamPermissionCreated,
        TeamPermissionDeleted,
        ProjectPermissionCreated,
        ProjectPermissionDeleted,
        StackTestEvent,
    )
}


def build_event(event_type: str, data: Any, *, msg_id: str, timestamp: datetime) -> WebhookEvent:
    """The typed event for a verified payload: its class if the type is known, else
    ``UnknownEvent``. Raises ``pydantic.ValidationError`` if a known type's data is wrong."""
    cls = EVENT_TYPES.get(event_type, UnknownEvent)
    return cls.model_validate(
        {"id": msg_id, "timestamp": timestamp, "type": event_type, "data": data}
    )
