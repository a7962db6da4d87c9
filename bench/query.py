"""Query latency and ANN quality at scale: p50/p95 of text, image and combined queries end to
end (``Index.search``) over generated stores of 100k passages + 20k images, recall@10 of the
ANN path against exact search, the exact-versus-ANN crossover, and ``--encoders``: single-query
encoder latency of every runtime and precision.

Vectors are generated (clustered on the unit sphere, like real embeddings); the query encoders
are RANDOM-weight bge-small and CLIP ViT-B/32 of the real architectures.

Examples:
    python bench/query.py --quick --json
    MMRETRIEVE_BENCH_SEQUENTIAL=1 python bench/query.py --quick --json   # routes not overlapped
    python bench/query.py --sweep --crossover          # choose the ANN parameters
    python bench/query.py --precision auto,int8        # end to end, two configurations
    python bench/query.py --encoders
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import (
    CACHE,
    SHARED,
    _vocabulary,
    emit,
    ensure_onnx,
    machine,
    percentiles,
    query_pictures,
    random_models,
    synthetic_text,
    time_calls,
    versions,
    wait_for_quiet,
)

CENTERS = 2000
SPREAD = 0.9  # noise norm around a cluster centre (unit centre): neighbours are near, not equal


class Vectors:
    """Clustered unit vectors. The cluster centres depend only on the dimension, so data and
    queries drawn with different seeds share them (queries have real neighbours)."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.centers: dict[int, np.ndarray] = {}

    def sample(self, n: int, dim: int) -> np.ndarray:
        centers = self.centers.get(dim)
        if centers is None:
            gen = np.random.default_rng(10_000 + dim)
            centers = gen.standard_normal((CENTERS, dim)).astype(np.float32)
            centers /= np.linalg.norm(centers, axis=1, keepdims=True)
            self.centers[dim] = centers
        picked = centers[self.rng.integers(0, CENTERS, n)]
        noise = self.rng.standard_normal((n, dim)).astype(np.float32) * (SPREAD / np.sqrt(dim))
        out = picked + noise
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def build_store(root: Path, passages: int, images: int, text_dir: Path, clip_dir: Path) -> Path:
    """An index whose manifest matches the random models, filled with generated rows (no ANN
    index yet; full-text indexes built). Reused when already there."""
    from mmretrieve import Index
    from mmretrieve.config import Settings
    from mmretrieve.documents.chunking import passage_id

    if (root / ".complete").is_file():
        return root
    vec, rng, vocab = Vectors(1), random.Random(1), _vocabulary()
    articles = max(1, passages // 20)
    settings = Settings(runtime="torch", precision="fp32")
    index = Index.open(root, text_model=str(text_dir), image_model=str(clip_dir), settings=settings)
    store = index.store
    view = bool(index.settings.clip_text_view)  # the product's default: no CLIP text view
    store.ann_min_rows = 10**12  # no ANN while loading; the caller decides
    step = 10_000
    for start in range(0, passages, step):
        n = min(step, passages - start)
        bge, clip = vec.sample(n, 384), vec.sample(n, 512)
        store.upsert(
            "passages",
            [
                {
                    "id": passage_id(f"a{(start + i) % articles}", (start + i) // articles),
                    "article_id": f"a{(start + i) % articles}",
                    "text": synthetic_text(rng, vocab, 180),
                    "position": (start + i) // articles,
                    "section": "",
                    "content_hash": "h",
                    "bge": bge[i],
                    **({"clip_text": clip[i]} if view else {}),
                }
                for i in range(n)
            ],
        )
    pictures = index.format_version >= 4  # a picture's CLIP vector in its own table
    for start in range(0, images, step):
        n = min(step, images - start)
        clip, cap = vec.sample(n, 512), vec.sample(n, 384)
        if pictures:
            store.upsert(
                "pictures",
                [
                    {
                        "id": f"{start + i:064x}",
                        "phash": None,
                        "width": 1000,
                        "height": 700,
                        "clip_image": clip[i],
                    }
                    for i in range(n)
                ],
            )
        store.upsert(
            "images",
            [
                {
                    "id": f"i{start + i}",
                    "article_id": f"a{(start + i) % articles}",
                    "uri": f"/images/{start + i}.jpg",
                    "caption": "photo " + rng.choice(vocab),
                    "alt_text": None,
                    "search_text": "photo " + rng.choice(vocab),
                    "width": 1000,
                    "height": 700,
                    "sha256": f"{start + i:064x}",
                    "license": None,
                    "has_caption": True,
                    "content_hash": "h",
                    **({} if pictures else {"clip_image": clip[i]}),
                    "caption_bge": cap[i],
                }
                for i in range(n)
            ],
        )
    titles = vec.sample(articles, 512)
    store.upsert(
        "articles",
        [
            {
                "id": f"a{j}",
                "title": f"Article {j}",
                "url": None,
                "license": None,
                "source": None,
                "content_hash": "h",
                "n_passages": 20,
                "clip_title": titles[j],
            }
            for j in range(articles)
        ],
    )
    store.optimize()
    index.close()
    (root / ".complete").write_text("ok")
    return root


def _all_vectors(store: Any, table: str, field: str) -> tuple[list[str], np.ndarray]:
    tbl = store._table(table).to_arrow().select(["id", field])
    ids = tbl.column("id").to_pylist()
    flat = tbl.column(field).combine_chunks().flatten().to_numpy()
    return ids, flat.reshape(len(ids), -1).astype(np.float32)


def store_vectors(root: Path, table: str, field: str) -> tuple[list[str], np.ndarray]:
    """Every ``(id, vector)`` of ``table.field`` in the store ``build_store`` made at ``root``, so
    another stack (bench/seed_stack.py) can be loaded with exactly the same vectors."""
    from mmretrieve.store.lance import LanceStore

    store = LanceStore(root)
    try:
        if (table, field) == ("images", "clip_image") and store.has_table("pictures"):
            table = "pictures"  # index format 4: a picture's CLIP vector is stored once
        return _all_vectors(store, table, field)
    finally:
        store.close()


def text_queries(n: int) -> list[str]:
    """The first ``n`` questions of squad_dev: the text queries of every end-to-end run (on a
    machine without the shared data, generated ten-word questions)."""
    path = SHARED / "data" / "squad_dev" / "queries.jsonl"
    if not path.is_file():
        rng, vocab = random.Random(2), _vocabulary()
        return [" ".join(rng.choice(vocab) for _ in range(10)) + "?" for _ in range(n)]
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line)["text"] for line in itertools.islice(fh, n)]


