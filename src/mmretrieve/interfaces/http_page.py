"""The web page, its assets and the health check: what answers without an API key.

The only files served are the page's own assets, from a fixed list read once per app
(``app.state.ui_assets``): a client-given name is never joined into a path.
"""

# No ``from __future__ import annotations``: FastAPI reads these signatures at runtime.

from importlib import resources
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from .. import __version__
from .http_deps import json_response
from .http_params import HTTPProblem
from .http_schema import documented

UI_ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
_PAGE_CSP = (
    "default-src 'self'; img-src 'self' blob: data:; script-src 'self'; style-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


def ui_assets() -> dict[str, bytes]:
    """The page's files by name (put on ``app.state.ui_assets``)."""
    folder = resources.files(__package__).joinpath("ui")
    return {name: folder.joinpath(name).read_bytes() for name in UI_ASSETS}  # 3.10: one part


async def get_assets(request: Request) -> dict[str, bytes]:
    assets: dict[str, bytes] = request.app.state.ui_assets
    return assets


AssetsDep = Annotated[dict[str, bytes], Depends(get_assets)]


def page(assets: AssetsDep) -> Response:
    return Response(
        assets["index.html"],
        media_type=UI_ASSETS["index.html"],
        headers={"Content-Security-Policy": _PAGE_CSP, "X-Content-Type-Options": "nosniff"},
    )


def ui_asset(name: str, assets: AssetsDep) -> Response:
    if name not in assets or name == "index.html":  # a fixed list: no path is ever built
        raise HTTPProblem(404, "no such file")
    return Response(
        assets[name],
        media_type=UI_ASSETS[name],
        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"},
    )


def health() -> Response:
    return json_response({"status": "ok", "version": __version__})


def router() -> APIRouter:
    """``GET /``, ``GET /ui/{name}`` and ``GET /health``."""
    routes = APIRouter()
    routes.add_api_route("/", page, methods=["GET"], include_in_schema=False)
    routes.add_api_route("/ui/{name}", ui_asset, methods=["GET"], include_in_schema=False)
    routes.add_api_route(
        "/health",
        health,
        methods=["GET"],
        summary="Liveness check",
        **documented("health", needs_key=False),  # never behind the key
    )
    return routes
