"""``StackClient``: the one shared HTTP client that talks to Stack Auth's REST API."""

from __future__ import annotations

import json
from types import TracebackType
from typing import Any

import httpx

from ._errors import (
    StackAPIError,
    StackAuthError,
    StackBadResponseError,
    StackUnavailableError,
    stack_api_error,
)
from ._settings import StackAuthSettings
from ._version import __version__

#: Sent as ``x-stack-client-version``; matches Stack's ``^(\w+)\s+(@[\w/]+)@([\d.]+)$``.
CLIENT_VERSION = f"python @fastapi_stack_auth@{__version__}"
DEFAULT_RETRY_AFTER = 5
MAX_RETRY_AFTER = 300
#: Headers that authenticate this server; ``get_public`` strips them (a public endpoint such as
#: the JWKS must never receive our keys, and an access type would make Stack check them).
_SERVER_AUTH_HEADERS = (
    "x-stack-access-type",
    "x-stack-project-id",
    "x-stack-secret-server-key",
    "x-stack-publishable-client-key",
)


def _retry_after(response: httpx.Response) -> int:
    value = response.headers.get("retry-after", "")
    if value.isdigit():
        return max(1, min(int(value), MAX_RETRY_AFTER))
    return DEFAULT_RETRY_AFTER


class StackClient:
    """Server-side access to Stack Auth through one pooled ``httpx.AsyncClient``.

    Every request carries the server headers (``x-stack-access-type: server``, project id,
    keys, client version). Errors come back as typed exceptions: ``StackAPIError`` subclasses
    for Stack's error envelope, ``StackUnavailableError`` for network failures, timeouts, 429
    and 5xx, ``StackBadResponseError`` for answers that are not what the contract says.
    """

    def __init__(
        self,
        settings: StackAuthSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._settings = settings
        self._transport = transport
        self._http: httpx.AsyncClient | None = None

    def _server_headers(self) -> dict[str, str]:
        s = self._settings
        headers = {
            "x-stack-access-type": "server",
            "x-stack-project-id": s.project_id,
            "x-stack-client-version": CLIENT_VERSION,
            "accept": "application/json",
        }
        if s.secret_server_key is not None:  # optional in JWT mode; Stack then answers 401
            headers["x-stack-secret-server-key"] = s.secret_server_key.get_secret_value()
        if s.publishable_client_key is not None:
            headers["x-stack-publishable-client-key"] = s.publishable_client_key.get_secret_value()
        return headers

    @property
    def is_open(self) -> bool:
        """True between ``open()`` and ``aclose()``."""
        return self._http is not None

    async def open(self) -> None:
        """Create the pooled client (idempotent)."""
        if self._http is None:
            self._http = httpx.AsyncClient(
                base_url=f"{self._settings.api_url}/api/v1",
                headers=self._server_headers(),
                timeout=httpx.Timeout(self._settings.http_timeout),
                limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
                transport=self._transport,
                follow_redirects=False,
            )

    async def aclose(self) -> None:
        """Close the pooled client and its connections (idempotent)."""
        if self._http is not None:
            http, self._http = self._http, None
            await http.aclose()

    async def __aenter__(self) -> StackClient:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        access_token: str | None = None,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        json_body: Any = None,
    ) -> Any:
        """Send one request to ``/api/v1{path}`` and return its decoded JSON body."""
        if self._http is None:
            raise StackAuthError(
                "StackClient is not open: start StackAuth with the app's lifespan "
                "(stack.init_app(app)); with TestClient use `with TestClient(app) as client:`"
            )
        extra = dict(headers or {})
        if access_token is not None:
            extra["x-stack-access-token"] = access_token
        try:
            response = await self._http.request(
                method, path, headers=extra, params=params, json=json_body
            )
        except httpx.TimeoutException:
            raise StackUnavailableError("timed out") from None
        except httpx.HTTPError as exc:
            raise StackUnavailableError(type(exc).__name__) from None
        return _decode(response)

    async def get_public(
        self, path: str, *, params: dict[str, str] | None = None
    ) -> tuple[Any, httpx.Headers]:
        """``GET /api/v1{path}`` without our access type, project id or keys (for the JWKS).

        Returns the decoded JSON body and the response headers (the caller may need
        ``Cache-Control``). Errors are raised as in ``request``.
        """
        if self._http is None:
            raise StackAuthError("StackClient is not open: start StackAuth with the app's lifespan")
        request = self._http.build_request("GET", path, params=params)
        for name in _SERVER_AUTH_HEADERS:
            request.headers.pop(name, None)
        try:
            response = await self._http.send(request)
        except httpx.TimeoutException:
            raise StackUnavailableError("timed out") from None
        except httpx.HTTPError as exc:
            raise StackUnavailableError(type(exc).__name__) from None
        return _decode(response), response.headers

    async def get_current_user(self, access_token: str) -> dict[str, Any]:
        """``GET /users/me`` for ``access_token``, with server access.

        Anonymous and restricted users are let through (``x-stack-allow-*``) so that the
        caller applies its own policy to a single, cacheable answer.
        """
        body = await self.request(
            "GET",
            "/users/me",
            access_token=access_token,
            headers={
                "x-stack-allow-anonymous-user": "true",
                "x-stack-allow-restricted-user": "true",
            },
        )
        if not isinstance(body, dict):
            raise StackBadResponseError("GET /users/me did not return a JSON object")
        return body

    async def get_current_project(self) -> dict[str, Any]:
        """``GET /projects/current``: the cheapest call that proves our keys are accepted."""
        body = await self.request("GET", "/projects/current")
        if not isinstance(body, dict):
            raise StackBadResponseError("GET /projects/current did not return a JSON object")
        return body


def _decode(response: httpx.Response) -> Any:
    status = response.status_code
    actual = response.headers.get("x-stack-actual-status", "")
    if actual.isdigit():  # x-stack-override-error-status was in effect somewhere on the way
        status = int(actual)
    known = response.headers.get("x-stack-known-error")

    if status == 429 or status >= 500:
        raise StackUnavailableError(f"HTTP {status}", _retry_after(response))
    if status >= 400 or known:
        raise _api_error(status, known, response)
    if status != 200 and status != 201:
        raise StackBadResponseError(f"unexpected HTTP {status}")
    try:
        return response.json()
    except (ValueError, UnicodeDecodeError):
        raise StackBadResponseError("response is not JSON") from None


def _api_error(status: int, known: str | None, response: httpx.Response) -> StackAPIError:
    code, message, details = known, "", None
    if known:
        try:
            body = json.loads(response.content)
        except (ValueError, UnicodeDecodeError, RecursionError):
            body = None
        if isinstance(body, dict):
            code = str(body.get("code") or known)
            # The message is in ``error``; the published spec says ``message``, so read both.
            message = str(body.get("error") or body.get("message") or "")
            raw_details = body.get("details")
            details = raw_details if isinstance(raw_details, dict) else None
    return stack_api_error(status, code, message, details)
