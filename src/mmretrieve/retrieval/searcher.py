"""One query in, one fused and grouped SearchResult out (docs/ARCHITECTURE.md)."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, wait
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..encoders.base import ImageTextEncoder, TextEncoder, decode_image
from ..errors import UsageError
from ..store.base import IMAGES, PASSAGES, PICTURES, Store
from ..types import Article, ArticleResult, Hit, ImageInput, Query, SearchResult
from .batching import QueryEncoders
from .calibration import Background, Null
from .filters import Condition, FilterPlan, FilterSpec, parse_filters, plan_filters
from .fusion import Fused, fuse_explained
from .grouping import group_by_article
from .pictures import Picture, articles_by_picture, group_pictures, picture_of
from .records import article_of, article_rows, drop_half_written, make_hit
from .routes import Key, QueryVectors, Ranked, RouteRunner
from .weights import resolve_weights

# Each route's weight scaled by its calibrated confidence for the query (fusion.py): on
# mixed_dev's four query families it stays within a point of the best single route where
# zscore-family lost up to 25, and on squad_dev it ranks like zscore-family (docs/QUALITY.md).
DEFAULT_METHOD = "calibrated"
MIN_DEPTH = 50  # candidates each route fetches, at least
# A filter's plan (the articles it keeps) is reused for this long, like a held table's check
# (store/hot.py): a write by this process forgets it at once, one by another within a second.
PLAN_TTL_S = 1.0
PLANS_KEPT = 64


@dataclass(frozen=True, slots=True)
class SearchOptions:
    k: int = 10
    weights: Mapping[str, float] | None = None
    method: str = DEFAULT_METHOD
    article_ids: Sequence[str] | None = None
    depth: int | None = None
    passages_per_article: int = 3
    images_per_article: int = 4
    min_score: float | None = None  # least confidence an item or article needs to be returned
    filters: FilterSpec | None = None  # metadata filters (filters.py)


@functools.cache
def limit_blas_threads() -> None:
    """One BLAS thread in a searching process. A search's NumPy products are small (a query
    against a 2,048-row background, pooling), and OpenBLAS's idle threads keep spinning after
    each one, taking the cores from the model runtimes: at 100k passages a text query took 59 ms
    with them and 50 ms with one BLAS thread (docs/BENCHMARKS.md). Process-wide, once, through
    threadpoolctl."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - a core dependency
        return
    threadpool_limits(limits=1, user_api="blas")


