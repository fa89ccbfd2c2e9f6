"""A local Stack Auth emulator -- FOR DEVELOPMENT AND TESTS ONLY, never for production.

It serves the parts of Stack Auth's REST API that fastapi-stack-auth (and Stack's JS SDK) use,
with Stack's headers, check order, errors and real ES256 tokens, from memory. Every response
carries an ``x-stack-emulator`` header. Serving it over HTTP needs uvicorn (the ``testing``
extra); the ``Emulator`` and its ASGI app do not.

Run it with ``python -m fastapi_stack_auth.emulator`` (see ``--help``), or in Python::

    from fastapi_stack_auth.emulator import Emulator, EmulatorServer

    with EmulatorServer() as server:           # 127.0.0.1, a free port, background thread
        emulator = server.emulator
        user = emulator.create_user(email="a@example.com", password="password1")
        tokens = emulator.sign_in(user.id)
        ...                                     # STACK_API_URL=server.url

For pytest fixtures, see ``fastapi_stack_auth.testing``.
"""

from ._app import EMULATOR_HEADER, EmulatorApp, is_loopback
from ._emulator import DEFAULT_HOST, DEFAULT_PORT, DEFAULT_PUBLIC_URL, Emulator, Tokens
from ._seed import (
    DEFAULT_PROJECT_ID,
    DEFAULT_PUBLISHABLE_CLIENT_KEY,
    DEFAULT_SECRET_SERVER_KEY,
    DEMO_EMAIL,
    DEMO_PASSWORD,
    DEMO_USER_ID,
    Seed,
    SeedProject,
    SeedProjectConfig,
    SeedUser,
    default_seed,
)
from ._server import EmulatorServer, RemoteBindRefused
from ._store import DEFAULT_ACCESS_TOKEN_TTL, Backend, Project, ProjectConfig, Session, User


def create_app(emulator: Emulator | None = None) -> EmulatorApp:
    """The ASGI app of ``emulator`` (a new default ``Emulator`` when omitted)."""
    return (emulator if emulator is not None else Emulator()).app


__all__ = [
    "DEFAULT_ACCESS_TOKEN_TTL",
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "DEFAULT_PROJECT_ID",
    "DEFAULT_PUBLIC_URL",
    "DEFAULT_PUBLISHABLE_CLIENT_KEY",
    "DEFAULT_SECRET_SERVER_KEY",
    "DEMO_EMAIL",
    "DEMO_PASSWORD",
    "DEMO_USER_ID",
    "EMULATOR_HEADER",
    "Backend",
    "Emulator",
    "EmulatorApp",
    "EmulatorServer",
    "Project",
    "ProjectConfig",
    "RemoteBindRefused",
    "Seed",
    "SeedProject",
    "SeedProjectConfig",
    "SeedUser",
    "Session",
    "Tokens",
    "User",
    "create_app",
    "default_seed",
    "is_loopback",
]
