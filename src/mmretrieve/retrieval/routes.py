"""The retrieval routes (docs/ARCHITECTURE.md, "A search"). Each returns a ranked list of
(key, raw score) where a key is ``("passage" | "image", id)``; the rows they read are kept for
building hits afterwards.

The routes of one query run at once on a small shared thread pool: each is one or a few store
calls that spend their time outside the GIL (Lance's Rust, a Milvus RPC), so where cores are
free a query waits about as long as its slowest route rather than the sum of them.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..documents.chunking import passage_id
from ..store.base import ARTICLES, IMAGES, PASSAGES, PICTURES, Filter, Match, Row, Store, StoreHit
from . import weights as R
from .filters import FilterPlan
from .pictures import pictures_used_by

Key = tuple[str, str]
Ranked = list[tuple[Key, float]]

# content_hash: the searcher checks it against the article row, to leave out half-written articles.
PASSAGE_FIELDS = ("id", "article_id", "text", "position", "section", "content_hash")
IMAGE_FIELDS = ("id", "article_id", "uri", "caption", "alt_text", "width", "height", "sha256")
PASSAGES_PER_VOTED_ARTICLE = 3
# Threads shared by every search in the process. A query starts at most 9 routes: 8 threads start
# them all at once but the last, the votes, which waits for image->image anyway. More would only
# let many concurrent searches crowd a small CPU.
ROUTE_WORKERS = 8

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _route_pool() -> ThreadPoolExecutor:
    """The shared pool, started on first use, so that importing mmretrieve starts no thread."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(ROUTE_WORKERS, thread_name_prefix="mmretrieve-route")
        return _pool


def _forget_pool() -> None:
    """A forked child inherits the pool but none of its threads: it would wait forever."""
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def _now(route: Callable[..., Ranked], *args: Any) -> Future[Ranked]:
    """Run ``route`` here and now (a store that opts out of concurrent reads): a failing route
    raises at once and the routes after it do not run, as when routes ran one after another."""
    done: Future[Ranked] = Future()
    done.set_result(route(*args))
    return done


def _gather(jobs: Sequence[Future[Ranked]]) -> list[Ranked]:
    """The jobs' results in submission order. The first job in that order to fail raises its own
    exception, whichever failed first in time, as when the routes ran one after another; and
    nothing outlives the call: jobs not started are cancelled, running ones waited for."""
    try:
        return [job.result() for job in jobs]
    finally:
        for job in jobs:
            job.cancel()
        wait(jobs)


@dataclass(frozen=True, slots=True)
class QueryVectors:
    """A query encoded once per model; absent parts are None."""

    text: str | None = None
    bge: np.ndarray | None = None
    clip_text: np.ndarray | None = None
    clip_image: np.ndarray | None = None


