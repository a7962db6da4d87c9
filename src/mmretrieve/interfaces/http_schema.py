"""The OpenAPI description of the HTTP API: request bodies, answers and errors (no FastAPI needed).
The answers' schemas are in http_answers.py.

Precise enough that a client (or a fuzzer, tests/integration/test_api_fuzz.py) can tell a valid
request from an invalid one without calling the server, and check every answer: each operation
lists every status it can answer, and every error body is ``{"detail": "a message"}``.
"""

from __future__ import annotations

from typing import Any

from ..retrieval.weights import ALL_ROUTES, family
from .http_answers import article_answer, health_answer, search_answer, stats_answer
from .http_params import FUSION_METHODS, MAX_WEIGHT

ROUTE_NAMES = [*ALL_ROUTES, *sorted({family(name) for name in ALL_ROUTES})]

_STRING = {"type": "string"}
# Query text must hold something other than whitespace (what Python's str.isspace() calls
# whitespace, spelled out: JSON Schema's and Python's \\s differ).
_WORDS = "[^\\t-\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]"
_NUMBER = r"[0-9]+(\.[0-9]*)?([eE][+-]?[0-9]+)?"
# A search needs words, an image, or both.
_NEEDS_A_QUERY = [
    {"required": ["text"], "properties": {"text": {"type": "string", "pattern": _WORDS}}},
    {"required": ["image"], "properties": {"image": {"type": "string", "minLength": 1}}},
]
# min_score is a calibrated confidence: other fusion methods have none.
_MIN_SCORE_NEEDS_CALIBRATED = {
    "if": {"required": ["min_score"], "properties": {"min_score": {"type": "number"}}},
    "then": {"properties": {"method": {"enum": ["calibrated", None]}}},
}

ERROR = {
    "type": "object",
    "required": ["detail"],
    "properties": {"detail": {"type": "string", "description": "What went wrong, for people."}},
}

ERROR_WHEN = {
    401: "An API key is configured and the request has none, or a wrong one.",
    404: "No such article or image, or the image's file is gone.",
    408: "The request body did not arrive within the request timeout.",
    409: "The index was built with other models than the server was started with.",
    413: "The upload is larger than the server's max_upload_bytes.",
    415: "The body is neither JSON nor a form.",
    422: "An empty query, a bad parameter (k, weights, method, min_score, filters), invalid "
    "base64, or an image that is corrupt, not an image, or has too many pixels.",
    503: "A model cannot be found or loaded, or the server is busy (retry after Retry-After).",
}


def weights_schema() -> dict[str, Any]:
    return {
        "type": ["object", "null"],
        "propertyNames": {"enum": ROUTE_NAMES},
        "additionalProperties": {"type": "number", "minimum": 0, "maximum": MAX_WEIGHT},
        "description": f"Route or route-family weights, numbers from 0 to {MAX_WEIGHT:g}, e.g. "
        '{"text->passage:bm25": 0.5, "image->image": 2}.',
    }


def json_schema(max_k: int) -> dict[str, Any]:
    """The JSON body of ``POST /search``."""
    return {
        "type": "object",
        "additionalProperties": False,
        "anyOf": _NEEDS_A_QUERY,
        **_MIN_SCORE_NEEDS_CALIBRATED,
        "properties": {
            "text": {
                "type": ["string", "null"],
                "description": "Words to search for (needed unless an image is given).",
            },
            "image": {
                "type": ["string", "null"],
                "format": "byte",
                "contentEncoding": "base64",
                "description": "An image file's bytes in base64 (a data: URL works too).",
            },
            "k": {
                "type": "integer",
                "minimum": 1,
                "maximum": max_k,
                "default": 10,
                "description": "How many articles to return.",
            },
            "weights": weights_schema(),
            "method": {
                "type": ["string", "null"],
                "enum": [*FUSION_METHODS, None],
                "description": "Fusion method (default: calibrated).",
            },
            "min_score": {
                "type": ["number", "null"],
                "minimum": 0,
                "maximum": 1,
                "description": "Keep only items and articles whose confidence reaches this "
                "(0.5: as strong as chance gives for 1 unrelated query in 20). Nothing that "
                "relevant: no articles. Needs the calibrated method.",
            },
            "filters": {
                "type": ["object", "null"],
                "description": "Only items whose fields have these values: a field name (add "
                "'!=' for 'not') and a value or a list of values (any of them); a value ending "
                "in '*' is a prefix. Fields: title, url, license, source and any meta.json / "
                'JSONL field; an image\'s license is its own. Example: {"license": '
                '["CC0", "CC BY 4.0"], "lang!=": "de", "url": '
                '"https://en.wikipedia.org/*"}. A field no article has is a 422.',
                "properties": {
                    "article_ids": {
                        "type": ["array", "null"],
                        "items": {"type": "string"},
                        "description": "Only search within these articles.",
                    }
                },
                "additionalProperties": {
                    "anyOf": [
                        {"type": ["string", "number", "boolean"]},
                        {
                            "type": "array",
                            "items": {"type": ["string", "number", "boolean"]},
                            "minItems": 1,
                        },
                    ]
                },
            },
        },
        "example": {"text": "Bat man", "k": 5},
    }


