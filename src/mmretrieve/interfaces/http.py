"""The HTTP API and the web page (DESIGN §8): ``app = create_app(index)``.

Thin: every endpoint calls the Python API (``Index.search``, ``Index.stats``) or reads rows from
the index's store by id, and holds no retrieval logic. The only files ever served are the page's
own assets and indexed images, found by looking their id up in the store: a client-given id is
never joined into a path.

    >>> from mmretrieve import Index                                  # doctest: +SKIP
    >>> app = create_app(Index.open("./idx", create=False))            # doctest: +SKIP
    >>> import uvicorn; uvicorn.run(app, host="127.0.0.1", port=8000)  # doctest: +SKIP
"""

# No ``from __future__ import annotations`` here, on purpose: FastAPI evaluates endpoint
# annotations at runtime in the module's globals, and our endpoints are defined inside
# create_app with FastAPI's types imported lazily (the ``server`` extra is optional).

import asyncio
import contextlib
import json
import mimetypes
import os
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from importlib import resources
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

from ..encoders.base import input_edge
from ..errors import MMRetrieveError, require
from ..types import valid_unicode
from .http_params import (
    HTTPProblem,
    SearchParams,
    check_filters,
    json_default,
    key_matches,
    params_from_json,
    parse_k,
    parse_method,
    parse_min_score,
    parse_weights_value,
    random_model_warnings,
    response_dict,
    status_for,
)
from .http_schema import documented, form_schema, json_schema, precise_openapi
from .thumbnails import DEFAULT_MAX_BYTES, DEFAULT_SIZE, ThumbnailCache

T = TypeVar("T")


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


if TYPE_CHECKING:
    from fastapi import FastAPI

    from ..api import Index

