"""``StackClient``: the one shared HTTP client that talks to Stack Auth's REST API."""

from __future__ import annotations

import json
import re
from types import TracebackType
from typing import Any

import anyio
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


_STATUS = re.compile(r"[1-5][0-9][0-9]")
_SECONDS = re.compile(r"[0-9]{1,6}")


def _retry_after(response: httpx.Response) -> int:
    # Only plain ASCII delta-seconds; str.isdigit() would also accept "²" and int() then fail.
    value = response.headers.get("retry-after", "").strip()
    if _SECONDS.fullmatch(value):
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
        ok: tuple[int, ...] = (200, 201),
    ) -> Any:
        """Send one request to ``/api/v1{path}`` and return its decoded JSON body.

        ``ok`` lists the success statuses the endpoint answers with per the contract; any
        other status that is not an error is a ``StackBadResponseError``.
        """
        http = self._opened()
        extra = dict(headers or {})
        if access_token is not None:
            extra["x-stack-access-token"] = access_token
        request = http.build_request(method, path, headers=extra, params=params, json=json_body)
        response = await self._send(http, request)
        return _decode(response, ok)

    async def get_public(
        self, path: str, *, params: dict[str, str] | None = None
    ) -> tuple[Any, httpx.Headers]:
        """``GET /api/v1{path}`` without our access type, project id or keys (for the JWKS).

        Returns the decoded JSON body and the response headers (the caller may need
        ``Cache-Control``). Errors are raised as in ``request``.
        """
        http = self._opened()
        request = http.build_request("GET", path, params=params)
        for name in _SERVER_AUTH_HEADERS:
            request.headers.pop(name, None)
        response = await self._send(http, request)
        return _decode(response, (200,)), response.headers

    def _opened(self) -> httpx.AsyncClient:
        if self._http is None:
            raise StackAuthError(
                "StackClient is not open: StackAuth starts with the lifespan of the app passed "
                "to stack.init_app(app). The lifespan of a mounted sub-app never runs: call "
                "init_app on the outer app too. With TestClient, use "
                "`with TestClient(app) as client:`."
            )
        return self._http

    async def _send(self, http: httpx.AsyncClient, request: httpx.Request) -> httpx.Response:
        # httpx's timeout applies to each phase (connect, each read); the deadline bounds the
        # whole call, so a server dripping its body cannot hold a request for longer.
        try:
            with anyio.fail_after(self._settings.http_timeout):
                return await http.send(request)
        except (TimeoutError, httpx.TimeoutException):
            raise StackUnavailableError("timed out") from None
        except httpx.LocalProtocolError:
            # We built a request h11 refuses to send: an illegal header value, i.e. a setting.
            raise StackAuthError(
                "could not send a request to Stack Auth: a header value is illegal; check "
                "STACK_PROJECT_ID, STACK_SECRET_SERVER_KEY and STACK_PUBLISHABLE_CLIENT_KEY"
            ) from None
        except httpx.HTTPError as exc:
            raise StackUnavailableError(type(exc).__name__) from None

    async def get_current_user(self, access_token: str) -> dict[str, Any]:
        """``GET /users/me`` for ``access_token``, with server access.

        Anonymous and restricted users are let through (``x-stack-allow-*``) so that the
        caller applies its own policy to a single, cacheable answer.
        """
        body = await self.request(
            "GET",
            "/users/me",
            ok=(200,),
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
        body = await self.request("GET", "/projects/current", ok=(200,))
        if not isinstance(body, dict):
            raise StackBadResponseError("GET /projects/current did not return a JSON object")
        return body


def _decode(response: httpx.Response, ok: tuple[int, ...]) -> Any:
    status = response.status_code
    if status == 200:
        # A 4xx sent as 200 under ``x-stack-override-error-status`` (we never ask for it, but a
        # proxy or SDK on the way might): the real status is in this header.
        actual = response.headers.get("x-stack-actual-status", "")
        if _STATUS.fullmatch(actual):
            status = int(actual)
    known = response.headers.get("x-stack-known-error")

    if status == 429 or status >= 500:
        raise StackUnavailableError(f"HTTP {status}", _retry_after(response))
    if status >= 400 or known:
        raise _api_error(status, known, response)
    if status not in ok:
        raise StackBadResponseError(f"unexpected HTTP {status}")
    try:
        return json.loads(response.content)
    except (ValueError, RecursionError):
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
