"""What a cached answer is about: subject tags, and the kinds of answer the caches hold.

Each cache entry (in process and in the shared tier) carries the tags of the users and teams
its answer depends on, so that an invalidation can find every entry about a user or a team
without knowing the token digests or the questions they are keyed by. Ids are lower-cased:
Stack's ids are UUIDs, which compare case-insensitively.
"""

from __future__ import annotations

from collections.abc import Iterable

from .models import Identity, Principal, StackUser

#: The tags of one entry.
Tags = tuple[str, ...]

# The kinds of cached answer, also the middle part of their shared-tier keys.
IDENTITY = "remote"  # verified access tokens (shared in remote mode only)
PROFILE = "profile"  # full profiles fetched for JWT-mode identities
TEAMS = "teams"  # a user's teams
TEAM_PERMISSION = "team-permission"  # (user, team, permission) answers
PROJECT_PERMISSION = "project-permission"  # (user, permission) answers
API_KEY = "api-key"  # API-key principals
ALL_KINDS = frozenset({IDENTITY, PROFILE, TEAMS, TEAM_PERMISSION, PROJECT_PERMISSION, API_KEY})
#: Longest user or team id an invalidation takes (Stack's are 36-character UUIDs).
MAX_ID_LENGTH = 256


def user_subject(user_id: str) -> str:
    """The tag of every answer about the user ``user_id``."""
    return f"user:{user_id.lower()}"


def team_subject(team_id: str) -> str:
    """The tag of every answer that mentions the team ``team_id``."""
    return f"team:{team_id.lower()}"


def member_subject(user_id: str, team_id: str) -> str:
    """The tag of the answers about ``user_id`` within ``team_id`` (team permissions)."""
    return f"member:{user_id.lower()}\x00{team_id.lower()}"


def user_tags(user: StackUser) -> Tags:
    """A user, and the selected team a full profile embeds (its name, metadata, ...)."""
    team = user.selected_team
    if team is None:
        return (user_subject(user.id),)
    return user_subject(user.id), team_subject(team.id)


def identity_tags(identity: Identity) -> Tags:
    """The tags of a verified token's identity."""
    return user_tags(identity.user)


def principal_tags(principal: Principal) -> Tags:
    """The tags of an API key's principal: its user, or its team."""
    if principal.user is not None:
        return user_tags(principal.user)
    return (team_subject(principal.team_id),) if principal.team_id else ()


def teams_tags(user_id: str, team_ids: Iterable[str]) -> Tags:
    """The tags of a user's teams list: the user and every team in it."""
    return (user_subject(user_id), *map(team_subject, team_ids))


def team_permission_tags(user_id: str, team_id: str) -> Tags:
    """The tags of a team permission answer."""
    return user_subject(user_id), team_subject(team_id), member_subject(user_id, team_id)
