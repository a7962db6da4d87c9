"""The schemas of the HTTP API's answers (200 bodies), for its OpenAPI description (http_schema.py).

Every field a client may rely on is required; a server file path (``uri``) is never in an answer.
"""

from __future__ import annotations

from typing import Any

_STRING = {"type": "string"}
_NULLABLE_STRING = {"type": ["string", "null"]}
_NUMBERS = {"type": "object", "additionalProperties": {"type": "number"}}


def _hit() -> dict[str, Any]:
    common = {
        "id": _STRING,
        "article_id": _NULLABLE_STRING,
        "score": {"type": "number"},
        "confidence": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
        "routes": _NUMBERS,
        "contributions": _NUMBERS,
    }
    required = ["kind", *common]
    passage = {
        "type": "object",
        "required": [*required, "text", "section"],
        "properties": {
            **common,
            "kind": {"const": "passage"},
            "text": _STRING,
            "section": _NULLABLE_STRING,
        },
    }
    image = {
        "type": "object",
        "required": [*required, "url", "thumbnail_url"],
        # The server's file path (``uri``) is never sent.
        "not": {"required": ["uri"]},
        "properties": {
            **common,
            "kind": {"const": "image"},
            "caption": _NULLABLE_STRING,
            "section": {
                **_NULLABLE_STRING,
                "description": "The article section the image is placed in (null: the lead, "
                "or not known).",
            },
            "article_ids": {
                "type": "array",
                "items": _STRING,
                "description": "Every article using this picture (identical files and "
                "resized or re-encoded copies), best first.",
            },
            "url": _STRING,
            "thumbnail_url": _STRING,
        },
    }
    return {"oneOf": [passage, image]}


def search_answer() -> dict[str, Any]:
    hit = _hit()
    article = {
        "type": "object",
        "required": ["id", "title"],
        "properties": {
            "id": _STRING,
            "title": _STRING,
            "url": _NULLABLE_STRING,
            "license": _NULLABLE_STRING,
        },
    }
    section = {
        "type": "object",
        "required": ["title", "score", "passages", "images"],
        "properties": {
            "title": {**_NULLABLE_STRING, "description": "The section heading (null: the lead)."},
            "score": {"type": "number"},
            "passages": {"type": "array", "items": hit},
            "images": {"type": "array", "items": hit},
        },
    }
    group = {
        "type": "object",
        "required": [
            "article",
            "score",
            "confidence",
            "contributions",
            "passages",
            "images",
            "sections",
        ],
        "properties": {
            "article": article,
            "score": {"type": "number"},
            "confidence": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
            "contributions": _NUMBERS,
            "passages": {"type": "array", "items": hit},
            "images": {"type": "array", "items": hit},
            "sections": {
                "type": "array",
                "items": section,
                "description": "The article by section, best first: each section's passages "
                "and the images placed in it, together.",
            },
        },
    }
    return {
        "type": "object",
        "required": ["query", "articles", "hits", "routes", "timings_ms", "warnings"],
        "properties": {
            "query": {
                "type": "object",
                "required": ["text", "image", "k", "min_score"],
                "properties": {
                    "text": _NULLABLE_STRING,
                    "image": _NULLABLE_STRING,
                    "k": {"type": "integer", "minimum": 1},
                    "min_score": {"type": ["number", "null"]},
                },
            },
            "articles": {"type": "array", "items": group},
            "hits": {"type": "array", "items": hit},
            "routes": {"type": "object", "additionalProperties": _STRING},
            "timings_ms": _NUMBERS,
            "warnings": {"type": "array", "items": _STRING},
        },
    }


def article_answer() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["article", "passages", "images"],
        "properties": {
            "article": {
                "type": "object",
                "required": ["id", "title", "url", "license", "source"],
                "properties": {
                    "id": _STRING,
                    "title": _STRING,
                    "url": _NULLABLE_STRING,
                    "license": _NULLABLE_STRING,
                    "source": _NULLABLE_STRING,
                },
            },
            "passages": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id", "text", "position", "section"],
                    "properties": {
                        "id": _STRING,
                        "text": _STRING,
                        "position": {"type": "integer", "minimum": 0},
                        "section": _NULLABLE_STRING,
                    },
                },
            },
            "images": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id", "kind", "url", "thumbnail_url"],
                    "not": {"required": ["uri"]},
                    "properties": {
                        "id": _STRING,
                        "kind": {"const": "image"},
                        "caption": _NULLABLE_STRING,
                        "alt_text": _NULLABLE_STRING,
                        "width": {"type": ["integer", "null"], "minimum": 0},
                        "height": {"type": ["integer", "null"], "minimum": 0},
                        "license": _NULLABLE_STRING,
                        "url": _STRING,
                        "thumbnail_url": _STRING,
                    },
                },
            },
        },
    }


def stats_answer() -> dict[str, Any]:
    count = {"type": "integer", "minimum": 0}
    return {
        "type": "object",
        "required": ["counts", "models", "chunking", "format_version", "warnings"],
        "properties": {
            "counts": {
                "type": "object",
                "required": ["articles", "passages", "images"],
                "properties": {
                    "articles": count,
                    "passages": count,
                    "images": {**count, "description": "Image rows: each use of a picture."},
                    "pictures": {
                        **count,
                        "description": "Distinct image files, each stored once (index format "
                        "4 on; absent before).",
                    },
                },
            },
            "models": {"type": "object"},
            "chunking": {"type": "object"},
            "format_version": {"type": "integer"},
            "warnings": {"type": "array", "items": _STRING},
        },
    }


def health_answer() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["status", "version"],
        "properties": {"status": {"const": "ok"}, "version": _STRING},
    }
