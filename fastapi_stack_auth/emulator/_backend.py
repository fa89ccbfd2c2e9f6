"""``Backend``: the emulated Stack Auth the HTTP routes act on -- its projects, signing keys,
clock, settings and webhook sender, the state behind one re-entrant lock (the HTTP handlers and
the Python API, possibly on another thread, both hold it). ``Emulator`` adds the Python API and
the ASGI app."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from pydantic import SecretStr

from ._keys import KeyRing
from ._store import Project, Session
from ._tokens import AUDIENCE_KINDS, TokenSubject, audience, mint_access_token
from ._webhooks import SVIX_RETRY_SCHEDULE, SVIX_TIMEOUT, WebhookSender

#: Stack's default access-token lifetime (``STACK_ACCESS_TOKEN_EXPIRATION_TIME``): 10 minutes.
DEFAULT_ACCESS_TOKEN_TTL = 600


class Backend:
    """The emulated Stack Auth that the HTTP routes act on: projects, signing keys, clock and
    settings, behind ``lock``. ``Emulator`` adds the Python API and the ASGI app."""

    def __init__(
        self,
        *,
        public_url: str,
        access_token_ttl: int,
        clock: Callable[[], float],
        latency: float,
        key_seed: str | None,
        cors_origins: Iterable[str],
        allowed_hosts: Iterable[str],
        webhook_secret: str | SecretStr | None = None,
        webhook_retry_schedule: Iterable[float] = SVIX_RETRY_SCHEDULE,
        webhook_timeout: float = SVIX_TIMEOUT,
    ) -> None:
        if access_token_ttl < 1:
            raise ValueError("access_token_ttl must be at least 1 second")
        if not latency >= 0:
            raise ValueError("latency must be 0 or more seconds")
        self.lock = threading.RLock()
        self.projects: dict[str, Project] = {}
        self.public_url = public_url
        self.access_token_ttl = access_token_ttl
        self.clock = clock
        #: Seconds added to ``clock`` by ``advance_clock`` (``reset`` sets it back to 0).
        self.clock_offset = 0.0
        #: Seconds every API answer is delayed by (``asyncio.sleep``): a slow network.
        self.latency = latency
        #: Requests received per endpoint, keyed ``"METHOD /path pattern"`` (``/api/v1`` off).
        self.calls: Counter[str] = Counter()
        #: Random per instance unless ``key_seed`` is given (then derived from it).
        self.keys = KeyRing(key_seed)
        #: Browser origins allowed besides loopback ones (``scheme://host[:port]``).
        self.cors_origins = {origin.rstrip("/").lower() for origin in cors_origins}
        #: ``Host`` names accepted besides loopback ones (no port).
        self.allowed_hosts = {host.lower() for host in allowed_hosts}
        #: Endpoints, delivery log and background sending of the webhooks.
        self.webhooks = WebhookSender(
            secret=webhook_secret, retry_schedule=webhook_retry_schedule, timeout=webhook_timeout
        )

    @property
    def public_url(self) -> str:
        """Base URL of the emulator as clients see it (no trailing slash): the tokens' issuer."""
        return self._public_url

    @public_url.setter
    def public_url(self, value: str) -> None:
        self._public_url = value.rstrip("/")

    @property
    def project_id(self) -> str:
        """The default (first) project."""
        return next(iter(self.projects))

    def now(self) -> float:
        """The emulator's current time, in epoch seconds: ``clock()`` plus ``clock_offset``."""
        return self.clock() + self.clock_offset

    def now_millis(self) -> int:
        return int(self.now() * 1000)

    def advance_clock(self, seconds: float) -> None:
        """Move the emulator's time forward (tokens, sessions and API keys age at once)."""
        with self.lock:
            self.clock_offset += seconds

    def _project(self, project_id: str | None) -> Project:
        pid = project_id or self.project_id
        project = self.projects.get(pid)
        if project is None:
            raise KeyError(f"no project {pid!r} in this emulator")
        return project

    def mint_access_token(
        self,
        session: Session,
        *,
        project: Project,
        issued_at: float | None = None,
        lifetime: int | None = None,
    ) -> str:
        """A fresh access token for ``session`` (claims from the user as they are now)."""
        with self.lock:
            user = project.users[session.user_id]
            user.last_active_at_millis = session.last_used_at_millis = self.now_millis()
            subject = TokenSubject(
                user_id=user.id,
                name=user.display_name,
                email=user.primary_email,
                email_verified=user.primary_email_verified,
                selected_team_id=user.selected_team_id,
                signed_up_at_millis=user.signed_up_at_millis,
                is_anonymous=user.is_anonymous,
                restricted_reason=project.restricted_reason(user),
                requires_totp_mfa=user.totp_secret_base64 is not None,
            )
        return mint_access_token(
            self.keys,
            public_url=self.public_url,
            project_id=project.id,
            subject=subject,
            refresh_token_id=session.id,
            issued_at=int(self.now() if issued_at is None else issued_at),
            lifetime=self.access_token_ttl if lifetime is None else lifetime,
        )

    def jwks(
        self,
        project_id: str | None = None,
        *,
        include_restricted: bool = False,
        include_anonymous: bool = False,
    ) -> dict[str, Any]:
        """The project's public JWKS, as ``/.well-known/jwks.json`` serves it."""
        pid = project_id or self.project_id
        kinds = AUDIENCE_KINDS[: 3 if include_anonymous else 2 if include_restricted else 1]
        keys = [key.public_jwk for kind in kinds for key in self.keys.keys_for(audience(pid, kind))]
        return {"keys": keys}
