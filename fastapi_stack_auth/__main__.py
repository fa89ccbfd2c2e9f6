"""``python -m fastapi_stack_auth doctor``: check the current settings against Stack Auth."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from ._doctor import doctor
from ._settings import ENV_PREFIX


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {value!r}") from None
    if not 0 < seconds <= 300:
        raise argparse.ArgumentTypeError("must be more than 0 and at most 300 seconds")
    return seconds


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m fastapi_stack_auth",
        description="Tools for fastapi-stack-auth.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    check = commands.add_parser(
        "doctor",
        help="check the current settings against Stack Auth, one line per check",
        description=(
            "Check the current settings (environment and .env) against Stack Auth: API reachable, "
            "clock, project, keys, JWKS, Redis and the webhook secret. Exit code 0 only when no "
            "check failed. Never prints a key, token, secret or password."
        ),
    )
    check.add_argument(
        "--env-prefix",
        default=ENV_PREFIX,
        help=f"prefix of the settings' variables, as in StackAuth(env_prefix=...); {ENV_PREFIX}",
    )
    check.add_argument(
        "--timeout",
        type=_seconds,
        default=None,
        help="seconds for each call (default: the http_timeout setting, 5)",
    )
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = _parser().parse_args(argv)
    return asyncio.run(
        doctor(args.env_prefix, timeout=args.timeout, as_json=args.json, out=sys.stdout)
    )


if __name__ == "__main__":
    sys.exit(main())
