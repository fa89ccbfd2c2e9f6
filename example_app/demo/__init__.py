"""The demo page at ``/``: sign up, sign in and out against Stack Auth (or the emulator) from the
browser, and call the example app's routes with the tokens the way a Stack frontend sends them.

Plain HTML, one small script and one style sheet from ``static/``: no build step and nothing
fetched from another site (the page's Content-Security-Policy allows only this app and Stack's
API). ``/demo/config.json`` gives the page the public values it needs, never a secret key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter
from fastapi.responses import FileResponse

from fastapi_stack_auth import StackAuth

STATIC = Path(__file__).parent / "static"
_ASSETS = {
    "demo.js": "text/javascript; charset=utf-8",
    "demo.css": "text/css; charset=utf-8",
}


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def content_security_policy(api_url: str) -> str:
    """Scripts, styles and images from this app only; fetches to this app and to Stack's API."""
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            f"connect-src 'self' {_origin(api_url)}",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )


def demo_router(stack: StackAuth) -> APIRouter:
    """The page, its two assets and its configuration, for the app that ``stack`` guards."""
    router = APIRouter(include_in_schema=False)

    @router.get("/")
    async def page() -> FileResponse:
        """The demo page."""
        headers = {
            "content-security-policy": content_security_policy(stack.settings.api_url),
            "cache-control": "no-store",
            "x-content-type-options": "nosniff",
        }
        return FileResponse(STATIC / "index.html", media_type="text/html", headers=headers)

    @router.get("/demo/demo.js")
    async def script() -> FileResponse:
        """The page's script."""
        return _asset("demo.js")

    @router.get("/demo/demo.css")
    async def style() -> FileResponse:
        """The page's style sheet."""
        return _asset("demo.css")

    @router.get("/demo/config.json")
    async def config() -> dict[str, Any]:
        """What the page needs to talk to Stack as a frontend does: public values only."""
        s = stack.settings
        key = s.publishable_client_key
        return {
            "api_url": s.api_url,
            "project_id": s.project_id,
            "publishable_client_key": key.get_secret_value() if key is not None else None,
            "cookies": s.cookies,
            "silent_refresh": s.silent_refresh,
        }

    return router


def _asset(name: str) -> FileResponse:
    headers = {"cache-control": "no-cache", "x-content-type-options": "nosniff"}
    return FileResponse(STATIC / name, media_type=_ASSETS[name], headers=headers)
