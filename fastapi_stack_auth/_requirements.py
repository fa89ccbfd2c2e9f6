"""What a route requires: the team it is about (``TeamFrom``: a path parameter, a header or
the user's selected team, read and checked before any call to Stack) and the permissions
(one id, or ``any_of``/``all_of`` of several), checked against Stack's own rules when the
route is defined."""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Literal

from starlette.requests import HTTPConnection

from ._answers import invalid_team_id, team_id_required
from ._exceptions import StackAuthConfigError
from .models import StackUser

#: Stack's own rule for a permission id (``permissionDefinitionIdSchema``).
_PERMISSION_ID = re.compile(r"\$?[a-z0-9_:]+")
#: The only ``$`` ids Stack accepts: team system permissions.
SYSTEM_TEAM_PERMISSIONS = frozenset(
    {
        "$update_team",
        "$delete_team",
        "$read_members",
        "$remove_members",
        "$invite_members",
        "$manage_api_keys",
    }
)


#: What Stack's schema accepts as a UUID (yup's ``uuid()``: versions 1-5, RFC variant, or
#: the nil UUID): anything else would be a SCHEMA_ERROR upstream, so it never gets that far.
# Spelled out rather than re.IGNORECASE, which makes the match three times slower.
_UUID = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[1-5][0-9a-fA-F]{3}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}"
    r"|00000000-0000-0000-0000-000000000000"
)


@functools.lru_cache(maxsize=1024)
def _team_id(raw: str) -> str:
    """``raw`` lower-cased, if Stack would take it as a team id; ``ValueError`` otherwise.

    Remembered for the last 1,024 teams seen: matching the pattern is most of what reading a
    team costs, and a busy app sees the same teams again and again. What is refused raises,
    so is never remembered."""
    if not _UUID.fullmatch(raw):
        raise ValueError("not a UUID")
    return raw.lower()


@dataclass(frozen=True)
class TeamFrom:
    """Where a dependency reads the team: exactly one place, never a fallback to another.

    ``TeamFrom.path("team_id")`` (the default), ``TeamFrom.header("x-team-id")``, or
    ``TeamFrom.selected_team()`` (the user's ``selected_team_id``).
    """

    kind: Literal["path", "header", "selected_team"]
    name: str = ""

    @classmethod
    def path(cls, name: str = "team_id") -> TeamFrom:
        """The route's path parameter ``name`` (``/teams/{team_id}/...``)."""
        return cls("path", name)

    @classmethod
    def header(cls, name: str = "x-team-id") -> TeamFrom:
        """The request header ``name``."""
        return cls("header", name.lower())

    @classmethod
    def selected_team(cls) -> TeamFrom:
        """The user's selected team (``StackUser.selected_team_id``)."""
        return cls("selected_team")

    def __post_init__(self) -> None:
        if self.kind != "selected_team" and not self.name:
            raise ValueError(f"TeamFrom.{self.kind}() needs a name")

    @property
    def where(self) -> str:
        """Where the id is read, as an answer names it."""
        if self.kind == "path":
            return f"the path parameter '{self.name}'"
        if self.kind == "header":
            return f"the '{self.name}' header"
        return "the user's selected team"

    def read(self, conn: HTTPConnection) -> str | None:
        """The team id the request itself names (path or header), lower-cased; ``None`` for
        ``selected_team``, which needs the user (``of_user``). ``AuthError`` 400 if it is
        missing or not a UUID."""
        kind = self.kind
        if kind == "path":
            raw = conn.path_params.get(self.name)
            if raw is None:
                # The route itself lacks the parameter: every request would fail, the app's
                # fault, not the client's.
                route = getattr(conn.scope.get("route"), "path", conn.url.path)
                raise StackAuthConfigError(
                    f"The route {route!r} has no path parameter {self.name!r} to read "
                    "the team from: rename it, or pass team_from=TeamFrom.path('<name>')"
                )
        elif kind == "header":
            values = conn.headers.getlist(self.name)
            if len(values) > 1:  # two teams named: which one was meant is not ours to guess
                raise invalid_team_id(self.where)
            raw = values[0] if values else None
            if not raw:
                raise team_id_required(f"send its id in the '{self.name}' header")
        else:
            return None
        if not isinstance(raw, str):  # a path convertor's int, say
            raise invalid_team_id(self.where)
        try:
            return _team_id(raw)
        except ValueError:
            raise invalid_team_id(self.where) from None

    def of_user(self, user: StackUser) -> str:
        """The user's selected team id, lower-cased (``selected_team``); ``AuthError`` 400 if
        there is none."""
        raw = user.selected_team_id
        if not raw:
            raise team_id_required("the user has no selected team")
        try:
            return _team_id(raw)
        except ValueError:
            raise invalid_team_id(self.where) from None


