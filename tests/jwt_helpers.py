"""Real ES256 tokens and a JWKS to check them against, for the JWT-mode tests.

``KeyRing`` holds a project's key pairs the way Stack Auth does (two per audience, the first
one signs) and mints tokens with them; ``JwksEndpoint`` serves its public half as Stack's JWKS
endpoint does (the plain set, ``include_restricted``, ``include_anonymous``), as a respx side
effect or, through ``jwks_app``, as an ASGI app for a real loopback server.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from tests.conftest import API_URL, PROJECT_ID

CONTRACT_FIXTURES = Path(__file__).parent / "fixtures" / "stack-auth-api"
JWKS_PATH = f"/api/v1/projects/{PROJECT_ID}/.well-known/jwks.json"
KINDS = ("normal", "restricted", "anonymous")
#: As a claim or header value in ``claims_for``/``sign_jwt``: leave that member out.
MISSING: Any = object()
_AUD_SUFFIX = {"normal": "", "restricted": ":restricted", "anonymous": ":anon"}
_ISS_PATH = {
    "normal": "projects",
    "restricted": "projects-restricted-users",
    "anonymous": "projects-anonymous-users",
}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_json(value: Any) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def _int_from_b64url(text: str) -> int:
    return int.from_bytes(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)), "big")


@dataclass
class SigningKey:
    """A P-256 key pair with its ``kid``."""

    kid: str
    private: ec.EllipticCurvePrivateKey

    @classmethod
    def generate(cls, kid: str | None = None) -> SigningKey:
        return cls(kid or b64url(secrets.token_bytes(9)), ec.generate_private_key(ec.SECP256R1()))

    @classmethod
    def from_jwk(cls, jwk: dict[str, Any]) -> SigningKey:
        private = ec.derive_private_key(_int_from_b64url(jwk["d"]), ec.SECP256R1())
        return cls(jwk["kid"], private)

    @classmethod
    def generate_short(cls, kid: str | None = None) -> SigningKey:
        """A key pair whose ``x`` or ``y`` is 31 bytes long once its leading zero byte is
        dropped (about 1 key in 128): 42 base64url characters instead of 43."""
        while True:
            key = cls.generate(kid)
            numbers = key.private.public_key().public_numbers()
            if any(1 << 240 <= value < 1 << 248 for value in (numbers.x, numbers.y)):
                return key

    def public_jwk(self, *, minimal: bool = False) -> dict[str, str]:
        """The public JWK; ``minimal``: coordinates without leading zero bytes, as Stack
        serialises them (otherwise 32 bytes each, as RFC 7518 asks)."""
        numbers = self.private.public_key().public_numbers()

        def coordinate(value: int) -> str:
            length = (value.bit_length() + 7) // 8 if minimal else 32
            return b64url(value.to_bytes(length, "big"))

        return {
            "kty": "EC",
            "crv": "P-256",
            "alg": "ES256",
            "kid": self.kid,
            "x": coordinate(numbers.x),
            "y": coordinate(numbers.y),
        }

    def sign(self, signing_input: bytes) -> bytes:
        """The JWS ES256 signature: raw ``r || s``, 32 bytes each."""
        r, s = decode_dss_signature(self.private.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def sign_jwt(key: SigningKey, payload: dict[str, Any], **header: Any) -> str:
    """A compact JWS of ``payload`` signed with ``key`` (header ``alg``/``kid`` overridable)."""
    full_header = {"alg": "ES256", "kid": key.kid, **header}
    full_header = {name: value for name, value in full_header.items() if value is not MISSING}
    signing_input = f"{b64url_json(full_header)}.{b64url_json(payload)}"
    return f"{signing_input}.{b64url(key.sign(signing_input.encode()))}"


def claims_for(
    kind: str = "normal",
    *,
    project_id: str = PROJECT_ID,
    api_url: str = API_URL,
    now: float | None = None,
    ttl: int = 600,
    **overrides: Any,
) -> dict[str, Any]:
    """The exact claim set Stack puts in an access token of a ``kind`` user."""
    issued = int(time.time() if now is None else now)
    reason = {"normal": None, "restricted": "email_not_verified", "anonymous": "anonymous"}[kind]
    payload: dict[str, Any] = {
        "sub": str(uuid.uuid4()),
        "project_id": project_id,
        "branch_id": "main",
        "refresh_token_id": str(uuid.uuid4()),
        "role": "authenticated",
        "name": "Ada Lovelace" if kind != "anonymous" else None,
        "email": "ada@example.com" if kind != "anonymous" else None,
        "email_verified": kind == "normal",
        "selected_team_id": None,
        "signed_up_at": issued - 3600,
        "is_anonymous": kind == "anonymous",
        "is_restricted": kind != "normal",
        "restricted_reason": None if reason is None else {"type": reason},
        "requires_totp_mfa": False,
        "iss": f"{api_url}/api/v1/{_ISS_PATH[kind]}/{project_id}",
        "iat": issued,
        "aud": project_id + _AUD_SUFFIX[kind],
        "exp": issued + ttl,
    }
    payload.update(overrides)
    return {name: value for name, value in payload.items() if value is not MISSING}


@dataclass
class KeyRing:
    """A project's signing keys, two per audience like Stack's; the first of each signs."""

    keys: dict[str, list[SigningKey]] = field(
        default_factory=lambda: {
            kind: [SigningKey.generate(), SigningKey.generate()] for kind in KINDS
        }
    )
    cache_control: str = "public, max-age=3600"

    @classmethod
    def from_contract_fixtures(cls) -> KeyRing:
        """The made-up private keys behind the contract's fixture tokens."""
        data = json.loads(
            (CONTRACT_FIXTURES / "tokens" / "jwks.private.TEST-ONLY.json").read_text()
        )
        audiences = data["audiences"]
        return cls(
            keys={
                kind: [SigningKey.from_jwk(jwk) for jwk in audiences[kind]["keys"]]
                for kind in KINDS
            }
        )

    def signer(self, kind: str = "normal") -> SigningKey:
        return self.keys[kind][0]

    def jwks(self, kinds: tuple[str, ...] = KINDS, *, minimal: bool = False) -> dict[str, Any]:
        """The public JWKS of ``kinds``' keys, in Stack's order; by default every audience's
        (what ``include_anonymous=true`` answers)."""
        return {
            "keys": [key.public_jwk(minimal=minimal) for kind in kinds for key in self.keys[kind]]
        }

    def mint(self, kind: str = "normal", **claims: Any) -> str:
        """A valid token of a ``kind`` user (claims overridable), signed like Stack signs."""
        return sign_jwt(self.signer(kind), claims_for(kind, **claims))

    def rotate(self, kind: str = "normal") -> SigningKey:
        """Put a new signing key in front of ``kind``'s keys (as Stack's planned switch)."""
        key = SigningKey.generate()
        self.keys[kind].insert(0, key)
        return key


