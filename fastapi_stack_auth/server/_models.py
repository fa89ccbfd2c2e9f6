"""The objects of Stack Auth's server API that ``fastapi_stack_auth.models`` does not already
have (``StackUser``, ``Team`` and ``ApiKey`` are reused). Secrets (tokens, a new API key) are
``SecretStr``: a log line or a ``repr`` shows ``'**********'``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from pydantic import ConfigDict, Field, SecretStr

from ..models import ApiKey, Millis, StackUser, _StackModel


class TeamPermission(_StackModel):
    """A team permission a user holds in a team (``id`` is the permission's id)."""

    id: str
    team_id: str
    user_id: str


class ProjectPermission(_StackModel):
    """A project permission a user holds (``id`` is the permission's id)."""

    id: str
    user_id: str


class TeamMembership(_StackModel):
    """A user's membership of a team."""

    team_id: str
    user_id: str


class EndUserIpInfo(_StackModel):
    """Where a session was last used from; Stack sends these keys in camelCase."""

    model_config = ConfigDict(populate_by_name=True)

    ip: str
    country_code: str | None = Field(default=None, alias="countryCode")
    region_code: str | None = Field(default=None, alias="regionCode")
    city_name: str | None = Field(default=None, alias="cityName")
    latitude: float | None = None
    longitude: float | None = None
    tz_identifier: str | None = Field(default=None, alias="tzIdentifier")


class Session(_StackModel):
    """A user's session (one refresh token); ``id`` is its access tokens' ``refresh_token_id``.

    ``created_at`` and ``last_used_at`` are epoch milliseconds (Stack gives them no
    ``_millis`` suffix here).
    """

    id: str
    user_id: str
    created_at: Millis
    last_used_at: Millis | None = None
    is_impersonation: bool = False
    is_current_session: bool = False
    last_used_at_end_user_ip_info: EndUserIpInfo | None = None


class SessionTokens(_StackModel):
    """The tokens of a new session: a 10-minute access token and its refresh token."""

    access_token: SecretStr
    refresh_token: SecretStr


class TeamInvitation(_StackModel):
    """A pending invitation to a team, sent to ``recipient_email``."""

    id: str
    team_id: str
    team_display_name: str
    recipient_email: str | None = None
    expires_at_millis: Millis

    @property
    def expires_at(self) -> datetime:
        """``expires_at_millis`` as an aware UTC datetime."""
        return datetime.fromtimestamp(self.expires_at_millis / 1000, tz=timezone.utc)


class ConnectedAccount(_StackModel):
    """An OAuth account linked to a user that the project may use on their behalf."""

    user_id: str
    provider: str
    provider_account_id: str


class ProviderAccessToken(_StackModel):
    """An OAuth provider's access token for a user, to call the provider's API as them."""

    access_token: SecretStr


class SentEmail(_StackModel):
    """One recipient of ``emails.send``: queued, not necessarily delivered."""

    user_id: str


@dataclass(frozen=True)
class NewApiKey:
    """A key just created: ``value`` is the whole key, which Stack shows this once; ``api_key``
    describes it (its ``value`` holds only the last four characters)."""

    api_key: ApiKey
    value: SecretStr


@dataclass(frozen=True)
class UserPage:
    """One page of ``users.list_page``; ``next_cursor`` is ``None`` on the last page."""

    items: list[StackUser]
    next_cursor: str | None
