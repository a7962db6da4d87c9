"""Run an evaluation: index a data set, run every query once, score each route and each fusion.

Every query is encoded in batches and each route is asked once per query (the product's own
:class:`~mmretrieve.retrieval.routes.RouteRunner` against the product's store). Single routes and
all fusion settings are then scored from those same route lists with the product's own
:func:`~mmretrieve.retrieval.fusion.fuse`, so the figures side by side differ only in how the
lists are combined, and a fusion study costs no extra searching.

Two levels of judging:

- ``article`` (when the qrels name articles): the ranking a user sees. Each setting's route lists
  go through the product's own :func:`~mmretrieve.retrieval.searcher.rank`, the function every
  search ends with (calibration, fusion, grouping into articles), and the grouped articles are
  judged. A single route is what a search gives with every other route's weight at 0.
- ``flat``: items ranked as the product ranks them (passages and images in one fused list) and
  then mapped to the units that relevance is judged on: a passage counts as its article (= corpus
  document; a document's score is its best passage), an image as itself. Published reference
  figures (BEIR, Flickr30k, COCO) are of this kind.

Queries may carry a ``family`` (e.g. passage, picture, photo, combined): every figure is then
also given per family.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ..errors import UsageError
from ..retrieval import weights as W
from ..retrieval.calibration import Null
from ..retrieval.fusion import METHODS, fuse
from ..retrieval.routes import Key, QueryVectors, Ranked, RouteRunner, Row
from ..retrieval.searcher import DEFAULT_METHOD, MIN_DEPTH, SearchOptions, rank
from ..types import Article
from .datasets import EvalDataset, EvalQuery
from .metrics import dedupe, evaluate
from .report import EvalReport

if TYPE_CHECKING:
    from ..api import Index

DEFAULT_DEPTH = 100  # candidates per route at the flat level: Recall@100 needs at least 100
ARTICLE_DEPTH = MIN_DEPTH  # at the article level: what a search with k = 10 fetches
LEVELS = ("auto", "article", "flat")
DEFAULT_BATCH = 64
DEFAULT_NAME = "fusion:default"

# --routes names: a set name, a family ("text->passage") or one route.
ROUTE_SETS: dict[str, tuple[str, ...]] = {
    "all": W.ALL_ROUTES,
    "text": W.TEXT_ROUTES,
    "image": W.IMAGE_ROUTES,
    "text-passage": (W.TEXT_PASSAGE_DENSE, W.TEXT_PASSAGE_BM25),
    "text-image": (W.TEXT_IMAGE_CLIP, W.TEXT_IMAGE_CAPTION, W.TEXT_IMAGE_BM25),
    "image-image": (W.IMAGE_IMAGE,),
    "image-passage": (W.IMAGE_PASSAGE_CLIP, W.IMAGE_PASSAGE_TITLE, W.IMAGE_PASSAGE_VOTES),
    "dense": (W.TEXT_PASSAGE_DENSE,),
    "bm25": (W.TEXT_PASSAGE_BM25,),
    "lexical": (W.TEXT_PASSAGE_BM25, W.TEXT_IMAGE_BM25),
}


def parse_routes(specs: Sequence[str]) -> tuple[str, ...] | None:
    """``["text-passage", "image->image"]`` (or comma-separated) -> route names; None = all."""
    names = [s.strip() for spec in specs for s in spec.split(",") if s.strip()]
    if not names:
        return None
    chosen: list[str] = []
    for name in names:
        if name in ROUTE_SETS:
            chosen.extend(ROUTE_SETS[name])
        elif name in W.ALL_ROUTES:
            chosen.append(name)
        elif any(r.split(":", 1)[0] == name for r in W.ALL_ROUTES):
            chosen.extend(r for r in W.ALL_ROUTES if r.split(":", 1)[0] == name)
        else:
            raise UsageError(
                f"unknown route or route set {name!r}; sets: {', '.join(ROUTE_SETS)}; "
                f"routes: {', '.join(W.ALL_ROUTES)}"
            )
    return tuple(dict.fromkeys(chosen))


@dataclass(frozen=True, slots=True)
class FusionSetting:
    """One way to combine the route lists."""

    weights: Mapping[str, float]
    method: str = DEFAULT_METHOD


@dataclass
class RouteRuns:
    """What every route returned for every query, and the unit each item counts as."""

    query_ids: list[str]
    lists: list[dict[str, Ranked]]  # per query: route -> ranked (key, score)
    units: dict[Key, str] = field(default_factory=dict)
    nulls: list[dict[str, Null]] = field(default_factory=list)  # per query: route -> its null
    rows: dict[Key, Row] = field(default_factory=dict)  # what a search knows of each item
    ran: set[str] = field(default_factory=set)  # routes that returned something for some query
    ok: set[str] = field(default_factory=set)  # routes that could run for some query
    encode_s: float = 0.0
    search_s: float = 0.0

    def ranked(
        self, setting: FusionSetting | str, route_depth: int | None = None
    ) -> Iterator[tuple[str, Ranked]]:
        """Per query: one route's list (by name) or the fused list of a setting, every route
        first cut to ``route_depth`` candidates."""
        for qid, lists in zip(self.query_ids, self.lists, strict=True):
            if route_depth is not None:
                lists = {name: items[:route_depth] for name, items in lists.items()}
            if isinstance(setting, str):
                yield qid, lists.get(setting, [])
            else:
                yield qid, fuse(lists, setting.weights, method=setting.method)

    def rankings(
        self,
        setting: FusionSetting | str,
        exclude_self: bool = False,
        depth: int = DEFAULT_DEPTH,
        route_depth: int | None = None,
    ) -> dict[str, list[str]]:
        """Unit rankings per query: one route alone (by name) or a fusion setting.

        ``route_depth`` cuts every route's list before fusing, to see what a search with fewer
        candidates per route (the product fetches ``max(50, 5 * k)``) would rank."""
        out: dict[str, list[str]] = {}
        for qid, items in self.ranked(setting, route_depth):
            units = dedupe(self.units[key] for key, _ in items)
            if exclude_self:
                units = [u for u in units if u != qid]
            out[qid] = units[:depth]
        return out

    def article_rankings(
        self, setting: FusionSetting | str, depth: int = DEFAULT_DEPTH
    ) -> dict[str, list[str]]:
        """Article rankings per query, as a search returns them (``rank``): one route alone (by
        name: every other route's weight 0) or a fusion setting."""
        if isinstance(setting, str):
            weight = W.DEFAULT_WEIGHTS.get(setting) or 1.0
            setting = FusionSetting({r: (weight if r == setting else 0.0) for r in W.ALL_ROUTES})
        options = SearchOptions(k=depth, method=setting.method)
        out: dict[str, list[str]] = {}
        for qid, lists, nulls in zip(self.query_ids, self.lists, self.nulls, strict=True):
            lists = {n: items for n, items in lists.items() if setting.weights.get(n, 1.0) > 0}
            _, grouped = rank(lists, self.rows, _bare_article, setting.weights, options, nulls)
            out[qid] = [group.article.id for group in grouped]
        return out


def _bare_article(article_id: str) -> Article:
    return Article(id=article_id, title=article_id)


# -- encoding -----------------------------------------------------------------------------------
def _batches(n: int, size: int) -> list[slice]:
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


def encode_queries(
    index: Index, queries: Sequence[EvalQuery], batch_size: int = DEFAULT_BATCH
) -> list[QueryVectors]:
    """Every query encoded once per model, in batches."""
    text_idx = [i for i, q in enumerate(queries) if q.text and q.text.strip()]
    texts = [str(queries[i].text).strip() for i in text_idx]
    bge: list[np.ndarray | None] = [None] * len(queries)
    clip_text: list[np.ndarray | None] = [None] * len(queries)
    clip_image: list[np.ndarray | None] = [None] * len(queries)
    clip = index.image_encoder
    for part in _batches(len(texts), batch_size):
        vectors = index.text_encoder.encode_queries(texts[part])
        clip_vectors = clip.encode_texts(texts[part]) if clip is not None else None
        for j, i in enumerate(text_idx[part]):
            bge[i] = vectors[j]
            if clip_vectors is not None:
                clip_text[i] = clip_vectors[j]
    image_idx = [i for i, q in enumerate(queries) if q.image]
    if image_idx and clip is None:
        raise UsageError("the data set has image queries, but the index has no image model")
    for part in _batches(len(image_idx), batch_size):
        assert clip is not None
        pictures = [index.decode_image(str(queries[i].image)) for i in image_idx[part]]
        vectors = clip.encode_images(pictures)
        for j, i in enumerate(image_idx[part]):
            clip_image[i] = vectors[j]
    return [
        QueryVectors(
            text=str(q.text).strip() if bge[i] is not None else None,
            bge=bge[i],
            clip_text=clip_text[i],
            clip_image=clip_image[i],
        )
        for i, q in enumerate(queries)
    ]


def collect_runs(
    index: Index,
    queries: Sequence[EvalQuery],
    routes: Sequence[str],
    *,
    depth: int = DEFAULT_DEPTH,
    batch_size: int = DEFAULT_BATCH,
    progress: bool = False,
) -> RouteRuns:
    """Encode all queries, then ask each of ``routes`` once per query (top ``depth`` each)."""
    t0 = time.perf_counter()
    vectors = encode_queries(index, queries, batch_size)
    runs = RouteRuns([q.id for q in queries], [], encode_s=time.perf_counter() - t0)
    active = {name: 1.0 for name in routes}
    has_images = index.image_encoder is not None
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(queries), desc="searching", unit=" queries", dynamic_ncols=True)
    # Every query reads the same way: the tables are held before the first one, not from
    # whenever a background load finishes (the held and the store's exact scores can differ in
    # their last bits, and so order ties differently).
    index.hold_tables()
    t0 = time.perf_counter()
    background = index.searcher.background
    for qv in vectors:
        runner = RouteRunner(
            index.store,
            depth,
            has_images=has_images,
            has_clip_text=bool(index.settings.clip_text_view),
            has_phash=index.format_version >= 3,
            has_pictures=index.format_version >= 4,
        )
        lists, status = runner.run(qv, active)
        runs.nulls.append(background.nulls(qv, list(lists)))
        for key, row in runner.rows.items():
            runs.rows.setdefault(key, row)
        runs.ok.update(name for name, state in status.items() if state == "ok")
        for name, items in lists.items():
            if items:
                runs.ran.add(name)
            for key, _ in items:
                if key not in runs.units:
                    row = runner.rows.get(key, {})
                    runs.units[key] = (
                        str(row.get("article_id") or key[1]) if key[0] == "passage" else key[1]
                    )
        runs.lists.append(lists)
        if bar is not None:
            bar.update(1)
    runs.search_s = time.perf_counter() - t0
    if bar is not None:
        bar.close()
    return runs


