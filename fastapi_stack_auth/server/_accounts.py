"""``stack.server.connected_accounts``: OAuth accounts linked to users, and their providers'
access tokens (what a backend needs to call Google or GitHub on a user's behalf)."""

from __future__ import annotations

import builtins
from collections.abc import Iterable

from ._base import UNSET, Api, fields, items, parse, segment
from ._models import ConnectedAccount, ProviderAccessToken


class ConnectedAccountsApi(Api):
    """Connected accounts (``/connected-accounts``)."""

    async def list(self, user_id: str) -> builtins.list[ConnectedAccount]:
        """The user's linked accounts the project may use, oldest first; ``UserNotFoundError``
        for an unknown user."""
        body = await self._get(f"/connected-accounts/{segment(user_id)}")
        return items(ConnectedAccount, body, "GET /connected-accounts/{user_id}")

    async def access_token(
        self,
        user_id: str,
        provider_id: str,
        *,
        provider_account_id: str | None = None,
        scopes: Iterable[str] | None = None,
    ) -> ProviderAccessToken:
        """A provider access token for the user (``provider_id`` is the provider's config id,
        e.g. ``github``), covering ``scopes``; of one linked account if
        ``provider_account_id`` is given, else of any of that provider.

        ``OAuthNotConnectedError``: no such link. ``OAuthReconnectRequiredError``: the user must
        link the account again (missing scopes, or the provider refused a refresh).
        """
        path = f"/connected-accounts/{segment(user_id)}/{segment(provider_id)}"
        if provider_account_id is not None:  # often an email: quoted like any segment
            path += f"/{segment(provider_account_id)}"
        body = fields(scope=UNSET if scopes is None else " ".join(scopes))
        return parse(ProviderAccessToken, await self._post(f"{path}/access-token", body), _ROUTE)


_ROUTE = "POST /connected-accounts/{user_id}/{provider_id}/access-token"
