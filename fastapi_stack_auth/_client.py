"""``StackClient``: the one shared HTTP client that talks to Stack Auth's REST API."""

from __future__ import annotations

import logging
import random as _random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import httpx

from ._exceptions import StackAuthError, StackBadResponseError, StackUnavailableError
from ._responses import decode, read_body, status_of, unavailable
from ._settings import StackAuthSettings
from ._version import __version__

#: Sent as ``x-stack-client-version``; matches Stack's ``^(\w+)\s+(@[\w/]+)@([\d.]+)$``.
CLIENT_VERSION = f"python @fastapi_stack_auth@{__version__}"
#: Only idempotent methods are ever sent twice.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD"})
#: Rate limited, or a gateway or instance down for a moment. A plain 500 is not retried: most
#: likely the same bug again.
RETRY_STATUSES = frozenset({429, 502, 503, 504})
#: Full jitter: after attempt n, wait uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2**(n-1))).
BACKOFF_BASE = 0.1
BACKOFF_CAP = 2.0
#: No attempt is started with less than this many seconds left of the call's deadline.
MIN_ATTEMPT_TIME = 0.05

logger = logging.getLogger("fastapi_stack_auth")

#: ``get_public`` strips these: a public endpoint (the JWKS) must never receive our keys, and
#: an access type would make Stack check them.
_SERVER_AUTH_HEADERS = (
    "x-stack-access-type",
    "x-stack-project-id",
    "x-stack-secret-server-key",
    "x-stack-publishable-client-key",
)


class StackClient:
    """Server-side access to Stack Auth: one pooled ``httpx.AsyncClient``, server headers.

    Errors: ``StackAPIError`` (Stack's error envelope), ``StackUnavailableError`` (network,
    timeouts, 429, 5xx), ``StackBadResponseError`` (outside the contract). GET/HEAD faults are
    retried (``max_attempts``, full-jitter backoff, each attempt within ``http_timeout``, all
    within ``request_deadline``). ``sleep``, ``random``, ``clock`` are replaceable for tests."""

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
        self.deadline: float = settings.request_deadline or 2 * settings.http_timeout

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

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        json_body: Any = None,
        ok: tuple[int, ...] = (200, 201),
    ) -> Any:
        """Send one request to ``/api/v1{path}`` and return its decoded JSON body; a status
        that is neither an error nor in ``ok`` is a ``StackBadResponseError``."""
        http = self._opened()
        request = http.build_request(method, path, headers=headers, params=params, json=json_body)
        response, body = await self._send(http, request)
        return decode(response, body, ok)

    async def get_public(
        self, path: str, *, params: dict[str, str] | None = None
    ) -> tuple[Any, httpx.Headers]:
        """``GET /api/v1{path}`` without our access type, project id or keys (for the JWKS):
        the decoded JSON body and the headers (``Cache-Control``)."""
        http = self._opened()
        request = http.build_request("GET", path, params=params)
        for name in _SERVER_AUTH_HEADERS:
            request.headers.pop(name, None)
        response, body = await self._send(http, request)
        return decode(response, body, (200,)), response.headers

    def _opened(self) -> httpx.AsyncClient:
        if self._http is None:
            raise StackAuthError(
                "StackClient is not open: StackAuth starts with the lifespan of the app passed to "
                "stack.init_app(app) (a mounted sub-app's lifespan never runs: call init_app on "
                "the outer app too; with TestClient, use `with TestClient(app) as client:`)."
            )
        return self._http

    async def _send(
        self, http: httpx.AsyncClient, request: httpx.Request
    ) -> tuple[httpx.Response, bytes]:
        """Send ``request``, retrying what is worth it; ``_decode`` judges the answer."""
        attempts = self._settings.max_attempts if request.method in IDEMPOTENT_METHODS else 1
        deadline = self.clock() + self.deadline
        attempt = 0
        while True:
            attempt += 1
            budget = min(self._settings.http_timeout, deadline - self.clock())
            wait: int | None = None
            try:
                response, body = await self._attempt(http, request, budget)
            except StackUnavailableError as exc:
                failure = exc
            else:
                status = status_of(response)
                if status not in RETRY_STATUSES:
                    return response, body
                failure, wait = unavailable(status, response)
            delay = self.random() * min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (attempt - 1))
            delay = delay if wait is None else max(delay, float(wait))
            # Out of attempts or of time (Stack may ask for a longer wait): pass its Retry-After on.
            if attempt >= attempts or deadline - self.clock() - delay < MIN_ATTEMPT_TIME:
                if attempt > 1:
                    reason = f"{failure.reason}, {attempt} attempts"
                    failure = StackUnavailableError(reason, failure.retry_after)
                raise failure
            # The path only: a query could carry ids, and the token travels in a header.
            logger.debug(
                "Stack Auth %s %s failed (%s); attempt %d of %d in %.3f s",
                *(request.method, request.url.path, failure.reason, attempt + 1, attempts, delay),
            )
            await self.sleep(delay)

    async def _attempt(
        self, http: httpx.AsyncClient, request: httpx.Request, budget: float
    ) -> tuple[httpx.Response, bytes]:
        # httpx's timeout applies to each phase (connect, each read); ``budget`` bounds the
        # whole attempt, so a server dripping its body cannot hold a request for longer.
        try:
            with anyio.fail_after(budget):
                response = await http.send(request, stream=True)
                try:
                    return response, await read_body(response)
                finally:
                    await response.aclose()  # unread past the cap: the connection is dropped
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
        """``GET /users/me`` with server access, letting anonymous and restricted users through:
        the caller applies its policy to one cacheable answer."""
        allow = {"x-stack-allow-anonymous-user": "true", "x-stack-allow-restricted-user": "true"}
        return await self._get_object("/users/me", {"x-stack-access-token": access_token, **allow})

    async def get_current_project(self) -> dict[str, Any]:
        """``GET /projects/current``: the cheapest proof that our keys are accepted."""
        return await self._get_object("/projects/current", {})

    async def _get_object(self, path: str, headers: dict[str, str]) -> dict[str, Any]:
        body = await self.request("GET", path, ok=(200,), headers=headers)
        if not isinstance(body, dict):
            raise StackBadResponseError(f"GET {path} did not return a JSON object")
        return body
