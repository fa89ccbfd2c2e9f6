"""``/docs`` (Swagger UI) without a CDN: the app serves the JavaScript and CSS itself, from the
copies the ``fastapi-offline`` package ships (Swagger UI 5), so the interactive docs work on a
machine with no network.

This is FastAPI's "self-hosting JavaScript and CSS for docs" recipe: the app is created with
``docs_url=None, redoc_url=None`` and this route takes the place of ``/docs``. There is no
``/redoc``: ReDoc's page loads a logo from ReDoc's CDN whatever it is given.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

#: Where the Swagger UI files are served.
ASSETS = "/docs-assets"


def serve_docs_offline(app: FastAPI) -> None:
    """Add ``/docs`` and its assets to ``app`` (created without FastAPI's own docs pages)."""
    if app.docs_url is not None or app.redoc_url is not None:
        raise ValueError("create the app with docs_url=None and redoc_url=None")
    openapi_url = app.openapi_url or "/openapi.json"
    # StaticFiles checks at once that the package holds the directory: a missing file fails
    # at import, not in a browser.
    app.mount(ASSETS, StaticFiles(packages=[("fastapi_offline", "static")]), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS}/favicon.png",
            # No online validator badge: nothing on the page may come from elsewhere.
            swagger_ui_parameters={**(app.swagger_ui_parameters or {}), "validatorUrl": None},
        )
