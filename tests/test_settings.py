"""Settings: environment, .env, overrides, read lazily, clear errors, no secret in any repr or
message."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import FastAPI

from fastapi_stack_auth import StackAuth, StackAuthConfigError, StackAuthSettings
from fastapi_stack_auth._settings import load_settings
from tests.conftest import PROJECT_ID, SECRET_KEY


def test_reads_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STACK_PROJECT_ID", PROJECT_ID)
    monkeypatch.setenv("STACK_SECRET_SERVER_KEY", SECRET_KEY)
    monkeypatch.setenv("STACK_API_URL", "http://127.0.0.1:8102/")
    monkeypatch.setenv("STACK_CACHE_TTL", "12.5")
    monkeypatch.setenv("STACK_CACHE_MAX_ENTRIES", "7")
    monkeypatch.setenv("STACK_HTTP_TIMEOUT", "2")
    monkeypatch.setenv("STACK_ALLOW_ANONYMOUS", "true")
    stack = StackAuth()
    s = stack.settings
    assert s.project_id == PROJECT_ID
    assert s.secret_server_key.get_secret_value() == SECRET_KEY
    assert s.api_url == "http://127.0.0.1:8102"  # trailing slash removed
    assert (s.cache_ttl, s.cache_max_entries, s.http_timeout) == (12.5, 7, 2.0)
    assert s.allow_anonymous is True
    assert s.allow_restricted is False


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    s = StackAuthSettings(project_id=PROJECT_ID, secret_server_key=SECRET_KEY)
    assert s.api_url == "https://api.stack-auth.com"
    assert s.cache_ttl == 30
    assert s.publishable_client_key is None
    assert s.check_keys_on_startup is True


def test_reads_dotenv_file(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        f"STACK_PROJECT_ID={PROJECT_ID}\nSTACK_SECRET_SERVER_KEY={SECRET_KEY}\n"
    )
    assert StackAuth().settings.project_id == PROJECT_ID


def test_explicit_arguments_override_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STACK_PROJECT_ID", "from-env")
    monkeypatch.setenv("STACK_SECRET_SERVER_KEY", SECRET_KEY)
    assert StackAuth(project_id="explicit").settings.project_id == "explicit"


def test_missing_settings_name_the_environment_variables() -> None:
    with pytest.raises(StackAuthConfigError) as info:
        _ = StackAuth().settings
    message = str(info.value)
    assert "STACK_PROJECT_ID is required" in message
    assert "STACK_SECRET_SERVER_KEY is required" in message
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__


def test_invalid_setting_message_names_variable_but_not_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STACK_PROJECT_ID", PROJECT_ID)
    monkeypatch.setenv("STACK_SECRET_SERVER_KEY", SECRET_KEY)
    # A secret pasted into the wrong variable must not be echoed back.
    monkeypatch.setenv("STACK_CACHE_TTL", "ssk_oops_pasted_secret")
    monkeypatch.setenv("STACK_API_URL", "ftp://ssk_other_secret@example.com")
    with pytest.raises(StackAuthConfigError) as info:
        _ = StackAuth().settings
    message = str(info.value)
    assert "STACK_CACHE_TTL is invalid" in message
    assert "STACK_API_URL is invalid" in message
    assert "ssk_oops_pasted_secret" not in message
    assert "ssk_other_secret" not in message


def test_settings_and_overrides_are_exclusive() -> None:
    settings = StackAuthSettings(project_id=PROJECT_ID, secret_server_key=SECRET_KEY)
    with pytest.raises(TypeError):
        StackAuth(settings, project_id="other")


def test_no_secret_in_reprs() -> None:
    settings = StackAuthSettings(
        project_id=PROJECT_ID, secret_server_key=SECRET_KEY, publishable_client_key="pck_secret"
    )
    stack = StackAuth(settings)
    not_started = repr(stack)
    assert stack.settings is settings
    texts = (repr(settings), str(settings), not_started, repr(stack), settings.model_dump_json())
    assert PROJECT_ID in repr(stack)
    for text in texts:
        assert SECRET_KEY not in text
        assert "pck_secret" not in text


def test_keys_are_stripped_of_surrounding_whitespace() -> None:
    # A key mounted from a file usually ends with a newline: an illegal header value.
    s = StackAuthSettings(project_id=f" {PROJECT_ID}\n", secret_server_key=f"{SECRET_KEY}\n")
    assert s.project_id == PROJECT_ID
    assert s.secret_server_key is not None
    assert s.secret_server_key.get_secret_value() == SECRET_KEY


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("secret_server_key", ""),
        ("secret_server_key", "ssk_with space_SECRETVALUE"),
        ("secret_server_key", "ssk_nön_ascii_SECRETVALUE"),
        ("publishable_client_key", "pck\x00SECRETVALUE"),
        ("project_id", " "),
        ("project_id", "a\nb"),
    ],
)
def test_values_that_cannot_be_sent_as_headers_are_refused(field: str, value: str) -> None:
    settings = {"project_id": PROJECT_ID, "secret_server_key": SECRET_KEY, field: value}
    with pytest.raises(StackAuthConfigError) as info:
        _ = StackAuth(**settings).settings
    assert f"STACK_{field.upper()} is invalid" in str(info.value)
    assert "SECRETVALUE" not in str(info.value)


@pytest.mark.parametrize(
    "url",
    [
        "https://api.stack-auth.com/api/v1",
        "https://user:SECRETVALUE@api.stack-auth.com",
        "https://api.stack-auth.com?x=1",
        "api.stack-auth.com",
        "ftp://api.stack-auth.com",
    ],
)
def test_api_url_must_be_a_bare_base_url(url: str) -> None:
    with pytest.raises(StackAuthConfigError) as info:
        _ = StackAuth(project_id=PROJECT_ID, secret_server_key=SECRET_KEY, api_url=url).settings
    assert "STACK_API_URL is invalid" in str(info.value)
    assert "SECRETVALUE" not in str(info.value)


# --- read lazily: at startup or first use, not at construction --------------------------------


def test_construction_reads_nothing() -> None:
    # No STACK_* variable is set (conftest): an app module can still build and attach it.
    stack = StackAuth()
    stack.init_app(FastAPI())
    assert "not started" in repr(stack)


async def test_the_first_start_raises_naming_the_variable() -> None:
    stack = StackAuth()
    with pytest.raises(StackAuthConfigError, match="STACK_PROJECT_ID is required"):
        await stack.start()
    # Nothing was cached from the failure: fixing the environment is enough.
    with pytest.raises(StackAuthConfigError, match="STACK_PROJECT_ID is required"):
        _ = stack.settings


def test_settings_are_read_when_first_used_not_when_constructed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stack = StackAuth()
    monkeypatch.setenv("STACK_PROJECT_ID", PROJECT_ID)
    monkeypatch.setenv("STACK_SECRET_SERVER_KEY", SECRET_KEY)
    assert stack.settings.project_id == PROJECT_ID
    monkeypatch.setenv("STACK_PROJECT_ID", "changed-later")
    assert stack.settings.project_id == PROJECT_ID  # read once


def test_env_prefix_reads_its_own_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STACK_PROJECT_ID", "project-a")
    monkeypatch.setenv("STACK_SECRET_SERVER_KEY", "ssk_a")
    monkeypatch.setenv("STACK_CACHE_TTL", "7")
    monkeypatch.setenv("STACK_B_PROJECT_ID", "project-b")
    monkeypatch.setenv("STACK_B_SECRET_SERVER_KEY", "ssk_b")
    monkeypatch.setenv("STACK_B_HTTP_TIMEOUT", "2")
    a, b = StackAuth().settings, StackAuth(env_prefix="STACK_B_").settings
    assert (a.project_id, a.cache_ttl, a.http_timeout) == ("project-a", 7, 5)
    assert (b.project_id, b.cache_ttl, b.http_timeout) == ("project-b", 30, 2)
    assert b.secret_server_key is not None
    assert b.secret_server_key.get_secret_value() == "ssk_b"


def test_env_prefix_reads_its_own_dotenv_lines(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("STACK_B_PROJECT_ID=project-b\nSTACK_B_SECRET_SERVER_KEY=k\n")
    assert StackAuth(env_prefix="STACK_B_").settings.project_id == "project-b"


def test_env_prefix_errors_name_its_own_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    # The default prefix's variables are set and must not satisfy (or be named for) STACK_B_.
    monkeypatch.setenv("STACK_PROJECT_ID", PROJECT_ID)
    monkeypatch.setenv("STACK_SECRET_SERVER_KEY", SECRET_KEY)
    monkeypatch.setenv("STACK_B_HTTP_TIMEOUT", "5")
    monkeypatch.setenv("STACK_B_REQUEST_DEADLINE", "1")
    monkeypatch.setenv("STACK_B_CACHE_TTL", "soon")
    with pytest.raises(StackAuthConfigError) as info:
        _ = StackAuth(env_prefix="STACK_B_").settings
    message = str(info.value)
    assert "STACK_B_PROJECT_ID is required" in message
    assert "STACK_B_SECRET_SERVER_KEY is required" in message
    assert "STACK_B_VERIFY=remote" in message
    assert "STACK_B_CACHE_TTL is invalid" in message
    assert "STACK_B_REQUEST_DEADLINE is invalid: must be at least STACK_B_HTTP_TIMEOUT" in message
    for other in ("STACK_PROJECT_ID", "STACK_SECRET_SERVER_KEY", "STACK_VERIFY", "STACK_HTTP"):
        assert other not in message


def test_the_removed_http_client_setting_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    # STACK_HTTP_CLIENT chose the removed aiohttp transport; an old deployment may still set it.
    monkeypatch.setenv("STACK_HTTP_CLIENT", "aiohttp")
    settings = StackAuth(project_id=PROJECT_ID, secret_server_key=SECRET_KEY).settings
    assert not hasattr(settings, "http_client")


def test_trusted_origins_are_read_comma_separated_and_normalised(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        "STACK_TRUSTED_ORIGINS", "https://App.Example.com:443, http://localhost:3000"
    )
    settings = load_settings(project_id="p", verify="jwt")
    assert settings.trusted_origins == ("https://app.example.com", "http://localhost:3000")
    assert settings.cookies is False
    assert settings.silent_refresh is False


@pytest.mark.parametrize(
    "origin", ["https://a.example/path", "ftp://a.example", "https://u:p@a.example", "a.example"]
)
def test_a_trusted_origin_that_is_not_an_origin_is_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, origin: str
) -> None:
    monkeypatch.setenv("STACK_TRUSTED_ORIGINS", origin)
    with pytest.raises(StackAuthConfigError, match="STACK_TRUSTED_ORIGINS is invalid") as info:
        load_settings(project_id="p", verify="jwt")
    assert "u:p" not in str(info.value)
