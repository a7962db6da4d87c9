"""Route names and how per-query weights apply to them."""

from __future__ import annotations

import math
from collections.abc import Mapping

from ..errors import UsageError

TEXT_PASSAGE_DENSE = "text->passage:dense"
TEXT_PASSAGE_BM25 = "text->passage:bm25"
TEXT_IMAGE_CLIP = "text->image:clip"
TEXT_IMAGE_CAPTION = "text->image:caption"
TEXT_IMAGE_BM25 = "text->image:bm25"
IMAGE_IMAGE = "image->image"
IMAGE_PASSAGE_CLIP = "image->passage:clip_text"
IMAGE_PASSAGE_TITLE = "image->passage:title"
IMAGE_PASSAGE_VOTES = "image->passage:votes"

TEXT_ROUTES = (
    TEXT_PASSAGE_DENSE,
    TEXT_PASSAGE_BM25,
    TEXT_IMAGE_CLIP,
    TEXT_IMAGE_CAPTION,
    TEXT_IMAGE_BM25,
)
IMAGE_ROUTES = (IMAGE_IMAGE, IMAGE_PASSAGE_CLIP, IMAGE_PASSAGE_TITLE, IMAGE_PASSAGE_VOTES)
ALL_ROUTES = TEXT_ROUTES + IMAGE_ROUTES

# Chosen by the fusion study on mixed_dev and squad_dev (docs/QUALITY.md), for the calibrated
# fusion, which also scales each route by how much it found for the query:
# - BM25 over passages weighs as much as dense: article-level nDCG@10 on mixed_dev's passage
#   queries 91.1 against 88.3 at half weight (BM25 alone 89.5).
# - A caption matched by the BGE query counts as much as a passage (they share one space), BM25
#   over captions a quarter: picture queries 85.6, against 83.0 with both at half weight.
# - The image->passage routes are views of one signal (the picture), so together they weigh much
#   less than image->image. The two that compare the picture with text in CLIP space (0.1 each)
#   could only be measured with random CLIP weights, where they are noise; with 0.3/0.2 they
#   cost photo queries 3-4 points. Measure again with real CLIP weights before raising them.
# Weights are relative; a huge one (1e308) overflows fused scores to Infinity and NaN.
MAX_WEIGHT = 1e6

DEFAULT_WEIGHTS: Mapping[str, float] = {
    TEXT_PASSAGE_DENSE: 1.0,
    TEXT_PASSAGE_BM25: 1.0,
    TEXT_IMAGE_CLIP: 0.5,
    TEXT_IMAGE_CAPTION: 1.0,
    TEXT_IMAGE_BM25: 0.25,
    IMAGE_IMAGE: 1.0,
    IMAGE_PASSAGE_CLIP: 0.1,
    IMAGE_PASSAGE_TITLE: 0.1,
    IMAGE_PASSAGE_VOTES: 0.2,
}


def family(name: str) -> str:
    """``text->passage:bm25`` -> ``text->passage``: the routes that rank the same items."""
    return name.split(":", 1)[0]


def query_part(name: str) -> str:
    """``text->passage:bm25`` -> ``text``: the part of the query (text or image) a route reads."""
    return name.split("->", 1)[0]


def resolve_weights(
    overrides: Mapping[str, float] | None, defaults: Mapping[str, float] = DEFAULT_WEIGHTS
) -> dict[str, float]:
    """Weights for every route. An override may name a route ("text->passage:bm25") or a family
    ("text->passage", "image->image"); an exact name wins over its family."""
    resolved = dict(defaults)
    if not overrides:
        return resolved
    families = {family(n) for n in ALL_ROUTES}
    for key, value in overrides.items():
        if key not in ALL_ROUTES and key not in families:
            raise UsageError(
                f"unknown route {key!r} in weights; routes are {', '.join(ALL_ROUTES)} "
                f"(or a family: {', '.join(sorted(families))})"
            )
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UsageError(f"weight for {key!r} must be a number, got {value!r}")
        if not math.isfinite(value) or not 0 <= value <= MAX_WEIGHT:
            raise UsageError(
                f"weight for {key!r} must be a number from 0 to {MAX_WEIGHT:g}, got {value}"
            )
    for name in ALL_ROUTES:
        if name in overrides:
            resolved[name] = float(overrides[name])
        elif family(name) in overrides:
            resolved[name] = float(overrides[family(name)])
    return resolved


def parse_weights(specs: tuple[str, ...] | list[str]) -> dict[str, float]:
    """``["text->passage:bm25=0.5", "image->image=2"]`` -> mapping (for the CLI and HTTP)."""
    out: dict[str, float] = {}
    for spec in specs:
        name, sep, value = spec.rpartition("=")
        if not sep or not name:
            raise UsageError(f"weight {spec!r} must look like ROUTE=NUMBER")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise UsageError(f"weight {spec!r}: {value!r} is not a number") from None
    return out
