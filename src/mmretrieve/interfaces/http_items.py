"""Reading the index by id: ``GET /stats``, ``/articles/{id}``, ``/images/{id}`` and its
thumbnail. All behind the API key when the server has one.

The only files served are indexed images, found by looking their id up in the store: a
client-given id is never joined into a path.
"""

# No ``from __future__ import annotations``: FastAPI reads these signatures at runtime.

import mimetypes
import os
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter
from fastapi.responses import FileResponse, Response

from ..api import Index
from .http_deps import PROTECTED, IndexDep, ThumbnailsDep, json_response
from .http_params import HTTPProblem
from .http_schema import documented
from .http_settings import ServerSettings


def stats(index: IndexDep) -> Response:
    return json_response({**index.stats(), "warnings": index.warnings()})


def image_row(index: Index, image_id: str) -> dict[str, Any]:
    """The indexed image's id, file and content hash; 404 when it or its file is gone."""
    found = index.image(image_id)
    if found is None:
        raise HTTPProblem(404, f"no image with id {image_id!r}")
    path = found.uri or ""
    # The indexed path is a real path (sources resolve links, and refuse links that leave the
    # corpus): one that now resolves elsewhere was swapped for a link after indexing.
    if not (os.path.isabs(path) and os.path.isfile(path)) or os.path.realpath(path) != path:
        raise HTTPProblem(404, f"the file of image {image_id!r} is no longer available")
    return {"id": found.id, "uri": path, "sha256": found.sha256}


def thumbnail(image_id: str, index: IndexDep, thumbnails: ThumbnailsDep) -> Response:
    row = image_row(index, image_id)
    path = thumbnails.get(str(row["sha256"]), row["uri"])
    return FileResponse(
        path,
        media_type="image/jpeg",
        headers={"Cache-Control": "private, max-age=86400", "X-Content-Type-Options": "nosniff"},
    )


def image(image_id: str, index: IndexDep) -> Response:
    row = image_row(index, image_id)
    media = mimetypes.guess_type(row["uri"])[0] or ""
    if not media.startswith("image/"):
        media = "application/octet-stream"
    return FileResponse(
        row["uri"],
        media_type=media,
        headers={"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )


def article(article_id: str, index: IndexDep) -> Response:
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


def router(settings: ServerSettings) -> APIRouter:
    """The item endpoints, documented for ``settings`` (401 is listed when a key is asked)."""
    keyed = settings.api_key is not None
    routes = APIRouter(dependencies=PROTECTED)
    routes.add_api_route(
        "/stats",
        stats,
        methods=["GET"],
        summary="What the index holds and how it was built",
        **documented("stats", needs_key=keyed),
    )
    routes.add_api_route(  # before /images/{id}, whose id may end in "/thumbnail"
        "/images/{image_id:path}/thumbnail",
        thumbnail,
        methods=["GET"],
        summary="A small JPEG of an indexed image",
        response_class=Response,
        **documented("thumbnail", needs_key=keyed),
    )
    routes.add_api_route(
        "/images/{image_id:path}",
        image,
        methods=["GET"],
        summary="An indexed image's original bytes",
        response_class=Response,
        **documented("image", needs_key=keyed),
    )
    routes.add_api_route(
        "/articles/{article_id:path}",
        article,
        methods=["GET"],
        summary="An article with its passages and images",
        **documented("article", needs_key=keyed),
    )
    return routes
