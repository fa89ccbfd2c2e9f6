"""Example app: public, optional-auth and protected routes, a router guarded by a project
permission, a team-scoped route guarded by a team permission, a route for API keys, and a
WebSocket; at ``/`` a demo page that signs in with Stack from the browser and calls them,
``/docs`` served without a CDN, and Stack's webhooks received at ``/webhooks/stack``.

``make run`` starts it against the local Stack Auth emulator (no account needed), or against
your project when ``STACK_PROJECT_ID`` and ``STACK_SECRET_SERVER_KEY`` are set (environment or
``.env``). ``uvicorn example_app.main:app`` runs it with whatever ``STACK_*`` settings are set;
``STACK_VERIFY=jwt`` switches it to local JWT verification.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Any

from fastapi import APIRouter, Depends, WebSocket
from fastapi_offline import FastAPIOffline

from example_app.demo import demo_router
from fastapi_stack_auth import (
    Principal,
    StackAuth,
    StackUser,
    TokenClaims,
    current_principal,
    current_user,
    optional_user,
    require_project_permission,
    require_team_permission,
    token_claims,
)
from fastapi_stack_auth.webhooks import StackWebhooks, WebhookEvent

stack = StackAuth()
# /docs without a CDN: fastapi-offline serves Swagger UI's files itself. No /redoc: ReDoc's page
# loads its logo from ReDoc's CDN whatever it is given. No validator badge from swagger.io.
app = FastAPIOffline(
    title="fastapi-stack-auth example",
    redoc_url=None,
    static_url="/docs-assets",
    swagger_ui_parameters={"validatorUrl": None},
)
stack.init_app(app)
app.include_router(demo_router(stack))  # the demo page at /

# Stack's webhooks (STACK_WEBHOOK_SECRET; `make run` wires the emulator to send them here). The
# library drops what each event makes stale from its own caches before the handlers run.
hooks = StackWebhooks()
app.include_router(hooks.router, prefix="/webhooks/stack")
logger = logging.getLogger("example_app")
#: The last events received (type and message id only), newest last: stands in for your database.
recent_events: deque[tuple[str, str]] = deque(maxlen=50)


@hooks.on(WebhookEvent)
async def remember(event: WebhookEvent) -> None:
    """Every event Stack sends, known types and new ones alike."""
    recent_events.append((event.type, event.id))
    logger.info("Stack webhook %s (%s)", event.type, event.id)


@app.get("/public")
async def public() -> dict[str, str]:
    """Public: no credential needed."""
    return {"message": "Hello, world"}


@app.get("/hello")
async def hello(user: StackUser | None = Depends(optional_user)) -> dict[str, str]:
    """Optional auth: greets the user by name when a valid token is sent."""
    name = (user.display_name or user.primary_email or user.id) if user else "stranger"
    return {"message": f"Hello, {name}"}


@app.get("/me")
async def me(user: StackUser = Depends(current_user)) -> dict[str, Any]:
    """Protected: the signed-in user's profile."""
    return {
        "id": user.id,
        "email": user.primary_email,
        "display_name": user.display_name,
        "signed_up_at": user.signed_up_at.isoformat(),
        "selected_team_id": user.selected_team_id,
    }


@app.get("/claims")
async def claims(token: TokenClaims = Depends(token_claims)) -> dict[str, Any]:
    """Protected: what the access token itself says (no I/O in JWT mode)."""
    return {
        "user_id": token.user_id,
        "email": token.email,
        "selected_team_id": token.selected_team_id,
        "expires_at": token.expires_at.isoformat(),
    }


admin = APIRouter(prefix="/admin", dependencies=[Depends(require_project_permission("admin"))])


@admin.get("/stats")
async def stats() -> dict[str, int]:
    """Protected by the router: every route under /admin needs the project permission admin."""
    return {"users_online": 1}


app.include_router(admin)


@app.delete(
    "/teams/{team_id}/docs/{doc_id}",
    dependencies=[Depends(require_team_permission("docs:delete"))],
)
async def delete_doc(team_id: str, doc_id: str) -> dict[str, str]:
    """Team-scoped: the user needs the team permission docs:delete in the team of the path."""
    return {"deleted": doc_id, "team_id": team_id}


@app.post("/ingest")
async def ingest(caller: Principal = Depends(current_principal)) -> dict[str, Any]:
    """For machines and people: a user's access token, or a user or team API key
    (``x-stack-api-key`` or ``Authorization: Bearer sk_...``)."""
    return {
        "kind": caller.kind,
        "user_id": caller.user.id if caller.user is not None else None,
        "team_id": caller.team_id,
        "api_key": caller.api_key is not None,
    }


@app.websocket("/ws")
async def ws(websocket: WebSocket, user: StackUser = Depends(current_user)) -> None:
    """Protected WebSocket: closed with 1008 when the token is missing or invalid."""
    await websocket.accept()
    await websocket.send_json({"hello": user.id})
    await websocket.close()
