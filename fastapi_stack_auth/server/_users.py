"""``stack.server.users``: read, list (every page, lazily), create, update and delete users."""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Mapping
from typing import Any, Literal

from pydantic import JsonValue

from .._exceptions import StackBadResponseError
from ..models import StackUser
from ._base import UNSET, Api, Unset, fields, flag, items, parse, segment
from ._models import UserPage

#: Stack has no default page size: without ``limit`` it returns every user in one answer,
#: which for a large project outgrows the client's body cap. Every list call sends one.
DEFAULT_PAGE_SIZE = 100


class UsersApi(Api):
    """The project's users (``/users``), server view: ``server_metadata`` included."""

    async def get(self, user_id: str) -> StackUser:
        """The user ``user_id``, anonymous and restricted ones included; ``UserNotFoundError``
        if there is none."""
        body = await self._get(f"/users/{segment(user_id)}")
        return parse(StackUser, body, "GET /users/{user_id}")

    def list(
        self,
        *,
        team_id: str | None = None,
        query: str | None = None,
        order_by: Literal["signed_up_at"] | None = None,
        desc: bool = False,
        include_anonymous: bool = False,
        include_restricted: bool = False,
        only_anonymous: bool = False,
        page_size: int = DEFAULT_PAGE_SIZE,
        limit: int | None = None,
    ) -> AsyncIterator[StackUser]:
        """Every matching user, fetched ``page_size`` at a time as you iterate, at most
        ``limit`` of them (``None``: all): ``async for user in stack.server.users.list()``."""
        if limit is not None and limit < 0:
            raise ValueError("limit must be >= 0")
        params = _filters(
            team_id, query, order_by, desc, include_anonymous, include_restricted, only_anonymous
        )
        _check_page_size(page_size)
        return self._walk(params, page_size, limit)

    async def list_page(
        self,
        *,
        cursor: str | None = None,
        team_id: str | None = None,
        query: str | None = None,
        order_by: Literal["signed_up_at"] | None = None,
        desc: bool = False,
        include_anonymous: bool = False,
        include_restricted: bool = False,
        only_anonymous: bool = False,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> UserPage:
        """One page of users from ``cursor`` (a previous page's ``next_cursor``) on."""
        params = _filters(
            team_id, query, order_by, desc, include_anonymous, include_restricted, only_anonymous
        )
        _check_page_size(page_size)
        return await self._page(params, cursor, page_size)

    async def _walk(
        self, params: dict[str, str], page_size: int, limit: int | None
    ) -> AsyncIterator[StackUser]:
        cursor: str | None = None
        seen: set[str] = set()
        given = 0
        while limit is None or given < limit:
            wanted = page_size if limit is None else min(page_size, limit - given)
            page = await self._page(params, cursor, wanted)
            for user in page.items[: None if limit is None else limit - given]:
                yield user
                given += 1
            if page.next_cursor is None:
                return
            if page.next_cursor in seen:  # an answer that would send us round for ever
                raise StackBadResponseError("GET /users: the pagination cursor repeats")
            seen.add(page.next_cursor)
            cursor = page.next_cursor

    async def _page(self, params: dict[str, str], cursor: str | None, size: int) -> UserPage:
        query = {**params, "limit": str(size)}
        if cursor is not None:
            query["cursor"] = cursor
        body = await self._get("/users", query)
        users = items(StackUser, body, "GET /users")
        pagination = body.get("pagination")
        next_cursor = pagination.get("next_cursor") if isinstance(pagination, Mapping) else None
        if next_cursor is not None and not isinstance(next_cursor, str):
            raise StackBadResponseError("GET /users: the pagination cursor is not a string")
        return UserPage(items=users, next_cursor=next_cursor or None)

    async def create(
        self,
        *,
        primary_email: str | Unset | None = UNSET,
        primary_email_verified: bool | Unset = UNSET,
        primary_email_auth_enabled: bool | Unset = UNSET,
        display_name: str | Unset | None = UNSET,
        password: str | Unset | None = UNSET,
        password_hash: str | Unset = UNSET,
        profile_image_url: str | Unset | None = UNSET,
        client_metadata: JsonValue | Unset = UNSET,
        client_read_only_metadata: JsonValue | Unset = UNSET,
        server_metadata: JsonValue | Unset = UNSET,
        otp_auth_enabled: bool | Unset = UNSET,
        is_anonymous: bool | Unset = UNSET,
        restricted_by_admin: bool | Unset = UNSET,
        restricted_by_admin_reason: str | Unset | None = UNSET,
        restricted_by_admin_private_details: str | Unset | None = UNSET,
        country_code: str | Unset | None = UNSET,
        oauth_providers: builtins.list[Mapping[str, Any]] | Unset = UNSET,
    ) -> StackUser:
        """Create a user (every field optional; only those given are sent);
        ``UserEmailAlreadyExistsError`` if another user signs in with that email."""
        body = fields(
            primary_email=primary_email,
            primary_email_verified=primary_email_verified,
            primary_email_auth_enabled=primary_email_auth_enabled,
            display_name=display_name,
            password=password,
            password_hash=password_hash,
            profile_image_url=profile_image_url,
            client_metadata=client_metadata,
            client_read_only_metadata=client_read_only_metadata,
            server_metadata=server_metadata,
            otp_auth_enabled=otp_auth_enabled,
            is_anonymous=is_anonymous,
            restricted_by_admin=restricted_by_admin,
            restricted_by_admin_reason=restricted_by_admin_reason,
            restricted_by_admin_private_details=restricted_by_admin_private_details,
            country_code=country_code,
            oauth_providers=oauth_providers,
        )
        return parse(StackUser, await self._post("/users", body), "POST /users")

    async def update(
        self,
        user_id: str,
        *,
        display_name: str | Unset | None = UNSET,
        primary_email: str | Unset | None = UNSET,
        primary_email_verified: bool | Unset = UNSET,
        primary_email_auth_enabled: bool | Unset = UNSET,
        password: str | Unset | None = UNSET,
        password_hash: str | Unset = UNSET,
        profile_image_url: str | Unset | None = UNSET,
        client_metadata: JsonValue | Unset = UNSET,
        client_read_only_metadata: JsonValue | Unset = UNSET,
        server_metadata: JsonValue | Unset = UNSET,
        selected_team_id: str | Unset | None = UNSET,
        otp_auth_enabled: bool | Unset = UNSET,
        passkey_auth_enabled: bool | Unset = UNSET,
        is_anonymous: Literal[False] | Unset = UNSET,
        restricted_by_admin: bool | Unset = UNSET,
        restricted_by_admin_reason: str | Unset | None = UNSET,
        restricted_by_admin_private_details: str | Unset | None = UNSET,
        country_code: str | Unset | None = UNSET,
    ) -> StackUser:
        """Change the fields given (``None`` clears one; a new password ends every session of
        the user) and return the updated user."""
        body = fields(
            display_name=display_name,
            primary_email=primary_email,
            primary_email_verified=primary_email_verified,
            primary_email_auth_enabled=primary_email_auth_enabled,
            password=password,
            password_hash=password_hash,
            profile_image_url=profile_image_url,
            client_metadata=client_metadata,
            client_read_only_metadata=client_read_only_metadata,
            server_metadata=server_metadata,
            selected_team_id=selected_team_id,
            otp_auth_enabled=otp_auth_enabled,
            passkey_auth_enabled=passkey_auth_enabled,
            is_anonymous=is_anonymous,
            restricted_by_admin=restricted_by_admin,
            restricted_by_admin_reason=restricted_by_admin_reason,
            restricted_by_admin_private_details=restricted_by_admin_private_details,
            country_code=country_code,
        )
        body_out = await self._patch(f"/users/{segment(user_id)}", body)
        return parse(StackUser, body_out, "PATCH /users/{user_id}")

    async def delete(self, user_id: str) -> None:
        """Delete the user, their sessions and API keys; ``UserNotFoundError`` if none."""
        await self._delete(f"/users/{segment(user_id)}")


def _check_page_size(page_size: int) -> None:
    if page_size < 1:
        raise ValueError("page_size must be >= 1")


def _filters(
    team_id: str | None,
    query: str | None,
    order_by: str | None,
    desc: bool,
    include_anonymous: bool,
    include_restricted: bool,
    only_anonymous: bool,
) -> dict[str, str]:
    params: dict[str, str] = {}
    if team_id is not None:
        params["team_id"] = team_id
    if query:
        params["query"] = query
    if order_by is not None:
        params["order_by"] = order_by
    if desc:
        params["desc"] = flag(desc)
    # Stack answers only_anonymous without include_anonymous with a text 400: imply it.
    if include_anonymous or only_anonymous:
        params["include_anonymous"] = "true"
    if include_restricted:
        params["include_restricted"] = "true"
    if only_anonymous:
        params["only_anonymous"] = "true"
    return params
