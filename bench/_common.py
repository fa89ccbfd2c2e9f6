"""What the bench scripts share: raw ASGI requests, Stack-shaped tokens and claims."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

PROJECT_ID = "6f0c2a9e-4b7d-4e1a-9c3f-2d8b5e7a1f40"

Headers = list[tuple[bytes, bytes]]
Caller = Callable[[Headers], Awaitable[int]]


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def request_headers(token: str) -> Headers:
    """The ASGI headers of a browser-ish request carrying ``Authorization: Bearer <token>``."""
    return [
        (b"host", b"bench.local"),
        (b"user-agent", b"bench/1"),
        (b"accept", b"*/*"),
        (b"authorization", f"Bearer {token}".encode()),
    ]


def stack_claims(sub: str, issuer: str, project_id: str = PROJECT_ID) -> dict[str, Any]:
    """The claims of a Stack Auth access token for a normal user, valid for an hour."""
    now = int(time.time())
    return {
        "sub": sub,
        "project_id": project_id,
        "branch_id": "main",
        "refresh_token_id": str(uuid.uuid4()),
        "role": "authenticated",
        "name": "Bench User",
        "email": "bench@example.com",
        "email_verified": True,
        "selected_team_id": None,
        "signed_up_at": now - 86_400,
        "is_anonymous": False,
        "is_restricted": False,
        "restricted_reason": None,
        "requires_totp_mfa": False,
        "iss": issuer,
        "iat": now,
        "aud": project_id,
        "exp": now + 3600,
    }


def unsigned_token(claims: dict[str, Any], kid: str = "benchKey0001") -> str:
    """A token of the right shape whose ES256 signature is 64 random bytes: enough for remote
    mode, which checks nothing but the shape, ``exp`` and ``aud`` before asking Stack."""
    header = b64(json.dumps({"alg": "ES256", "kid": kid}).encode())
    payload = b64(json.dumps(claims).encode())
    return f"{header}.{payload}.{b64(uuid.uuid4().bytes * 4)}"


def asgi_caller(app: Any) -> Caller:
    """One GET / through ``app`` as an ASGI server would make it; returns the status."""

    async def call(headers: Headers) -> int:
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": "/",
            "raw_path": b"/",
            "root_path": "",
            "query_string": b"",
            "headers": headers,
            "client": ("127.0.0.1", 50000),
            "server": ("bench.local", 80),
            "state": {},
        }
        status = 0

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: MutableMapping[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        await app(scope, receive, send)
        return status

    return call
