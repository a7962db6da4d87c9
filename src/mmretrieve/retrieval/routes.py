"""The retrieval routes of DESIGN §6. Each returns a ranked list of (key, raw score) where a key is
``("passage" | "image", id)``; the rows they read are kept for building hits afterwards."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..store.base import ARTICLES, IMAGES, PASSAGES, Filter, Row, Store, StoreHit
from . import weights as R

Key = tuple[str, str]
Ranked = list[tuple[Key, float]]

# content_hash: the searcher checks it against the article row, to leave out half-written articles.
PASSAGE_FIELDS = ("id", "article_id", "text", "position", "section", "content_hash")
IMAGE_FIELDS = ("id", "article_id", "uri", "caption", "alt_text", "width", "height")
VOTE_K = 10  # rank damping for image votes, like RRF's k: the top images dominate
PASSAGES_PER_VOTED_ARTICLE = 3


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
    rows: dict[Key, Row] = field(default_factory=dict)

    def _filter(self, extra: Mapping[str, Any] | None = None) -> Filter | None:
        flt: dict[str, Any] = dict(extra or {})
        if self.article_ids is not None:
            flt["article_id"] = list(self.article_ids)
        return flt or None

    def _ranked(self, kind: str, hits: list[StoreHit]) -> Ranked:
        out: Ranked = []
        for hit in hits:
            key = (kind, hit.id)
            self.rows.setdefault(key, hit.row)
            out.append((key, hit.score))
        return out

    # -- text routes ------------------------------------------------------------------------
    def text_passage_dense(self, q: QueryVectors) -> Ranked:
        assert q.bge is not None
        hits = self.store.search(PASSAGES, "bge", q.bge, self.depth, self._filter(), PASSAGE_FIELDS)
        return self._ranked("passage", hits)

    def text_passage_bm25(self, q: QueryVectors) -> Ranked:
        assert q.text is not None
        hits = self.store.text_search(PASSAGES, q.text, self.depth, self._filter(), PASSAGE_FIELDS)
        return self._ranked("passage", hits)

    def text_image_clip(self, q: QueryVectors) -> Ranked:
        assert q.clip_text is not None
        hits = self.store.search(
            IMAGES, "clip_image", q.clip_text, self.depth, self._filter(), IMAGE_FIELDS
        )
        return self._ranked("image", hits)

    def text_image_caption(self, q: QueryVectors) -> Ranked:
        assert q.bge is not None
        flt = self._filter({"has_caption": True})
        hits = self.store.search(IMAGES, "caption_bge", q.bge, self.depth, flt, IMAGE_FIELDS)
        return self._ranked("image", hits)

    def text_image_bm25(self, q: QueryVectors) -> Ranked:
        assert q.text is not None
        hits = self.store.text_search(IMAGES, q.text, self.depth, self._filter(), IMAGE_FIELDS)
        return self._ranked("image", hits)

    # -- image routes -----------------------------------------------------------------------
    def image_image(self, q: QueryVectors) -> Ranked:
        assert q.clip_image is not None
        hits = self.store.search(
            IMAGES, "clip_image", q.clip_image, self.depth, self._filter(), IMAGE_FIELDS
        )
        return self._ranked("image", hits)

    def image_passage_clip(self, q: QueryVectors) -> Ranked:
        assert q.clip_image is not None
        hits = self.store.search(
            PASSAGES, "clip_text", q.clip_image, self.depth, self._filter(), PASSAGE_FIELDS
        )
        return self._ranked("passage", hits)

    def image_passage_title(self, q: QueryVectors) -> Ranked:
        """Articles whose title (+ first sentence) looks like the picture, then their passages
        that look most like it."""
        assert q.clip_image is not None
        flt = {"id": list(self.article_ids)} if self.article_ids is not None else None
        hits = self.store.search(ARTICLES, "clip_title", q.clip_image, self.depth, flt, ("id",))
        top = hits[: max(1, self.depth // PASSAGES_PER_VOTED_ARTICLE)]
        return self._passages_of({h.id: h.score for h in top}, q.clip_image)

    def image_passage_votes(self, q: QueryVectors, image_hits: Ranked) -> Ranked:
        """The articles of the best matching images vote for their passages (DESIGN §6)."""
        assert q.clip_image is not None
        votes: dict[str, float] = {}
        for rank, (key, _) in enumerate(image_hits, start=1):
            article_id = self.rows.get(key, {}).get("article_id")
            if article_id:
                votes[article_id] = votes.get(article_id, 0.0) + 1.0 / (VOTE_K + rank)
        order = sorted(votes, key=lambda a: (-votes[a], a))
        top = order[: max(1, self.depth // PASSAGES_PER_VOTED_ARTICLE)]
        return self._passages_of({a: votes[a] for a in top}, q.clip_image)

    def _passages_of(self, article_scores: dict[str, float], vector: np.ndarray) -> Ranked:
        """A few passages of each article, articles by their score (best first), each article's
        passages by CLIP similarity to the query image. A passage's raw score is its article's."""
        if not article_scores:
            return []
        order = sorted(article_scores, key=lambda a: (-article_scores[a], a))
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

    # -- dispatch ---------------------------------------------------------------------------
    def run(
        self, q: QueryVectors, active: Mapping[str, float]
    ) -> tuple[dict[str, Ranked], dict[str, str]]:
        """Run every route that the query and the index allow and whose weight is not zero."""
        results: dict[str, Ranked] = {}
        status: dict[str, str] = {}

        def want(name: str, ok: bool, reason: str) -> bool:
            if not ok:
                status[name] = reason
                return False
            if active.get(name, 0.0) <= 0:
                status[name] = "weight 0"
                return False
            status[name] = "ok"
            return True

        has_text = q.text is not None
        no_text, no_image = "no text in the query", "no image in the query"
        no_clip = "index has no image model"
        lexical = getattr(self.store, "supports_text_search", True)
        no_lexical = "lexical route unavailable on this store"
        if want(R.TEXT_PASSAGE_DENSE, has_text, no_text):
            results[R.TEXT_PASSAGE_DENSE] = self.text_passage_dense(q)
        if want(R.TEXT_PASSAGE_BM25, has_text and lexical, no_text if not has_text else no_lexical):
            results[R.TEXT_PASSAGE_BM25] = self.text_passage_bm25(q)
        if want(
            R.TEXT_IMAGE_CLIP, has_text and self.has_images, no_text if not has_text else no_clip
        ):
            results[R.TEXT_IMAGE_CLIP] = self.text_image_clip(q)
        if want(
            R.TEXT_IMAGE_CAPTION, has_text and self.has_images, no_text if not has_text else no_clip
        ):
            results[R.TEXT_IMAGE_CAPTION] = self.text_image_caption(q)
        image_bm25_reason = (
            no_text if not has_text else no_clip if not self.has_images else no_lexical
        )
        if want(R.TEXT_IMAGE_BM25, has_text and self.has_images and lexical, image_bm25_reason):
            results[R.TEXT_IMAGE_BM25] = self.text_image_bm25(q)
        has_image = q.clip_image is not None
        for name in R.IMAGE_ROUTES:
            if not has_image:
                status[name] = no_image
        if has_image:
            image_hits = self.image_image(q)  # also feeds the votes
            if want(R.IMAGE_IMAGE, True, ""):
                results[R.IMAGE_IMAGE] = image_hits
            if want(R.IMAGE_PASSAGE_CLIP, True, ""):
                results[R.IMAGE_PASSAGE_CLIP] = self.image_passage_clip(q)
            if want(R.IMAGE_PASSAGE_TITLE, True, ""):
                results[R.IMAGE_PASSAGE_TITLE] = self.image_passage_title(q)
            if want(R.IMAGE_PASSAGE_VOTES, True, ""):
                results[R.IMAGE_PASSAGE_VOTES] = self.image_passage_votes(q, image_hits)
        return results, status
