"""``python -m fastapi_stack_auth.emulator``: serve the emulator (and optionally an app wired to
it) on loopback, with a banner that says what it is and how to use it."""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
from collections.abc import Sequence
from types import FrameType
from typing import Any, TextIO

from ._emulator import DEFAULT_HOST, DEFAULT_PORT, Emulator
from ._seed import Seed
from ._server import UVICORN_MISSING, EmulatorServer, RemoteBindRefused, bind_socket, url_of
from ._store import DEFAULT_ACCESS_TOKEN_TTL


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m fastapi_stack_auth.emulator",
        description=(
            "A local Stack Auth emulator FOR DEVELOPMENT AND TESTS ONLY: in-memory users, "
            "public dev keys, real ES256 tokens. It listens on loopback and answers loopback "
            "hosts and browser origins only, unless told otherwise."
        ),
    )
    parser.add_argument("--host", default=DEFAULT_HOST, help="address to listen on (loopback)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (default 8102)")
    parser.add_argument("--seed", metavar="FILE", help="JSON seed: projects, keys and users")
    parser.add_argument(
        "--access-token-ttl",
        type=int,
        default=DEFAULT_ACCESS_TOKEN_TTL,
        metavar="SECONDS",
        help="access-token lifetime (default 600, as Stack)",
    )
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=0.0,
        metavar="MS",
        help="delay every API answer by this many milliseconds, like a distant Stack (default 0)",
    )
    parser.add_argument(
        "--public-url",
        help="base URL clients use, and the tokens' issuer (default http://HOST:PORT)",
    )
    parser.add_argument(
        "--key-seed",
        metavar="TEXT",
        help="derive the signing keys from TEXT: the same keys on every start (default: random)",
    )
    parser.add_argument(
        "--cors-origin",
        action="append",
        default=[],
        metavar="URL",
        help="also let web pages of this origin call it (client access only; repeatable)",
    )
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a non-loopback --host, and requests for it and for --public-url's host "
        "(anyone who reaches it gets tokens)",
    )
    parser.add_argument(
        "--app",
        metavar="MODULE:ATTR",
        help="also serve this ASGI app, with STACK_* settings pointing at the emulator",
    )
    parser.add_argument("--app-host", default="127.0.0.1", help="address of --app")
    parser.add_argument("--app-port", type=int, default=8000, help="port of --app")
    parser.add_argument(
        "--app-route", default="/", help="a protected route of --app, for the example curl"
    )
    parser.add_argument("--log-level", default="info", help="uvicorn log level")
    return parser


def app_environment(emulator: Emulator) -> dict[str, str]:
    """The ``STACK_*`` settings that point the library at ``emulator``'s default project."""
    env = {
        "STACK_API_URL": emulator.public_url,
        "STACK_PROJECT_ID": emulator.project_id,
        "STACK_SECRET_SERVER_KEY": emulator.secret_server_key,
    }
    if emulator.publishable_client_key is not None:
        env["STACK_PUBLISHABLE_CLIENT_KEY"] = emulator.publishable_client_key
    return env


def _curl(url: str, headers: dict[str, str], *, data: str | None = None) -> str:
    parts = ["curl"]
    if data is not None:
        parts += ["-X", "POST"]
    for name, value in headers.items():
        parts += ["-H", shlex.quote(f"{name}: {value}")]
    if data is not None:
        parts += ["-d", shlex.quote(data)]
    parts.append(url)
    return " ".join(parts)


