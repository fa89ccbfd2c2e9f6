"""Access tokens: minted as Stack Auth mints them (ES256, claims of contract §5) and checked as
its backend checks them (§5.4)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._errors import access_token_expired, unparsable_access_token
from ._keys import KeyRing, b64url, b64url_decode

NORMAL = "normal"
RESTRICTED = "restricted"
ANONYMOUS = "anonymous"

_AUDIENCE_SUFFIX = {NORMAL: "", RESTRICTED: ":restricted", ANONYMOUS: ":anon"}
_ISSUER_SEGMENT = {
    NORMAL: "projects",
    RESTRICTED: "projects-restricted-users",
    ANONYMOUS: "projects-anonymous-users",
}
#: JWKS order: normal, restricted, anonymous.
AUDIENCE_KINDS = (NORMAL, RESTRICTED, ANONYMOUS)


class TokenConsistencyError(Exception):
    """A correctly signed token whose claims contradict each other: Stack answers 500."""


def audience(project_id: str, kind: str) -> str:
    """The ``aud`` of a ``kind`` token of ``project_id``."""
    return project_id + _AUDIENCE_SUFFIX[kind]


def issuer(public_url: str, project_id: str, kind: str) -> str:
    """The ``iss`` of a ``kind`` token of ``project_id``, on the emulator at ``public_url``."""
    return f"{public_url}/api/v1/{_ISSUER_SEGMENT[kind]}/{project_id}"


def kind_of(*, is_anonymous: bool, is_restricted: bool) -> str:
    if is_anonymous:
        return ANONYMOUS
    return RESTRICTED if is_restricted else NORMAL


def _json_segment(value: dict[str, Any]) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


@dataclass(frozen=True)
class TokenSubject:
    """What a token says about its user, frozen when it is minted."""

    user_id: str
    name: str | None
    email: str | None
    email_verified: bool
    selected_team_id: str | None
    signed_up_at_millis: int
    is_anonymous: bool
    restricted_reason: str | None
    requires_totp_mfa: bool


def mint_access_token(
    keys: KeyRing,
    *,
    public_url: str,
    project_id: str,
    subject: TokenSubject,
    refresh_token_id: str,
    issued_at: int,
    lifetime: int,
) -> str:
    """A signed ES256 access token with exactly Stack's claims."""
    is_restricted = subject.restricted_reason is not None
    kind = kind_of(is_anonymous=subject.is_anonymous, is_restricted=is_restricted)
    aud = audience(project_id, kind)
    key = keys.signing_key(aud)
    payload = {
        "sub": subject.user_id,
        "project_id": project_id,
        "branch_id": "main",
        "refresh_token_id": refresh_token_id,
        "role": "authenticated",
        "name": subject.name,
        "email": subject.email,
        "email_verified": subject.email_verified,
        "selected_team_id": subject.selected_team_id,
        "signed_up_at": subject.signed_up_at_millis // 1000,
        "is_anonymous": subject.is_anonymous,
        "is_restricted": is_restricted,
        "restricted_reason": {"type": subject.restricted_reason} if is_restricted else None,
        "requires_totp_mfa": subject.requires_totp_mfa,
        "iss": issuer(public_url, project_id, kind),
        "iat": issued_at,
        "aud": aud,
        "exp": issued_at + lifetime,
    }
    signing_input = f"{_json_segment({'alg': 'ES256', 'kid': key.kid})}.{_json_segment(payload)}"
    return f"{signing_input}.{b64url(key.sign(signing_input.encode()))}"


@dataclass(frozen=True)
class VerifiedToken:
    """A token the emulator signed, unexpired, with consistent claims."""

    project_id: str
    user_id: str
    refresh_token_id: str | None
    is_anonymous: bool
    is_restricted: bool
    restricted_reason: dict[str, Any] | None
    claims: dict[str, Any]


def decode_access_token(
    raw: str,
    *,
    keys: KeyRing,
    public_url: str,
    project_exists: Callable[[str], bool],
    now: float,
) -> VerifiedToken:
    """Check ``raw`` like Stack's ``decodeAccessToken``.

    Raises ``KnownError`` ``UNPARSABLE_ACCESS_TOKEN`` / ``ACCESS_TOKEN_EXPIRED``, or
    ``TokenConsistencyError`` for a signed token with contradictory claims.
    """
    parts = raw.split(".")
    if len(parts) != 3:
        raise unparsable_access_token()
    try:
        header = json.loads(b64url_decode(parts[0]))
        payload = json.loads(b64url_decode(parts[1]))
        signature = b64url_decode(parts[2])
    except (ValueError, RecursionError):
        raise unparsable_access_token() from None
    if not isinstance(header, dict) or not isinstance(payload, dict):
        raise unparsable_access_token()
    aud = payload.get("aud")
    if not isinstance(aud, str):
        raise unparsable_access_token()
    project_id, _, suffix = aud.partition(":")
    kind = {"": NORMAL, "restricted": RESTRICTED, "anon": ANONYMOUS}.get(suffix)
    # Keys exist only for this emulator's projects: any other audience cannot verify.
    if kind is None or not project_exists(project_id) or header.get("alg") != "ES256":
        raise unparsable_access_token()
    signing_input = f"{parts[0]}.{parts[1]}".encode()
    key = next((k for k in keys.keys_for(aud) if k.kid == header.get("kid")), None)
    if key is None or not key.verify(signing_input, signature):
        raise unparsable_access_token()
    allowed_issuers = {issuer(public_url, project_id, k) for k in AUDIENCE_KINDS}
    if payload.get("iss") not in allowed_issuers:
        raise unparsable_access_token()
    raw_exp = payload.get("exp")
    if not isinstance(raw_exp, (int, float)) or isinstance(raw_exp, bool):
        raise unparsable_access_token()
    exp = float(raw_exp)
    sub = payload.get("sub")
    refresh_token_id = payload.get("refresh_token_id", payload.get("refreshTokenId"))
    if exp <= now:
        raise access_token_expired(
            int(exp * 1000),
            project_id,
            sub if isinstance(sub, str) else None,
            refresh_token_id if isinstance(refresh_token_id, str) else None,
        )
    if not isinstance(sub, str) or not (
        refresh_token_id is None or isinstance(refresh_token_id, str)
    ):
        raise unparsable_access_token()

    is_anonymous = payload.get("is_anonymous", False) is True
    # Legacy tokens without ``is_restricted`` are restricted exactly when anonymous.
    is_restricted = payload.get("is_restricted", is_anonymous) is True
    reason = payload.get("restricted_reason")
    branch_id = payload.get("branch_id", payload.get("branchId", "main"))
    if is_anonymous and not is_restricted:
        raise TokenConsistencyError("anonymous token that is not restricted")
    if is_restricted != (reason is not None):
        raise TokenConsistencyError("restricted_reason does not match is_restricted")
    if kind != kind_of(is_anonymous=is_anonymous, is_restricted=is_restricted):
        raise TokenConsistencyError("aud suffix does not match the user type")
    if branch_id != "main":
        raise TokenConsistencyError("branch_id is not 'main'")
    if reason is not None and not isinstance(reason, dict):
        raise unparsable_access_token()
    return VerifiedToken(
        project_id=project_id,
        user_id=sub,
        refresh_token_id=refresh_token_id,
        is_anonymous=is_anonymous,
        is_restricted=is_restricted,
        restricted_reason=reason,
        claims=payload,
    )
