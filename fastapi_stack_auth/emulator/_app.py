"""The ASGI app: routing, Stack's response conventions, the emulator header, and the guards
against web pages (CORS for loopback and listed origins only, never for server or admin access;
loopback ``Host`` only unless allowed, against DNS rebinding)."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from .._version import __version__
from ._backend import Backend
from ._crypto import new_id
from ._errors import KnownError, PlainError, insufficient_access_type
from ._http import Ctx, Reply, parse_auth, parse_body, parse_query
from ._routes import ROUTES, Route
from ._tokens import TokenConsistencyError

logger = logging.getLogger("fastapi_stack_auth.emulator")

#: On every response: this is not Stack Auth.
EMULATOR_HEADER = "x-stack-emulator"
EMULATOR_HEADER_VALUE = f"fastapi-stack-auth/{__version__} (development only)"
_API_PREFIXES = ("/api/v1", "/api/latest")
_ALLOWED_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
_PREFIXES = ("x-stack", "x-hexclave")
#: What server and admin access send: never allowed from a browser.
_SECRET_HEADERS = [
    f"{prefix}-{name}"
    for name in ("secret-server-key", "super-secret-admin-key", "admin-access-token")
    for prefix in _PREFIXES
]
_CORS_REQUEST_HEADERS = ["content-type", "authorization", "ngrok-skip-browser-warning"] + [
    f"{prefix}-{name}"
    for name in [
        "project-id",
        "branch-id",
        "override-error-status",
        "random-nonce",
        "client-version",
        "disable-artificial-development-delay",
        "access-type",
        "publishable-client-key",
        "refresh-token",
        "access-token",
        "allow-anonymous-user",
    ]
    for prefix in _PREFIXES
]
_CORS_EXPOSED_HEADERS = ["content-type", "location", EMULATOR_HEADER] + [
    f"{prefix}-{name}" for prefix in _PREFIXES for name in ("actual-status", "known-error")
]
_CORS_HEADERS = {
    "access-control-allow-methods": ", ".join(_ALLOWED_METHODS),
    "access-control-max-age": "86400",
    "access-control-allow-headers": ", ".join(_CORS_REQUEST_HEADERS),
    "access-control-expose-headers": ", ".join(_CORS_EXPOSED_HEADERS),
}
_JSON = "application/json; charset=utf-8"
_TEXT = "text/plain; charset=utf-8"


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1, ``[::1]``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _host_name(host: str) -> str:
    """The name of a ``Host`` header, without the port (``[::1]:8102`` -> ``::1``)."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")]
    return host.partition(":")[0]


def _loopback_origin(origin: str) -> bool:
    try:
        parts = urlsplit(origin)
        parts.port  # noqa: B018 -- raises ValueError on a bad port
    except ValueError:
        return False
    exact = f"{parts.scheme}://{parts.netloc}" == origin and "@" not in parts.netloc
    return exact and parts.scheme in ("http", "https") and is_loopback(parts.hostname or "")


