"""Frozen dataclasses that cross every boundary (docs/ARCHITECTURE.md, "Data model")."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:  # PIL is only needed by callers that pass decoded images
    from PIL.Image import Image as PILImage

    ImageInput = str | Path | bytes | PILImage
else:
    ImageInput = object

HitKind = Literal["passage", "image"]


@dataclass(frozen=True, slots=True)
class Article:
    """One article. ``text`` is empty when an article comes back inside a search result.
    ``meta``: the other fields its source gave (``meta.json`` keys, JSONL fields), as strings;
    searches can filter on them."""

    id: str
    title: str
    text: str = ""
    url: str | None = None
    license: str | None = None
    source: str | None = None
    meta: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Passage:
    """A chunk of an article, sized by the text model's tokenizer."""

    id: str
    article_id: str
    text: str
    position: int
    section: str | None = None


@dataclass(frozen=True, slots=True)
class Image:
    """An image file, optionally belonging to an article. ``uri`` is an absolute file path."""

    id: str
    article_id: str | None
    uri: str
    caption: str | None = None
    alt_text: str | None = None
    width: int | None = None
    height: int | None = None
    sha256: str | None = None
    license: str | None = None
    section: str | None = None  # the article section it is placed in (None: unknown or lead)


@dataclass(frozen=True, slots=True)
class Skipped:
    """An input item a source or the indexer could not use, and why."""

    path: str
    reason: str
    kind: str = "file"


_SURROGATE = re.compile("[\ud800-\udfff]")


def valid_unicode(text: str) -> str:
    """``text`` with every lone UTF-16 surrogate (which no UTF-8 encoder, tokenizer or store
    accepts; JSON's ``"\\ud800"`` makes one) replaced by U+FFFD."""
    return _SURROGATE.sub("\ufffd", text)


@dataclass(frozen=True, slots=True)
class Query:
    """A search request: at least one of ``text`` or ``image``. Lone surrogates in the text
    become U+FFFD (:func:`valid_unicode`)."""

    text: str | None = None
    image: ImageInput | None = None
    weights: Mapping[str, float] | None = None

    def __post_init__(self) -> None:
        from .errors import UsageError

        if self.text is not None:
            if not isinstance(self.text, str):
                raise UsageError(f"query text must be a string, got {type(self.text).__name__}")
            object.__setattr__(self, "text", valid_unicode(self.text))
        has_text = self.text is not None and self.text.strip() != ""
        if not has_text and self.image is None:
            raise UsageError("a query needs text, an image, or both")


@dataclass(frozen=True, slots=True)
class Hit:
    """One ranked item. ``route_scores`` maps each route that found it to its raw score there;
    ``contributions`` maps it to what that route added to ``score`` (after normalisation and
    weights; they sum to ``score``). ``confidence``, from the calibrated fusion, is the chance in
    [0, 1] that the best route that found the item matched more than chance (docs/QUALITY.md);
    None under other fusion methods. ``article_ids``: for an image, every article that uses the
    same picture (identical files are one image in the ranked list): those this search found,
    best first, then the others."""

    kind: HitKind
    id: str
    article_id: str | None
    score: float
    route_scores: Mapping[str, float] = field(default_factory=dict)
    text: str | None = None
    uri: str | None = None
    caption: str | None = None
    section: str | None = None
    contributions: Mapping[str, float] = field(default_factory=dict)
    confidence: float | None = None
    article_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SectionResult:
    """One section of an article result: its best passages and the images placed in it, scored
    like an article from its items. ``title`` None: the lead (or a section nobody named)."""

    title: str | None
    score: float
    passages: list[Hit]
    images: list[Hit]


@dataclass(frozen=True, slots=True)
class ArticleResult:
    """An article and its best items. ``score`` adds up its best items' scores (the best counts
    fully, the next ones less); ``contributions`` splits it by route the same way;
    ``confidence`` is its most confident item's. ``sections``: the same article by section,
    its best sections first, each with its passages and images together."""

    article: Article
    score: float
    passages: list[Hit]
    images: list[Hit]
    contributions: Mapping[str, float] = field(default_factory=dict)
    confidence: float | None = None
    sections: list[SectionResult] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class SearchResult:
    hits: list[Hit]
    articles: list[ArticleResult]
    timings: Mapping[str, float]
    routes: Mapping[str, str] = field(default_factory=dict)
    """Route name -> "ok" or the reason it did not run (e.g. no image in the query)."""