def recall_and_latency(
    store: Any, table: str, field: str, queries: np.ndarray, truth: list[set[str]]
) -> dict[str, float]:
    hits, times = [], []
    for q, want in zip(queries, truth, strict=True):
        t0 = time.perf_counter()
        got = store.search(table, field, q, 10, fields=("id",))
        times.append((time.perf_counter() - t0) * 1000)
        hits.append(len({h.id for h in got} & want) / 10)
    return {"recall_at_10": round(float(np.mean(hits)), 4), **percentiles(times)}


def sweep(root: Path, n_queries: int, kinds: list[str]) -> dict[str, Any]:
    """Exact vs ANN on passages.bge: latency, and recall@10 against exact numpy search."""
    from mmretrieve.store.lance import LanceStore

    store = LanceStore(root)
    store.ann_min_rows = 10**12
    ids, data = _all_vectors(store, "passages", "bge")
    queries = Vectors(7).sample(n_queries, 384)
    top = np.argsort(-(queries @ data.T), axis=1)[:, :10]
    truth = [{ids[j] for j in row} for row in top]
    tbl = store._table("passages")
    out: dict[str, Any] = {"rows": len(ids)}
    for ix in tbl.list_indices():
        if ix.columns == ["bge"]:
            tbl.drop_index(ix.name)
    store._ann_fields.clear()
    out["exact"] = recall_and_latency(store, "passages", "bge", queries, truth)
    from mmretrieve.store.lance_ann import ann_config

    for kind in kinds:
        t0 = time.perf_counter()
        tbl.create_index("bge", config=ann_config(kind, len(ids), 384), replace=True)
        build = round(time.perf_counter() - t0, 1)
        store._ann_fields.clear()
        for nprobes in (10, 20, 32, 64):
            for refine in (1, 10, 20):
                store.ann_nprobes, store.ann_refine = nprobes, refine
                key = f"{kind} nprobes={nprobes} refine={refine}"
                out[key] = {
                    "build_s": build,
                    **recall_and_latency(store, "passages", "bge", queries, truth),
                }
                print(f"# {key}: {out[key]}", file=sys.stderr, flush=True)
    return out