def banner(
    emulator: Emulator, *, app_url: str | None = None, app_route: str = "/", ttl: int
) -> str:
    """The startup text: what this is, its keys, a demo user and ready-to-paste curl lines."""
    api = emulator.public_url
    seed_project = emulator.seed.projects[0]
    demo = next((u for u in seed_project.users if u.email and u.password), None)
    lines = [
        "=" * 78,
        "  STACK AUTH EMULATOR -- FOR LOCAL DEVELOPMENT AND TESTS ONLY",
        "  This is not Stack Auth: users live in memory and vanish on exit, and the keys",
        "  below are throwaway development keys. Never expose it or use it in production.",
        "=" * 78,
        f"  API URL (STACK_API_URL)          {api}",
        f"  Project ID (STACK_PROJECT_ID)    {emulator.project_id}",
        f"  Publishable client key           {emulator.publishable_client_key or '(none)'}",
        f"  Secret server key                {emulator.secret_server_key}  (dev only)",
        f"  Access-token lifetime            {ttl} s",
    ]
    if demo is None:
        lines.append("  Demo user                        (the seed has no email/password user)")
    else:
        lines.append(f"  Demo user                        {demo.email} / {demo.password}")
    lines += ["", "  Settings for an app that uses fastapi-stack-auth:"]
    lines += [f"    export {name}={value}" for name, value in app_environment(emulator).items()]
    if demo is not None:
        user = emulator.project.user_by_auth_email(demo.email or "")
        token = emulator.sign_in(user.id).access_token if user is not None else None
        client_headers = {
            "content-type": "application/json",
            "x-stack-access-type": "client",
            "x-stack-project-id": emulator.project_id,
        }
        if emulator.publishable_client_key:
            client_headers["x-stack-publishable-client-key"] = emulator.publishable_client_key
        sign_in = _curl(
            f"{api}/api/v1/auth/password/sign-in",
            client_headers,
            data=f'{{"email": "{demo.email}", "password": "{demo.password}"}}',
        )
        if token is not None:
            # The token alone on its line: copy it, or TOKEN=$(... | grep -m1 '^ey')
            lines += ["", f"  An access token for {demo.email} (valid {ttl} s):", token]
            if app_url is not None:
                lines.append("  Call a protected route of the app:")
                lines.append(
                    "    " + _curl(f"{app_url}{app_route}", {"Authorization": f"Bearer {token}"})
                )
            lines.append("  Ask the emulator who it belongs to:")
            server_headers = {
                "x-stack-access-type": "server",
                "x-stack-project-id": emulator.project_id,
                "x-stack-secret-server-key": emulator.secret_server_key,
                "x-stack-access-token": token,
            }
            lines.append("    " + _curl(f"{api}/api/v1/users/me", server_headers))
        lines += [
            "",
            "  Sign in as the demo user (password sign-in; the answer has a new access_token):",
            f"    {sign_in}",
        ]
    if app_url is not None:
        lines += ["", f"  App: {app_url}  (docs: {app_url}/docs)"]
    lines += ["", "  Ctrl-C stops everything.", "=" * 78]
    return "\n".join(lines)


class _Terminated(Exception):
    """SIGTERM arrived: stop like on Ctrl-C."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise _Terminated


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None) -> int:
    """Run the emulator until Ctrl-C (SIGINT) or SIGTERM; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        import uvicorn
    except ImportError:
        print(f"error: {UVICORN_MISSING}", file=sys.stderr)
        return 1
    stream = out or sys.stdout
    seed = Seed.from_file(args.seed) if args.seed else None
    if not args.latency_ms >= 0:
        print("error: --latency-ms must be 0 or more", file=sys.stderr)
        return 2
    emulator = Emulator(
        seed,
        access_token_ttl=args.access_token_ttl,
        latency=args.latency_ms / 1000,
        key_seed=args.key_seed,
        cors_origins=args.cors_origin,
    )
    server = EmulatorServer(
        emulator,
        host=args.host,
        port=args.port,
        public_url=args.public_url,
        allow_remote=args.allow_remote,
        log_level=args.log_level,
        access_log=True,  # paths and statuses only: tokens and keys travel in headers
    )
    # Ctrl-C must stop the emulator even when started from a shell that ignores SIGINT.
    previous_sigint = signal.signal(signal.SIGINT, signal.default_int_handler)
    previous_sigterm = signal.signal(signal.SIGTERM, _on_sigterm)
    status = 0
    try:
        try:
            server.start()
        except RemoteBindRefused as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except OSError as exc:
            print(f"error: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
            return 1
        app_socket = None
        app_url = None
        if args.app:  # bound before the banner, so the banner's URL is the real one
            try:
                app_socket = bind_socket(
                    args.app_host, args.app_port, allow_remote=args.allow_remote
                )
            except (RemoteBindRefused, OSError) as exc:
                print(f"error: cannot serve {args.app}: {exc}", file=sys.stderr)
                return 2 if isinstance(exc, RemoteBindRefused) else 1
            app_url = url_of(app_socket)
        print(
            banner(emulator, app_url=app_url, app_route=args.app_route, ttl=args.access_token_ttl),
            file=stream,
            flush=True,
        )
        if app_socket is not None:
            os.environ.update(app_environment(emulator))
            config: Any = uvicorn.Config(args.app, log_level=args.log_level)
            try:
                uvicorn.Server(config).run(sockets=[app_socket])
            finally:
                app_socket.close()
        else:
            status = _wait(server)
    except (KeyboardInterrupt, _Terminated):
        pass
    finally:
        server.stop()
        signal.signal(signal.SIGTERM, previous_sigterm)
        signal.signal(signal.SIGINT, previous_sigint)
    print("Stack Auth emulator stopped.", file=stream, flush=True)
    return status


def _wait(server: EmulatorServer) -> int:
    # The server thread serves; the main thread only waits (Ctrl-C interrupts the wait).
    while server.running:
        server.join(1.0)
    print("error: the Stack Auth emulator stopped unexpectedly", file=sys.stderr)
    return 1
