"""The project's JSON Web Key Set: fetched through ``StackClient``, cached, refetched with care.

``GET /api/v1/projects/{project_id}/.well-known/jwks.json?include_anonymous=true`` returns the
public keys of all three audiences (normal, restricted and anonymous users), without any
credential of ours. The set is turned into ready-to-use key objects once per fetch.

- Freshness follows the answer's ``Cache-Control: max-age`` (minus ``Age``), clamped between a
  floor and a ceiling. A stale set is still served while one background fetch revalidates it.
- An unknown ``kid`` triggers one refetch, but fetches start at most once per
  ``refetch_interval`` seconds, and concurrent misses share the fetch in flight: a flood of
  random ``kid`` values cannot make us hammer Stack Auth.
- A failed fetch keeps the last good keys. Before any set was ever loaded, a failure is raised
  (``StackUnavailableError`` → 503, ``StackBadResponseError`` → 502) and repeated to callers for
  ``retry_delay`` seconds instead of being retried by every request.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import math
import re
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

from cryptography.hazmat.primitives.asymmetric import ec

from ._client import StackClient
from .errors import StackAuthError, StackBadResponseError, StackUnavailableError

logger = logging.getLogger("fastapi_stack_auth")

#: Shortest time a fetched key set is considered fresh, whatever Cache-Control says (seconds).
MIN_TTL = 60.0
#: Longest time a fetched key set is considered fresh (seconds).
MAX_TTL = 86_400.0
#: Freshness when the answer carries no usable ``max-age`` (Stack sends ``max-age=3600``).
DEFAULT_TTL = 300.0
#: At most one fetch starts per this many seconds once a key set is loaded.
REFETCH_INTERVAL = 30.0
#: Before any key set is loaded, how long a failure is repeated before the next attempt.
RETRY_DELAY = 2.0
#: Longest ``kid`` we look up at all (Stack's are 12 characters).
MAX_KID_LENGTH = 128

_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_MAX_AGE = re.compile(r'max-age\s*=\s*"?(\d+)"?')


def _coordinate(value: Any) -> bytes | None:
    """A P-256 coordinate from its unpadded base64url form, left-padded to 32 bytes, else
    ``None``. Stack drops a coordinate's leading zero bytes (about 1 key in 128 has a 31-byte
    ``x`` or ``y``), so a short one is valid; a longer one cannot be a P-256 coordinate."""
    if not isinstance(value, str) or not 0 < len(value) <= 43 or not _B64URL.fullmatch(value):
        return None
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        return None
    return raw.rjust(32, b"\x00") if len(raw) <= 32 else None


def es256_public_key(jwk: Any) -> ec.EllipticCurvePublicKey | None:
    """The verification key of a JWK if it is a usable ES256 (P-256) signing key, else ``None``.

    The point must lie on the curve. A JWK that says it is for another algorithm or use is not
    usable, so it can never verify a token.
    """
    if not isinstance(jwk, dict) or jwk.get("kty") != "EC" or jwk.get("crv") != "P-256":
        return None
    if jwk.get("alg", "ES256") != "ES256" or jwk.get("use", "sig") != "sig":
        return None
    key_ops = jwk.get("key_ops")
    if key_ops is not None and (not isinstance(key_ops, list) or "verify" not in key_ops):
        return None
    x, y = _coordinate(jwk.get("x")), _coordinate(jwk.get("y"))
    if x is None or y is None:
        return None
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + x + y)
    except ValueError:  # not a point on P-256
        return None


def parse_jwks(body: Any) -> dict[str, ec.EllipticCurvePublicKey]:
    """``{kid: public key}`` for the usable keys of a JWKS document.

    Keys that are not ES256/P-256 are skipped; a ``kid`` that appears more than once is dropped
    altogether (we could not tell which key it names). Raises ``StackBadResponseError`` when
    the document is not a JWKS or has no usable key.
    """
    if not isinstance(body, dict) or not isinstance(body.get("keys"), list):
        raise StackBadResponseError("the JWKS is not a JSON object with a 'keys' list")
    keys: dict[str, ec.EllipticCurvePublicKey] = {}
    ambiguous: set[str] = set()
    for jwk in body["keys"]:
        key = es256_public_key(jwk)
        kid = jwk.get("kid") if isinstance(jwk, dict) else None
        if key is None or not isinstance(kid, str) or not 0 < len(kid) <= MAX_KID_LENGTH:
            continue
        if kid in keys or kid in ambiguous:
            ambiguous.add(kid)
            keys.pop(kid, None)
            continue
        keys[kid] = key
    if not keys:
        raise StackBadResponseError("the JWKS has no usable ES256 key")
    return keys


def freshness(headers: Mapping[str, str], *, floor: float, ceiling: float) -> float:
    """Seconds a JWKS answer stays fresh, from ``Cache-Control`` and ``Age``, clamped."""
    cache_control = headers.get("cache-control", "").lower()
    if "no-store" in cache_control or "no-cache" in cache_control:
        return floor
    match = _MAX_AGE.search(cache_control)
    if match is None:
        return min(max(DEFAULT_TTL, floor), ceiling)
    ttl = float(match.group(1))
    age = headers.get("age", "")
    if age.isdigit():
        ttl -= float(age)
    return min(max(ttl, floor), ceiling)


class JwksCache:
    """The project's public signing keys, by ``kid``.

    ``cached(kid)`` is the synchronous fast path (a dict lookup; a stale set is revalidated in
    the background); ``get(kid)`` does everything else: the first load and the rate-limited
    refetch for an unknown ``kid``. Time comes from ``clock`` (monotonic seconds), so tests can
    move it.
    """

    def __init__(
        self,
        client: StackClient,
        project_id: str,
        *,
        min_ttl: float = MIN_TTL,
        max_ttl: float = MAX_TTL,
        refetch_interval: float = REFETCH_INTERVAL,
        retry_delay: float = RETRY_DELAY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._path = f"/projects/{quote(project_id, safe='')}/.well-known/jwks.json"
        self._min_ttl = min_ttl
        self._max_ttl = max(max_ttl, min_ttl)
        self._refetch_interval = refetch_interval
        self._retry_delay = retry_delay
        self._clock = clock
        self._keys: dict[str, ec.EllipticCurvePublicKey] = {}
        self._loaded = False
        self._fresh_until = -math.inf
        self._next_fetch_at = -math.inf
        self._last_error: StackAuthError | None = None
        self._task: asyncio.Task[None] | None = None
        #: Number of fetches started (for tests and metrics).
        self.fetches = 0

    def __repr__(self) -> str:
        return f"JwksCache(path={self._path!r}, kids={sorted(self._keys)!r})"

    @property
    def loaded(self) -> bool:
        """True once a key set was fetched successfully."""
        return self._loaded

    @property
    def kids(self) -> frozenset[str]:
        """The ``kid`` values of the current key set."""
        return frozenset(self._keys)

    def cached(self, kid: str) -> ec.EllipticCurvePublicKey | None:
        """The key for ``kid`` if the current set has it; no I/O, no waiting.

        A stale set is still used; from the event loop, it also starts one background
        revalidation (within the rate limit).
        """
        key = self._keys.get(kid)
        if key is not None:
            now = self._clock()
            if now >= self._fresh_until:
                with contextlib.suppress(RuntimeError):  # no running loop: nothing to do
                    self._start_fetch(now)
        return key

    async def get(self, kid: str) -> ec.EllipticCurvePublicKey | None:
        """The key for ``kid``, fetching the set when needed; ``None`` for an unknown ``kid``.

        Raises ``StackAuthError`` (unavailable, bad answer, refused) only when no key set has
        ever been loaded.
        """
        if not self._loaded:
            await self._fetch_first()
            return self._keys.get(kid)
        key = self.cached(kid)
        if key is not None:
            return key
        if len(kid) > MAX_KID_LENGTH:
            return None
        task = self._start_fetch(self._clock())
        if task is None:
            return None  # refetched recently: this kid is simply unknown
        try:
            await asyncio.shield(task)
        except StackAuthError:
            return None  # logged by the task; the last good keys stay in use
        return self._keys.get(kid)

    async def load(self) -> None:
        """Fetch the key set now (at startup); raises like ``get`` on a first failure."""
        if not self._loaded:
            await self._fetch_first()

    async def settled(self) -> None:
        """Wait until no fetch is in flight (a failure is logged, not raised)."""
        task = self._task
        if task is not None:
            await asyncio.wait({task})

    async def aclose(self) -> None:
        """Cancel a fetch in flight (at shutdown)."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task})  # its outcome is consumed by _fetch_done

    async def _fetch_first(self) -> None:
        task = self._task
        if task is None:
            now = self._clock()
            if now < self._next_fetch_at and self._last_error is not None:
                # Failed moments ago: repeat the answer instead of asking again per request.
                raise self._last_error.with_traceback(None)
            task = self._start_fetch(now, force=True)
        assert task is not None
        await asyncio.shield(task)

    def _start_fetch(self, now: float, *, force: bool = False) -> asyncio.Task[None] | None:
        """The fetch in flight, or a new one if the rate limit allows it (``None`` if not)."""
        if self._task is not None:
            return self._task
        if not force and now < self._next_fetch_at:
            return None
        loop = asyncio.get_running_loop()  # RuntimeError outside the event loop
        self._next_fetch_at = now + self._refetch_interval
        self.fetches += 1
        task = loop.create_task(self._fetch())
        self._task = task
        task.add_done_callback(self._fetch_done)
        return task

    async def _fetch(self) -> None:
        try:
            body, headers = await self._client.get_public(
                self._path, params={"include_anonymous": "true"}
            )
            keys = parse_jwks(body)
        except StackAuthError as exc:
            self._last_error = exc
            if not self._loaded:
                self._next_fetch_at = self._clock() + self._retry_delay
            raise
        self._keys = keys
        self._loaded = True
        self._last_error = None
        ttl = freshness(headers, floor=self._min_ttl, ceiling=self._max_ttl)
        self._fresh_until = self._clock() + ttl

    def _fetch_done(self, task: asyncio.Task[None]) -> None:
        if self._task is task:
            self._task = None
        if task.cancelled():
            return
        exc = task.exception()  # also marks it retrieved when nobody awaited the task
        if exc is not None and self._loaded:
            logger.warning(
                "Refreshing the Stack Auth JWKS failed (%s); still using the %d keys fetched "
                "before",
                _describe(exc),
                len(self._keys),
            )


def _describe(exc: BaseException) -> str:
    if isinstance(exc, StackUnavailableError):
        return exc.reason
    return type(exc).__name__
