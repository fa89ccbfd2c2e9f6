"""Typed shapes from Stack Auth: ``StackUser`` (a profile), ``TokenClaims`` (the JWT), ``Team``,
and ``Identity`` (what a verified token gives)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    Strict,
    StrictBool,
    StrictStr,
    computed_field,
    model_validator,
)

#: The largest instant a ``datetime`` can hold (9999-12-31T23:59:59Z); larger values would make
#: the ``*_at`` properties raise, so they are refused when the model is built.
_MAX_SECONDS = 253_402_300_799
_MAX_MILLIS = _MAX_SECONDS * 1000 + 999
#: Epoch seconds in a token: strictly an int (no "123" strings, no bools) and in range.
Seconds = Annotated[int, Strict(), Field(ge=0, le=_MAX_SECONDS)]
Millis = Annotated[int, Field(ge=0, le=_MAX_MILLIS)]


def _from_millis(value: int | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value / 1000, tz=timezone.utc)


class _StackModel(BaseModel):
    # Unknown fields from newer Stack versions are kept (``model_extra``), never an error.
    # Frozen, because one verified user is shared by every request that carries the same token.
    model_config = ConfigDict(extra="allow", frozen=True)


class RestrictedReason(_StackModel):
    """Why a user is restricted: ``anonymous``, ``email_not_verified`` or
    ``restricted_by_administrator``."""

    type: str


class OAuthProvider(_StackModel):
    """An OAuth account linked to the user."""

    id: str
    account_id: str
    email: str | None = None


class SignUpRiskScores(_StackModel):
    """Risk scores (0-100) Stack computed at sign-up."""

    bot: int = 0
    free_trial_abuse: int = 0


class RiskScores(_StackModel):
    """Risk scores of a user (server-only)."""

    sign_up: SignUpRiskScores = Field(default_factory=SignUpRiskScores)


class Team(_StackModel):
    """A Stack Auth team (``created_at_millis`` and ``server_metadata`` are server-only)."""

    id: str
    display_name: str
    profile_image_url: str | None = None
    client_metadata: JsonValue = None
    client_read_only_metadata: JsonValue = None
    server_metadata: JsonValue = None
    created_at_millis: Millis | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def created_at(self) -> datetime | None:
        """``created_at_millis`` as an aware UTC datetime."""
        return _from_millis(self.created_at_millis)


class StackUser(_StackModel):
    """A Stack Auth user, as ``GET /api/v1/users/me`` returns it with server access.

    Server-only fields (``server_metadata``, ``last_active_at_millis``, ``country_code``, ...)
    are optional so the same model reads client responses too.
    """

    id: str
    primary_email: str | None = None
    primary_email_verified: bool = False
    primary_email_auth_enabled: bool | None = None
    display_name: str | None = None
    profile_image_url: str | None = None
    signed_up_at_millis: Millis
    last_active_at_millis: Millis | None = None
    has_password: bool = False
    otp_auth_enabled: bool = False
    passkey_auth_enabled: bool = False
    auth_with_email: bool = False
    requires_totp_mfa: bool = False
    oauth_providers: tuple[OAuthProvider, ...] = ()
    client_metadata: JsonValue = None
    client_read_only_metadata: JsonValue = None
    server_metadata: JsonValue = None
    selected_team_id: str | None = None
    selected_team: Team | None = None
    # Required, not defaulted: a body without them must not pass as a full, unrestricted user.
    is_anonymous: bool
    is_restricted: bool
    restricted_reason: RestrictedReason | None = None
    restricted_by_admin: bool = False
    restricted_by_admin_reason: str | None = None
    restricted_by_admin_private_details: str | None = None
    country_code: str | None = None
    risk_scores: RiskScores | None = None

    @classmethod
    def from_claims(cls, claims: TokenClaims) -> StackUser:
        """The user as the access token describes them: a snapshot taken when it was issued.

        Only what a token carries is filled in (id, email and its verification, display name,
        sign-up time, selected team, anonymous/restricted state, TOTP); every other field keeps
        its default (no metadata, no profile image, no OAuth providers, ...). JWT mode's
        ``current_user`` returns this; ``StackAuth.fetch_user`` or ``full_user`` give the full
        profile.
        """
        reason = claims.restricted_reason
        return cls(
            id=claims.sub,
            primary_email=claims.email,
            primary_email_verified=claims.email_verified,
            display_name=claims.name,
            signed_up_at_millis=(claims.signed_up_at or 0) * 1000,
            requires_totp_mfa=claims.requires_totp_mfa,
            selected_team_id=claims.selected_team_id,
            is_anonymous=claims.is_anonymous,
            is_restricted=claims.is_restricted,
            restricted_reason=reason,
            restricted_by_admin=reason is not None and reason.type == "restricted_by_administrator",
        )

    @computed_field  # type: ignore[prop-decorator]
    @property
    def signed_up_at(self) -> datetime:
        """``signed_up_at_millis`` as an aware UTC datetime."""
        return datetime.fromtimestamp(self.signed_up_at_millis / 1000, tz=timezone.utc)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def last_active_at(self) -> datetime | None:
        """``last_active_at_millis`` as an aware UTC datetime (server access only)."""
        return _from_millis(self.last_active_at_millis)


class TokenClaims(_StackModel):
    """The claims of a Stack Auth access token (a snapshot taken when the token was issued)."""

    sub: StrictStr
    project_id: str | None = None
    branch_id: str = Field(default="main", validation_alias=AliasChoices("branch_id", "branchId"))
    refresh_token_id: str | None = Field(
        default=None, validation_alias=AliasChoices("refresh_token_id", "refreshTokenId")
    )
    role: str | None = None
    name: str | None = None
    email: str | None = None
    email_verified: StrictBool = False
    selected_team_id: str | None = None
    signed_up_at: Seconds | None = None
    is_anonymous: StrictBool = False
    is_restricted: StrictBool = False
    restricted_reason: RestrictedReason | None = None
    requires_totp_mfa: StrictBool = False
    iss: str | None = None
    aud: StrictStr
    iat: Seconds | None = None
    exp: Seconds

    @model_validator(mode="before")
    @classmethod
    def _legacy_restricted(cls, data: Any) -> Any:
        # Tokens from before restricted users existed carry no ``is_restricted``: Stack treats
        # them as restricted exactly when they are anonymous, and so do we.
        if isinstance(data, dict) and "is_restricted" not in data:
            data = {**data, "is_restricted": data.get("is_anonymous", False)}
        return data

    @property
    def user_id(self) -> str:
        """The user id (the ``sub`` claim)."""
        return self.sub

    @property
    def expires_at(self) -> datetime:
        """``exp`` as an aware UTC datetime."""
        return datetime.fromtimestamp(self.exp, tz=timezone.utc)


@dataclass(frozen=True)
class Identity:
    """Who a verified token belongs to: its claims and the user.

    ``user`` is the full profile from Stack Auth, or, when ``snapshot`` is true (JWT mode), the
    user as the token's claims describe them (``StackUser.from_claims``).
    """

    claims: TokenClaims
    user: StackUser
    snapshot: bool = False


class ApiKey(_StackModel):
    """A user or team API key as Stack describes it (never the secret itself, except in the
    answer to creating it, where ``value`` is the whole key, shown once)."""

    id: str
    type: Literal["user", "team"]
    description: str = ""
    is_public: bool = False
    user_id: str | None = None
    team_id: str | None = None
    created_at_millis: Millis
    expires_at_millis: Millis | None = None
    manually_revoked_at_millis: Millis | None = None
    value: JsonValue = None


@dataclass(frozen=True)
class Principal:
    """Who is calling: a user (by access token or user API key) or a team (team API key).

    ``user`` is set for a user, ``team_id`` for a team; ``api_key`` is the key Stack checked
    when one was sent, ``claims`` the token's when an access token was sent.
    """

    kind: Literal["user", "team"]
    user: StackUser | None = None
    team_id: str | None = None
    api_key: ApiKey | None = None
    claims: TokenClaims | None = None
