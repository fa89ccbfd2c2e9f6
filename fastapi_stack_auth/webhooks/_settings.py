"""``WebhookSettings``: the receiver's configuration, from ``STACK_WEBHOOK_*`` variables."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings

from .._exceptions import StackAuthConfigError
from .._settings import ENV_PREFIX, StackAuthSettings, config_problems

SECRET_PREFIX = "whsec_"
#: Bytes of a signing key as Svix makes them (its own check allows 32 to 100 base64 characters).
KEY_BYTES = (24, 75)
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")
_SEPARATORS = re.compile(r"[\s,]+")


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_<base64>`` secret (padding optional), or ``ValueError`` saying
    what is wrong (never quoting the secret).

    Stricter than the Standard Webhooks library, which skips characters that are not base64
    and would turn a mistyped secret into another key without a word; and a key of a length
    Svix never makes is refused too (a secret cut off or run together when copied), so a wrong
    secret is a configuration error rather than every delivery failing its signature.
    """
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError("does not start with whsec_")
    encoded = secret[len(SECRET_PREFIX) :]
    if _BASE64.fullmatch(encoded) is None:
        raise ValueError("is not standard base64 after whsec_ (A-Z a-z 0-9 + / and = only)")
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        msg = "has a base64 part of an impossible length (cut off when copied?)"
        raise ValueError(msg) from None
    low, high = KEY_BYTES
    if not low <= len(key) <= high:
        why = "cut off when copied?" if len(key) < low else "two run together?"
        raise ValueError(f"holds a {len(key)}-byte key, Svix's are {low} to {high} ({why})")
    return key


class WebhookSettings(BaseSettings):
    """What ``StackWebhooks`` needs, from ``STACK_*`` variables or ``.env``; keyword arguments
    win. The secrets are ``SecretStr``: never in a ``repr``, log line or error message."""

    model_config = StackAuthSettings.model_config  # the same sources, read the same way

    webhook_secret: SecretStr | None = Field(
        default=None,
        description=(
            "The endpoint's signing secret (whsec_...), from the Stack dashboard; several, "
            "separated by commas or spaces, while you rotate it. Unset: every delivery is "
            "answered 500 (Stack retries) and an error is logged."
        ),
    )
    webhook_tolerance: int = Field(
        default=300,
        ge=1,
        le=86_400,
        description="Seconds a delivery's svix-timestamp may be from now, either way.",
    )
    webhook_max_body: int = Field(
        default=1_048_576,
        ge=1024,
        le=64 * 1_048_576,
        description="Largest body accepted, in bytes; larger ones are answered 413.",
    )
    webhook_dedupe_ttl: int = Field(
        default=86_400,
        ge=60,
        description="Seconds a handled message id is remembered (redeliveries are skipped).",
    )
    webhook_dedupe_max_entries: int = Field(
        default=10_000,
        ge=1,
        description="Most message ids remembered in this process (Redis holds any number).",
    )

    @field_validator("webhook_secret", mode="before")
    @classmethod
    def _join_several(cls, value: Any) -> Any:
        # A list or tuple given as a keyword argument is the same as a comma-separated string.
        if isinstance(value, (list, tuple)):
            return " ".join(v.get_secret_value() if isinstance(v, SecretStr) else v for v in value)
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _check_secrets(cls, value: SecretStr | None) -> SecretStr | None:
        # An empty value (a template's placeholder) means "not configured". The messages never
        # repeat the value.
        if value is None or not value.get_secret_value().strip(", \t\r\n"):
            return None
        for part in split_secrets(value.get_secret_value()):
            try:
                secret_key(part)
            except ValueError as exc:
                raise PydanticCustomError("webhook_secret", str(exc)) from None
        return value

    @property
    def secrets(self) -> tuple[SecretStr, ...]:
        """Each configured secret (empty when none is)."""
        if self.webhook_secret is None:
            return ()
        parts = split_secrets(self.webhook_secret.get_secret_value())
        return tuple(SecretStr(part) for part in parts)


def split_secrets(value: str) -> list[str]:
    """The secrets in a ``STACK_WEBHOOK_SECRET`` value (separated by commas or spaces)."""
    return [part for part in _SEPARATORS.split(value) if part]


def load_webhook_settings(env_prefix: str = ENV_PREFIX, **overrides: Any) -> WebhookSettings:
    """Settings from ``env_prefix`` + field variables and ``overrides``, or a
    ``StackAuthConfigError`` naming each bad variable (never its value)."""
    try:
        return WebhookSettings(_env_prefix=env_prefix, **overrides)  # type: ignore[call-arg]
    except ValidationError as exc:
        raise StackAuthConfigError(
            "Stack webhook settings are invalid: " + "; ".join(config_problems(exc, env_prefix))
        ) from None
