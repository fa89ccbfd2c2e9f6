"""The project's JSON Web Key Sets (``GET /projects/{id}/.well-known/jwks.json``, no credential
needed): fetched, turned into key objects, cached, each key with the audience it signs for.

- Stack signs each audience (``{id}``, ``{id}:restricted``, ``{id}:anon``) with its own keys and
  verifies a token only with the keys of its ``aud``. The plain set holds the normal users' keys,
  ``include_restricted=true`` adds the restricted users', ``include_anonymous=true`` the
  anonymous users' too: each refresh asks for all three at once (3 concurrent requests) and
  gives each key the audience of the first set it appears in.
- Fresh for ``Cache-Control: max-age`` minus ``Age``, clamped; a stale set is still served
  while one background fetch revalidates it.
- An unknown ``kid`` triggers a refetch, but at most one starts per ``REFETCH_INTERVAL`` and
  concurrent misses share it: a flood of random ``kid`` values cannot make us hammer Stack.
- A fetch fails when any of its three requests fails, and the last good keys stay. Before any
  set was loaded, the failure (503/502) is raised, and repeated for ``RETRY_DELAY`` seconds
  rather than retried by every request.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

from cryptography.hazmat.primitives.asymmetric import ec

from ._client import StackClient
from ._exceptions import StackAuthError, StackBadResponseError, StackUnavailableError

logger = logging.getLogger("fastapi_stack_auth")

#: Bounds of a key set's freshness (seconds), and its freshness without a usable ``max-age``.
MIN_TTL = 60.0
MAX_TTL = 86_400.0
DEFAULT_TTL = 300.0
#: Once a key set is loaded, at most one fetch starts per this many seconds.
REFETCH_INTERVAL = 30.0
#: Before any key set is loaded, how long a failure is repeated before the next attempt.
RETRY_DELAY = 2.0
#: Longest ``kid`` we look up at all (Stack's are 12 characters).
MAX_KID_LENGTH = 128

#: The three key sets of a refresh, and the ``aud`` suffix of the keys each one adds.
_KEY_SETS: tuple[tuple[dict[str, str], str], ...] = (
    ({}, ""),
    ({"include_restricted": "true"}, ":restricted"),
    ({"include_anonymous": "true"}, ":anon"),
)

_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_MAX_AGE = re.compile(r'max-age\s*=\s*"?(\d+)"?')


def _coordinate(value: Any) -> bytes | None:
    """A P-256 coordinate (unpadded base64url) as 32 bytes, else ``None``. Stack drops leading
    zero bytes (1 key in 128 has a 31-byte ``x`` or ``y``): a short one is left-padded. 44
    characters would be 33 bytes, more than any P-256 coordinate needs."""
    if not isinstance(value, str) or not 0 < len(value) <= 43 or not _B64URL.fullmatch(value):
        return None
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except ValueError:  # a length of 4n+1 is not base64
        return None
    return raw.rjust(32, b"\x00")


def es256_public_key(jwk: Any) -> ec.EllipticCurvePublicKey | None:
    """The key of a usable ES256 (P-256, on the curve) signing JWK, else ``None``: a JWK for
    another algorithm or use never verifies a token."""
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
    """``{kid: key}`` of a JWKS's usable keys; a ``kid`` seen twice is dropped (which key would
    it name?). ``StackBadResponseError`` when no usable key is left."""
    if not isinstance(body, dict) or not isinstance(body.get("keys"), list):
        raise StackBadResponseError("the JWKS is not a JSON object with a 'keys' list")
    keys: dict[str, ec.EllipticCurvePublicKey] = {}
    seen: set[str] = set()
    for jwk in body["keys"]:
        key = es256_public_key(jwk)
        kid = jwk.get("kid") if key is not None else None  # a key comes from a dict
        if key is not None and isinstance(kid, str) and 0 < len(kid) <= MAX_KID_LENGTH:
            if kid in seen:
                keys.pop(kid, None)
            else:
                keys[kid] = key
            seen.add(kid)
    if not keys:
        raise StackBadResponseError("the JWKS has no usable ES256 key")
    return keys


def audience_keys(
    bodies: Sequence[Any], project_id: str
) -> dict[str, tuple[ec.EllipticCurvePublicKey, str]]:
    """``{kid: (key, aud)}`` from the answers for the plain, ``include_restricted`` and
    ``include_anonymous`` sets: a key belongs to the audience of the first set holding it. A
    ``kid`` naming two different keys is dropped. ``StackBadResponseError`` as ``parse_jwks``."""
    keys: dict[str, tuple[ec.EllipticCurvePublicKey, str]] = {}
    conflicts: set[str] = set()
    for body, (_, suffix) in zip(bodies, _KEY_SETS, strict=True):
        for kid, key in parse_jwks(body).items():
            if kid not in keys:
                keys[kid] = (key, project_id + suffix)
            elif keys[kid][0].public_numbers() != key.public_numbers():
                conflicts.add(kid)
    for kid in conflicts:
        del keys[kid]
    if not keys:
        raise StackBadResponseError("the JWKS has no usable ES256 key")
    return keys


def freshness(headers: Mapping[str, str]) -> float:
    """Seconds a JWKS answer stays fresh, from ``Cache-Control`` and ``Age``, clamped."""
    cache_control = headers.get("cache-control", "").lower()
    if "no-store" in cache_control or "no-cache" in cache_control:
        return MIN_TTL
    match = _MAX_AGE.search(cache_control)
    if match is None:
        return DEFAULT_TTL
    age = headers.get("age", "")
    ttl = float(match.group(1)) - (float(age) if age.isascii() and age.isdigit() else 0.0)
    return min(max(ttl, MIN_TTL), MAX_TTL)


class JwksCache:
    """The project's public signing keys, by ``kid``: ``cached(kid)`` without I/O, ``get(kid)``
    also loading or refetching, ``audience_of(kid)`` the ``aud`` a key signs for. ``clock``
    (monotonic seconds) is there for tests to move."""

    def __init__(
        self, client: StackClient, project_id: str, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._client = client
        self._project_id = project_id
        self._path = f"/projects/{quote(project_id, safe='')}/.well-known/jwks.json"
        self._clock = clock
        self._keys: dict[str, tuple[ec.EllipticCurvePublicKey, str]] = {}
        self._fresh_until = self._next_fetch_at = -math.inf
        self._last_error: StackAuthError | None = None
        self._task: asyncio.Task[None] | None = None
        #: True once a key set was fetched successfully.
        self.loaded = False
        #: Number of fetches started (for tests and metrics).
        self.fetches = 0

    def __repr__(self) -> str:
        return f"JwksCache(path={self._path!r}, kids={sorted(self._keys)!r})"

    @property
    def kids(self) -> frozenset[str]:
        """The ``kid`` values of the current key set."""
        return frozenset(self._keys)

    def audience_of(self, kid: str) -> str | None:
        """The ``aud`` (``{id}``, ``{id}:restricted`` or ``{id}:anon``) whose tokens the key
        ``kid`` of the current set signs, without I/O; ``None``: unknown ``kid``. A token is
        genuine only if this is its own ``aud``."""
        entry = self._keys.get(kid)
        return None if entry is None else entry[1]

    def cached(self, kid: str) -> ec.EllipticCurvePublicKey | None:
        """The key for ``kid`` in the current set, without I/O or waiting."""
        entry = self._keys.get(kid)
        key = None if entry is None else entry[0]
        now = self._clock()
        # A stale set is still used; one background fetch revalidates it, rate-limited.
        if key is not None and now >= max(self._fresh_until, self._next_fetch_at):
            with contextlib.suppress(RuntimeError):  # no running loop: nothing to do
                self._start_fetch(now)
        return key

    async def get(self, kid: str) -> ec.EllipticCurvePublicKey | None:
        """The key for ``kid`` (``None``: unknown), fetching when needed; raises only while no
        key set was ever loaded."""
        if not self.loaded:
            await self.load()
            return self.cached(kid)
        key = self.cached(kid)
        if key is not None or len(kid) > MAX_KID_LENGTH:
            return key
        now = self._clock()
        if self._task is None and now < self._next_fetch_at:
            return None  # refetched recently: this kid is simply unknown
        try:
            await asyncio.shield(self._start_fetch(now))
        except StackAuthError:
            return None  # logged by _fetch_done; the last good keys stay in use
        return self.cached(kid)

    async def load(self) -> None:
        """Fetch the first key set (at startup or first use). A failure is raised, and raised
        again for ``RETRY_DELAY`` seconds instead of asking Stack once per request."""
        if self.loaded:
            return
        now = self._clock()
        if self._task is None and self._last_error is not None and now < self._next_fetch_at:
            raise self._last_error.with_traceback(None)
        await asyncio.shield(self._start_fetch(now))

    async def settled(self) -> None:
        """Wait until no fetch is in flight (a failure is logged, not raised)."""
        if self._task is not None:
            await asyncio.wait({self._task})

    async def aclose(self) -> None:
        """Cancel a fetch in flight (at shutdown)."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task})  # its outcome is consumed by _fetch_done

    def _start_fetch(self, now: float) -> asyncio.Task[None]:
        """The fetch in flight, else a new one (callers apply the rate limit; needs a loop)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._fetch())
            self._task.add_done_callback(self._fetch_done)
            self._next_fetch_at = now + REFETCH_INTERVAL
            self.fetches += 1
        return self._task

    async def _fetch(self) -> None:
        try:
            results = await asyncio.gather(
                *(self._client.get_public(self._path, params=query) for query, _ in _KEY_SETS),
                return_exceptions=True,
            )
            answers: list[tuple[Any, Mapping[str, str]]] = []
            for result in results:  # all three have settled: the first failure is the fetch's
                if isinstance(result, BaseException):
                    raise result
                answers.append(result)
            keys = audience_keys([body for body, _ in answers], self._project_id)
        except StackAuthError as exc:
            self._last_error = exc
            if not self.loaded:
                self._next_fetch_at = self._clock() + RETRY_DELAY
            raise
        self._keys, self.loaded, self._last_error = keys, True, None
        ttl = min(freshness(headers) for _, headers in answers)
        self._fresh_until = self._clock() + ttl

    def _fetch_done(self, task: asyncio.Task[None]) -> None:
        if self._task is task:
            self._task = None
        if task.cancelled():
            return
        exc = task.exception()  # also marks it retrieved when nobody awaited the task
        if exc is not None and self.loaded:
            reason = exc.reason if isinstance(exc, StackUnavailableError) else type(exc).__name__
            kept = len(self._keys)
            logger.warning(
                "Stack Auth JWKS refresh failed (%s); still using the %d keys", reason, kept
            )
