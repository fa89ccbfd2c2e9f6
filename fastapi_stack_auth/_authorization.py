"""Authorization as FastAPI dependencies: team membership, team permissions and project
permissions, for HTTP routes and WebSockets alike.

Each dependency resolves the signed-in user with a ``UserDependency`` (``current_user`` by
default) or, for machines calling with a user's API key, a ``PrincipalDependency`` that accepts
user principals only. It is called directly rather than declared as a FastAPI sub-dependency:
FastAPI's own resolution of one more dependency costs about a tenth of a no-op request, the
whole budget of a cached check. A cache hit is then one dictionary lookup, keyed by the ids.
"""

from __future__ import annotations

from typing import NamedTuple

from fastapi.security.base import SecurityBase
from starlette.requests import HTTPConnection

from ._answers import permission_required, team_membership_required
from ._dependencies import UserDependency, answer, current_user, default_stack
from ._exceptions import StackAuthConfigError, StackAuthError
from ._permissions import Permissions
from ._principals import PrincipalDependency
from ._requirements import Requirement, check_permission_ids
from ._requirements import TeamFrom as TeamFrom  # re-exported: the package imports it here
from ._stack import StackAuth
from .models import Principal, StackUser, Team

#: Who an authorization check is about: a user dependency (an access token), or a principal
#: dependency (an access token or a user API key; a team key has no user and is refused).
UserSource = UserDependency | PrincipalDependency


class TeamAccess(NamedTuple):
    """What ``require_team_permission`` resolves: the user, and the team they may act in."""

    # A NamedTuple: immutable like a frozen dataclass, and built in half the time on the
    # hot path.
    user: StackUser
    team_id: str


class TeamMember(NamedTuple):
    """What ``current_team_member`` resolves: the user and the team they are a member of."""

    user: StackUser
    team: Team

    @property
    def team_id(self) -> str:
        """The team's id."""
        return self.team.id


class _AuthorizationDependency(SecurityBase):
    # A security scheme like the user dependency it builds on, so /docs shows the lock.

    def __init__(self, *, stack: StackAuth | None, user: UserSource | None) -> None:
        if user is None:
            user = current_user if stack is None else UserDependency(stack=stack)
        if isinstance(user, PrincipalDependency):
            # A team key is refused from its own text (401 WRONG_API_KEY_TYPE), before any
            # call: it has no user whose permissions could be asked.
            user = user.users_only()
        elif user.optional:
            raise ValueError("an authorization check needs a signed-in user: not optional=True")
        if stack is not None and user.stack is not None and user.stack is not stack:
            raise ValueError("stack= and user= name two different StackAuth instances")
        self.stack = stack or user.stack
        #: The dependency that resolves the user (for a principal one: users only).
        self.user: UserSource = user
        self.model = user.model
        self.scheme_name = user.scheme_name
        self._bound: tuple[object, Permissions] | None = None

    def _permissions(self, conn: HTTPConnection) -> Permissions:
        if self.stack is not None:
            return self.stack.permissions
        # The app's default StackAuth never changes once set, and finding it on app.state
        # costs a fifth of a cached check: remembered for the last app seen.
        app, bound = conn.scope["app"], self._bound
        if bound is not None and bound[0] is app:
            return bound[1]
        permissions = default_stack(conn).permissions
        self._bound = (app, permissions)
        return permissions

    async def _user_and_team(self, conn: HTTPConnection, source: TeamFrom) -> tuple[StackUser, str]:
        # The team the request names is judged before the user is resolved, so that a
        # missing or malformed one costs no call to Stack; a selected team needs the user.
        team_id = source.read(conn)
        user = _user_of(await self.user(conn))
        return user, team_id or source.of_user(user)


class TeamPermissionDependency(_AuthorizationDependency):
    """Resolves ``TeamAccess`` when the user has ``required`` in the request's team; 400 for
    a missing or malformed team id, 403 ``PERMISSION_REQUIRED`` otherwise (a non-member and
    an unknown team included: Stack lists no permissions for either)."""

    def __init__(
        self,
        required: str | Requirement,
        *,
        team_from: TeamFrom | None = None,
        stack: StackAuth | None = None,
        user: UserSource | None = None,
    ) -> None:
        check_permission_ids(required, "team")
        super().__init__(stack=stack, user=user)
        self.required = required
        self.team_from = team_from or TeamFrom.path()
        self._denied = f"'{required}'" if isinstance(required, str) else required.describe()

    def __repr__(self) -> str:
        return f"require_team_permission({self._denied}, team_from={self.team_from})"

    async def __call__(self, conn: HTTPConnection) -> TeamAccess:
        try:
            user, team_id = await self._user_and_team(conn, self.team_from)
            permissions = self._permissions(conn)
            lacking = await permissions.missing_team(user.id, team_id, self.required)
            if lacking is not None:
                raise permission_required("team", lacking)
        except StackAuthError as exc:
            raise answer(conn, exc) from None
        return TeamAccess(user, team_id)