# -- the whole run -------------------------------------------------------------------------------
def score_runs(
    runs: RouteRuns,
    dataset: EvalDataset,
    routes: Sequence[str] | None = None,
    weights: Mapping[str, float] | None = None,
    methods: Sequence[str] = tuple(METHODS),
    depth: int = DEFAULT_DEPTH,
    level: str = "flat",
) -> tuple[dict[str, dict[str, dict[str, float]]], str, float]:
    """Figures for each route alone, each fusion method over ``routes`` with ``weights`` (routes
    not chosen weigh 0), and the product's default; at the article level also each route family
    alone. Returns ({"all" or a query family: {result: metrics}}, default name, seconds)."""
    t0 = time.perf_counter()
    # Routes asked for by name are shown when they could run; otherwise those that found anything.
    chosen = (
        [r for r in routes if r in runs.ok]
        if routes
        else [r for r in W.ALL_ROUTES if r in runs.ran]
    )
    groups = _query_groups(dataset)
    results: dict[str, dict[str, dict[str, float]]] = {name: {} for name in groups}

    def score(name: str, setting: FusionSetting | str) -> None:
        if level == "article":
            ranked = runs.article_rankings(setting, depth)
        else:
            ranked = runs.rankings(setting, dataset.ignore_identical_ids, depth)
        for group, ids in groups.items():
            picked = {q: ranked[q] for q in ids if q in ranked}
            results[group][name] = evaluate(picked, {q: dataset.qrels[q] for q in picked})

    for name in chosen:
        score(name, name)
    if level == "article":
        for fam in dict.fromkeys(W.family(r) for r in chosen):
            members = [r for r in chosen if W.family(r) == fam]
            if len(members) > 1:
                alone = {r: (w if r in members else 0.0) for r, w in W.DEFAULT_WEIGHTS.items()}
                score(f"family:{fam}", FusionSetting(alone))
    effective = {r: (w if r in chosen else 0.0) for r, w in W.resolve_weights(weights).items()}
    default = FusionSetting(dict(W.DEFAULT_WEIGHTS), DEFAULT_METHOD)
    default_name = DEFAULT_NAME
    if sum(1 for r in chosen if effective[r] > 0) > 1:
        same_weights = all(effective[r] == default.weights[r] for r in runs.ran)
        for method in methods:
            score(f"fusion:{method}", FusionSetting(effective, method))
            if method == DEFAULT_METHOD and same_weights:
                default_name = f"fusion:{method}"
    if default_name == DEFAULT_NAME:
        score(DEFAULT_NAME, default)
    return results, default_name, time.perf_counter() - t0


