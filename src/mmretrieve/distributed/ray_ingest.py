"""Distributed ingestion on Ray: the local indexing stages, with the heavy ones on an actor pool.

The driver reads the sources (cheap: text and file paths) and drops duplicate ids. Each actor
loads the models once, then runs the ordinary :class:`~mmretrieve.indexing.Indexer` (content
hashes, chunking, image reading and decoding, encoding, row building) over a batch of items
against a :class:`RecordingStore` that knows the batch's previous content hashes and records the
writes instead of making them. The driver replays each batch's writes into the real store, in
their order (old passages deleted, passages, then the article row last). So a Ray run writes the
same rows as a local run, skips unchanged items the same way, and resumes the same way after a
kill; nothing about hashing or row layout is duplicated here.

Ray Core actors rather than Ray Data's ``map_batches``: the sources are Python iterators that are
streamed with bounded memory, and each actor keeps its models for the whole run.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import UsageError, require
from ..indexing import (
    Indexer,
    IndexingOptions,
    IndexReport,
    ProgressFn,
    sources_items,
)
from ..indexing_options import ProgressBar
from ..store.base import ARTICLES, IMAGES, PASSAGES, Filter, Row, Store, StoreHit, TableSchema
from ..store.pictures import drop_unused_pictures, images_without_picture
from ..types import Article, Image, Skipped

if TYPE_CHECKING:
    from ..api import Index
    from ..config import Settings

EncoderFactory = Callable[[], tuple[Any, Any]]  # () -> (text encoder, image encoder or None)
Op = tuple[str, str, Any, Any]  # ("upsert", table, rows, None) | ("delete", table, ids, filter)

ITEMS_PER_TASK = 64  # articles or images per actor call: big enough to fill encoder batches


class RecordingStore:
    """The part of the Store protocol the Indexer uses, recording writes for the driver.

    ``scan`` answers with the previous content hashes the driver looked up for this batch."""

    uri = "recording://"

    def __init__(self, previous: Mapping[str, Mapping[str, str]]) -> None:
        self.previous = previous
        self.ops: list[Op] = []

    def scan(
        self, table: str, fields: Sequence[str], filter: Filter | None = None
    ) -> Iterator[Row]:
        for id_, digest in self.previous.get(table, {}).items():
            yield {"id": id_, "content_hash": digest}

    def upsert(self, table: str, rows: Sequence[Row]) -> None:
        self.ops.append(("upsert", table, list(rows), None))

    def delete(
        self, table: str, ids: Sequence[str] | None = None, filter: Filter | None = None
    ) -> None:
        self.ops.append(("delete", table, list(ids) if ids else None, filter))

    def optimize(self) -> None:
        """Nothing: the driver optimizes the real store once at the end."""

    def ensure_tables(self, schemas: Sequence[TableSchema]) -> None:
        raise NotImplementedError

    def search(self, *args: Any, **kwargs: Any) -> list[StoreHit]:
        raise NotImplementedError


def replay(store: Store, ops: Iterable[Op]) -> None:
    """Make the recorded writes in ``store``, in order."""
    for kind, table, payload, flt in ops:
        if kind == "upsert":
            store.upsert(table, payload)
        else:
            store.delete(table, ids=payload, filter=flt)


def encoders_from_settings(settings: Settings) -> tuple[Any, Any]:
    """Load the models exactly as ``Index`` does for indexing (runs inside each actor)."""
    from ..api import Index

    loader = Index(RecordingStore({}), {}, settings)  # type: ignore[arg-type]
    loader._workload = "index"  # batch work: the same runtime choice as a local `index`
    return loader.text_encoder, loader.image_encoder


class IngestWorker:
    """One actor: models loaded once, then batches of items -> (recorded writes, report)."""

    def __init__(self, encoders: EncoderFactory, options: IndexingOptions) -> None:
        self.text, self.image = encoders()
        self.options = options

    def process(
        self, items: list[Article | Image], previous: dict[str, dict[str, str]]
    ) -> tuple[list[Op], IndexReport]:
        store = RecordingStore(previous)
        indexer = Indexer(store, self.text, self.image, self.options)  # type: ignore[arg-type]
        return store.ops, indexer.run(items)


def connect(address: str, **init_kwargs: Any) -> bool:
    """Connect to Ray: ``auto`` starts one on this machine (or joins ``RAY_ADDRESS`` when set),
    anything else is a cluster address (``ray://head:10001`` or ``HOST:PORT``). Returns whether
    this call started the connection (and so should end it)."""
    ray = require("ray", "ray")
    if ray.is_initialized():
        return False
    if address == "auto":
        if os.environ.get("RAY_ADDRESS"):
            ray.init(**init_kwargs)
        else:
            ray.init(include_dashboard=False, **init_kwargs)
    elif address:
        ray.init(address=address, **init_kwargs)
    else:
        raise UsageError("--ray needs 'auto' or a cluster address such as ray://head:10001")
    return True


def _merge(total: IndexReport, part: IndexReport) -> None:
    for f in fields(IndexReport):
        if f.name == "skipped":
            total.skipped.extend(part.skipped)
        elif f.name != "seconds":
            setattr(total, f.name, getattr(total, f.name) + getattr(part, f.name))


def _batches(
    items: Iterable[Article | Image | Skipped],
    report: IndexReport,
    has_images: bool,
    size: int,
    progress: ProgressFn,
    seen_articles: set[str],
    seen_images: set[str],
) -> Iterator[list[Article | Image]]:
    """Source items in batches; duplicates and source-level skips are reported here, the way
    the Indexer reports them, because only the driver sees the whole stream."""
    batch: list[Article | Image] = []
    for item in items:
        skip = None
        if isinstance(item, Skipped):
            skip = item
        elif isinstance(item, Article):
            if item.id in seen_articles:
                skip = Skipped(
                    item.source or item.id, f"duplicate article id {item.id!r}", "article"
                )
            seen_articles.add(item.id)
        elif has_images:
            if item.id in seen_images:
                skip = Skipped(item.uri, f"duplicate image id {item.id!r}", "image")
            seen_images.add(item.id)
        else:
            continue  # a text-only index has no image table
        if skip is not None:
            report.skipped.append(skip)
            progress("skipped", 1)
            continue
        batch.append(item)  # type: ignore[arg-type]
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def ray_index(
    store: Store,
    encoders: EncoderFactory,
    options: IndexingOptions,
    items: Iterable[Article | Image | Skipped],
    *,
    has_images: bool,
    address: str = "auto",
    workers: int | None = None,
    cpus_per_worker: float = 1.0,
    gpus_per_worker: float = 0.0,
    items_per_task: int = ITEMS_PER_TASK,
    progress: ProgressFn | None = None,
) -> IndexReport:
    """Index ``items`` into ``store`` with ``workers`` Ray actors (default: one per free CPU
    share). ``encoders`` builds the models inside each actor. Same result as a local run."""
    ray = require("ray", "ray")
    progress = progress or (lambda what, n: None)
    start = time.perf_counter()
    started = connect(address)
    try:
        if workers is None:
            free = ray.available_resources().get("CPU", 1.0)
            workers = max(1, int(free // max(cpus_per_worker, 0.001)))
        actor = ray.remote(num_cpus=cpus_per_worker, num_gpus=gpus_per_worker)(IngestWorker)
        worker_options = _without_prune(options)
        pool = [actor.remote(encoders, worker_options) for _ in range(workers)]
        report = IndexReport()
        known = {ARTICLES: _hashes(store, ARTICLES)}
        known[IMAGES] = _hashes(store, IMAGES) if has_images else {}
        if has_images and options.format_version >= 4:
            for image_id in images_without_picture(store):  # what a killed run left half done
                known[IMAGES].pop(image_id, None)
        pending: dict[Any, int] = {}  # future -> actor index
        idle = list(range(workers))

        def collect(block: int) -> None:
            done, _ = ray.wait(list(pending), num_returns=min(block, len(pending)))
            for ref in done:
                idle.append(pending.pop(ref))
                ops, part = ray.get(ref)
                replay(store, ops)
                _merge(report, part)
                _report_progress(part, progress)

        seen_articles: set[str] = set()
        seen_images: set[str] = set()
        batches = _batches(
            items, report, has_images, items_per_task, progress, seen_articles, seen_images
        )
        for batch in batches:
            while not idle:
                collect(1)
            previous = {
                ARTICLES: {
                    i.id: known[ARTICLES][i.id]
                    for i in batch
                    if isinstance(i, Article) and i.id in known[ARTICLES]
                },
                IMAGES: {
                    i.id: known[IMAGES][i.id]
                    for i in batch
                    if isinstance(i, Image) and i.id in known[IMAGES]
                },
            }
            slot = idle.pop()
            pending[pool[slot].process.remote(batch, previous)] = slot
        while pending:
            collect(len(pending))
        if options.prune:
            _prune(
                store,
                report,
                set(known[ARTICLES]) - seen_articles,
                set(known[IMAGES]) - seen_images,
                pictures=has_images and options.format_version >= 4,
            )
        store.optimize()
        for handle in pool:
            ray.kill(handle)
    finally:
        if started:
            ray.shutdown()
    report.seconds = time.perf_counter() - start
    return report


def _without_prune(options: IndexingOptions) -> IndexingOptions:
    # Pruning and repairs need the whole store: the driver does them.
    return replace(options, prune=False, repair_pictures=False)


def _hashes(store: Store, table: str) -> dict[str, str]:
    return {r["id"]: r["content_hash"] for r in store.scan(table, ["id", "content_hash"])}


def _prune(
    store: Store,
    report: IndexReport,
    gone_articles: set[str],
    gone_images: set[str],
    pictures: bool = False,
) -> None:
    """What ``Indexer`` does with ``prune``: drop what the sources no longer have."""
    if gone_articles:
        ids = sorted(gone_articles)
        store.delete(PASSAGES, filter={"article_id": ids})
        store.delete(ARTICLES, ids=ids)
        report.articles_pruned = len(ids)
    if gone_images:
        store.delete(IMAGES, ids=sorted(gone_images))
        report.images_pruned = len(gone_images)
        if pictures:
            drop_unused_pictures(store)  # a picture goes with its last use


def _report_progress(part: IndexReport, progress: ProgressFn) -> None:
    articles = part.articles_added + part.articles_updated + part.articles_unchanged
    images = part.images_added + part.images_updated + part.images_unchanged
    for what, n in (("articles", articles), ("images", images), ("skipped", len(part.skipped))):
        if n:
            progress(what, n)


def add_with_ray(
    index: Index,
    sources: str | Path | Sequence[str | Path],
    *,
    address: str = "auto",
    workers: int | None = None,
    prune: bool = False,
    progress: bool | ProgressFn = False,
    encoders: EncoderFactory | None = None,
    gpus_per_worker: float = 0.0,
) -> IndexReport:
    """``index.add(sources)`` with encoding on Ray; ``encoders`` (default: the index's models
    by name) runs in each actor, so it must be picklable."""
    import datetime as _dt
    from functools import partial

    paths = [sources] if isinstance(sources, (str, Path)) else list(sources)
    s = index.settings
    options = index.indexing_options(prune)
    factory = encoders or partial(encoders_from_settings, s)
    has_images = bool(index.manifest["models"].get("image"))
    with ProgressBar(progress) as report_progress:
        report = ray_index(
            index.store,
            factory,
            options,
            sources_items(paths),
            has_images=has_images,
            address=address,
            workers=workers,
            gpus_per_worker=gpus_per_worker,
            progress=report_progress,
        )
    index.manifest["updated_at"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    index.store.write_manifest(index.manifest)
    return report
