"""The HTTP API and the web page (docs/HTTP.md): ``app = create_app(index, settings)``.

Thin: every endpoint calls the Python API (``Index.search``, ``Index.stats``) or reads rows from
the index's store by id, and holds no retrieval logic. The endpoints live in routers, one module
per group: http_search.py (``POST /search``), http_items.py (stats, articles, images,
thumbnails) and http_page.py (the page, its assets, ``/health``). They reach the index, the
settings, the search slots and the thumbnail cache through ``app.state`` (http_deps.py).

    >>> from mmretrieve import Index                                  # doctest: +SKIP
    >>> app = create_app(Index.open("./idx", create=False))            # doctest: +SKIP
    >>> import uvicorn; uvicorn.run(app, host="127.0.0.1", port=8000)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from ..errors import MMRetrieveError, require
from .http_params import HTTPProblem, status_for
from .http_schema import precise_openapi
from .http_settings import ServerSettings
from .thumbnails import ThumbnailCache

if TYPE_CHECKING:
    from fastapi import FastAPI
    from starlette.requests import Request
    from starlette.responses import Response

    from ..api import Index

__all__ = ["HeadAsGet", "ServerSettings", "create_app"]


class HeadAsGet:
    """Answers HEAD wherever GET is answered: the same status and headers, no body."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def without_body(message: Any) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, without_body)


def create_app(index: Index, settings: ServerSettings | None = None) -> FastAPI:
    """A FastAPI app serving ``index``: the search API, item and thumbnail endpoints, and the
    page, within the limits of ``settings`` (:class:`ServerSettings`; its defaults when None)."""
    require("fastapi", "server")
    require("multipart", "server", "python-multipart")
    from fastapi import FastAPI

    from .. import __version__
    from . import http_items, http_page, http_search
    from .http_deps import SearchSlots

    settings = settings or ServerSettings()
    size = settings.thumbnail_size
    thumbnails = ThumbnailCache(
        settings.thumbnail_cache_dir,
        size=size,
        max_bytes=settings.thumbnail_cache_bytes,
        decode=lambda source: index.decode_image(source, max_side=size),
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        app.state.thumbnails.close()  # a temporary cache goes with the server

    app = FastAPI(
        lifespan=lifespan,
        title="mmretrieve",
        version=__version__,
        description="Search articles, passages and images by text, an image, or both. "
        "The web page is at /.",
    )
    app.state.index = index
    app.state.settings = settings
    app.state.slots = SearchSlots(settings.max_concurrent, settings.request_timeout)
    app.state.thumbnails = thumbnails
    app.state.ui_assets = http_page.ui_assets()
    app.add_middleware(HeadAsGet)
    precise_openapi(app)
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["content-type", "x-api-key", "authorization"],
        )
    app.exception_handler(HTTPProblem)(_problem)
    app.exception_handler(MMRetrieveError)(_mm_error)
    app.include_router(http_page.router())
    app.include_router(http_search.router(settings))
    app.include_router(http_items.router(settings))
    return app


async def _problem(request: Request, exc: HTTPProblem) -> Response:
    from fastapi.responses import JSONResponse

    return JSONResponse({"detail": exc.message}, status_code=exc.status, headers=exc.headers)


async def _mm_error(request: Request, exc: MMRetrieveError) -> Response:
    from fastapi.responses import JSONResponse

    return JSONResponse({"detail": str(exc)}, status_code=status_for(exc))
