"""What a route's raw score means for this query: evidence against chance (docs/QUALITY.md).

A cosine of 0.4 is a strong match for one model and noise for another; the same holds across
routes of one model (BGE query vs passages, vs captions) and for BM25. So each vector route's
scores are read against the scores the same query vector gets from items picked without regard
to it: a fixed, evenly spaced sample of the vectors the route searches (the route's
*background*), drawn from the index on first use and kept in memory.

For one query and one route, the background gives the typical score (median) and how widely
unrelated scores spread. A score becomes *evidence*: ``-ln`` of how many of the route's ``n``
items would score that high by chance, with unrelated scores taken to fall off exponentially
above the median (:class:`Null`). About 0: as good as the best of ``n`` unrelated items; 3: a
chance match that strong shows up for about 1 query in 20.

Two choices make this hold for any model:

- Scores are read as ``-log(1 - cosine)`` (a log distance to the query). Cosines crowd against 1
  for near-copies and for models whose vectors share one direction; on the log scale a near-copy
  still stands apart from its neighbours, while low cosines keep their order and spacing.
- Routes whose scores compare directly share one background: the BGE query against passages and
  against captions lives in one space, so a caption that matches better than any passage
  shows as more evidence. Spaces are listed in :data:`SPACES`.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..store.base import ARTICLES, IMAGES, PASSAGES, Filter, Store
from . import weights as R

SAMPLE_ROWS = 2048  # background vectors per table: enough for a median and a tail spread
REFRESH_S = 10.0  # how often a searcher checks whether the tables grew or shrank
_EPS = 1e-6
MIN_SPREAD = 0.01  # least spread of unrelated scores (log distance; about 0.01 in cosine)
# How far a cosine can move from numerics alone: the same text or photo encoded by two runtimes
# or precisions that pass the 0.99 parity bar gives vectors within about 0.9999 of each other, so
# a cosine to a query moves by ~1e-4. Near a cosine of 1 that is a wide step on the log scale.
COSINE_NOISE = 1e-4


@dataclass(frozen=True, slots=True)
class Source:
    """One table's vectors in a background."""

    table: str
    field: str
    where: tuple[tuple[str, bool | str | int], ...] = ()  # (field, value) pairs that must hold

    @property
    def filter(self) -> Filter | None:
        return dict(self.where) or None


@dataclass(frozen=True, slots=True)
class Space:
    """Items whose scores against one kind of query vector compare directly."""

    name: str
    query: str  # which query vector: "bge", "clip_text" or "clip_image"
    sources: tuple[Source, ...]


BGE_TEXT = Space(
    "bge-text",
    "bge",
    (Source(PASSAGES, "bge"), Source(IMAGES, "caption_bge", (("has_caption", True),))),
)
CLIP_TEXT_TO_IMAGE = Space("clip-text-image", "clip_text", (Source(IMAGES, "clip_image"),))
CLIP_IMAGE_TO_IMAGE = Space("clip-image-image", "clip_image", (Source(IMAGES, "clip_image"),))
CLIP_IMAGE_TO_TEXT = Space(
    "clip-image-text",
    "clip_image",
    (Source(PASSAGES, "clip_text"), Source(ARTICLES, "clip_title")),
)

# Route -> the space its raw scores live in. BM25 routes have none: their evidence comes from
# the dense route of their family (``fusion.PARTNERS``). The votes' raw score is the cosine of
# the best picture of the article, so it is read like image->image.
SPACES: Mapping[str, Space] = {
    R.TEXT_PASSAGE_DENSE: BGE_TEXT,
    R.TEXT_IMAGE_CAPTION: BGE_TEXT,
    R.TEXT_IMAGE_CLIP: CLIP_TEXT_TO_IMAGE,
    R.IMAGE_IMAGE: CLIP_IMAGE_TO_IMAGE,
    R.IMAGE_PASSAGE_VOTES: CLIP_IMAGE_TO_IMAGE,
    R.IMAGE_PASSAGE_CLIP: CLIP_IMAGE_TO_TEXT,
    R.IMAGE_PASSAGE_TITLE: CLIP_IMAGE_TO_TEXT,
}


def log_distance(score: float | np.ndarray) -> Any:
    """``-log(1 - cosine)``: increasing in the cosine, and unbounded as it nears 1."""
    return -np.log(np.maximum(1.0 - np.asarray(score, dtype=np.float64), _EPS))


