"""OAuth accounts linked to users, as the emulator records them: which provider account, the
scopes it granted and the opaque provider access token handed out for it. Plain data; the rules
of ``/connected-accounts`` are in ``_connected_accounts.py``."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field


def new_provider_access_token(provider_id: str) -> str:
    """A made-up, opaque provider access token (no provider would accept it)."""
    return f"emulated-{provider_id}-access-token-{secrets.token_hex(16)}"


@dataclass
class OAuthLink:
    """A provider account linked to a user (Stack's ``ProjectUserOAuthAccount`` with its
    tokens). ``access_token`` is ``None`` when no token was stored; ``token_valid`` False once
    the provider refused it (the user has to link the account again)."""

    user_id: str
    provider_id: str
    account_id: str
    email: str | None = None
    scopes: tuple[str, ...] = ()
    allow_connected_accounts: bool = True
    allow_sign_in: bool = True
    access_token: str | None = field(default=None, repr=False)
    token_valid: bool = True

    def covers(self, scopes: Iterable[str]) -> bool:
        """True if the stored token is usable and was granted every one of ``scopes``."""
        return (
            self.access_token is not None and self.token_valid and set(scopes) <= set(self.scopes)
        )


class OAuthLinks:
    """Every link of a project, keyed by user, provider and account."""

    def __init__(self) -> None:
        self._links: dict[tuple[str, str, str], OAuthLink] = {}

    def put(self, link: OAuthLink) -> OAuthLink:
        """Record (or replace) a link."""
        self._links[(link.user_id, link.provider_id, link.account_id)] = link
        return link

    def get(self, user_id: str, provider_id: str, account_id: str) -> OAuthLink | None:
        return self._links.get((user_id, provider_id, account_id))

    def forget_user(self, user_id: str) -> None:
        """Drop a deleted user's links."""
        for key in [k for k in self._links if k[0] == user_id]:
            del self._links[key]
