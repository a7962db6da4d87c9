"""Route names and how per-query weights apply to them."""

from __future__ import annotations

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

# The three image->passage routes are views of one signal (the picture), so together they weigh
# less than image->image: an exact or near-exact picture match outranks passages it only implies.
# BM25 over passages weighs half of dense: with the default fusion (z-scores within the family)
# this stayed within 0.2 nDCG@10 points of the better single route, or above it, on a
# BM25-strong and a dense-strong set (docs/QUALITY.md).
DEFAULT_WEIGHTS: Mapping[str, float] = {
    TEXT_PASSAGE_DENSE: 1.0,
    TEXT_PASSAGE_BM25: 0.5,
    TEXT_IMAGE_CLIP: 0.5,
    TEXT_IMAGE_CAPTION: 0.5,
    TEXT_IMAGE_BM25: 0.5,
    IMAGE_IMAGE: 1.0,
    IMAGE_PASSAGE_CLIP: 0.3,
    IMAGE_PASSAGE_TITLE: 0.2,
    IMAGE_PASSAGE_VOTES: 0.4,
}


def family(name: str) -> str:
    """``text->passage:bm25`` -> ``text->passage``: the routes that rank the same items."""
    return name.split(":", 1)[0]


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
        if float(value) < 0:
            raise UsageError(f"weight for {key!r} must be >= 0, got {value}")
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
