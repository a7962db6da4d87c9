"""The index an evaluation runs on: an existing one used as it is, or the data set indexed."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import UsageError
from .datasets import EvalDataset

if TYPE_CHECKING:
    from ..api import Index


def needs_image_model(dataset: EvalDataset) -> bool:
    return bool(dataset.images) or any(q.image for q in dataset.queries)


def build_index(
    index: Index, dataset: EvalDataset, progress: Callable[[str, int], None] | None = None
) -> Any:
    """Write the data set's articles and images into ``index`` (ids kept as they are)."""
    from ..indexing import Indexer

    options = index.indexing_options()
    indexer = Indexer(index.store, index.text_encoder, index.image_encoder, options, progress)
    report = indexer.run([*dataset.articles, *dataset.images])
    if report.skipped:
        first = report.skipped[0]
        raise UsageError(
            f"{len(report.skipped)} items of the data set could not be indexed, so the figures "
            f"would be wrong; first: {first.path}: {first.reason}"
        )
    return report


def open_eval_index(
    dataset: EvalDataset,
    index_path: str | Path | None,
    *,
    text_model: str | None = None,
    image_model: str | None = None,
    settings: Any = None,
    workdir: str | Path | None = None,
    progress: bool = False,
) -> tuple[Any, float]:
    """An index holding ``dataset``: the one at ``index_path`` as it is when it exists, else a new
    one built there (or under ``workdir`` when no path is given). Returns (index, seconds spent
    building)."""
    from ..api import Index
    from ..store import open_store

    location = index_path if index_path is not None else Path(str(workdir)) / "index"
    probe = open_store(location)
    try:
        exists = probe.read_manifest() is not None
    finally:
        probe.close()
    if exists:  # used as it is: it must already hold the data set, with the same ids
        index = Index.open(
            location,
            text_model=text_model,
            image_model=image_model,
            create=False,
            settings=settings,
        )
        return index, 0.0
    if image_model is None and not needs_image_model(dataset):
        image_model = "none"  # nothing to embed with CLIP: do not load it
    t0 = time.perf_counter()
    index = Index.open(location, text_model=text_model, image_model=image_model, settings=settings)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(desc="indexing", unit=" items", dynamic_ncols=True)
    try:
        build_index(index, dataset, (lambda what, n: bar.update(n)) if bar is not None else None)
    finally:
        if bar is not None:
            bar.close()
    return index, time.perf_counter() - t0