def _query_groups(dataset: EvalDataset) -> dict[str, list[str]]:
    """Query ids of all queries, then of each query family (when the queries name families)."""
    groups = {"all": [q.id for q in dataset.queries]}
    for fam in dataset.families:
        groups[fam] = [q.id for q in dataset.queries if q.family == fam]
    return groups


def routes_to_run(routes: Sequence[str] | None) -> tuple[str, ...]:
    """The chosen routes plus those the product's default uses, so the default can be scored."""
    chosen = tuple(routes or W.ALL_ROUTES)
    default = tuple(r for r, w in W.DEFAULT_WEIGHTS.items() if w > 0)
    return tuple(dict.fromkeys(chosen + default))


@dataclass(frozen=True, slots=True)
class EvalOptions:
    """How to run an evaluation (see ``mmretrieve eval --help``)."""

    routes: tuple[str, ...] | None = None
    weights: Mapping[str, float] | None = None
    methods: tuple[str, ...] = tuple(METHODS)
    depth: int | None = None  # default: DEFAULT_DEPTH (flat) or ARTICLE_DEPTH (article)
    batch_size: int = DEFAULT_BATCH
    limit: int | None = None
    level: str = "auto"  # auto: what the data set's qrels judge (EvalDataset.level)


def run_eval(
    dataset: EvalDataset,
    index: Index,
    options: EvalOptions = EvalOptions(),
    *,
    progress: bool = False,
    index_s: float = 0.0,
) -> EvalReport:
    """Evaluate ``dataset`` (its first ``options.limit`` scorable queries) on ``index``."""
    if options.level not in LEVELS:
        raise UsageError(f"unknown level {options.level!r}; choose one of {', '.join(LEVELS)}")
    level = dataset.level if options.level == "auto" else options.level
    depth = options.depth or (ARTICLE_DEPTH if level == "article" else DEFAULT_DEPTH)
    if depth < 1:
        raise UsageError(f"depth must be at least 1, got {depth}")
    unknown = [m for m in options.methods if m not in METHODS]
    if unknown:
        raise UsageError(f"unknown fusion method {unknown[0]!r}; choose from {', '.join(METHODS)}")
    data = dataset.limited(options.limit)
    if not data.queries:
        raise UsageError(f"{dataset.name}: no query has a relevant item in the qrels")
    runs = collect_runs(
        index,
        data.queries,
        routes_to_run(options.routes),
        depth=depth,
        batch_size=options.batch_size,
        progress=progress,
    )
    grouped, default, fuse_s = score_runs(
        runs, data, options.routes, options.weights, options.methods, depth, level
    )
    n = len(data.queries)
    timings = {
        "index_s": round(index_s, 3),
        "encode_s": round(runs.encode_s, 3),
        "search_s": round(runs.search_s, 3),
        "score_s": round(fuse_s, 3),
        "encode_ms_per_query": round(1000 * runs.encode_s / n, 3),
        "search_ms_per_query": round(1000 * runs.search_s / n, 3),
    }
    models = {role: (m or {}).get("name") for role, m in index.manifest.get("models", {}).items()}
    settings = {
        "format": data.format,
        "level": level,
        "models": models,
        "runtime": index.manifest.get("runtime"),
        "depth": depth,
        "routes": sorted(runs.ran),
        "weights": dict(options.weights or {}),
        "default_method": DEFAULT_METHOD,
        "default_weights": {r: w for r, w in W.DEFAULT_WEIGHTS.items() if r in runs.ran},
    }
    families = {
        fam: {"queries": sum(1 for q in data.queries if q.family == fam), "results": grouped[fam]}
        for fam in data.families
    }
    return EvalReport(data.name, n, grouped["all"], default, timings, settings, families)
