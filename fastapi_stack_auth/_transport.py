"""The connection layer under ``StackClient``'s ``httpx.AsyncClient``: aiohttp when it is
clearly better, else httpx's own (httpcore).

Measured with ``bench/upstream_cpu.py`` (32 concurrent callers, httpx 0.28 / httpcore 1.0.9):
httpcore's connection pool spends about 3 ms of CPU per call, mostly re-scanning every
connection for every request it queues or releases; an aiohttp session under the same httpx
API spends about a third of that. The interface stays httpx (requests, responses, exceptions,
timeouts, ``transport=``); only the sockets and HTTP/1.1 parsing move to aiohttp.

``STACK_HTTP_CLIENT`` chooses: ``aiohttp``, ``httpx``, or ``auto`` (the default), which picks
aiohttp only when all of these hold:

- ``aiohttp`` is installed (``pip install 'fastapi-stack-auth[aiohttp]'``);
- the code runs under asyncio (aiohttp does not run under trio);
- no proxy is configured in the environment (``HTTP(S)_PROXY``, ``ALL_PROXY``): httpx reads
  those, SOCKS included, and a transport of our own would bypass them;
- ``respx`` is not loaded: its default mocker patches httpcore, so in a test process that
  mocks with respx the requests must go through httpcore to be mocked.
"""

from __future__ import annotations

import asyncio
import ssl
import sys
import urllib.request
from types import ModuleType
from typing import Any

import httpx

from ._errors import StackAuthConfigError

#: Kept alive idle for this long, as httpx does by default.
KEEPALIVE_EXPIRY = 5.0


def _aiohttp() -> ModuleType | None:
    try:
        import aiohttp
    except ImportError:
        return None
    return aiohttp


def default_transport(choice: str, max_connections: int) -> httpx.AsyncBaseTransport | None:
    """The transport ``choice`` (``STACK_HTTP_CLIENT``) asks for: an aiohttp-backed one, or
    ``None`` for httpx's own. Call it from async code: ``auto`` checks the running loop."""
    if choice == "aiohttp":
        return AiohttpTransport(max_connections=max_connections)
    if choice != "auto" or "respx" in sys.modules or urllib.request.getproxies():
        return None
    try:
        asyncio.get_running_loop()  # under trio there is none
    except RuntimeError:
        return None
    if _aiohttp() is None:
        return None
    return AiohttpTransport(max_connections=max_connections)


class AiohttpTransport(httpx.AsyncBaseTransport):
    """An ``httpx`` transport that sends requests with one pooled ``aiohttp.ClientSession``.

    The session is created on first use (it needs the running loop) and closed by ``aclose``.
    Bodies are read whole before returning (Stack's answers are small JSON documents), so the
    aiohttp connection goes back to the pool at once. aiohttp's errors are raised as the httpx
    exceptions httpx's own transport raises in the same situation; content decoding is left to
    httpx, as with its own transport.
    """

    def __init__(self, *, max_connections: int = 100, ssl_context: ssl.SSLContext | None = None):
        aiohttp = _aiohttp()
        if aiohttp is None:
            raise StackAuthConfigError(
                "STACK_HTTP_CLIENT=aiohttp needs aiohttp: pip install 'fastapi-stack-auth[aiohttp]'"
            )
        self._aiohttp: Any = aiohttp
        self._max_connections = max_connections
        self._ssl_context = ssl_context
        self._session: Any = None

    def _open_session(self) -> Any:
        aiohttp = self._aiohttp
        if self._ssl_context is None:
            # The same trust store as httpx's own transport (certifi, or SSL_CERT_FILE/DIR).
            self._ssl_context = httpx.create_ssl_context()
        connector = aiohttp.TCPConnector(
            limit=self._max_connections,
            keepalive_timeout=KEEPALIVE_EXPIRY,
            ssl=self._ssl_context,
        )
        # No cookie jar, no redirects, no decompression: httpx does what it does for its own
        # transport. trust_env=False: the environment's proxies are httpx's business (and
        # default_transport does not pick this transport when any is set).
        return aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            trust_env=False,
            timeout=aiohttp.ClientTimeout(total=None),
        )

    def _timeout(self, request: httpx.Request) -> Any:
        phases = request.extensions.get("timeout", {})
        connect, read, pool = (phases.get(name) for name in ("connect", "read", "pool"))
        # aiohttp's ``connect`` covers waiting for a pooled connection and connecting.
        total_connect = None if connect is None or pool is None else connect + pool
        return self._aiohttp.ClientTimeout(
            total=None, connect=total_connect, sock_connect=connect, sock_read=read
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = self._session
        if session is None:
            session = self._session = self._open_session()
        try:
            body = await request.aread()
            async with session.request(
                request.method,
                str(request.url),
                headers=request.headers.multi_items(),
                data=body or None,
                allow_redirects=False,
                timeout=self._timeout(request),
            ) as answer:
                content = await answer.read()
                status, raw_headers, reason = answer.status, answer.raw_headers, answer.reason
        except httpx.HTTPError:
            raise
        except Exception as exc:
            raise self._httpx_error(exc, request) from exc
        extensions: dict[str, Any] = {"http_version": b"HTTP/1.1"}
        if reason:
            extensions["reason_phrase"] = reason.encode("latin-1", "replace")
        return httpx.Response(
            status,
            headers=list(raw_headers),
            stream=httpx.ByteStream(content),
            request=request,
            extensions=extensions,
        )

    def _httpx_error(self, exc: Exception, request: httpx.Request) -> Exception:
        """The httpx exception for an aiohttp one. The message is the aiohttp class name only:
        aiohttp's own text may quote the URL or what the server sent."""
        aiohttp = self._aiohttp
        name = type(exc).__name__
        kind: type[httpx.RequestError]
        if isinstance(exc, aiohttp.ConnectionTimeoutError):
            kind = httpx.ConnectTimeout
        elif isinstance(exc, (aiohttp.ServerTimeoutError, asyncio.TimeoutError)):
            kind = httpx.ReadTimeout
        elif isinstance(exc, aiohttp.ClientConnectorError):
            kind = httpx.ConnectError
        elif isinstance(
            exc,
            (
                aiohttp.ServerDisconnectedError,
                aiohttp.ClientPayloadError,
                aiohttp.ClientResponseError,
            ),
        ):
            kind = httpx.RemoteProtocolError
        elif isinstance(exc, (aiohttp.ClientOSError, aiohttp.ClientConnectionError, OSError)):
            kind = httpx.ReadError
        elif isinstance(exc, aiohttp.InvalidURL):
            kind = httpx.UnsupportedProtocol
        elif isinstance(exc, aiohttp.ClientError):
            kind = httpx.TransportError
        elif isinstance(exc, ValueError):
            # aiohttp refuses to send a header value with CR/LF, as h11 does.
            kind = httpx.LocalProtocolError
        else:
            return exc
        return kind(name, request=request)

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()
