"""Configuration: `StackAuthSettings`, from `STACK_*` environment variables and `.env`."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import httpx
from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from ._exceptions import StackAuthConfigError

ENV_PREFIX = "STACK_"
_HEADER_SAFE = re.compile(r"[\x21-\x7e]+")


class StackAuthSettings(BaseSettings):
    """Everything ``StackAuth`` needs, from ``STACK_*`` variables or ``.env``; keyword
    arguments win. Keys are ``SecretStr``: never in a ``repr``, log line or error message."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
        # A key mounted from a file often ends in a newline; it is never part of the value.
        str_strip_whitespace=True,
    )

    project_id: str = Field(min_length=1, description="Stack Auth project id.")
    # ``verify`` comes before ``secret_server_key``: the key's validator reads it.
    verify: Literal["remote", "jwt"] = Field(
        default="remote",
        description=(
            "'remote': ask Stack Auth (GET /users/me, cached for cache_ttl; sees revoked "
            "sessions and deleted users); 'jwt': check the ES256 signature against the JWKS "
            "locally (no call per request; revocation is only noticed at exp)."
        ),
    )
    secret_server_key: SecretStr | None = Field(
        default=None, validate_default=True, description="Secret server key (optional for jwt)."
    )
    publishable_client_key: SecretStr | None = Field(default=None, description="Publishable key.")
    api_url: str = Field(
        default="https://api.stack-auth.com", description="Base URL of Stack Auth or the emulator."
    )
    jwt_issuer_url: str | None = Field(
        default=None,
        description=(
            "JWT mode: the base URL Stack puts in the tokens' iss, when it differs from api_url "
            "(a self-hosted Stack reached by an internal hostname); unset: api_url."
        ),
    )
    cache_ttl: float = Field(default=30.0, ge=0, description="Seconds a verified token is trusted.")
    permission_cache_ttl: float = Field(
        default=5.0,
        ge=0,
        description="Seconds a team membership or permission answer is reused (0: ask each time).",
    )
    cache_max_entries: int = Field(default=10_000, ge=1, description="Most tokens cached at once.")
    cache_url: SecretStr | None = Field(
        default=None, description="Redis URL of a cache tier shared by all workers; never logged."
    )
    cache_timeout: float = Field(
        default=0.1, gt=0, le=10, description="Seconds per Redis call; a slow Redis is skipped."
    )
    http_timeout: float = Field(default=5.0, gt=0, description="Seconds per call to Stack Auth.")
    # ``request_deadline`` comes after ``http_timeout``: its validator reads it.
    request_deadline: float | None = Field(
        default=None,
        gt=0,
        description="Seconds for all attempts of one call together (default: 2 * http_timeout).",
    )
    max_attempts: int = Field(
        default=3, ge=1, le=10, description="Most attempts of a GET after a transient fault."
    )
    stale_grace: float = Field(
        default=0.0,
        ge=0,
        description="Remote mode: seconds a verified user is still let in while Stack is down.",
    )
    allow_anonymous: bool = Field(default=False, description="Let anonymous users in.")
    allow_restricted: bool = Field(default=False, description="Let restricted users in.")
    check_keys_on_startup: bool = Field(default=True, description="Check our keys at startup.")
    jwt_leeway: float = Field(
        default=5.0, ge=0, le=60, description="Seconds of clock skew tolerated in JWT mode."
    )

    cookies: bool = Field(
        default=False,
        description=(
            "Also read the access token from the cookies a Stack frontend on the same site sets "
            "(stack-access / hexclave-access), when no header credential is sent."
        ),
    )
    trusted_origins: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description=(
            "Cookie credentials on POST/PUT/PATCH/DELETE are accepted only from these origins "
            "(comma-separated, e.g. https://app.example.com), against cross-site request forgery."
        ),
    )
    silent_refresh: bool = Field(
        default=False,
        description=(
            "Refresh an expired access token sent with its refresh token (x-stack-auth or the "
            "cookies) through Stack's refresh grant, and hand the new one back to the frontend."
        ),
    )

    @field_validator("trusted_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part for part in value.replace(" ", ",").split(",") if part]
        return value

    @field_validator("trusted_origins")
    @classmethod
    def _check_origins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        # An origin is scheme://host[:port] exactly as a browser sends it in Origin.
        origins = []
        for origin in value:
            parts = urlsplit(origin)
            if (
                parts.scheme not in ("http", "https")
                or not parts.netloc
                or parts.path not in ("", "/")
                or parts.query
                or parts.fragment
                or "@" in parts.netloc
            ):
                raise PydanticCustomError(
                    "origin", "each must be an origin such as https://app.example.com"
                )
            netloc = parts.netloc.lower()
            default_port = ":443" if parts.scheme == "https" else ":80"
            # Browsers leave the default port out of Origin.
            netloc = netloc.removesuffix(default_port)
            origins.append(f"{parts.scheme}://{netloc}")
        return tuple(origins)

    @field_validator("secret_server_key")
    @classmethod
    def _key_needed_for_remote(
        cls, value: SecretStr | None, info: ValidationInfo
    ) -> SecretStr | None:
        # Remote mode calls GET /users/me with server access, so it cannot work without the
        # key; JWT mode needs it only for the explicit full-profile call.
        if value is None and info.data.get("verify") == "remote":
            raise PydanticCustomError("missing", "required when STACK_VERIFY=remote (the default)")
        return value

    @field_validator("project_id", "secret_server_key", "publishable_client_key")
    @classmethod
    def _header_safe(cls, value: Any) -> Any:
        # These travel as HTTP header values: visible ASCII only, and not empty (Stack treats
        # an empty key as a missing one). The message never repeats the value.
        raw = value.get_secret_value() if isinstance(value, SecretStr) else value
        if raw is not None and _HEADER_SAFE.fullmatch(raw) is None:
            raise PydanticCustomError("header_safe", "must be non-empty visible ASCII, no spaces")
        return value

    @field_validator("request_deadline")
    @classmethod
    def _deadline_covers_an_attempt(cls, value: float | None, info: ValidationInfo) -> float | None:
        timeout = info.data.get("http_timeout")
        if value is not None and timeout is not None and value < timeout:
            raise PydanticCustomError(
                "deadline",
                "must be at least STACK_HTTP_TIMEOUT ({timeout} s)",
                {"timeout": timeout},
            )
        return value

    @field_validator("api_url", "jwt_issuer_url")
    @classmethod
    def _check_api_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            url = httpx.URL(value)
        except (httpx.InvalidURL, TypeError) as exc:
            raise ValueError("must be an http:// or https:// URL") from exc
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError("must be an http:// or https:// URL")
        if url.userinfo or url.query or url.fragment or url.path not in ("", "/"):
            # "/api/v1" is added by the client; a path here would double it (a 404 on every
            # call) and credentials in the URL would end up in logs.
            raise ValueError(
                "must be the bare base URL, e.g. https://api.stack-auth.com "
                "(no path, query or user:password@)"
            )
        return value.rstrip("/")

    @field_validator("cache_url")
    @classmethod
    def _check_cache_url(cls, value: SecretStr | None) -> SecretStr | None:
        # An empty STACK_CACHE_URL= (a template's placeholder) means "no shared cache". The
        # messages never repeat the value: it may carry a password.
        if value is None or not value.get_secret_value():
            return None
        if redis_location(value.get_secret_value()) is None:
            msg = "must be a redis://host[:port][/db], rediss://... or unix:///path URL"
            raise PydanticCustomError("cache_url", msg)
        return value


def redis_location(url: str) -> str | None:
    """``host:port`` or the socket path of a Redis URL (never its password), else ``None``."""
    try:
        parts = urlsplit(url)
        if parts.scheme in ("redis", "rediss") and parts.hostname:
            host, port = parts.hostname, parts.port or 6379  # a port not a number: ValueError
            return f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
        if parts.scheme == "unix" and parts.path:
            return parts.path
    except ValueError:
        return None
    return None


def env_name(field: str, prefix: str = ENV_PREFIX) -> str:
    """The environment variable that sets ``field``."""
    return f"{prefix}{field.upper()}"


def config_problems(exc: ValidationError, env_prefix: str = ENV_PREFIX) -> list[str]:
    """One line per bad setting of ``exc``, naming its variable: field names and pydantic's
    text only, never an input (a secret in the wrong variable cannot leak)."""
    problems = []
    for error in exc.errors(include_input=False, include_url=False):
        field = str(error["loc"][0]) if error["loc"] else "?"
        # Our validators name the default variables (STACK_VERIFY): name this prefix's.
        msg = error["msg"].replace(ENV_PREFIX, env_prefix)
        if error["type"] == "missing":
            why = "" if msg == "Field required" else f" ({msg})"
            problems.append(f"{env_name(field, env_prefix)} is required but not set{why}")
        else:
            problems.append(f"{env_name(field, env_prefix)} is invalid: {msg}")
    return problems


def load_settings(env_prefix: str = ENV_PREFIX, **overrides: Any) -> StackAuthSettings:
    """Settings from ``env_prefix`` + field variables and ``overrides``, or a
    ``StackAuthConfigError`` naming each bad variable. The message holds field names and
    pydantic's text only, never an input: a secret in the wrong variable cannot leak."""
    try:
        return StackAuthSettings(_env_prefix=env_prefix, **overrides)  # type: ignore[call-arg]
    except ValidationError as exc:
        problems = config_problems(exc, env_prefix)
        raise StackAuthConfigError(
            "Stack Auth settings are missing or invalid: "
            + "; ".join(problems)
            + " (set them in the environment, in .env, or pass them to StackAuth(...))"
        ) from None
