"""The rules of connected accounts on a project (contract §9.11): which links a user has, and
which provider access token answers a request, in Stack's order of checks."""

from __future__ import annotations

import re
from typing import Any

from . import _messaging_errors as merr
from ._oauth_links import OAuthLink, new_provider_access_token
from ._store import Project, User


def scopes_of(scope: str | None) -> list[str]:
    """The scopes of a ``scope`` field (separated by spaces or commas, as Stack splits them)."""
    return [s for s in re.split(r"[\s,]+", scope or "") if s]


def links_of(project: Project, user: User) -> list[OAuthLink]:
    """The user's linked accounts, oldest first: each entry of ``oauth_providers`` with what
    the emulator recorded for it (an entry created through ``POST /users`` has no token)."""
    found = []
    for entry in user.oauth_providers:
        provider_id, account_id = str(entry.get("id")), str(entry.get("account_id"))
        link = project.oauth_links.get(user.id, provider_id, account_id)
        found.append(link or OAuthLink(user.id, provider_id, account_id, email=entry.get("email")))
    return found


def connected_account_json(link: OAuthLink) -> dict[str, Any]:
    return {
        "user_id": link.user_id,
        "provider": link.provider_id,
        "provider_account_id": link.account_id,
    }


def provider_access_token(
    project: Project,
    user_id: str,
    provider_id: str,
    account_id: str | None,
    scopes: list[str],
) -> str:
    """A stored token covering ``scopes``, or the first failing check: an unconfigured
    provider, ``USER_NOT_FOUND``, no such link, no token that covers the scopes."""
    if provider_id not in project.config.enabled_oauth_providers:
        raise merr.oauth_provider_not_found_or_not_enabled()
    user = project.user_or_404(user_id)
    candidates = [
        link
        for link in links_of(project, user)
        if link.provider_id == provider_id
        # the per-account form lists only links open to connected accounts
        and (
            account_id is None or (link.account_id == account_id and link.allow_connected_accounts)
        )
    ]
    if not candidates:
        raise merr.oauth_connection_not_connected_to_user()
    for link in candidates:
        if link.covers(scopes) and link.access_token is not None:
            return link.access_token
    raise merr.oauth_connection_does_not_have_required_scope()


def link_account(
    project: Project,
    user_id: str,
    provider_id: str,
    account_id: str,
    *,
    scopes: list[str],
    email: str | None,
    allow_connected_accounts: bool,
    access_token: str | None,
) -> OAuthLink:
    """Link a provider account to a user (``USER_NOT_FOUND``), enabling the provider in the
    project and listing the account in the user's ``oauth_providers``; linking it again
    replaces its scopes and token."""
    user = project.user_or_404(user_id)
    if provider_id not in project.config.enabled_oauth_providers:
        project.config.enabled_oauth_providers.append(provider_id)
    entry: dict[str, Any] = {"id": provider_id, "account_id": account_id}
    if email is not None:
        entry["email"] = email
    same = [
        e
        for e in user.oauth_providers
        if (e.get("id"), e.get("account_id")) == (provider_id, account_id)
    ]
    if same:
        same[0].update(entry)
    else:
        user.oauth_providers.append(entry)
    link = OAuthLink(
        user_id=user.id,
        provider_id=provider_id,
        account_id=account_id,
        email=email,
        scopes=tuple(scopes),
        allow_connected_accounts=allow_connected_accounts,
        access_token=access_token or new_provider_access_token(provider_id),
    )
    return project.oauth_links.put(link)
