"""The startup banner of ``python -m fastapi_stack_auth.emulator`` (and ``make run``): what this
is, its keys, the webhooks' endpoints and secret, the demo user with a token, their team and an
API key, and ready-to-paste curls."""

from __future__ import annotations

import shlex

from ._emulator import Emulator


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


def webhook_environment(emulator: Emulator) -> dict[str, str]:
    """``STACK_WEBHOOK_SECRET``: the emulator's webhook signing secret, for a receiver."""
    return {"STACK_WEBHOOK_SECRET": emulator.webhook_secret.get_secret_value()}


def _webhook_lines(emulator: Emulator) -> list[str]:
    """Where the webhooks go, and their signing secret alone on an ``export`` line."""
    endpoints = emulator.webhook_endpoints()
    lines = [""]
    if endpoints:
        lines.append("  Webhooks (signed as Svix signs Stack's) go to:")
        lines += [f"    {endpoint.url}" for endpoint in endpoints]
    else:
        lines += [
            "  Webhooks: no endpoint yet. Add one with --webhook URL, or with the server key:",
            f'    POST {emulator.public_url}/api/v1/emulator/webhook-endpoints {{"url": ...}}',
        ]
    lines.append("  Their signing secret (a throwaway development secret), for the receiver:")
    lines += [f"    export {name}={value}" for name, value in webhook_environment(emulator).items()]
    return lines


def _curl(
    url: str, headers: dict[str, str], *, method: str | None = None, data: str | None = None
) -> str:
    parts = ["curl"]
    method = method or ("POST" if data is not None else None)
    if method is not None:
        parts += ["-X", method]
    for name, value in headers.items():
        parts += ["-H", shlex.quote(f"{name}: {value}")]
    if data is not None:
        parts += ["-d", shlex.quote(data)]
    parts.append(url)
    return " ".join(parts)


def _authorization_lines(
    emulator: Emulator, user_id: str, token: str, app_url: str | None
) -> list[str]:
    """The demo user's team and a fresh user API key, each alone on a line (for grep), and
    curls of the example app's authorization routes."""
    project = emulator.project
    teams = project.teams_of(user_id)
    key = None
    if project.config.allow_user_api_keys:
        key = emulator.create_api_key(user_id=user_id, description="make run demo key").value
    lines: list[str] = []
    if teams:
        granted = ", ".join(emulator.team_permissions(teams[0].id, user_id, recursive=False))
        lines += ["", f"  The demo user's team {teams[0].display_name!r} ({granted}):", teams[0].id]
    if key is not None:
        lines += ["  A user API key of the demo user (send it as x-stack-api-key):", key]
    if app_url is None:
        return lines
    bearer = {"Authorization": f"Bearer {token}"}
    if teams:
        lines.append("  Delete a document of the team (team permission docs:delete):")
        url = f"{app_url}/teams/{teams[0].id}/docs/demo"
        lines.append("    " + _curl(url, bearer, method="DELETE"))
    lines.append("  Read the admin statistics (project permission admin):")
    lines.append("    " + _curl(f"{app_url}/admin/stats", bearer))
    if key is not None:
        lines.append("  Call the machine route with the API key:")
        ingest = _curl(f"{app_url}/ingest", {"x-stack-api-key": key}, method="POST")
        lines.append("    " + ingest)
    return lines


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
    lines += _webhook_lines(emulator)
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
            if user is not None:
                lines += _authorization_lines(emulator, user.id, token, app_url)
        lines += [
            "",
            "  Sign in as the demo user (password sign-in; the answer has a new access_token):",
            f"    {sign_in}",
        ]
    if app_url is not None:
        lines += ["", f"  App: {app_url}/  (the demo page; API docs: {app_url}/docs)"]
    lines += ["", "  Ctrl-C stops everything.", "=" * 78]
    return "\n".join(lines)