def form_schema(max_k: int) -> dict[str, Any]:
    """The multipart form of ``POST /search`` (what the web page sends)."""
    pair = f" *({'|'.join(ROUTE_NAMES)}) *= *{_NUMBER} *"
    return {
        "type": "object",
        "anyOf": _NEEDS_A_QUERY,
        "properties": {
            "text": _STRING,
            "image": {"type": "string", "format": "binary", "description": "An image file."},
            "k": {"type": "integer", "minimum": 1, "maximum": max_k, "default": 10},
            "weights": {
                "type": "string",
                "pattern": f"^( *|{pair}(,{pair})*| *\\{{.*\\}} *)$",
                "description": "route=w,route=w or a JSON object (as in the JSON body).",
            },
            "method": {"type": "string", "enum": list(FUSION_METHODS)},
            "min_score": {"type": "number", "minimum": 0, "maximum": 1},
            "article_id": {
                "type": "array",
                "items": _STRING,
                "description": "Only search within this article (repeatable).",
            },
            "filter": {
                "type": "array",
                "items": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_.:-]*!?=.*$"},
                "description": "KEY=VALUE, KEY!=VALUE or KEY=PREFIX* (repeatable): only items "
                "whose field has this value (as the JSON body's filters).",
            },
        },
    }


_BINARY = {"type": "string", "format": "binary"}
_LINKS = {  # OpenAPI links: where the ids in a search answer lead
    name: {"operationId": name, "parameters": {param: f"$response.body#/articles/0/{where}"}}
    for name, param, where in (
        ("article", "article_id", "article/id"),
        ("image", "image_id", "images/0/id"),
        ("thumbnail", "image_id", "images/0/id"),
    )
}


def _operations() -> dict[str, tuple[str, dict[str, Any], tuple[int, ...]]]:
    """Each operation's 200 answer (description, media type -> schema) and error statuses (401,
    which needs an API key to be configured, is added by :func:`documented`)."""
    json_only = "application/json"
    return {
        "health": ("The server is up.", {json_only: health_answer()}, ()),
        "stats": ("Counts, models and chunking.", {json_only: stats_answer()}, ()),
        "search": (
            "Ranked articles, with their best passages and images, and the flat fused list.",
            {json_only: search_answer()},
            (408, 409, 413, 415, 422, 503),
        ),
        "article": (
            "The article, its passages in order, and its images with their URLs.",
            {json_only: article_answer()},
            (404,),
        ),
        "image": (
            "The file as indexed (application/octet-stream when its type is not an image's).",
            {"image/*": _BINARY, "application/octet-stream": _BINARY},
            (404,),
        ),
        "thumbnail": (
            "A JPEG at most thumbnail_size pixels on its longest side.",
            {"image/jpeg": _BINARY},
            (404, 422),
        ),
    }


def documented(operation: str, *, needs_key: bool) -> dict[str, Any]:
    """FastAPI route arguments for ``operation``: its ``operation_id`` and ``responses`` (200
    with its schema, each error status with the error body)."""
    description, content, errors = _operations()[operation]
    answer: dict[str, Any] = {
        "description": description,
        "content": {media: {"schema": schema} for media, schema in content.items()},
    }
    if operation == "search":
        answer["links"] = _LINKS
    out: dict[int | str, dict[str, Any]] = {200: answer}
    keyed = (401,) if needs_key and operation != "health" else ()
    for status in sorted((*keyed, *errors)):
        out[status] = {
            "description": ERROR_WHEN[status],
            "content": {"application/json": {"schema": ERROR}},
        }
    return {"operation_id": operation, "responses": out}


def precise_openapi(app: Any) -> None:
    """Make ``app`` (FastAPI) serve its schema without the answers it never sends."""
    fastapi_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = drop_unused_validation_errors(fastapi_openapi())
        return app.openapi_schema

    app.openapi = openapi


def drop_unused_validation_errors(openapi: dict[str, Any]) -> dict[str, Any]:
    """Remove the 422 ``HTTPValidationError`` answer FastAPI adds to every operation with
    parameters: our endpoints validate their own input, so it is never sent (our 422 answers are
    declared where they can happen, with our error body)."""
    ref = "#/components/schemas/HTTPValidationError"
    for operations in openapi.get("paths", {}).values():
        for operation in operations.values():
            answer = operation.get("responses", {}).get("422", {})
            schema = answer.get("content", {}).get("application/json", {}).get("schema", {})
            if schema.get("$ref") == ref:
                del operation["responses"]["422"]
    schemas = openapi.get("components", {}).get("schemas", {})
    if ref not in repr(openapi.get("paths")):
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
    if "components" in openapi and not schemas:
        openapi["components"].pop("schemas", None)
        if not openapi["components"]:
            del openapi["components"]
    return openapi
