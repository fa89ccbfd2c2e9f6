"""The parts of one ``StackAuth``, built from its settings: the client, key set, caches,
pipeline, authorization and invalidation, wired to one another (and nothing opened yet)."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import httpx

from ._api_keys import ApiKeys
from ._cache import TokenCache
from ._client import StackClient
from ._denied import DeniedUsers
from ._invalidation import Invalidation
from ._invalidation_channel import InvalidationChannel
from ._jwks import JwksCache
from ._jwt import JwtVerifier
from ._permissions import Permissions
from ._pipeline import Pipeline
from ._redis_tier import GuardedTier
from ._settings import StackAuthSettings
from ._shared_cache import shared_caches, subject_index
from ._stale import StaleIdentities
from ._verifiers import RemoteVerifier, Verifier
from .models import Identity, StackUser
from .server import StackServer

logger = logging.getLogger("fastapi_stack_auth")
_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


@dataclass(frozen=True)
class Parts:
    """Everything a ``StackAuth`` is made of."""

    settings: StackAuthSettings
    client: StackClient
    jwks: JwksCache
    shared_tier: GuardedTier | None
    pipeline: Pipeline
    permissions: Permissions
    api_keys: ApiKeys
    server: StackServer
    invalidation: Invalidation


def build_parts(
    s: StackAuthSettings,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    verifier: Verifier | None = None,
) -> Parts:
    """The parts for the settings ``s`` (``transport`` and ``verifier`` replace the defaults);
    raises ``StackAuthConfigError`` for settings that cannot work."""
    client = StackClient(s, transport=transport)
    # Both modes load the project's public keys: JWT mode verifies with them, remote mode
    # rejects a forged signature without asking Stack.
    jwks = verifier.jwks if isinstance(verifier, JwtVerifier) else JwksCache(client, s.project_id)
    remote = RemoteVerifier(client, s.project_id, jwks=jwks)
    if verifier is None and s.verify == "jwt":
        verifier = JwtVerifier(
            jwks,
            project_id=s.project_id,
            api_url=s.api_url,
            issuer_url=s.jwt_issuer_url,
            leeway=s.jwt_leeway,
        )
    jwt_mode = isinstance(verifier, JwtVerifier)
    # JWT mode: asking again could not give another answer before ``exp``, so a verified
    # token is cached until then (or until an invalidation); remote mode asks Stack again
    # after ``cache_ttl`` to notice deleted users.
    cache: TokenCache[Identity] = TokenCache(
        maxsize=s.cache_max_entries, ttl=math.inf if jwt_mode else s.cache_ttl
    )
    profiles: TokenCache[StackUser] = TokenCache(maxsize=s.cache_max_entries, ttl=s.cache_ttl)
    tier, cache.shared, profiles.shared = shared_caches(s, jwt_mode=jwt_mode)
    stale = None
    if not jwt_mode and s.stale_grace > 0:
        stale = StaleIdentities(grace=s.stale_grace, maxsize=s.cache_max_entries)
    denied = DeniedUsers()  # one memory of deleted users, for tokens and API keys alike
    pipeline = Pipeline(
        verifier=verifier or remote,
        cache=cache,
        profiles=profiles,
        remote=remote if s.secret_server_key is not None else None,
        stale=stale,
        denied=denied,
        allow_anonymous=s.allow_anonymous,
        allow_restricted=s.allow_restricted,
    )
    url = httpx.URL(s.api_url)
    if url.scheme == "http" and url.host not in _LOOPBACK_HOSTS:
        logger.warning(
            "STACK_API_URL is plain http to %s: the secret server key and users' tokens "
            "cross the network unencrypted. Use https outside local development.",
            url.host,
        )
    permissions = Permissions(client, s, tier)
    api_keys = ApiKeys(client, s, tier, denied=denied)
    channel = None
    if tier is not None and s.cache_url is not None and s.secret_server_key is not None:
        channel = InvalidationChannel(
            tier,
            s.cache_url.get_secret_value(),
            s.secret_server_key.get_secret_value(),
            subject_index(s),
            denied,
        )
    invalidation = Invalidation(pipeline, permissions, api_keys, denied, channel)
    return Parts(
        s,
        client,
        jwks,
        tier,
        pipeline,
        permissions=permissions,
        api_keys=api_keys,
        server=StackServer(client),
        invalidation=invalidation,
    )
