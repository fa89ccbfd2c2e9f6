"""``make run``: the example app, against your Stack Auth project or against the local emulator.

With ``STACK_PROJECT_ID`` and ``STACK_SECRET_SERVER_KEY`` in the environment or in ``.env``,
the app runs alone against that project. With neither, the Stack Auth emulator starts on
127.0.0.1:8102 (development only: no account, no network) and the app is wired to it. Ctrl-C
stops both.

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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m example_app.dev", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--emulator-port", type=int, default=8102)
    args = parser.parse_args(argv)

    configured, found = stack_settings_present(os.environ)
    if configured:
        import uvicorn

        print(f"Using your Stack Auth project ({', '.join(REQUIRED)} are set).", flush=True)
        print(
            f"Protected route: curl -H 'Authorization: Bearer <access token>' "
            f"http://{args.host}:{args.port}/me",
            flush=True,
        )
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
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
