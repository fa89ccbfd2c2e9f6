"""The receiver's configuration: its settings, signing secrets and memory of recent deliveries,
read on first use; a receiver without a valid secret refuses every delivery (500) and says why
in an ERROR log at most once a minute."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from .._exceptions import StackAuthConfigError
from .._settings import env_name
from ._dedupe import RecentDeliveries
from ._refusals import not_configured
from ._settings import WebhookSettings, load_webhook_settings
from ._verify import SigningSecret

logger = logging.getLogger("fastapi_stack_auth.webhooks")

#: Seconds between two ERROR lines about a missing or invalid secret.
_CONFIG_LOG_INTERVAL = 60.0


@dataclass(frozen=True)
class Config:
    """What a delivery is checked and remembered with."""

    settings: WebhookSettings
    secrets: tuple[SigningSecret, ...]
    deliveries: RecentDeliveries


class Configuration:
    """The given settings, or those read from the environment at first use."""

    def __init__(
        self, settings: WebhookSettings | None, env_prefix: str, overrides: dict[str, Any]
    ) -> None:
        self._given_settings = settings
        self.env_prefix = env_prefix
        self._overrides = overrides
        self._logged_at = -_CONFIG_LOG_INTERVAL

    @cached_property
    def loaded(self) -> Config:
        """The configuration (``StackAuthConfigError`` if the settings are invalid)."""
        s = self._given_settings or load_webhook_settings(self.env_prefix, **self._overrides)
        deliveries = RecentDeliveries(
            ttl=s.webhook_dedupe_ttl, maxsize=s.webhook_dedupe_max_entries
        )
        secrets = tuple(SigningSecret.from_secret(x.get_secret_value()) for x in s.secrets)
        return Config(s, secrets, deliveries)

    def usable(self) -> Config:
        """The configuration, or a refusal (``AuthError``) 500 when it is invalid or has no
        secret."""
        try:
            config = self.loaded
        except StackAuthConfigError as exc:
            self._error(f"{exc}: every delivery is answered 500 until it is fixed")
            raise not_configured() from None
        if not config.secrets:
            name = env_name("webhook_secret", self.env_prefix)
            self._error(
                f"{name} is not set: every webhook delivery is answered 500 (Stack retries "
                "it) until it is set to the endpoint's signing secret (whsec_...) from the "
                "Stack dashboard"
            )
            raise not_configured()
        return config

    def _error(self, message: str) -> None:
        now = time.monotonic()
        if now - self._logged_at >= _CONFIG_LOG_INTERVAL:
            self._logged_at = now
            logger.error("%s", message)
