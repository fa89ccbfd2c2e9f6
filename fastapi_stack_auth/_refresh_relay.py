"""``RefreshRelay``, an ASGI middleware that hands a token refreshed during a request back to
the frontend: as ``x-stack-refreshed-access-token`` on the HTTP response (and, when the
credential came from Stack's cookies, as the updated access cookie), with ``Cache-Control:
no-store``, and nothing else. An app where no ``StackAuth`` has ``silent_refresh`` on pays one
function call.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ._cookies import access_cookie_header

logger = logging.getLogger("fastapi_stack_auth")

#: The response header that carries a refreshed access token to the frontend.
REFRESHED_HEADER = "x-stack-refreshed-access-token"
#: The ``scope`` key where a dependency leaves what ``RefreshRelay`` sends back.
SCOPE_KEY = "fastapi_stack_auth.refreshed"
#: Set in ``scope`` by the ``RefreshRelay`` that handles the request.
RELAY_KEY = "fastapi_stack_auth.relay"


@dataclass(frozen=True)
class Refreshed:
    """A refreshed access token on its way back to the frontend (no token in its ``repr``)."""

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    #: The access cookie to update (credential read from cookies), else ``None``.
    cookie: str | None
    secure: bool

    def headers(self) -> list[tuple[bytes, bytes]]:
        """The response headers that hand the token back."""
        headers = [
            (REFRESHED_HEADER.encode(), self.access_token.encode("ascii")),
            (b"cache-control", b"no-store"),
        ]
        if self.cookie is not None:
            cookie = access_cookie_header(
                self.cookie, self.refresh_token, self.access_token, secure=self.secure
            )
            headers.append((b"set-cookie", cookie))
        return headers


_warned_no_relay = False


def warn_no_relay() -> None:
    """Warn, once per process, that a refreshed token has no relay to carry it back."""
    global _warned_no_relay
    if not _warned_no_relay:
        _warned_no_relay = True
        logger.warning(
            "Silent refresh renewed an access token, but this app has no RefreshRelay "
            "middleware to send it back (call stack.init_app(app) on the app that serves the "
            "route): the frontend keeps sending the expired token"
        )


class RefreshRelay:
    """ASGI middleware: sends a token refreshed during the request back on its response.

    HTTP only (a WebSocket handshake has no response to carry it). The first request decides
    whether it is needed at all: when none of the app's ``StackAuth`` instances has
    ``silent_refresh`` on, every request passes straight through.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._needed: bool | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or RELAY_KEY in scope:
            await self.app(scope, receive, send)
            return
        needed = self._needed
        if needed is None:
            needed = self._needed = _silent_refresh_on(scope)
        if not needed:
            await self.app(scope, receive, send)
            return
        scope[RELAY_KEY] = True

        async def relay(message: Message) -> None:
            if message["type"] == "http.response.start":
                refreshed = scope.get(SCOPE_KEY)
                if isinstance(refreshed, Refreshed):
                    headers = _without_cache_control(message.get("headers", ()))
                    message = {**message, "headers": [*headers, *refreshed.headers()]}
            await send(message)

        await self.app(scope, receive, relay)


def _silent_refresh_on(scope: Scope) -> bool:
    state = getattr(scope.get("app"), "state", None)
    stacks: Any = getattr(state, "stack_auth_instances", None)
    if not stacks:
        return True  # not attached the usual way: relay, to be safe
    try:
        return any(stack.settings.silent_refresh for stack in stacks)
    except Exception:  # settings that cannot be read fail the request elsewhere
        return True


def _without_cache_control(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    return [(name, value) for name, value in headers if name.lower() != b"cache-control"]