@dataclass(frozen=True, slots=True)
class Null:
    """The scores one query vector gets from a route's background, on the log-distance scale:
    their median, their mean distance below it, and how many items the route searches."""

    median: float
    spread: float
    n: int

    def evidence(self, score: float) -> float:
        """``-ln`` of how many unrelated items among the route's ``n`` are expected to score at
        least ``score``: about 0 for the best of ``n`` unrelated items, 3 when chance gives a
        match this strong to 1 query in 20, 7 for 1 in 1,000."""
        above = (float(log_distance(score)) - self.median) / self.spread
        return above - math.log(max(self.n, 2) / 2)

    @classmethod
    def of(cls, scores: np.ndarray, n: int) -> Null:
        """From the scores of a background sample. Unrelated items fall off exponentially above
        the median (a heavier tail than a normal's, as text-embedding scores have), at the rate
        their spread below it shows. The spread is read on the lower side on purpose: a query's
        real matches sit at the top, and in a small, one-topic index they are a good part of
        the sample. A small sample says little about the spread, so it is widened by two
        standard errors (x1.06 for 1,000 scores below the median, x2 for 4); and it is at least
        :data:`MIN_SPREAD`, as scores that barely vary (a tiny index, a degenerate model) would
        otherwise make any difference look certain. Nor is it below what numerics alone move a
        score by (:data:`COSINE_NOISE` in cosine, seen on the log scale at the median): a model
        whose vectors all point one way (cosines within 1e-5 of 1) must not make rounding look
        like a match."""
        y = log_distance(scores)
        median = float(np.median(y))
        below = median - y[y < median]
        spread = float(np.mean(below)) * (1 + 2 / math.sqrt(below.size)) if below.size else 0.0
        noise = COSINE_NOISE * math.exp(median)  # d(log distance) = d(cosine) / (1 - cosine)
        return cls(median, max(spread, MIN_SPREAD, noise), max(int(n), 1))


@dataclass
class _Sample:
    vectors: np.ndarray  # rows from every source of the space
    n: int  # items the space holds in all


class Background:
    """Samples of each space's vectors, drawn from ``store`` on first use and refreshed when the
    tables change size. Thread-safe; one per searcher."""

    def __init__(
        self,
        store: Store,
        sample_rows: int = SAMPLE_ROWS,
        absent: Collection[tuple[str, str]] = (),
        moved: Mapping[tuple[str, str], str] | None = None,
    ) -> None:
        self.store = store
        self.sample_rows = sample_rows
        self.absent = frozenset(absent)  # (table, vector field) pairs this index does not have
        # (table, vector field) -> the table that holds them in this index (format 4: CLIP image
        # vectors are in ``pictures``, one per file)
        self.moved = dict(moved or {})
        self._samples: dict[str, _Sample | None] = {}
        self._sizes: dict[Source, int] = {}
        self._checked = 0.0
        self._lock = threading.Lock()

    def invalidate(self) -> None:
        with self._lock:
            self._samples.clear()
            self._sizes.clear()
            self._checked = 0.0

    def nulls(self, vectors: Any, routes: Sequence[str]) -> dict[str, Null]:
        """A :class:`Null` for each of ``routes`` that has a space and whose query vector is in
        ``vectors`` (a :class:`~mmretrieve.retrieval.routes.QueryVectors`)."""
        self._refresh_if_stale()
        out: dict[str, Null] = {}
        done: dict[str, Null | None] = {}
        for route in routes:
            space = SPACES.get(route)
            if space is None:
                continue
            if space.name not in done:
                query = getattr(vectors, space.query, None)
                sample = self._sample(space) if query is not None else None
                done[space.name] = (
                    Null.of(sample.vectors @ np.asarray(query, dtype=np.float32), sample.n)
                    if sample is not None
                    else None
                )
            null = done[space.name]
            if null is not None:
                out[route] = null
        return out

    # -- sampling --------------------------------------------------------------------------------
    def _refresh_if_stale(self) -> None:
        now = time.monotonic()
        if now - self._checked < REFRESH_S:
            return
        with self._lock:
            if now - self._checked < REFRESH_S:
                return
            for source, size in list(self._sizes.items()):
                if self._count(source) != size:
                    self._samples.clear()
                    self._sizes.clear()
                    break
            self._checked = now

    def _count(self, source: Source) -> int:
        try:
            return int(self.store.count(source.table, source.filter))
        except Exception:  # a table the index does not have (text-only index)
            return 0

    def _sample(self, space: Space) -> _Sample | None:
        with self._lock:
            if space.name not in self._samples:
                self._samples[space.name] = self._draw(space)
            return self._samples[space.name]

    def _draw(self, space: Space) -> _Sample | None:
        """Up to ``sample_rows`` vectors, each source's share in proportion to its size, so a
        pooled background looks like the items the routes actually search."""
        sizes = {}
        for source in space.sources:
            if (source.table, source.field) in self.absent:
                continue
            table = self.moved.get((source.table, source.field))
            if table is not None:
                source = Source(table, source.field, source.where)
            sizes[source] = self._sizes[source] = self._count(source)
        total = sum(sizes.values())
        parts: list[np.ndarray] = []
        for source, size in sizes.items():
            if size == 0:
                continue
            quota = max(1, round(self.sample_rows * size / total))
            ids = sorted(str(r["id"]) for r in self.store.scan(source.table, ["id"], source.filter))
            if len(ids) > quota:  # evenly spaced: the same index always gives the same sample
                step = len(ids) / quota
                ids = [ids[int(i * step)] for i in range(quota)]
            rows = self.store.get(source.table, ids, ["id", source.field])
            vectors = [r[source.field] for r in rows if r.get(source.field) is not None]
            if vectors:
                parts.append(np.asarray(vectors, dtype=np.float32))
        if not parts:
            return None
        return _Sample(np.concatenate(parts), total)