def crossover(sizes: list[int], n_queries: int) -> dict[str, Any]:
    """Exact vs ANN (the store's default ANN settings) latency on tables of growing size."""
    import tempfile

    from mmretrieve.store import table_schemas
    from mmretrieve.store.lance import LanceStore

    out = {}
    vec = Vectors(3)
    queries = vec.sample(n_queries, 384)
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            store = LanceStore(tmp)
            store.ensure_tables(table_schemas(384, None, clip_text_view=False))
            store.ann_min_rows = 10**12
            data = vec.sample(n, 384)
            for s in range(0, n, 20_000):
                store.upsert(
                    "passages",
                    [
                        {
                            "id": f"p{i}",
                            "article_id": "a",
                            "text": "t",
                            "position": 0,
                            "section": "",
                            "content_hash": "h",
                            "bge": data[i],
                        }
                        for i in range(s, min(n, s + 20_000))
                    ],
                )
            top = np.argsort(-(queries @ data.T), axis=1)[:, :10]
            truth = [{f"p{j}" for j in row} for row in top]
            exact = recall_and_latency(store, "passages", "bge", queries, truth)
            store.ann_min_rows = 1
            store.optimize()
            ann = recall_and_latency(store, "passages", "bge", queries, truth)
            out[str(n)] = {"exact": exact, "ann": ann}
            print(
                f"# {n}: exact p50 {exact['p50']} ms, ann p50 {ann['p50']} ms "
                f"recall {ann['recall_at_10']}",
                file=sys.stderr,
                flush=True,
            )
    return out