# --- what is asked: one permission, or any/all of several ----------------------------------


@dataclass(frozen=True)
class Requirement:
    """Permissions combined: ``any_of(...)`` or ``all_of(...)``, nestable."""

    mode: Literal["any", "all"]
    items: tuple[str | Requirement, ...]

    def permission_ids(self) -> Iterator[str]:
        """Every permission id named, nested ones included."""
        for item in self.items:
            if isinstance(item, str):
                yield item
            else:
                yield from item.permission_ids()

    def describe(self) -> str:
        """How an answer names it: ``one of 'a', 'b'`` / ``all of 'a', 'b'``."""
        inner = ", ".join(
            f"'{item}'" if isinstance(item, str) else f"({item.describe()})" for item in self.items
        )
        return f"{'one' if self.mode == 'any' else 'all'} of {inner}"


def any_of(*permissions: str | Requirement) -> Requirement:
    """Satisfied when at least one of ``permissions`` is held (checked in order)."""
    return _combine("any", permissions)


def all_of(*permissions: str | Requirement) -> Requirement:
    """Satisfied when every one of ``permissions`` is held (checked in order)."""
    return _combine("all", permissions)


def _combine(mode: Literal["any", "all"], items: tuple[str | Requirement, ...]) -> Requirement:
    if not items:
        raise ValueError(f"{mode}_of() needs at least one permission")
    for item in items:
        if not isinstance(item, (str, Requirement)):
            raise TypeError(f"a permission is a str, any_of(...) or all_of(...), not {item!r}")
    return Requirement(mode, items)


def check_permission_ids(required: str | Requirement, scope: Literal["team", "project"]) -> None:
    """Raise ``ValueError`` for an id Stack would refuse (or, in the project scope, a team
    system permission, which no user can hold there): at import time, not on a request."""
    for permission_id in (required,) if isinstance(required, str) else required.permission_ids():
        if not isinstance(permission_id, str) or not _PERMISSION_ID.fullmatch(permission_id):
            raise ValueError(
                f"{permission_id!r} is not a Stack Auth permission id "
                "(lower-case letters, digits, '_' and ':', optionally after one '$')"
            )
        if permission_id.startswith("$") and (
            scope == "project" or permission_id not in SYSTEM_TEAM_PERMISSIONS
        ):
            raise ValueError(
                f"{permission_id!r}: '$' ids are Stack's team system permissions "
                f"({', '.join(sorted(SYSTEM_TEAM_PERMISSIONS))})"
            )


async def missing(required: str | Requirement, has: Callable[[str], Awaitable[bool]]) -> str | None:
    """``None`` when ``required`` is satisfied, else how to name what is missing (for all_of,
    the first missing item; for any_of, the alternatives). Short-circuits in order."""
    if isinstance(required, str):
        return None if await has(required) else f"'{required}'"
    if required.mode == "all":
        for item in required.items:
            lacking = await missing(item, has)
            if lacking is not None:
                return lacking
        return None
    for item in required.items:
        if await missing(item, has) is None:
            return None
    return required.describe()
