"""``python -m fastapi_stack_auth.emulator``: serve the emulator (and optionally an app wired to
it) on loopback, with a banner that says what it is and how to use it."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any, TextIO

from ._backend import DEFAULT_ACCESS_TOKEN_TTL
from ._banner import app_environment, banner, webhook_environment
from ._emulator import DEFAULT_HOST, DEFAULT_PORT, Emulator
from ._seed import Seed, SeedPermission, default_seed
from ._server import UVICORN_MISSING, EmulatorServer, RemoteBindRefused, bind_socket, url_of
from ._webhook_records import check_webhook_secret, check_webhook_url
from ._webhooks import SVIX_RETRY_SCHEDULE, SVIX_TIMEOUT, check_retry_schedule


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
    parser.add_argument(
        "--seed", metavar="FILE", help="JSON seed: projects, keys, users, teams and permissions"
    )
    for scope in ("team", "project"):
        parser.add_argument(
            f"--{scope}-permission",
            action="append",
            default=[],
            type=permission_definition,
            metavar="ID[=CONTAINED,...]",
            help=f"also define this {scope} permission in the default project, containing the "
            "listed ones (defined earlier, or system $... ones); repeatable, e.g. "
            + (
                "--team-permission docs:read --team-permission docs:admin=docs:read,$read_members"
                if scope == "team"
                else "--project-permission admin"
            ),
        )
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
    _add_webhook_options(parser)
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


def _add_webhook_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--webhook",
        action="append",
        default=[],
        type=_argument(check_webhook_url),
        metavar="URL",
        help="send the default project's webhooks to this http(s) URL, signed as Svix signs "
        "Stack's (repeatable; more can be added at POST /api/v1/emulator/webhook-endpoints)",
    )
    parser.add_argument(
        "--webhook-secret",
        type=_argument(check_webhook_secret),
        metavar="whsec_...",
        help="the webhooks' signing secret: whsec_ and the base64 of 24 to 75 bytes "
        "(default: a random one, printed in the banner)",
    )
    parser.add_argument(
        "--webhook-retry-schedule",
        type=retry_schedule,
        default=SVIX_RETRY_SCHEDULE,
        metavar="SECONDS,...",
        help="delays before each retry of a failed delivery, e.g. 0.05,0.1 for tests; '' for "
        "no retries (default: Svix's 5,300,1800,7200,18000,36000,36000)",
    )
    parser.add_argument(
        "--webhook-timeout",
        type=float,
        default=SVIX_TIMEOUT,
        metavar="SECONDS",
        help="a delivery not answered 2xx within this time is retried (default 30, as Svix)",
    )


def _argument(check: Callable[[str], str]) -> Callable[[str], str]:
    """An argparse ``type`` that reports ``check``'s ``ValueError`` as a usage error."""

    def parse(text: str) -> str:
        try:
            return check(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


def retry_schedule(text: str) -> tuple[float, ...]:
    """``SECONDS,SECONDS,...`` (empty: no retries)."""
    try:
        return check_retry_schedule(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of delays in seconds (each >= 0)"
        ) from None


def permission_definition(text: str) -> SeedPermission:
    """``ID`` or ``ID=CONTAINED,...`` (``=``, not ``:``, which permission IDs may contain)."""
    permission_id, _, contained = text.partition("=")
    try:
        return SeedPermission(
            id=permission_id,
            contained_permission_ids=tuple(p for p in contained.split(",") if p),
        )
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{permission_id!r} is not a permission ID (lower-case letters, digits, '_' and ':')"
        ) from None


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
    seed = Seed.from_file(args.seed) if args.seed else default_seed()
    seed = seed.with_definitions(team=args.team_permission, project=args.project_permission)
    if not args.latency_ms >= 0:
        print("error: --latency-ms must be 0 or more", file=sys.stderr)
        return 2
    try:
        emulator = Emulator(
            seed,
            access_token_ttl=args.access_token_ttl,
            latency=args.latency_ms / 1000,
            key_seed=args.key_seed,
            cors_origins=args.cors_origin,
            webhook_endpoints=args.webhook,
            webhook_secret=args.webhook_secret,
            webhook_retry_schedule=args.webhook_retry_schedule,
            webhook_timeout=args.webhook_timeout,
        )
    except ValueError as exc:  # e.g. a permission containing one that is not defined
        print(f"error: {exc}", file=sys.stderr)
        return 2
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
            os.environ.update({**app_environment(emulator), **webhook_environment(emulator)})
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
