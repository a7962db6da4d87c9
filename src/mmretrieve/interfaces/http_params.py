"""Request parsing and response shaping for the HTTP API (no FastAPI needed to import).

A search request arrives as JSON or as a multipart form; both become one :class:`SearchParams`.
Responses keep the CLI's JSON shape (``render.result_dict``) with image URLs in place of server
file paths.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from ..errors import (
    BadInputError,
    IndexMismatchError,
    IndexNotFoundError,
    MMRetrieveError,
    ModelLoadError,
    ModelNotFoundError,
    UsageError,
)
from ..retrieval.fusion import METHODS
from ..retrieval.weights import MAX_WEIGHT  # http_schema declares it; Python and CLI refuse more
from ..types import valid_unicode
from .render import result_dict

FUSION_METHODS = METHODS


class HTTPProblem(Exception):
    """An error answered with ``status`` and ``{"detail": message}``."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


@dataclass(frozen=True)
class SearchParams:
    """One search request, whether it came as JSON or as a multipart form."""

    text: str | None
    image: bytes | None
    image_name: str | None
    k: int
    weights: dict[str, float] | None
    method: str | None
    article_ids: list[str] | None
    min_score: float | None = None
    filters: dict[str, Any] | list[str] | None = None  # metadata filters (retrieval/filters.py)


def status_for(exc: MMRetrieveError) -> int:
    """The HTTP status of a user-facing mmretrieve error."""
    if isinstance(exc, (UsageError, BadInputError)):
        return 422
    if isinstance(exc, IndexNotFoundError):
        return 404
    if isinstance(exc, IndexMismatchError):
        return 409
    if isinstance(exc, (ModelNotFoundError, ModelLoadError)):
        return 503
    return 500


def key_matches(expected: str | None, headers: Mapping[str, str]) -> bool:
    """True when no key is configured, or ``X-API-Key`` / ``Authorization: Bearer`` carries it.
    Compared in constant time."""
    if expected is None:
        return True
    given = headers.get("x-api-key")
    if given is None:
        scheme, _, token = (headers.get("authorization") or "").partition(" ")
        given = token.strip() if scheme.lower() == "bearer" else None
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def parse_k(value: Any, max_k: int) -> int:
    """A whole number (JSON integer, or digits in a form field); 2.5, true or "two" are not."""
    if isinstance(value, str) and value.strip().lstrip("+").isdigit():
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise HTTPProblem(422, f"k must be a whole number, got {value!r}")
    k = value
    if not 1 <= k <= max_k:
        raise HTTPProblem(422, f"k must be between 1 and {max_k}, got {k}")
    return k


def parse_min_score(value: Any) -> float | None:
    """A number from 0 to 1 (JSON number or form text), or nothing."""
    if value in (None, ""):
        return None
    if isinstance(value, bool):
        raise HTTPProblem(422, "min_score must be a number from 0 to 1")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise HTTPProblem(422, f"min_score must be a number from 0 to 1, got {value!r}") from None
    if not 0.0 <= number <= 1.0:  # NaN fails this too
        raise HTTPProblem(422, f"min_score must be a number from 0 to 1, got {value!r}")
    return number


def parse_method(value: Any) -> str | None:
    if value in (None, ""):
        return None
    if value not in FUSION_METHODS:
        raise HTTPProblem(422, f"method must be one of {', '.join(FUSION_METHODS)}")
    return str(value)


def parse_weights_value(value: Any) -> dict[str, float] | None:
    """A mapping, a JSON object string, or ``route=w,route=w`` text. Each weight is a number
    from 0 to MAX_WEIGHT: weights are relative, and a huge one (1e308) makes fused scores
    overflow to Infinity or NaN, which JSON cannot carry."""
    from ..retrieval.weights import parse_weights

    if value in (None, ""):
        return None
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("{"):
            try:
                value = json.loads(text)
            except ValueError:
                raise HTTPProblem(422, "weights is not valid JSON") from None
        else:
            value = parse_weights([part for part in text.split(",") if part.strip()])
    if not isinstance(value, Mapping):
        raise HTTPProblem(422, "weights must be an object mapping route names to numbers")
    out: dict[str, float] = {}
    for name, w in value.items():
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w):
            raise HTTPProblem(422, f"weight for {name!r} must be a finite number, got {w!r}")
        if not 0 <= w <= MAX_WEIGHT:
            raise HTTPProblem(
                422, f"weight for {name!r} must be from 0 to {MAX_WEIGHT:g}, got {w!r}"
            )
        out[str(name)] = float(w)
    return out or None


