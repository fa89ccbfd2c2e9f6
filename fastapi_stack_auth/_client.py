"""``StackClient``: the one shared HTTP client that talks to Stack Auth's REST API."""

from __future__ import annotations

import json
import logging
import random as _random
import re
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any

import anyio
import httpx

from ._settings import StackAuthSettings
from ._version import __version__
from .errors import (
    StackAPIError,
    StackAuthError,
    StackBadResponseError,
    StackUnavailableError,
    stack_api_error,
)

#: Sent as ``x-stack-client-version``; matches Stack's ``^(\w+)\s+(@[\w/]+)@([\d.]+)$``.
CLIENT_VERSION = f"python @fastapi_stack_auth@{__version__}"
DEFAULT_RETRY_AFTER = 5
MAX_RETRY_AFTER = 300
#: Only these methods are ever sent twice: they are idempotent.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD"})
#: Answers worth another attempt: rate limited, or a gateway or instance that is down for a
#: moment. A plain 500 is not retried (most likely the same bug again): it fails at once.
RETRY_STATUSES = frozenset({429, 502, 503, 504})
#: Full-jitter backoff: after attempt n, wait uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2**(n-1))).
BACKOFF_BASE = 0.1
BACKOFF_CAP = 2.0
#: No attempt is started with less than this many seconds left of the call's deadline.
MIN_ATTEMPT_TIME = 0.05

logger = logging.getLogger("fastapi_stack_auth")

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


def _retry_after_seconds(response: httpx.Response) -> int | None:
    """Stack's ``Retry-After`` in whole seconds (``0`` included), or ``None`` if it sent none
    we can read."""
    # Only plain ASCII delta-seconds; str.isdigit() would also accept "²" and int() then fail.
    # An HTTP date is not read: the clocks of two machines cannot be compared to the second.
    value = response.headers.get("retry-after", "").strip()
    if _SECONDS.fullmatch(value):
        return min(int(value), MAX_RETRY_AFTER)
    return None


def _retry_after(response: httpx.Response) -> int:
    """The ``Retry-After`` we tell our own client: Stack's (at least 1 s), else 5 s."""
    seconds = _retry_after_seconds(response)
    return DEFAULT_RETRY_AFTER if seconds is None else max(1, seconds)


def _status(response: httpx.Response) -> int:
    """The response's status; for a 200, the real one if a proxy or SDK had Stack send it as
    ``x-stack-actual-status`` (``x-stack-override-error-status``, which we never ask for)."""
    status = response.status_code
    if status == 200:
        actual = response.headers.get("x-stack-actual-status", "")
        if _STATUS.fullmatch(actual):
            return int(actual)
    return status


class StackClient:
    """Server-side access to Stack Auth through one pooled ``httpx.AsyncClient``.

    Every request carries the server headers (``x-stack-access-type: server``, project id,
    keys, client version). Errors come back as typed exceptions: ``StackAPIError`` subclasses
    for Stack's error envelope, ``StackUnavailableError`` for network failures, timeouts, 429
    and 5xx, ``StackBadResponseError`` for answers that are not what the contract says.

    Faults are retried for idempotent methods (GET, HEAD) only: connection failures, timeouts,
    connections dropped mid-answer, and 429/502/503/504, at most ``max_attempts`` attempts with
    full-jitter exponential backoff. ``Retry-After`` (429, 503) is waited for if it fits in what
    is left of the deadline, else the call fails at once carrying it. Each attempt is bounded by
    ``http_timeout`` and all attempts together by ``request_deadline``.

    ``sleep``, ``random`` (uniform in [0, 1)) and ``clock`` (monotonic seconds) are what the
    retries wait with, jitter with and measure the deadline with; tests replace them (also as
    attributes of the same names).
    """

    def __init__(
        self,
        settings: StackAuthSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        random: Callable[[], float] = _random.random,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._transport = transport
        self._http: httpx.AsyncClient | None = None
        self.sleep = sleep
        self.random = random
        self.clock = clock
        #: Seconds all attempts of one call may take together.
        self.deadline: float = (
            settings.request_deadline
            if settings.request_deadline is not None
            else 2 * settings.http_timeout
        )

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
        """Send ``request``, retrying what is worth retrying; the answer is not judged here
        beyond its status (``_decode`` does that)."""
        attempts = self._settings.max_attempts if request.method in IDEMPOTENT_METHODS else 1
        deadline = self.clock() + self.deadline
        attempt = 0
        while True:
            attempt += 1
            budget = min(self._settings.http_timeout, deadline - self.clock())
            wait: int | None = None
            try:
                response = await self._attempt(http, request, budget)
            except StackUnavailableError as exc:
                failure = exc
            else:
                status = _status(response)
                if status not in RETRY_STATUSES:
                    return response
                failure = StackUnavailableError(f"HTTP {status}", _retry_after(response))
                wait = _retry_after_seconds(response)
            if attempt >= attempts:
                raise _after(failure, attempt)
            delay = self.random() * min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (attempt - 1))
            if wait is not None:
                delay = max(delay, float(wait))
            if deadline - self.clock() - delay < MIN_ATTEMPT_TIME:
                # No time left for another attempt (or Stack asks us to wait longer than our
                # client will): fail now, passing Stack's Retry-After on.
                raise _after(failure, attempt)
            # The path only: a query could carry ids, and the token travels in a header.
            logger.debug(
                "Stack Auth %s %s failed (%s); attempt %d of %d in %.3f s",
                request.method,
                request.url.path,
                failure.reason,
                attempt + 1,
                attempts,
                delay,
            )
            await self.sleep(delay)

    async def _attempt(
        self, http: httpx.AsyncClient, request: httpx.Request, budget: float
    ) -> httpx.Response:
        # httpx's timeout applies to each phase (connect, each read); ``budget`` bounds the
        # whole attempt, so a server dripping its body cannot hold a request for longer.
        try:
            with anyio.fail_after(budget):
                return await http.send(request)
        except (TimeoutError, httpx.TimeoutException):
            raise StackUnavailableError("timed out") from None
        except httpx.LocalProtocolError:
            # We built a request h11 refuses to send: an illegal header value, i.e. a setting.
            raise StackAuthError(
                "could not send a request to Stack Auth: a header value is illegal; check "
                "STACK_PROJECT_ID, STACK_SECRET_SERVER_KEY and STACK_PUBLISHABLE_CLIENT_KEY"
            ) from None
        except httpx.DecodingError:
            # The body arrived but its content-encoding is broken: an answer, not an outage.
            raise StackBadResponseError("the response body could not be decoded") from None
        except (httpx.HTTPError, OSError) as exc:
            # OSError: a network failure a custom transport let through unwrapped.
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


def _after(failure: StackUnavailableError, attempts: int) -> StackUnavailableError:
    if attempts == 1:
        return failure
    return StackUnavailableError(f"{failure.reason}, {attempts} attempts", failure.retry_after)


def _decode(response: httpx.Response, ok: tuple[int, ...]) -> Any:
    status = _status(response)
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
