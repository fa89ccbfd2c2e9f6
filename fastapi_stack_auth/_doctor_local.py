"""The doctor's checks of local configuration: the Redis of the shared tier (a real PING) and
the webhook signing secrets (their form only: no call can tell whether Svix holds the same)."""

from __future__ import annotations

import asyncio
import contextlib
import time

from ._doctor_checks import Context, Outcome, Status
from ._settings import redis_location
from .webhooks._settings import SECRET_PREFIX as WEBHOOK_SECRET_PREFIX
from .webhooks._settings import secret_key, split_secrets


def _redis_failure(ctx: Context, where: str, exc: Exception) -> str:
    from redis.exceptions import AuthenticationError, AuthorizationError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    var = ctx.var("cache_url")
    if isinstance(exc, (AuthenticationError, AuthorizationError)):
        return f"Redis at {where} refused the credentials in {var} ({type(exc).__name__})"
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError, RedisTimeoutError)):
        return f"no answer from Redis at {where} within {ctx.timeout:g} s: is {var} right?"
    # The type only: redis' messages may quote the URL.
    return f"cannot use Redis at {where} ({type(exc).__name__}): is it running, and is {var} right?"


async def check_redis(ctx: Context) -> Outcome:
    """Connect and PING as the shared tier does; a second PING must beat ``cache_timeout``."""
    var, url = ctx.var("cache_url"), ctx.settings.cache_url
    if url is None:
        return Status.SKIP, f"{var} is not set (no shared cache)"
    where = redis_location(url.get_secret_value()) or "?"
    try:
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff
    except ImportError:
        return Status.FAIL, (
            f"{var} is set but the redis package is not installed: "
            "pip install 'fastapi-stack-auth[redis]'"
        )
    client = Redis.from_url(
        url.get_secret_value(),
        socket_timeout=ctx.timeout,
        socket_connect_timeout=ctx.timeout,
        retry=Retry(NoBackoff(), 0),
        client_name="fastapi-stack-auth-doctor",
    )
    try:
        await asyncio.wait_for(client.ping(), ctx.timeout)  # connects
        started = time.perf_counter()
        await asyncio.wait_for(client.ping(), ctx.timeout)
        elapsed = time.perf_counter() - started
    except Exception as exc:
        return Status.FAIL, _redis_failure(ctx, where, exc)
    finally:
        with contextlib.suppress(Exception):
            await client.aclose()
    limit, limit_var = ctx.settings.cache_timeout, ctx.var("cache_timeout")
    if elapsed > limit:
        return Status.FAIL, (
            f"Redis at {where} took {elapsed * 1000:.0f} ms to answer PING, over "
            f"{limit_var}={limit:g} s: every call would be skipped; raise it or move Redis closer"
        )
    return Status.PASS, f"Redis at {where} answered PING in {elapsed * 1000:.1f} ms"


def webhook_secret_problem(secret: str) -> str | None:
    """What is wrong with one webhook signing secret, by the receiver's own rule, or ``None``.
    The answer never quotes the secret."""
    try:
        secret_key(secret)
    except ValueError as exc:
        return str(exc)
    return None


async def check_webhook_secret(ctx: Context) -> Outcome:
    """Each configured signing secret is well-formed (no call: only Svix knows the real one)."""
    var, raw = ctx.var("webhook_secret"), ctx.webhook_secret
    secrets = split_secrets(raw or "")
    if not secrets:  # unset, or a template's empty placeholder: the receiver reads it the same
        return Status.SKIP, f"{var} is not set (needed only to receive Stack Auth's webhooks)"
    for number, secret in enumerate(secrets, 1):
        problem = webhook_secret_problem(secret)
        if problem is not None:
            which = f" (secret {number} of {len(secrets)})" if len(secrets) > 1 else ""
            return Status.FAIL, (
                f"{var}{which} {problem}: copy the endpoint's signing secret again from the "
                f"dashboard (Webhooks), {WEBHOOK_SECRET_PREFIX} included"
            )
    plural = "secret is" if len(secrets) == 1 else "secrets are"
    return (
        Status.PASS,
        f"{len(secrets)} {plural} well-formed ({WEBHOOK_SECRET_PREFIX} + base64 key)",
    )
