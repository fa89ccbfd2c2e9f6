"""What several route modules share: the signed-in user, ``me`` as a user ID, and checks of
path and query values (UUIDs, user IDs, permission IDs)."""

from __future__ import annotations

from collections.abc import Iterable

from . import _errors as err
from ._authz_errors import team_permission_required, user_authentication_required
from ._errors import PlainError
from ._http import Auth, Ctx, is_uuid
from ._rbac import is_permission_id
from ._store import Project, User


def me(auth: Auth) -> User:
    """The request's user, or ``CANNOT_GET_OWN_USER_WITHOUT_USER`` (``me`` with no user)."""
    if auth.user is None:
        raise err.cannot_get_own_user_without_user()
    return auth.user


def signed_in(auth: Auth) -> User:
    """The request's user, or ``USER_AUTHENTICATION_REQUIRED`` (client routes that need one)."""
    if auth.user is None:
        raise user_authentication_required()
    return auth.user


def user_id(auth: Auth, value: str | None) -> str | None:
    """A validated user ID with ``me`` replaced by the request's user."""
    return me(auth).id if value == "me" else value


def q_user_id_or_me(value: str) -> str | None:
    return None if value == "me" or is_uuid(value) else "must be a valid UUID or 'me'"


def q_permission_id(value: str) -> str | None:
    return None if is_permission_id(value) else "must be a valid permission ID"


def param_problems(
    ctx: Ctx,
    *,
    uuids: Iterable[str] = (),
    users: Iterable[str] = (),
    permissions: Iterable[str] = (),
) -> list[str]:
    """Schema problems of path parameters: UUIDs, user IDs (or ``me``), permission IDs."""
    found = [
        f"params.{name} must be a valid UUID" for name in uuids if not is_uuid(ctx.params[name])
    ]
    found += [f"params.{n} {p}" for n in users if (p := q_user_id_or_me(ctx.params[n]))]
    found += [f"params.{n} {p}" for n in permissions if (p := q_permission_id(ctx.params[n]))]
    return found


def own_user_only(auth: Auth, wanted: str | None, message: str) -> None:
    """A client may only name itself: ``CANNOT_GET_OWN_USER_WITHOUT_USER`` with no user, a
    plain 403 with ``message`` for anyone else (Stack's ``StatusError``, with Stack's text)."""
    if auth.server:
        return
    if me(auth).id != wanted:
        raise PlainError(403, message)


def require_team_permission(project: Project, team_id: str, user: User, permission: str) -> None:
    """A client's team operation: membership (``TEAM_MEMBERSHIP_NOT_FOUND``), then the system
    permission, directly or contained (``TEAM_PERMISSION_REQUIRED``)."""
    project.check_member(team_id, user.id)
    require_granted(project, team_id, user, permission)


def require_granted(project: Project, team_id: str, user: User, permission: str) -> None:
    """``TEAM_PERMISSION_REQUIRED`` unless ``user`` holds ``permission`` in the team, directly
    or contained; no membership check of its own (as Stack's invitation send-code)."""
    if not project.permissions.list_team(
        team_id=team_id, user_id=user.id, permission_id=permission, recursive=True
    ):
        raise team_permission_required(team_id, user.id, permission)
