"""What every part of the server client shares: safe path segments, the ``UNSET`` sentinel,
and turning Stack's JSON into models (anything off-contract is a ``StackBadResponseError``)."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, Final, TypeVar
from urllib.parse import quote

from pydantic import BaseModel, ValidationError

from .._client import StackClient
from .._exceptions import StackBadResponseError

M = TypeVar("M", bound=BaseModel)


class Unset(enum.Enum):
    """The type of ``UNSET``: "leave this field as it is", where ``None`` means "clear it"."""

    UNSET = "UNSET"

    def __repr__(self) -> str:
        return "UNSET"


#: The default of every optional field of a create or update: the field is not sent at all.
UNSET: Final = Unset.UNSET


def segment(value: str) -> str:
    """``value`` as one path segment: percent-encoded whole, so ``/``, ``?``, ``#`` or ``..``
    in an id can never reach another endpoint."""
    if not isinstance(value, str) or not value:
        # An empty id would turn ``/users/{id}`` into ``/users/``: the list, not one user.
        raise ValueError("an id in a Stack Auth path must be a non-empty string")
    quoted = quote(value, safe="")
    if quoted.strip(".") == "":
        # quote() keeps dots, and "." / ".." are dot-segments httpx resolves away.
        quoted = quoted.replace(".", "%2E")
    return quoted


def fields(**values: Any) -> dict[str, Any]:
    """The body of a create or update: every value given, ``UNSET`` ones left out."""
    return {name: value for name, value in values.items() if value is not UNSET}


def flag(value: bool) -> str:
    """A boolean query parameter as Stack reads it."""
    return "true" if value else "false"


def parse(model: type[M], body: Any, route: str) -> M:
    """``body`` as ``model``; ``route`` (a template such as ``GET /users/{user_id}``, never an
    id) names the call in the error."""
    try:
        return model.model_validate(body)
    except ValidationError:
        raise StackBadResponseError(f"{route}: the answer is not the expected object") from None


def items(model: type[M], body: Any, route: str) -> list[M]:
    """The ``items`` of a list envelope, each as ``model``."""
    found = body.get("items") if isinstance(body, Mapping) else None
    if not isinstance(found, list):
        raise StackBadResponseError(f"{route}: the answer has no list of items")
    return [parse(model, item, route) for item in found]


class Api:
    """A namespace of the server API on the shared ``StackClient``."""

    def __init__(self, client: StackClient) -> None:
        self._client = client

    async def _get(self, path: str, params: dict[str, str] | None = None) -> Any:
        return await self._client.request("GET", path, params=params, ok=(200,))

    async def _post(
        self, path: str, body: Mapping[str, Any] | None = None, params: dict[str, str] | None = None
    ) -> Any:
        # Stack's CRUD creates want a JSON object, even an empty one.
        return await self._client.request("POST", path, params=params, json_body=dict(body or {}))

    async def _patch(
        self, path: str, body: Mapping[str, Any], params: dict[str, str] | None = None
    ) -> Any:
        return await self._client.request(
            "PATCH", path, params=params, json_body=dict(body), ok=(200,)
        )

    async def _delete(self, path: str, params: dict[str, str] | None = None) -> None:
        await self._client.request("DELETE", path, params=params, ok=(200,))