class Searcher:
    """Encodes a query once per model, runs the routes, fuses and groups."""

    def __init__(
        self,
        store: Store,
        text_encoder: TextEncoder,
        image_encoder: ImageTextEncoder | None,
        *,
        max_image_pixels: int = 64_000_000,
        max_image_bytes: int = 50_000_000,
        default_weights: Mapping[str, float] | None = None,
        clip_text_view: bool = False,
        format_version: int = 4,
    ) -> None:
        self.store = store
        self.text_encoder = text_encoder
        self.image_encoder = image_encoder
        self.max_image_pixels = max_image_pixels
        self.max_image_bytes = max_image_bytes
        self.default_weights = default_weights
        self.clip_text_view = clip_text_view
        # 3: images carry perceptual hashes (resized copies are one hit), articles meta fields
        self.format_version = format_version
        absent = () if clip_text_view else ((PASSAGES, "clip_text"),)
        # Format 4: CLIP image vectors live in ``pictures``, one per file.
        moved = {(IMAGES, "clip_image"): PICTURES} if format_version >= 4 else {}
        self.background = Background(store, absent=absent, moved=moved)
        self._plans: dict[tuple[Condition, ...], tuple[float, FilterPlan]] = {}
        limit_blas_threads()
        self.encoders = QueryEncoders(text_encoder, image_encoder)  # threads start on first use

    def _decode(self, image: ImageInput) -> Any:
        return decode_image(
            image,
            self.image_encoder,
            max_pixels=self.max_image_pixels,
            max_bytes=self.max_image_bytes,
        )

    def _plan(self, conditions: list[Condition]) -> FilterPlan:
        key = tuple(conditions)
        now = time.monotonic()
        found = self._plans.get(key)
        if found is not None and now - found[0] < PLAN_TTL_S:
            return found[1]
        plan = plan_filters(
            self.store,
            conditions,
            has_images=self.image_encoder is not None,
            has_meta=self.format_version >= 3,
            has_pictures=self.format_version >= 4,
        )
        if len(self._plans) >= PLANS_KEPT:
            self._plans.clear()
        self._plans[key] = (now, plan)
        return plan

    def forget(self) -> None:
        """The index changed here: calibration samples and filter plans are read again."""
        self.background.invalidate()
        self._plans.clear()

    def warm(self) -> None:
        """Run each query model (first runs of a runtime are slow), the image decoder and every
        route twice, and draw the calibration backgrounds."""
        import io

        from PIL import Image as PILImageModule

        image = None
        if self.image_encoder is not None:
            pixels = np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)
            buffer = io.BytesIO()
            PILImageModule.fromarray(pixels).save(buffer, "JPEG")
            image = buffer.getvalue()  # decoded as an uploaded photo is
        for _ in range(2):
            self.search(Query(text="warm up"), SearchOptions(k=1))
            if image is not None:
                self.search(Query(text="warm up", image=image), SearchOptions(k=1))

    def encode(self, query: Query, timings: dict[str, float]) -> QueryVectors:
        """The query's text (bge and CLIP's text tower) and image run on their batchers
        (batching.py), at once with each other and batched with other searches' queries that
        arrive together."""
        text = query.text.strip() if query.text and query.text.strip() else None
        if query.image is not None and self.image_encoder is None:
            raise UsageError(
                "this index was built without an image model, so it cannot search by image"
            )
        encoders = self.encoders
        jobs: dict[str, Future[Any]] = {}
        start = time.perf_counter()
        if text is not None:
            jobs["encode_text_ms"] = encoders.text.submit(text)  # bge
            if encoders.clip_text is not None:
                jobs["encode_clip_text_ms"] = encoders.clip_text.submit(text)
        if query.image is not None and encoders.image is not None:
            try:
                picture = self._decode(query.image)
            except BaseException:
                wait(list(jobs.values()))
                raise
            timings["decode_image_ms"] = (time.perf_counter() - start) * 1000
            jobs["encode_image_ms"] = encoders.image.submit(picture)
        wait(list(jobs.values()))
        vectors = {name: job.result() for name, job in jobs.items()}  # the first error raises
        for name, job in jobs.items():
            timings[name] = (getattr(job, "finished_at", time.perf_counter()) - start) * 1000
        return QueryVectors(
            text=text,
            bge=vectors.get("encode_text_ms"),
            clip_text=vectors.get("encode_clip_text_ms"),
            clip_image=vectors.get("encode_image_ms"),
        )

    def search(self, query: Query, options: SearchOptions = SearchOptions()) -> SearchResult:
        if isinstance(options.k, bool) or not isinstance(options.k, int) or options.k < 1:
            raise UsageError(f"k must be a whole number of at least 1, got {options.k!r}")
        score = options.min_score
        if score is not None and (
            isinstance(score, bool)
            or not isinstance(score, (int, float))
            or not 0.0 <= score <= 1.0  # NaN fails this too
        ):
            raise UsageError(f"min_score must be a number from 0 to 1, got {score!r}")
        conditions = parse_filters(options.filters)  # a malformed filter fails before any work
        start = time.perf_counter()
        timings: dict[str, float] = {}
        vectors = self.encode(query, timings)
        weights = resolve_weights(
            {**(options.weights or {}), **(query.weights or {})},
            **({"defaults": self.default_weights} if self.default_weights else {}),
        )
        depth = options.depth or max(MIN_DEPTH, 5 * options.k)
        t0 = time.perf_counter()
        plan = self._plan(conditions) if conditions else None
        if plan is not None:
            timings["filter_ms"] = (time.perf_counter() - t0) * 1000
        runner = RouteRunner(
            self.store,
            depth,
            article_ids=options.article_ids,
            has_images=self.image_encoder is not None,
            has_clip_text=self.clip_text_view,
            has_phash=self.format_version >= 3,
            has_pictures=self.format_version >= 4,
            plan=plan,
        )
        t0 = time.perf_counter()
        route_lists, status = runner.run(vectors, weights)
        timings["search_ms"] = (time.perf_counter() - t0) * 1000

        t0 = time.perf_counter()
        # One batched lookup serves both the completeness check and the grouping.
        rows = article_rows(self.store, (r.get("article_id") for r in runner.rows.values()))
        route_lists = drop_half_written(route_lists, runner.rows, rows)
        calibration = (
            self.background.nulls(vectors, list(route_lists))
            if options.method == "calibrated"
            else None
        )
        articles = {id_: article_of(row) for id_, row in rows.items()}
        hits, grouped = rank(
            route_lists,
            runner.rows,
            articles,
            weights,
            options,
            calibration,
            sharing=functools.partial(articles_by_picture, self.store),
        )
        timings["fuse_ms"] = (time.perf_counter() - t0) * 1000
        timings["total_ms"] = (time.perf_counter() - start) * 1000
        return SearchResult(
            hits=hits[: options.k], articles=grouped, timings=timings, routes=status
        )