DEFAULT_MAX_UPLOAD_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_PIXELS = 40_000_000
DEFAULT_MAX_K = 100
DEFAULT_REQUEST_TIMEOUT = 30.0
# Searches answered at once. Their models run on shared batchers (retrieval/batching.py) and
# their store reads on a shared pool, so more at once adds batching, not model copies; past this
# many a request waits (up to request_timeout, then 503), which keeps memory bounded.
DEFAULT_MAX_CONCURRENT = 16
_FORM_SLACK = 64 * 1024  # multipart boundaries and text fields around an uploaded image
UI_ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
_PAGE_CSP = (
    "default-src 'self'; img-src 'self' blob: data:; script-src 'self'; style-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


def _ui_asset(name: str) -> bytes:
    return resources.files(__package__).joinpath("ui").joinpath(name).read_bytes()  # 3.10: one part


def create_app(
    index: "Index",
    *,
    api_key: str | None = None,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_k: int = DEFAULT_MAX_K,
    cors_origins: Sequence[str] | None = None,
    thumbnail_size: int = DEFAULT_SIZE,
    thumbnail_cache_dir: str | None = None,
    thumbnail_cache_bytes: int = DEFAULT_MAX_BYTES,
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
    max_concurrent: int = DEFAULT_MAX_CONCURRENT,
) -> "FastAPI":
    """A FastAPI app serving ``index``: the search API, item and thumbnail endpoints, and the page.

    ``api_key``: when set, every endpoint except ``/``, its assets, ``/health`` and the API docs
    needs it in ``X-API-Key`` (or ``Authorization: Bearer``). ``max_upload_bytes`` caps an
    uploaded image (413 above it); ``max_pixels`` caps its pixel count (422). ``cors_origins``:
    origins allowed to call the API from other sites (none by default). Thumbnails are at most
    ``thumbnail_size`` pixels on their longest side, cached in ``thumbnail_cache_dir`` (a private
    temporary directory by default) holding at most ``thumbnail_cache_bytes``.
    ``request_timeout``: seconds a client has to send a request body (408 after it), and a
    search may wait for a free slot (503 after it). ``max_concurrent``: searches answered at
    once; the process holds one copy of each model whatever this is.
    """
    require("fastapi", "server")
    require("multipart", "server", "python-multipart")
    from fastapi import Depends, FastAPI, Request
    from fastapi.responses import FileResponse, JSONResponse, Response
    from starlette.concurrency import run_in_threadpool

    from .. import __version__
    from ..documents.images import load_image

    assets = {name: _ui_asset(name) for name in UI_ASSETS}
    thumbs = ThumbnailCache(
        thumbnail_cache_dir,
        size=thumbnail_size,
        max_bytes=thumbnail_cache_bytes,
        max_pixels=index.settings.max_image_pixels,
    )
    if (
        isinstance(max_concurrent, bool)
        or not isinstance(max_concurrent, int)
        or max_concurrent < 1
    ):
        raise ValueError(f"max_concurrent must be a whole number >= 1, got {max_concurrent!r}")
    slots = threading.BoundedSemaphore(max_concurrent)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        thumbs.close()  # a temporary cache goes with the server

    app = FastAPI(
        lifespan=lifespan,
        title="mmretrieve",
        version=__version__,
        description="Search articles, passages and images by text, an image, or both. "
        "The web page is at /.",
    )
    app.add_middleware(HeadAsGet)
    precise_openapi(app)
    keyed = api_key is not None  # the schema lists 401 only where a key is asked for
    if cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["content-type", "x-api-key", "authorization"],
        )

    @app.exception_handler(HTTPProblem)
    async def _problem(request: Request, exc: HTTPProblem) -> Response:
        return JSONResponse({"detail": exc.message}, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(MMRetrieveError)
    async def _mm_error(request: Request, exc: MMRetrieveError) -> Response:
        return JSONResponse({"detail": str(exc)}, status_code=status_for(exc))

    def check_key(request: Request) -> None:
        if not key_matches(api_key, request.headers):
            raise HTTPProblem(
                401,
                "missing or wrong API key: send it in the X-API-Key header",
                {"WWW-Authenticate": "Bearer"},
            )

    protected = [Depends(check_key)]

    def json_response(data: Any, status: int = 200) -> Response:
        body = json.dumps(data, ensure_ascii=False, default=json_default)
        return Response(body, status_code=status, media_type="application/json")

    # -- page ----------------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    def page() -> Response:
        return Response(
            assets["index.html"],
            media_type=UI_ASSETS["index.html"],
            headers={"Content-Security-Policy": _PAGE_CSP, "X-Content-Type-Options": "nosniff"},
        )

    @app.get("/ui/{name}", include_in_schema=False)
    def ui_asset(name: str) -> Response:
        if name not in assets or name == "index.html":  # a fixed list: no path is ever built
            raise HTTPProblem(404, "no such file")
        return Response(
            assets[name],
            media_type=UI_ASSETS[name],
            headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"},
        )

    # -- service -------------------------------------------------------------------------
    @app.get("/health", summary="Liveness check", **documented("health", needs_key=keyed))
    def health() -> Response:
        return json_response({"status": "ok", "version": __version__})

    @app.get(
        "/stats",
        summary="What the index holds and how it was built",
        dependencies=protected,
        **documented("stats", needs_key=keyed),
    )
    def stats() -> Response:
        return json_response({**index.stats(), "warnings": random_model_warnings(index)})

    # -- search --------------------------------------------------------------------------
    async def read_body(request: Request, limit: int) -> bytes:
        declared = request.headers.get("content-length", "")
        too_big = HTTPProblem(
            413, f"request too large: an uploaded image may be at most {max_upload_bytes} bytes"
        )
        if declared.isdigit() and int(declared) > limit:
            raise too_big
        body = bytearray()

        async def read() -> None:
            async for chunk in request.stream():
                body.extend(chunk)
                if len(body) > limit:
                    raise too_big

        try:  # a client that trickles its body must not hold the server forever
            await asyncio.wait_for(read(), request_timeout)
        except asyncio.TimeoutError:
            raise HTTPProblem(
                408, f"request body not received within {request_timeout:g} s"
            ) from None
        return bytes(body)

    async def params_from_form(request: Request, body: bytes) -> SearchParams:
        from starlette.datastructures import UploadFile

        async def replay() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        try:
            form = await Request(request.scope, replay).form(max_files=1, max_fields=64)
        except Exception as exc:  # malformed multipart bodies raise several types
            raise HTTPProblem(422, f"cannot read the form: {exc}") from None
        upload = form.get("image")
        image = name = None
        if isinstance(upload, UploadFile):
            image = await upload.read()
            name = upload.filename or "upload"
            if not image and not upload.filename:  # an empty file input in a browser form
                image = name = None
        elif isinstance(upload, str) and upload:
            raise HTTPProblem(422, "image must be an uploaded file (multipart file field)")
        text = form.get("text")
        ids = [str(i) for i in form.getlist("article_id") if i]
        fields = [str(f) for f in form.getlist("filter") if isinstance(f, str) and f.strip()]
        return SearchParams(
            text=valid_unicode(text) if isinstance(text, str) else None,
            image=image,
            image_name=name,
            k=parse_k(form.get("k") or 10, max_k),
            weights=parse_weights_value(form.get("weights")),
            method=parse_method(form.get("method")),
            min_score=parse_min_score(form.get("min_score")),
            article_ids=ids or None,
            filters=check_filters(fields),
        )

    def locked(work: Callable[[], T]) -> T:
        # Up to max_concurrent searches at once; one that cannot start in time is refused, not
        # queued forever.
        if not slots.acquire(timeout=request_timeout):
            raise HTTPProblem(503, "the server is busy: try again", {"Retry-After": "1"})
        try:
            return work()
        finally:
            slots.release()

    edge: list[int | None] = []  # the image model's input edge, once known

    def image_edge() -> int | None:
        # The first lookup may load the image model, hence the lock; later ones need neither.
        if not edge:
            edge.append(locked(lambda: input_edge(index.image_encoder)))
        return edge[0]

    def run_search(params: SearchParams) -> dict[str, Any]:
        picture = None
        if params.image is not None:
            if len(params.image) > max_upload_bytes:
                raise HTTPProblem(
                    413, f"image too large: {len(params.image)} bytes (limit {max_upload_bytes})"
                )
            # Decoded outside the lock, at the size the indexer decoded at.
            picture = load_image(
                params.image,
                max_pixels=max_pixels,
                max_bytes=max_upload_bytes,
                fit_edge=image_edge(),
            )

        def search() -> tuple[Any, list[str]]:
            found = index.search(
                text=params.text,
                image=picture,
                k=params.k,
                weights=params.weights,
                method=params.method,
                article_ids=params.article_ids,
                min_score=params.min_score,
                filters=params.filters,
            )
            return found, random_model_warnings(index)

        result, warnings = locked(search)
        query = {
            "text": params.text,
            "image": params.image_name,
            "k": params.k,
            "min_score": params.min_score,
        }
        return response_dict(result, query, warnings)

    search_body = {
        "required": True,
        "content": {
            "application/json": {"schema": json_schema(max_k)},
            "multipart/form-data": {"schema": form_schema(max_k)},
        },
    }

    @app.post(
        "/search",
        summary="Search by text, an image, or both",
        dependencies=protected,
        openapi_extra={"requestBody": search_body},
        **documented("search", needs_key=keyed),
    )
    async def search(request: Request) -> Response:
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind in ("multipart/form-data", "application/x-www-form-urlencoded"):
            body = await read_body(request, max_upload_bytes + _FORM_SLACK)
            params = await params_from_form(request, body)
        elif kind in ("application/json", ""):
            body = await read_body(request, max_upload_bytes * 4 // 3 + _FORM_SLACK)
            params = params_from_json(body, max_k)
        else:
            raise HTTPProblem(415, "send application/json or multipart/form-data (a form)")
        return json_response(await run_in_threadpool(run_search, params))

    # -- items ---------------------------------------------------------------------------
    def image_row(image_id: str) -> dict[str, Any]:
        found = index.image(image_id)
        if found is None:
            raise HTTPProblem(404, f"no image with id {image_id!r}")
        path = found.uri or ""
        # The indexed path is a real path (sources resolve links, and refuse links that leave
        # the corpus): one that now resolves elsewhere was swapped for a link after indexing.
        if not (os.path.isabs(path) and os.path.isfile(path)) or os.path.realpath(path) != path:
            raise HTTPProblem(404, f"the file of image {image_id!r} is no longer available")
        return {"id": found.id, "uri": path, "sha256": found.sha256}

    @app.get(
        "/images/{image_id:path}/thumbnail",
        summary="A small JPEG of an indexed image",
        dependencies=protected,
        response_class=Response,
        **documented("thumbnail", needs_key=keyed),
    )
    def thumbnail(image_id: str) -> Response:
        row = image_row(image_id)
        path = thumbs.get(str(row["sha256"]), row["uri"])
        return FileResponse(
            path,
            media_type="image/jpeg",
            headers={
                "Cache-Control": "private, max-age=86400",
                "X-Content-Type-Options": "nosniff",
            },
        )

    @app.get(
        "/images/{image_id:path}",
        summary="An indexed image's original bytes",
        dependencies=protected,
        response_class=Response,
        **documented("image", needs_key=keyed),
    )
    def image(image_id: str) -> Response:
        row = image_row(image_id)
        media = mimetypes.guess_type(row["uri"])[0] or ""
        if not media.startswith("image/"):
            media = "application/octet-stream"
        return FileResponse(
            row["uri"],
            media_type=media,
            headers={"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"},
        )

    @app.get(
        "/articles/{article_id:path}",
        summary="An article with its passages and images",
        dependencies=protected,
        **documented("article", needs_key=keyed),
    )
    def article(article_id: str) -> Response:
        found = index.article(article_id)
        if found is None:
            raise HTTPProblem(404, f"no article with id {article_id!r}")
        art, passage_list, image_list = found
        article_fields = ("id", "title", "url", "license", "source")
        passage_fields = ("id", "text", "position", "section")
        image_fields = ("id", "caption", "alt_text", "width", "height", "license")
        passages = [{f: getattr(p, f) for f in passage_fields} for p in passage_list]
        images = []
        for img in image_list:
            url = f"/images/{quote(img.id, safe='')}"
            item = {f: getattr(img, f) for f in image_fields}
            item.update(kind="image", url=url, thumbnail_url=url + "/thumbnail")
            images.append(item)
        body = {"article": {f: getattr(art, f) for f in article_fields}}
        return json_response({**body, "passages": passages, "images": images})

    app.state.index = index
    app.state.thumbnails = thumbs
    return app
