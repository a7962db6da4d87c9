"""``POST /search``: a JSON body or a multipart form in, the CLI's JSON shape out.

Thin: the request becomes one :class:`SearchParams` (http_params.py), a query image is decoded
with ``Index.decode_image`` (outside the search slots, at the size the indexer decoded at) and the
search is ``Index.search``, run in a slot (http_deps.SearchSlots). The body is read against the
upload limit and the request timeout before any of it is parsed.
"""

# No ``from __future__ import annotations``: FastAPI reads these signatures at runtime.

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from ..api import Index
from ..types import valid_unicode
from .http_deps import PROTECTED, IndexDep, SearchSlots, SettingsDep, SlotsDep, json_response
from .http_params import (
    HTTPProblem,
    SearchParams,
    check_filters,
    params_from_json,
    parse_k,
    parse_method,
    parse_min_score,
    parse_weights_value,
    response_dict,
)
from .http_schema import documented, form_schema, json_schema
from .http_settings import ServerSettings

_FORM_SLACK = 64 * 1024  # multipart boundaries and text fields around an uploaded image


async def read_body(request: Request, limit: int, settings: ServerSettings) -> bytes:
    """The body, at most ``limit`` bytes (413), all of it within the request timeout (408)."""
    declared = request.headers.get("content-length", "")
    too_big = HTTPProblem(
        413,
        f"request too large: an uploaded image may be at most {settings.max_upload_bytes} bytes",
    )
    if declared.isdigit() and int(declared) > limit:
        raise too_big
    body = bytearray()

    async def read() -> None:
        async for chunk in request.stream():
            body.extend(chunk)
            if len(body) > limit:
                raise too_big

    timeout = settings.request_timeout
    try:  # a client that trickles its body must not hold the server forever
        await asyncio.wait_for(read(), timeout)
    except asyncio.TimeoutError:
        raise HTTPProblem(408, f"request body not received within {timeout:g} s") from None
    return bytes(body)


async def params_from_form(request: Request, body: bytes, max_k: int) -> SearchParams:
    """A multipart (or url-encoded) form, as the web page sends it."""
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


def decode_query_image(
    data: bytes, index: Index, settings: ServerSettings, slots: SearchSlots
) -> Any:
    """The uploaded query image, decoded as the indexer decoded the indexed ones."""
    if len(data) > settings.max_upload_bytes:
        raise HTTPProblem(
            413, f"image too large: {len(data)} bytes (limit {settings.max_upload_bytes})"
        )
    # The first use of the image model may load it, hence a slot; later ones need neither, and
    # the image is decoded outside the slots.
    slots.once("image model", lambda: index.image_encoder)
    return index.decode_image(
        data, max_pixels=settings.max_pixels, max_bytes=settings.max_upload_bytes
    )


def run_search(
    params: SearchParams, index: Index, settings: ServerSettings, slots: SearchSlots
) -> dict[str, Any]:
    picture = None
    if params.image is not None:
        picture = decode_query_image(params.image, index, settings, slots)

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
        return found, index.warnings()

    result, said = slots.run(search)
    query = {
        "text": params.text,
        "image": params.image_name,
        "k": params.k,
        "min_score": params.min_score,
    }
    return response_dict(result, query, said)


async def search(
    request: Request, index: IndexDep, settings: SettingsDep, slots: SlotsDep
) -> Response:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    upload = settings.max_upload_bytes
    if kind in ("multipart/form-data", "application/x-www-form-urlencoded"):
        body = await read_body(request, upload + _FORM_SLACK, settings)
        params = await params_from_form(request, body, settings.max_k)
    elif kind in ("application/json", ""):
        body = await read_body(request, upload * 4 // 3 + _FORM_SLACK, settings)
        params = params_from_json(body, settings.max_k)
    else:
        raise HTTPProblem(415, "send application/json or multipart/form-data (a form)")
    answer = await run_in_threadpool(run_search, params, index, settings, slots)
    return json_response(answer)


def router(settings: ServerSettings) -> APIRouter:
    """``POST /search``, its request body documented for ``settings`` (max_k, the key)."""
    body = {
        "required": True,
        "content": {
            "application/json": {"schema": json_schema(settings.max_k)},
            "multipart/form-data": {"schema": form_schema(settings.max_k)},
        },
    }
    routes = APIRouter(dependencies=PROTECTED)
    routes.add_api_route(
        "/search",
        search,
        methods=["POST"],
        summary="Search by text, an image, or both",
        openapi_extra={"requestBody": body},
        **documented("search", needs_key=settings.api_key is not None),
    )
    return routes