def _no_constants(name: str) -> Any:
    """NaN, Infinity and -Infinity are not JSON (Python's parser accepts them by default)."""
    raise ValueError(f"{name} is not a JSON number")


def _decode_base64(data: str) -> bytes:
    if data.startswith("data:"):  # a data: URL from a browser
        data = data.partition(",")[2]
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise HTTPProblem(422, "image is not valid base64") from None


_JSON_TYPES: tuple[tuple[str, Any, str], ...] = (
    ("k", (int, float), "a whole number"),
    ("min_score", (int, float), "a number from 0 to 1"),
    ("weights", Mapping, "an object mapping route names to numbers"),
    ("method", str, f"one of {', '.join(FUSION_METHODS)}"),
)


def _json_types(data: Mapping[str, Any]) -> None:
    """A JSON body's values have the JSON types of its schema (http_schema.json_schema): the
    text that a multipart form has to use ("5", "", "route=w") is refused. null means the
    default, except for k."""
    for name, kind, what in _JSON_TYPES:
        if name not in data or (data[name] is None and name != "k"):
            continue
        value = data[name]
        if isinstance(value, bool) or not isinstance(value, kind) or value == "":
            raise HTTPProblem(422, f"{name} must be {what}, got {value!r}")


def params_from_json(body: bytes, max_k: int) -> SearchParams:
    """Parse a JSON search request: text, image (base64), k, weights, method, filters."""
    try:
        data = json.loads(body or b"null", parse_constant=_no_constants)
    except ValueError as exc:
        raise HTTPProblem(422, f"the request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise HTTPProblem(422, "the request body must be a JSON object")
    unknown = set(data) - {"text", "image", "k", "weights", "method", "filters", "min_score"}
    if unknown:
        raise HTTPProblem(422, f"unknown fields: {', '.join(sorted(unknown))}")
    text, image = data.get("text"), data.get("image")
    if text is not None and not isinstance(text, str):
        raise HTTPProblem(422, "text must be a string")
    if text is not None:
        text = valid_unicode(text)  # JSON's "\ud800" is a lone surrogate: no encoder takes it
    if image is not None and not isinstance(image, str):
        raise HTTPProblem(422, "image must be a base64 string")
    _json_types(data)
    filters = data.get("filters")
    if filters is None:
        filters = {}
    if not isinstance(filters, dict):
        raise HTTPProblem(422, "filters must be an object of field: value")
    filters = dict(filters)
    ids = filters.pop("article_ids", None)
    if ids is not None and not (isinstance(ids, list) and all(isinstance(i, str) for i in ids)):
        raise HTTPProblem(422, "filters.article_ids must be a list of strings")
    fields = check_filters(filters)
    return SearchParams(
        text=text,
        image=_decode_base64(image) if image else None,
        image_name="base64 image" if image else None,
        k=parse_k(data.get("k", 10), max_k),
        weights=parse_weights_value(data.get("weights")),
        method=parse_method(data.get("method")),
        article_ids=ids,
        min_score=parse_min_score(data.get("min_score")),
        filters=fields,
    )


def check_filters(filters: dict[str, Any] | list[str]) -> dict[str, Any] | list[str] | None:
    """Metadata filters as given, once they parse (a malformed one is a 422 naming it)."""
    from ..retrieval.filters import parse_filters

    try:
        parse_filters(filters)
    except UsageError as exc:
        raise HTTPProblem(422, str(exc)) from None
    return filters or None


def _image_links(hit: dict[str, Any]) -> None:
    """Replace a server file path with the URLs that serve the image (paths stay private)."""
    if hit.get("kind") != "image":
        return
    hit.pop("uri", None)
    url = f"/images/{quote(hit['id'], safe='')}"
    hit.update(url=url, thumbnail_url=f"{url}/thumbnail")


def response_dict(result: Any, query: Mapping[str, Any], warnings: Sequence[str]) -> dict[str, Any]:
    """The CLI's JSON shape (render.result_dict), with image URLs instead of file paths."""
    out = result_dict(result, query)
    for group in out["articles"]:
        for hit in group["images"]:
            _image_links(hit)
        for section in group["sections"]:
            for hit in section["images"]:
                _image_links(hit)
    for hit in out["hits"]:
        _image_links(hit)
    out["warnings"] = list(warnings)
    return out


def json_default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)