def end_to_end(
    root: Path, runtime: str, precision: str, n: int, device: str | None = None
) -> dict[str, Any]:
    """p50/p95 of ``n`` text, image and combined searches (after 2 warm-up ones each): text
    ``text_queries(n + 2)[i]``, picture ``query_pictures()[i % len]`` for search ``i``."""
    from mmretrieve import Index
    from mmretrieve.config import Settings

    texts = text_queries(n + 2)
    pictures = query_pictures()
    settings = Settings(runtime=runtime, precision=precision, device=device)
    index = Index.open(root, create=False, settings=settings)
    store = index.store
    # MMRETRIEVE_BENCH_SEQUENTIAL=1: the routes one after another, to compare with overlapped.
    store.concurrent_reads = os.environ.get("MMRETRIEVE_BENCH_SEQUENTIAL", "") != "1"
    store.optimize()  # builds the ANN indexes when the tables are past the threshold
    t0 = time.perf_counter()
    # What `mmretrieve serve` does at start: models loaded and run once, tables held in memory.
    # MMRETRIEVE_HOT_CACHE_MB=0 compares with every read going to Lance.
    warm = index.warm()
    load_s = time.perf_counter() - t0
    out: dict[str, Any] = {
        "runtime": runtime,
        "precision": precision,
        "concurrent_reads": store.concurrent_reads,
        "model_load_s": round(load_s, 2),
        "tables_held": warm["tables_held"],
        "models": [
            {k: m.get(k) for k in ("name", "runtime", "dtype")} for m in index.loaded_models()
        ],
        "ann_fields": {t: sorted(store._vector_indexes(t)) for t in ("passages", "images")},
    }
    kinds = {
        "text": lambda i: index.search(text=texts[i], k=10),
        "image": lambda i: index.search(image=pictures[i % len(pictures)], k=10),
        "combined": lambda i: index.search(text=texts[i], image=pictures[i % len(pictures)], k=10),
    }
    calls: dict[str, list[float]] = {}

    def timed(method: str) -> None:  # per store call, keyed by table and field (profile)
        inner = getattr(store, method)

        def wrapper(table: str, field_or_query: Any, *args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return inner(table, field_or_query, *args, **kwargs)
            finally:
                what = field_or_query if method == "search" else "bm25"
                calls.setdefault(f"{table}.{what}", []).append((time.perf_counter() - t0) * 1000)

        setattr(store, method, wrapper)

    timed("search")
    timed("text_search")
    for kind, fn in kinds.items():
        times, parts = [], {}
        calls.clear()
        for i in range(n + 2):
            t0 = time.perf_counter()
            result = fn(i)
            if i >= 2:
                times.append((time.perf_counter() - t0) * 1000)
                for key, value in result.timings.items():
                    parts.setdefault(key, []).append(value)
        out[kind] = {
            **percentiles(times),
            "parts_p50_ms": {k: round(float(np.median(v)), 2) for k, v in parts.items()},
            "store_calls_p50_ms": {k: round(float(np.median(v)), 2) for k, v in calls.items()},
        }
    index.close()
    return out


def encoder_latency(repeat: int) -> list[dict[str, Any]]:
    from PIL import Image

    from mmretrieve.encoders import load_image_encoder, load_text_encoder
    from mmretrieve.encoders.runtime import cpu_supports_bf16

    text_dir, clip_dir = random_models()
    ensure_onnx(text_dir, clip_dir)
    photo = Image.open(query_pictures()[0]).convert("RGB")
    photo.load()
    rows = []
    for runtime, precision in [
        ("torch", "fp32"),
        ("torch", "bf16"),
        ("onnx", "fp32"),
        ("onnx", "int8"),
        ("openvino", "fp32"),
        ("openvino", "bf16"),
    ]:
        if precision == "bf16" and not cpu_supports_bf16():
            continue
        options = {"runtime": runtime, "precision": precision, "workload": "query"}
        text = load_text_encoder(str(text_dir), **options)
        clip = load_image_encoder(str(clip_dir), **options)
        q = "who played the batman in the 1989 film"  # 12 tokens with [CLS]/[SEP]
        rows.append(
            {
                "runtime": runtime,
                "precision": precision,
                "bge_query_ms": percentiles(
                    time_calls(lambda t=text, q=q: t.encode_queries([q]), repeat)
                ),
                "clip_text_ms": percentiles(
                    time_calls(lambda c=clip, q=q: c.encode_texts([q]), repeat)
                ),
                "clip_image_ms": percentiles(
                    time_calls(lambda c=clip: c.encode_images([photo]), repeat)
                ),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="5k passages, 1k images, few queries")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    parser.add_argument("--passages", type=int, default=None, help="default 100000")
    parser.add_argument("--images", type=int, default=None, help="default 20000")
    parser.add_argument("--queries", type=int, default=None, help="per kind (default 40)")
    parser.add_argument("--runtime", default="auto", help="comma list of auto, torch, onnx")
    parser.add_argument("--precision", default="auto", help="comma list of auto, fp32, int8...")
    parser.add_argument("--sweep", action="store_true", help="ANN parameter sweep on passages")
    parser.add_argument(
        "--kinds", default="ivf_pq,ivf_sq,ivf_flat,ivf_hnsw_sq", help="ANN kinds to sweep"
    )
    parser.add_argument("--crossover", action="store_true", help="exact vs ANN by table size")
    parser.add_argument("--encoders", action="store_true", help="single-query encoder latency")
    parser.add_argument("--no-e2e", action="store_true", help="skip the end-to-end queries")
    parser.add_argument("--wait", action="store_true", help="wait for load average < 2.5 first")
    args = parser.parse_args()
    passages = args.passages or (5000 if args.quick else 100_000)
    images = args.images or (1000 if args.quick else 20_000)
    n = args.queries or (5 if args.quick else 40)

    load = wait_for_quiet() if args.wait else None
    result: dict[str, Any] = {
        "bench": "query",
        "machine": machine(),
        "load_at_start": load,
        "passages": passages,
        "images": images,
    }
    if args.encoders:
        result["encoders"] = encoder_latency(10 if args.quick else 40)
    text_dir, clip_dir = random_models()
    if not args.encoders or args.sweep or args.crossover:
        t0 = time.perf_counter()
        root = build_store(
            CACHE / f"store-{passages}-{images}", passages, images, text_dir, clip_dir
        )
        result["build_s"] = round(time.perf_counter() - t0, 1)
    if args.sweep:
        result["sweep"] = sweep(root, 50 if args.quick else 200, args.kinds.split(","))
    if args.crossover:
        sizes = [2000, 5000] if args.quick else [5_000, 10_000, 25_000, 50_000, 100_000]
        result["crossover"] = crossover(sizes, 30 if args.quick else 100)
    if not args.encoders and not args.no_e2e:
        if "auto" in args.runtime:
            ensure_onnx(text_dir, clip_dir)
        runs = []
        for runtime in args.runtime.split(","):
            for precision in args.precision.split(","):
                runs.append(end_to_end(root, runtime, precision, n))
        result["end_to_end"] = runs
    result["machine"]["load_avg_end"] = machine()["load_avg"]
    result["versions"] = versions()
    emit(result, args.json)


if __name__ == "__main__":
    main()
