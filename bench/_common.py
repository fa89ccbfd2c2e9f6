"""What the bench scripts share: raw ASGI requests, Stack-shaped tokens and claims."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

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


class Signer:
    """Mints Stack-shaped ES256 access tokens and serves the matching JWKS.

    A fresh P-256 key, or the one of ``secret`` (a number), so that several processes can share
    it without passing it around."""

    def __init__(self, secret: int | None = None, kid: str = "benchKey0001") -> None:
        self.key = (
            ec.generate_private_key(ec.SECP256R1())
            if secret is None
            else ec.derive_private_key(secret, ec.SECP256R1())
        )
        self.kid = kid
        self.header = b64(json.dumps({"alg": "ES256", "kid": kid}).encode())

    def jwks(self) -> dict[str, Any]:
        numbers = self.key.public_key().public_numbers()
        x, y = (b64(n.to_bytes(32, "big")) for n in (numbers.x, numbers.y))
        jwk = {"kty": "EC", "crv": "P-256", "alg": "ES256", "kid": self.kid, "x": x, "y": y}
        return {"keys": [jwk]}

    def sign(self, claims: dict[str, Any]) -> str:
        signing_input = f"{self.header}.{b64(json.dumps(claims).encode())}"
        r, s = decode_dss_signature(
            self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        )
        return f"{signing_input}.{b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def asgi_caller(app: Any, path: str = "/") -> Caller:
    """One GET ``path`` through ``app`` as an ASGI server would make it; returns the status."""
    raw_path = path.encode()

    async def call(headers: Headers) -> int:
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": raw_path,
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