def kinds_asked(request: httpx.Request) -> tuple[str, ...] | None:
    """The audiences whose keys Stack's JWKS endpoint answers ``request`` with: the normal
    users' by default, the restricted users' too with ``include_restricted=true``, and the
    anonymous users' too with ``include_anonymous=true``. ``None``: a parameter Stack refuses
    (``SCHEMA_ERROR``)."""
    params = request.url.params
    if any(
        name not in ("include_restricted", "include_anonymous") or value not in ("true", "false")
        for name, value in params.multi_items()
    ):
        return None
    if params.get("include_anonymous") == "true":
        return KINDS
    return KINDS[:2] if params.get("include_restricted") == "true" else KINDS[:1]


@dataclass
class JwksEndpoint:
    """Stack's JWKS endpoint for a ``KeyRing``; records what it was asked. ``respond``, when
    set, answers instead (for every set asked)."""

    ring: KeyRing
    requests: list[httpx.Request] = field(default_factory=list)
    respond: Callable[[httpx.Request], httpx.Response] | None = None

    def __call__(self, request: httpx.Request) -> httpx.Response:
        """respx side effect."""
        self.requests.append(request)
        if self.respond is not None:
            return self.respond(request)
        return self.answer(request)

    def answer(self, request: httpx.Request) -> httpx.Response:
        """Stack's answer to ``request`` (what is served unless ``respond`` is set)."""
        kinds = kinds_asked(request)
        if kinds is None:
            return httpx.Response(
                400,
                json={"code": "SCHEMA_ERROR", "error": "Request validation failed"},
                headers={"x-stack-known-error": "SCHEMA_ERROR"},
            )
        return httpx.Response(
            200, json=self.ring.jwks(kinds), headers={"cache-control": self.ring.cache_control}
        )

    @property
    def calls(self) -> int:
        """HTTP requests received (a key-set refresh makes three)."""
        return len(self.requests)

    @property
    def fetches(self) -> int:
        """Key-set refreshes seen: the most requests for any one of Stack's three sets."""
        asked = Counter(str(request.url.params) for request in self.requests)
        return max(asked.values(), default=0)


def jwks_app(endpoint: JwksEndpoint) -> Callable[..., Any]:
    """A raw ASGI app serving ``endpoint`` on ``JWKS_PATH`` (404 elsewhere), for uvicorn."""

    async def app(
        scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]
    ) -> None:
        assert scope["type"] == "http"
        request = httpx.Request(
            scope["method"],
            httpx.URL(
                scheme="http",
                host="127.0.0.1",
                path=scope["path"],
                query=scope["query_string"],
            ),
            headers=[(name, value) for name, value in scope["headers"]],
        )
        if scope["path"] == JWKS_PATH:
            response = endpoint(request)
        else:
            response = httpx.Response(404, text="Project not found")
        await send(
            {
                "type": "http.response.start",
                "status": response.status_code,
                "headers": [
                    (name.encode("latin-1"), value.encode("latin-1"))
                    for name, value in response.headers.items()
                ],
            }
        )
        await send({"type": "http.response.body", "body": response.content})

    return app