def rank(
    route_lists: Mapping[str, Ranked],
    rows: Mapping[Key, Mapping[str, Any]],
    articles: Mapping[str, Article] | Any,
    weights: Mapping[str, float],
    options: SearchOptions,
    calibration: Mapping[str, Null] | None = None,
    sharing: Callable[[Sequence[Picture]], Sequence[Sequence[str]]] | None = None,
) -> tuple[list[Hit], list[ArticleResult]]:
    """What a search returns from its routes' lists: the top ``options.k`` fused hits (best
    first) and the top ``options.k`` articles. The one place that fuses and groups, for searches
    and evaluations alike. ``articles``: id -> Article, or a function of the id. ``sharing``:
    pictures -> for each, every article whose images are copies of it (what an image hit's
    ``article_ids`` lists beyond the copies this search found; pictures.py)."""
    if options.min_score is not None and options.method != "calibrated":
        raise UsageError("min_score needs the calibrated fusion (method 'calibrated')")
    fused = fuse_explained(route_lists, weights, method=options.method, calibration=calibration)
    if options.min_score is not None:
        floor = options.min_score
        fused = [f for f in fused if (f.confidence or 0.0) >= floor]
    per_route: dict[Key, dict[str, float]] = {}
    for name, items in route_lists.items():
        for key, score in items:
            per_route.setdefault(key, {})[name] = score
    # A search fuses a few hundred items and shows a few dozen: Hits are made for those only.
    ranked = [_Ranked(f, rows[f.key]) for f in fused]  # type: ignore[index]

    def make(item: _Ranked) -> Hit:
        if item.hit is None:
            key = item.fused.key
            item.hit = make_hit(item.fused, item.row, per_route[key], item.article_ids)  # type: ignore[index]
        return item.hit

    # Every article still counts a picture it shares with others; the flat list shows it once.
    flat, pictures = _one_per_picture(ranked)
    shown: list[_Ranked] = []

    def note(item: _Ranked) -> Hit:
        shown.append(item)
        return item  # type: ignore[return-value]  # made below, once article_ids are known

    grouped = group_by_article(
        ranked, articles, options.k, options.passages_per_article, options.images_per_article, note
    )
    top = flat[: options.k]
    _name_articles([*top, *shown], pictures, sharing)
    made = [
        replace(
            result,
            passages=[make(h) for h in result.passages],  # type: ignore[arg-type]
            images=[make(h) for h in result.images],  # type: ignore[arg-type]
            sections=[
                replace(
                    s,
                    passages=[make(h) for h in s.passages],  # type: ignore[arg-type]
                    images=[make(h) for h in s.images],  # type: ignore[arg-type]
                )
                for s in result.sections
            ],
        )
        for result in grouped
    ]
    return [make(item) for item in top], made


def _one_per_picture(ranked: list[_Ranked]) -> tuple[list[_Ranked], dict[int, list[_Ranked]]]:
    """``ranked`` with each picture kept once, at its best copy's place (identical files, and
    resized or re-encoded copies: pictures.py); and each copy's picture (keyed by ``id()`` of
    the item: all the copies found, best first)."""
    groups = [[ranked[pos] for pos in group] for group in group_pictures(ranked)]
    picture: dict[int, list[_Ranked]] = {}
    for group in groups:
        for item in group:
            picture[id(item)] = group
        found = tuple(dict.fromkeys(i.article_id for i in group if i.article_id))
        for item in group:
            item.article_ids = found
    drop = {id(i) for group in groups for i in group[1:]}
    return ([item for item in ranked if id(item) not in drop] if drop else ranked), picture


def _name_articles(
    items: Sequence[_Ranked],
    pictures: Mapping[int, list[_Ranked]],
    sharing: Callable[[Sequence[Picture]], Sequence[Sequence[str]]] | None,
) -> None:
    """The images among ``items`` learn every article that uses their picture: those this
    search found (best first), then the others ``sharing`` knows of."""
    wanted: dict[int, list[_Ranked]] = {}
    for item in items:
        group = pictures.get(id(item))
        if group is not None:
            wanted.setdefault(id(group[0]), group)
    if not wanted or sharing is None:
        return
    groups = list(wanted.values())
    others = sharing([picture_of([i.row for i in group]) for group in groups])
    for group, more in zip(groups, others, strict=True):
        ids = tuple(dict.fromkeys([*group[0].article_ids, *more]))
        for item in group:
            item.article_ids = ids


class _Ranked:
    """A fused item as grouping reads it, and its Hit once made."""

    __slots__ = (
        "article_id",
        "article_ids",
        "confidence",
        "contributions",
        "fused",
        "hit",
        "kind",
        "row",
        "score",
        "section",
    )
    hit: Hit | None

    def __init__(self, fused: Fused, row: Mapping[str, Any]) -> None:
        self.fused, self.row, self.hit = fused, row, None
        self.kind = fused.key[0]  # type: ignore[index]
        self.article_id = row.get("article_id") or None
        self.article_ids: tuple[str, ...] = (self.article_id,) if self.article_id else ()
        self.score = fused.score
        self.contributions = fused.contributions
        self.confidence = fused.confidence
        self.section = row.get("section") or None
