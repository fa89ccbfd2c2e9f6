"""``stack.server.api_keys``: create, list, revoke and check user and team API keys."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import SecretStr

from .._exceptions import StackBadResponseError
from ..models import ApiKey
from ._base import Api, items, parse, segment
from ._models import NewApiKey


class ApiKeysApi(Api):
    """User API keys (``/user-api-keys``) and team API keys (``/team-api-keys``)."""

    async def create_user_key(
        self,
        user_id: str,
        *,
        description: str,
        expires_at_millis: int | None = None,
        is_public: bool = False,
    ) -> NewApiKey:
        """A new API key acting as ``user_id``; its whole value is in the answer only."""
        body = {"user_id": user_id, "description": description}
        return await self._create("user", body, expires_at_millis, is_public)

    async def create_team_key(
        self,
        team_id: str,
        *,
        description: str,
        expires_at_millis: int | None = None,
        is_public: bool = False,
    ) -> NewApiKey:
        """A new API key acting as team ``team_id``; its whole value is in the answer only."""
        body = {"team_id": team_id, "description": description}
        return await self._create("team", body, expires_at_millis, is_public)

    async def _create(
        self, kind: str, body: dict[str, Any], expires_at_millis: int | None, is_public: bool
    ) -> NewApiKey:
        # ``expires_at_millis`` is required by Stack, null for a key that never expires.
        body.update(expires_at_millis=expires_at_millis, is_public=is_public)
        route = f"POST /{kind}-api-keys"
        answer = await self._post(f"/{kind}-api-keys", body)
        value = answer.get("value") if isinstance(answer, Mapping) else None
        if not isinstance(value, str) or len(value) < 4:
            raise StackBadResponseError(f"{route}: the answer has no key value")
        # The key object never holds the secret: only its last four characters, as Stack's
        # read answers give them.
        described = parse(ApiKey, {**answer, "value": {"last_four": value[-4:]}}, route)
        return NewApiKey(api_key=described, value=SecretStr(value))

    async def list_user_keys(self, user_id: str) -> list[ApiKey]:
        """The user's API keys, revoked and expired ones included, newest first."""
        body = await self._get("/user-api-keys", {"user_id": user_id})
        return items(ApiKey, body, "GET /user-api-keys")

    async def list_team_keys(self, team_id: str) -> list[ApiKey]:
        """The team's API keys, revoked and expired ones included, newest first."""
        body = await self._get("/team-api-keys", {"team_id": team_id})
        return items(ApiKey, body, "GET /team-api-keys")

    async def revoke_user_key(self, key_id: str, *, user_id: str) -> ApiKey:
        """Revoke a user API key for good; ``ApiKeyNotFoundError`` if there is none."""
        path = f"/user-api-keys/{segment(key_id)}"
        body = await self._patch(path, {"revoked": True}, {"user_id": user_id})
        return parse(ApiKey, body, "PATCH /user-api-keys/{id}")

    async def revoke_team_key(self, key_id: str, *, team_id: str) -> ApiKey:
        """Revoke a team API key for good; ``ApiKeyNotFoundError`` if there is none."""
        path = f"/team-api-keys/{segment(key_id)}"
        body = await self._patch(path, {"revoked": True}, {"team_id": team_id})
        return parse(ApiKey, body, "PATCH /team-api-keys/{id}")

    async def revoke(self, key: ApiKey) -> ApiKey:
        """Revoke ``key`` (as ``list_*_keys`` or ``create_*_key`` described it)."""
        if key.type == "user" and key.user_id is not None:
            return await self.revoke_user_key(key.id, user_id=key.user_id)
        if key.type == "team" and key.team_id is not None:
            return await self.revoke_team_key(key.id, team_id=key.team_id)
        raise ValueError("the key names no owner of its type")

    async def check_user_key(self, value: str) -> ApiKey:
        """The live user key ``value`` is; ``ApiKeyError`` (not found, revoked, expired, a team
        key) otherwise. Uncached: ``stack.api_keys`` caches for request checks."""
        return await self._check("user", value)

    async def check_team_key(self, value: str) -> ApiKey:
        """The live team key ``value`` is; ``ApiKeyError`` (not found, revoked, expired, a user
        key) otherwise. Uncached."""
        return await self._check("team", value)

    async def _check(self, kind: str, value: str) -> ApiKey:
        body = await self._client.request(
            "POST", f"/{kind}-api-keys/check", json_body={"api_key": value}, ok=(200,)
        )
        return parse(ApiKey, body, f"POST /{kind}-api-keys/check")
