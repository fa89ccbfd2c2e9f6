"""The emulator's ASGI app: routing, Stack's response conventions, CORS, the emulator header."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from .._version import __version__
from ._errors import KnownError, PlainError, insufficient_access_type
from ._http import Ctx, Reply, parse_auth, parse_body, parse_query
from ._routes import ROUTES, Route
from ._store import new_id
from ._tokens import TokenConsistencyError

if TYPE_CHECKING:
    from ._emulator import Emulator

logger = logging.getLogger("fastapi_stack_auth.emulator")

#: On every response: this is not Stack Auth.
EMULATOR_HEADER = "x-stack-emulator"
EMULATOR_HEADER_VALUE = f"fastapi-stack-auth/{__version__} (development only)"
_API_PREFIXES = ("/api/v1", "/api/latest")
_ALLOWED_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
_CORS_REQUEST_HEADERS = [
    "content-type",
    "authorization",
    "ngrok-skip-browser-warning",
    *(
        f"{prefix}-{name}"
        for name in (
            "project-id",
            "branch-id",
            "override-error-status",
            "random-nonce",
            "client-version",
            "disable-artificial-development-delay",
            "access-type",
            "publishable-client-key",
            "secret-server-key",
            "super-secret-admin-key",
            "admin-access-token",
            "refresh-token",
            "access-token",
            "allow-anonymous-user",
        )
        for prefix in ("x-stack", "x-hexclave")
    ),
]
_CORS_HEADERS = {
    "access-control-allow-origin": "*",
    "access-control-allow-methods": ", ".join(_ALLOWED_METHODS),
    "access-control-max-age": "86400",
    "access-control-allow-headers": ", ".join(_CORS_REQUEST_HEADERS),
    "access-control-expose-headers": ", ".join(
        [
            "content-type",
            "location",
            "x-stack-actual-status",
            "x-stack-known-error",
            "x-hexclave-actual-status",
            "x-hexclave-known-error",
            EMULATOR_HEADER,
        ]
    ),
}
_JSON = "application/json; charset=utf-8"
_TEXT = "text/plain; charset=utf-8"


class EmulatorApp:
    """ASGI app of one ``Emulator`` (``emulator.app``)."""

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator

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
        try:
            response = await self._dispatch(request, path, is_api)
        except Exception:
            logger.exception("Stack Auth emulator: internal error on %s %s", request.method, path)
            response = _text(
                500, f"Internal error in the Stack Auth emulator (request {request_id})"
            )
        response.headers.setdefault("cache-control", "no-store, max-age=0")
        response.headers["x-stack-request-id"] = request_id
        response.headers["x-hexclave-request-id"] = request_id
        response.headers[EMULATOR_HEADER] = EMULATOR_HEADER_VALUE
        if is_api:
            for name, value in _CORS_HEADERS.items():
                response.headers[name] = value
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
        emulator = self.emulator
        emulator.calls[f"{method} {route.label}"] += 1
        if emulator.latency > 0:
            await asyncio.sleep(emulator.latency)  # a distant Stack Auth (load tests)

        override = (
            request.headers.get("x-stack-override-error-status") is not None
            or request.headers.get("x-hexclave-override-error-status") is not None
        )
        try:
            body = parse_body(method, request.headers.get("content-type"), await request.body())
            ctx = Ctx(
                emulator=self.emulator,
                method=method,
                path=path,
                headers=request.headers,
                query=parse_query(request.scope.get("query_string", b"")),
                body=body,
                params=params,
            )
            with self.emulator.store.lock:
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