class EmulatorApp:
    """ASGI app of one emulator (``emulator.app``)."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    def host_allowed(self, host: str | None) -> bool:
        """Loopback, or a name in ``allowed_hosts``: a rebound DNS name gets nothing."""
        name = _host_name(host or "")
        return is_loopback(name) or name in self.backend.allowed_hosts

    def cors_origin(self, request: Request) -> str | None:
        """The origin to allow: a loopback or listed one, never for server or admin access."""
        headers, origin = request.headers, request.headers.get("origin", "")
        if any(headers.get(f"{p}-access-type", "client") != "client" for p in _PREFIXES) or any(
            name in headers for name in _SECRET_HEADERS
        ):
            return None
        listed = origin.rstrip("/").lower() in self.backend.cors_origins
        return origin if listed or _loopback_origin(origin) else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":  # no websockets here
            await send({"type": "websocket.close", "code": 1000})
            return
        request = Request(scope, receive)
        response = await self._respond(request)
        await response(scope, receive, send)

    async def _respond(self, request: Request) -> Response:
        request_id = new_id()
        path = request.url.path
        is_api = path.startswith("/api/")
        host = request.headers.get("host")
        try:
            if self.host_allowed(host):
                response = await self._dispatch(request, path, is_api)
            else:
                response = _host_refused(host)
                is_api = False
        except Exception:
            logger.exception("Stack Auth emulator: internal error on %s %s", request.method, path)
            response = _text(
                500, f"Internal error in the Stack Auth emulator (request {request_id})"
            )
        response.headers.setdefault("cache-control", "no-store, max-age=0")
        response.headers["x-stack-request-id"] = request_id
        response.headers["x-hexclave-request-id"] = request_id
        response.headers[EMULATOR_HEADER] = EMULATOR_HEADER_VALUE
        origin = self.cors_origin(request) if is_api else None
        if is_api:
            response.headers["vary"] = "origin"
        if origin is not None:
            response.headers["access-control-allow-origin"] = origin
            response.headers.update(_CORS_HEADERS)
        return response

    async def _dispatch(self, request: Request, path: str, is_api: bool) -> Response:
        method = request.method
        if method == "OPTIONS" and is_api:
            return Response(status_code=200)  # CORS preflight, whatever the path
        if method not in _ALLOWED_METHODS:
            return _text(405, "Method not allowed")
        if path in ("/health", "/api/v1/health"):
            return _text(200, "OK (Stack Auth emulator, development only)")
        if path == "/":
            return _text(200, _HOME)
        sub = next((path[len(p) :] for p in _API_PREFIXES if path.startswith(p + "/")), None)
        if sub is None:
            return _text(404, "Not found")
        matched: tuple[Route, dict[str, str]] | None = None
        path_known = False
        for route in ROUTES:
            match = route.pattern.fullmatch(sub)
            if match is not None:
                path_known = True
                if route.method == method:
                    matched = (route, match.groupdict())
                    break
        if matched is None:
            return _text(405, "Method not allowed") if path_known else _text(404, "Not found")
        route, params = matched
        backend = self.backend
        backend.calls[f"{method} {route.label}"] += 1
        if backend.latency > 0:
            await asyncio.sleep(backend.latency)  # a distant Stack Auth (load tests)

        override = (
            request.headers.get("x-stack-override-error-status") is not None
            or request.headers.get("x-hexclave-override-error-status") is not None
        )
        try:
            body = parse_body(method, request.headers.get("content-type"), await request.body())
            ctx = Ctx(
                backend=backend,
                method=method,
                path=path,
                headers=request.headers,
                query=parse_query(request.scope.get("query_string", b"")),
                body=body,
                params=params,
            )
            with backend.lock:
                ctx.auth = parse_auth(ctx)
                if route.access is not None:
                    auth = ctx.need_auth
                    if auth.access_type not in route.access:
                        raise insufficient_access_type(auth.access_type, list(route.access))
                reply = route.handler(ctx)
        except KnownError as error:
            response = Response(
                _pretty(error.body()),
                status_code=error.status,
                media_type=None,
                headers={
                    "content-type": _JSON,
                    "x-stack-known-error": error.code,
                    "x-hexclave-known-error": error.code,
                },
            )
        except PlainError as error:
            response = _text(error.status, error.text)
        except TokenConsistencyError:
            response = _text(500, "The access token's claims are inconsistent (HTTP 500 in Stack)")
        else:
            response = _reply(reply, pretty="text/html" in request.headers.get("accept", ""))
        if override and 400 <= response.status_code < 500:
            actual = str(response.status_code)
            response.status_code = 200
            response.headers["x-stack-actual-status"] = actual
            response.headers["x-hexclave-actual-status"] = actual
        return response


def _host_refused(host: str | None) -> Response:
    message = (
        f"The Stack Auth emulator answers only requests for a loopback host (localhost, "
        f"127.0.0.1, [::1]), not {host!r}: this keeps web pages from reaching it through DNS "
        "rebinding. To use another name, start it with --allow-remote and --public-url."
    )
    body = {"code": "EMULATOR_HOST_NOT_ALLOWED", "error": message}
    return Response(_pretty(body), status_code=421, headers={"content-type": _JSON})


def _pretty(body: Any) -> bytes:
    return json.dumps(body, indent=2, ensure_ascii=False).encode()


def _text(status: int, text: str) -> Response:
    return Response(text.encode(), status_code=status, headers={"content-type": _TEXT})


def _reply(reply: Reply, *, pretty: bool) -> Response:
    if reply.text is not None:
        response = _text(reply.status, reply.text)
    else:
        content = (
            _pretty(reply.body)
            if pretty
            else json.dumps(reply.body, separators=(",", ":"), ensure_ascii=False).encode()
        )
        response = Response(content, status_code=reply.status, headers={"content-type": _JSON})
    for name, value in reply.headers.items():
        response.headers[name] = value
    return response


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


_HOME = """\
Stack Auth emulator (fastapi-stack-auth) -- FOR DEVELOPMENT AND TESTS ONLY.

This is not Stack Auth: it keeps users in memory, prints its keys, and is not secure.
The API is under /api/v1 (e.g. GET /api/v1/projects/{project_id}/.well-known/jwks.json).
"""