class ProjectPermissionDependency(_AuthorizationDependency):
    """Resolves the ``StackUser`` when they have the project permission ``required``;
    403 ``PERMISSION_REQUIRED`` otherwise."""

    def __init__(
        self,
        required: str | Requirement,
        *,
        stack: StackAuth | None = None,
        user: UserSource | None = None,
    ) -> None:
        check_permission_ids(required, "project")
        super().__init__(stack=stack, user=user)
        self.required = required
        self._denied = f"'{required}'" if isinstance(required, str) else required.describe()

    def __repr__(self) -> str:
        return f"require_project_permission({self._denied})"

    async def __call__(self, conn: HTTPConnection) -> StackUser:
        found = await self.user(conn)  # raises the edge's answer itself
        try:
            user = _user_of(found)
            lacking = await self._permissions(conn).missing_project(user.id, self.required)
            if lacking is not None:
                raise permission_required("project", lacking)
        except StackAuthError as exc:
            raise answer(conn, exc) from None
        return user


class TeamMemberDependency(_AuthorizationDependency):
    """Resolves ``TeamMember`` when the user is a member of the request's team; 400 for a
    missing or malformed team id, 403 ``TEAM_MEMBERSHIP_REQUIRED`` otherwise (an unknown team
    included)."""

    def __init__(
        self,
        *,
        team_from: TeamFrom | None = None,
        stack: StackAuth | None = None,
        user: UserSource | None = None,
    ) -> None:
        super().__init__(stack=stack, user=user)
        self.team_from = team_from or TeamFrom.path()

    def __repr__(self) -> str:
        return f"current_team_member(team_from={self.team_from})"

    async def __call__(self, conn: HTTPConnection) -> TeamMember:
        try:
            user, team_id = await self._user_and_team(conn, self.team_from)
            team = await self._permissions(conn).team_of(user.id, team_id)
            if team is None:
                raise team_membership_required()
        except StackAuthError as exc:
            raise answer(conn, exc) from None
        return TeamMember(user, team)


def _user_of(found: StackUser | Principal | None) -> StackUser:
    """The user a user or principal dependency resolved."""
    user = found.user if isinstance(found, Principal) else found
    if user is None:  # never: optional user dependencies and team-only principal ones are
        # refused when the check is built
        raise StackAuthConfigError("An authorization check resolved no user")
    return user


def require_team_permission(
    required: str | Requirement,
    *,
    team_from: TeamFrom | None = None,
    stack: StackAuth | None = None,
    user: UserSource | None = None,
) -> TeamPermissionDependency:
    """``Depends(require_team_permission("docs:delete"))``: the user must hold the team
    permission (directly or through one that contains it; ``any_of``/``all_of`` for several)
    in the team named by ``team_from`` (default: the ``team_id`` path parameter). Resolves
    ``TeamAccess``. ``stack=`` for another project; ``user=`` for another user policy, or a
    principal dependency (``current_principal``, ``api_key_principal``) to let a user's API
    key stand for its user (a team key: 401 ``WRONG_API_KEY_TYPE``)."""
    return TeamPermissionDependency(required, team_from=team_from, stack=stack, user=user)


def require_project_permission(
    required: str | Requirement,
    *,
    stack: StackAuth | None = None,
    user: UserSource | None = None,
) -> ProjectPermissionDependency:
    """``Depends(require_project_permission("admin"))``: the user must hold the project
    permission (directly or contained). Resolves the ``StackUser``. ``stack=`` and ``user=``
    as for ``require_team_permission``."""
    return ProjectPermissionDependency(required, stack=stack, user=user)


def current_team_member(
    *,
    team_from: TeamFrom | None = None,
    stack: StackAuth | None = None,
    user: UserSource | None = None,
) -> TeamMemberDependency:
    """``member: TeamMember = Depends(current_team_member())``: the user must be a member of
    the team named by ``team_from`` (default: the ``team_id`` path parameter). ``stack=`` and
    ``user=`` as for ``require_team_permission``."""
    return TeamMemberDependency(team_from=team_from, stack=stack, user=user)
