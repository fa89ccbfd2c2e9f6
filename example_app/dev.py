"""``make run``: the example app, against your Stack Auth project or against the local emulator.

With ``STACK_PROJECT_ID`` and ``STACK_SECRET_SERVER_KEY`` in the environment or in ``.env``,
the app runs alone against that project. With neither, the Stack Auth emulator starts on
127.0.0.1:8102 (development only: no account, no network) and the app is wired to it. Ctrl-C
stops both.

Either way the app reads Stack's cookies and refreshes expired access tokens, for the demo page
at ``/`` (``browser_settings``; a ``STACK_*`` value already set wins).

    python -m example_app.dev [--host 127.0.0.1] [--port 8000] [--emulator-port 8102]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from dotenv import dotenv_values

APP = "example_app.main:app"
REQUIRED = ("STACK_PROJECT_ID", "STACK_SECRET_SERVER_KEY")


def stack_settings_present(
    environ: Mapping[str, str], env_file: Path = Path(".env")
) -> tuple[bool, list[str]]:
    """Whether real Stack settings are configured, and which of the required ones are set.

    The secret server key is not required with ``STACK_VERIFY=jwt``.
    """
    dotenv = {k: v for k, v in dotenv_values(env_file).items() if v} if env_file.exists() else {}

    def get(name: str) -> str | None:
        return environ.get(name) or dotenv.get(name)

    found = [name for name in REQUIRED if get(name)]
    needed = REQUIRED[:1] if (get("STACK_VERIFY") or "").lower() == "jwt" else REQUIRED
    return all(name in found for name in needed), found


def browser_settings(host: str, port: int) -> dict[str, str]:
    """What the demo page needs of the app: Stack's cookies read (``STACK_COOKIES``), expired
    access tokens refreshed (``STACK_SILENT_REFRESH``), and the page's own origin trusted with
    cookies on requests that change something (``STACK_TRUSTED_ORIGINS``)."""
    names = [host]
    if host in ("127.0.0.1", "localhost"):  # the same page, whichever name the browser used
        names = ["127.0.0.1", "localhost"]
    origins = [f"http://{_netloc(name, port)}" for name in names]
    return {
        "STACK_COOKIES": "true",
        "STACK_SILENT_REFRESH": "true",
        "STACK_TRUSTED_ORIGINS": ",".join(origins),
    }


def _netloc(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _apply_defaults(settings: Mapping[str, str], env_file: Path = Path(".env")) -> None:
    """Put ``settings`` in the environment, except those set there or in ``.env`` already."""
    dotenv = dotenv_values(env_file) if env_file.exists() else {}
    for name, value in settings.items():
        if name not in os.environ and name not in dotenv:
            os.environ[name] = value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m example_app.dev", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--emulator-port", type=int, default=8102)
    args = parser.parse_args(argv)

    configured, found = stack_settings_present(os.environ)
    if configured or not found:  # the app starts: with the demo page's settings
        _apply_defaults(browser_settings(args.host, args.port))
    if configured:
        import uvicorn

        print(f"Using your Stack Auth project ({', '.join(REQUIRED)} are set).", flush=True)
        print(
            f"Protected route: curl -H 'Authorization: Bearer <access token>' "
            f"http://{args.host}:{args.port}/me",
            flush=True,
        )
        print(f"Demo page: http://{args.host}:{args.port}/", flush=True)
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: uvicorn has already stopped
            uvicorn.run(APP, host=args.host, port=args.port)
        return 0
    if found:
        missing = [name for name in REQUIRED if name not in found]
        print(
            f"error: {', '.join(found)} is set but {', '.join(missing)} is not. Set both to use "
            "your Stack Auth project, or neither to use the local emulator.",
            file=sys.stderr,
        )
        return 2

    from fastapi_stack_auth.emulator._cli import main as emulator_main

    return emulator_main(
        [
            "--port",
            str(args.emulator_port),
            "--app",
            APP,
            "--app-host",
            args.host,
            "--app-port",
            str(args.port),
            "--app-route",
            "/me",
            # The emulator signs its webhooks with the secret it gives the app it starts.
            "--webhook",
            f"http://{_netloc(args.host, args.port)}/webhooks/stack",
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