@dataclass
class RouteRunner:
    """Runs routes against one store, remembering every row it read (keyed like the hits)."""

    store: Store
    depth: int
    article_ids: Sequence[str] | None = None
    has_images: bool = True
    # Passages carry CLIP text vectors (the index's CLIP text view): the image->passage:clip_text
    # route runs, and a voted article shows the passages that look most like the picture rather
    # than its first ones.
    has_clip_text: bool = False
    # Images carry a perceptual hash and their section (index format 3 on): the searcher groups
    # resized copies, and shows results by section.
    has_phash: bool = False
    # A picture is stored once (index format 4 on): the CLIP routes search ``pictures`` and
    # bring each picture's uses, every use with the picture's score.
    has_pictures: bool = False
    plan: FilterPlan | None = None  # the search's metadata filters, per table (filters.py)
    rows: dict[Key, Row] = field(default_factory=dict)

    @property
    def image_fields(self) -> tuple[str, ...]:
        return (*IMAGE_FIELDS, "phash", "section") if self.has_phash else IMAGE_FIELDS

    def _filter(self, table: str, extra: Mapping[str, Any] | None = None) -> Filter | None:
        flt: dict[str, Any] = dict(self.plan.for_table(table)) if self.plan else {}
        flt.update(extra or {})
        if self.article_ids is not None:
            key = "id" if table == ARTICLES else "article_id"
            kept = flt.get(key)
            ids = list(self.article_ids)
            flt[key] = [i for i in ids if kept.holds(i)] if isinstance(kept, Match) else ids
        return flt or None

    def _passages_allowed(self, article_ids: list[str]) -> list[str]:
        """The articles whose passages the search may show (its filters and article ids)."""
        kept = self.plan.passage_articles if self.plan else None
        wanted = set(self.article_ids) if self.article_ids is not None else None
        return [
            a
            for a in article_ids
            if (kept is None or kept.holds(a)) and (wanted is None or a in wanted)
        ]

    def _ranked(self, kind: str, hits: list[StoreHit]) -> Ranked:
        out: Ranked = []
        for hit in hits:
            key = (kind, hit.id)
            # Routes running at once share self.rows. setdefault is atomic under the GIL, and
            # which route stores a key first cannot change a hit: every route of a kind reads
            # the same fields (PASSAGE_FIELDS or IMAGE_FIELDS) of the same row, without scores.
            self.rows.setdefault(key, hit.row)
            out.append((key, hit.score))
        return out

    # -- text routes ------------------------------------------------------------------------
    def text_passage_dense(self, q: QueryVectors) -> Ranked:
        assert q.bge is not None
        flt = self._filter(PASSAGES)
        hits = self.store.search(PASSAGES, "bge", q.bge, self.depth, flt, PASSAGE_FIELDS)
        return self._ranked("passage", hits)

    def text_passage_bm25(self, q: QueryVectors) -> Ranked:
        assert q.text is not None
        flt = self._filter(PASSAGES)
        hits = self.store.text_search(PASSAGES, q.text, self.depth, flt, PASSAGE_FIELDS)
        return self._ranked("passage", hits)

    def text_image_clip(self, q: QueryVectors) -> Ranked:
        assert q.clip_text is not None
        return self._by_clip_image(q.clip_text)

    def _by_clip_image(self, vector: np.ndarray) -> Ranked:
        """Images nearest ``vector`` by their CLIP image vector: with pictures stored once, the
        nearest pictures (``depth`` distinct files), each brought with every use of it."""
        flt = self._filter(IMAGES)
        if not self.has_pictures:
            hits = self.store.search(
                IMAGES, "clip_image", vector, self.depth, flt, self.image_fields
            )
            return self._ranked("image", hits)
        pictures = self.store.search(
            PICTURES, "clip_image", vector, self.depth, self._picture_filter(flt), ("id",)
        )
        if not pictures:
            return []
        uses: dict[str, list[Row]] = {}
        wanted = {**(flt or {}), "sha256": [p.id for p in pictures]}
        for row in self.store.scan(IMAGES, self.image_fields, wanted):
            uses.setdefault(str(row["sha256"]), []).append(row)
        hits = [
            StoreHit(str(row["id"]), picture.score, row)
            for picture in pictures
            for row in sorted(uses.get(picture.id, ()), key=lambda r: str(r["id"]))
        ]
        return self._ranked("image", hits)

    def _picture_filter(self, image_filter: Filter | None) -> Filter | None:
        """The pictures with at least one use the search may show (its filters, article ids)."""
        if not image_filter:
            return None
        if self.plan is not None and self.article_ids is None and self.plan.pictures is not None:
            return self.plan.pictures
        return pictures_used_by(self.store, image_filter)

    def text_image_caption(self, q: QueryVectors) -> Ranked:
        assert q.bge is not None
        flt = self._filter(IMAGES, {"has_caption": True})
        hits = self.store.search(IMAGES, "caption_bge", q.bge, self.depth, flt, self.image_fields)
        return self._ranked("image", hits)

    def text_image_bm25(self, q: QueryVectors) -> Ranked:
        assert q.text is not None
        flt = self._filter(IMAGES)
        hits = self.store.text_search(IMAGES, q.text, self.depth, flt, self.image_fields)
        return self._ranked("image", hits)

    # -- image routes -----------------------------------------------------------------------
    def image_image(self, q: QueryVectors) -> Ranked:
        assert q.clip_image is not None
        return self._by_clip_image(q.clip_image)

    def image_passage_clip(self, q: QueryVectors) -> Ranked:
        assert q.clip_image is not None
        hits = self.store.search(
            PASSAGES, "clip_text", q.clip_image, self.depth, self._filter(PASSAGES), PASSAGE_FIELDS
        )
        return self._ranked("passage", hits)

    def image_passage_title(self, q: QueryVectors) -> Ranked:
        """Articles whose title (+ first sentence) looks like the picture, then their passages
        that look most like it."""
        assert q.clip_image is not None
        flt = self._filter(ARTICLES)
        hits = self.store.search(ARTICLES, "clip_title", q.clip_image, self.depth, flt, ("id",))
        top = hits[: max(1, self.depth // PASSAGES_PER_VOTED_ARTICLE)]
        return self._passages_of({h.id: h.score for h in top}, q.clip_image)

    def image_passage_votes(self, q: QueryVectors, image_hits: Ranked) -> Ranked:
        """The articles of the best matching images vote for their passages. A passage's raw
        score is the image->image score of its article's best picture, so it reads
        on the same scale as image->image (calibration.SPACES)."""
        assert q.clip_image is not None
        votes: dict[str, float] = {}
        for key, score in image_hits:
            article_id = self.rows.get(key, {}).get("article_id")
            if article_id and score > votes.get(article_id, -math.inf):
                votes[article_id] = score
        order = self._passages_allowed(sorted(votes, key=lambda a: (-votes[a], a)))
        top = order[: max(1, self.depth // PASSAGES_PER_VOTED_ARTICLE)]
        return self._passages_of({a: votes[a] for a in top}, q.clip_image)

    def _passages_of(self, article_scores: dict[str, float], vector: np.ndarray) -> Ranked:
        """A few passages of each article, articles by their score (best first), each article's
        passages by CLIP similarity to the query image (without the CLIP text view: its first
        passages). A passage's raw score is its article's."""
        if not article_scores:
            return []
        order = sorted(article_scores, key=lambda a: (-article_scores[a], a))
        if not self.has_clip_text:
            return self._lead_passages(order, article_scores)
        hits = self.store.search(
            PASSAGES, "clip_text", vector, len(order) * 20, {"article_id": order}, PASSAGE_FIELDS
        )
        by_article: dict[str, list[StoreHit]] = {}
        for hit in hits:
            bucket = by_article.setdefault(hit.row["article_id"], [])
            if len(bucket) < PASSAGES_PER_VOTED_ARTICLE:
                bucket.append(hit)
        out: Ranked = []
        for article_id in order:
            if article_id not in by_article:  # crowded out of the shared search: ask for it alone
                by_article[article_id] = self.store.search(
                    PASSAGES,
                    "clip_text",
                    vector,
                    PASSAGES_PER_VOTED_ARTICLE,
                    {"article_id": article_id},
                    PASSAGE_FIELDS,
                )
            for key, _ in self._ranked("passage", by_article[article_id]):
                out.append((key, article_scores[article_id]))
        return out

    def _lead_passages(self, order: list[str], article_scores: dict[str, float]) -> Ranked:
        ids = [passage_id(a, i) for a in order for i in range(PASSAGES_PER_VOTED_ARTICLE)]
        rows = {r["id"]: r for r in self.store.get(PASSAGES, ids, PASSAGE_FIELDS)}
        hits = [
            StoreHit(i, article_scores[rows[i]["article_id"]], rows[i]) for i in ids if i in rows
        ]
        return self._ranked("passage", hits)

    # -- dispatch ---------------------------------------------------------------------------
    def run(
        self, q: QueryVectors, active: Mapping[str, float]
    ) -> tuple[dict[str, Ranked], dict[str, str]]:
        """Run every route that the query and the index allow and whose weight is not zero, at
        once unless the store says its reads must not overlap (``concurrent_reads = False``).
        Results, statuses and errors are the same either way, keys in the same order."""
        status: dict[str, str] = {}
        jobs: list[tuple[str, Future[Ranked]]] = []
        concurrent = self.store.concurrent_reads
        submit: Callable[..., Future[Ranked]] = _route_pool().submit if concurrent else _now

        def want(name: str, ok: bool, reason: str) -> bool:
            if not ok:
                status[name] = reason
                return False
            if active.get(name, 0.0) <= 0:
                status[name] = "weight 0"
                return False
            status[name] = "ok"
            return True

        def start(name: str, route: Callable[..., Ranked], *args: Any) -> Future[Ranked]:
            job = submit(route, *args)
            jobs.append((name, job))
            return job

        has_text = q.text is not None
        no_text, no_image = "no text in the query", "no image in the query"
        no_clip = "index has no image model"
        lexical = getattr(self.store, "supports_text_search", True)
        no_lexical = "lexical route unavailable on this store"
        if want(R.TEXT_PASSAGE_DENSE, has_text, no_text):
            start(R.TEXT_PASSAGE_DENSE, self.text_passage_dense, q)
        if want(R.TEXT_PASSAGE_BM25, has_text and lexical, no_text if not has_text else no_lexical):
            start(R.TEXT_PASSAGE_BM25, self.text_passage_bm25, q)
        if want(
            R.TEXT_IMAGE_CLIP, has_text and self.has_images, no_text if not has_text else no_clip
        ):
            start(R.TEXT_IMAGE_CLIP, self.text_image_clip, q)
        if want(
            R.TEXT_IMAGE_CAPTION, has_text and self.has_images, no_text if not has_text else no_clip
        ):
            start(R.TEXT_IMAGE_CAPTION, self.text_image_caption, q)
        image_bm25_reason = (
            no_text if not has_text else no_clip if not self.has_images else no_lexical
        )
        if want(R.TEXT_IMAGE_BM25, has_text and self.has_images and lexical, image_bm25_reason):
            start(R.TEXT_IMAGE_BM25, self.text_image_bm25, q)
        has_image = q.clip_image is not None
        for name in R.IMAGE_ROUTES:
            if not has_image:
                status[name] = no_image
        if has_image:
            # Runs (and can fail) whatever its weight: it also feeds the votes.
            image_hits = start(R.IMAGE_IMAGE, self.image_image, q)
            want(R.IMAGE_IMAGE, True, "")
            no_view = "index built without the CLIP text view of passages (--clip-text-view)"
            if want(R.IMAGE_PASSAGE_CLIP, self.has_clip_text, no_view):
                start(R.IMAGE_PASSAGE_CLIP, self.image_passage_clip, q)
            if want(R.IMAGE_PASSAGE_TITLE, True, ""):
                start(R.IMAGE_PASSAGE_TITLE, self.image_passage_title, q)
            if want(R.IMAGE_PASSAGE_VOTES, True, ""):
                # Waits for image->image on a pool thread. It cannot deadlock: image->image was
                # queued first, so it is running or done by the time a thread takes the votes.
                start(R.IMAGE_PASSAGE_VOTES, self._votes_after, q, image_hits)
        done = _gather([job for _, job in jobs])
        ranked = zip((name for name, _ in jobs), done, strict=True)
        return {name: hits for name, hits in ranked if status[name] == "ok"}, status

    def _votes_after(self, q: QueryVectors, image_hits: Future[Ranked]) -> Ranked:
        return self.image_passage_votes(q, image_hits.result())
