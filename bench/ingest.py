"""Ingestion throughput end to end: images/s and passages/s through ``Index.add``, with peak RSS
and where the time went, on ../shared/data/wiki_tutorial and on generated corpora; plus
``--encoders``, the raw encoder throughput of every runtime and precision.

Models are RANDOM-weight bge-small and CLIP ViT-B/32 (real architectures, real tokenizers, so
they cost what the real ones do); ONNX files are exported into the export cache on first use.
Each end-to-end run is a fresh child process, so its peak RSS is its own.

Examples:
    python bench/ingest.py --quick --json
    python bench/ingest.py --corpus images,text,wiki --runtime auto
    python bench/ingest.py --encoders
    python bench/ingest.py --efficiency --json     # end to end / encoders alone, same inputs
    python bench/ingest.py --reuse --json          # photos used by 3 articles each
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import (
    CACHE,
    SHARED,
    Stopwatch,
    cpu_bound_rate,
    emit,
    ensure_onnx,
    machine,
    peak_rss_mib,
    random_models,
    synthetic_corpus,
    time_calls,
    versions,
    wait_for_quiet,
)

VARIANTS = [("torch", "fp32"), ("torch", "bf16"), ("onnx", "fp32"), ("onnx", "int8")]


def corpus_path(name: str, quick: bool) -> Path:
    if name == "wiki":
        return SHARED / "data" / "wiki_tutorial"
    if name == "images":  # photos only: images/s
        n = 48 if quick else 600
        return synthetic_corpus(CACHE / f"corpus-images-{n}", 0, n)
    if name == "images3x":  # three times as many: peak RSS must not grow with the corpus
        return synthetic_corpus(CACHE / "corpus-images-1800", 0, 1800)
    if name == "text":  # articles only: passages/s at 256-token passages
        n = 6 if quick else 60
        return synthetic_corpus(CACHE / f"corpus-text-{n}", n, 0, words=2500)
    raise SystemExit(f"unknown corpus {name!r}")


def run_one(name: str, runtime: str, precision: str, quick: bool) -> dict[str, Any]:
    """Index one corpus into a fresh index in this process; throughput and profile."""
    import mmretrieve.indexing as indexing
    from mmretrieve import Index
    from mmretrieve.config import Settings

    text_dir, clip_dir = random_models()  # built (and exported) by the parent
    source = corpus_path(name, quick)
    watch = Stopwatch()
    prepare = indexing._prepare_image
    watch.wrap(indexing, "_prepare_image", "decode (summed over threads)")
    settings = Settings(runtime=runtime, precision=precision)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        index = Index.open(
            Path(tmp) / "idx",
            text_model=str(text_dir),
            image_model=str(clip_dir),
            settings=settings,
        )
        load_s = time.perf_counter() - t0
        watch.wrap(index.text_encoder, "encode_documents", "bge encode")
        watch.wrap(index.image_encoder, "encode_texts", "clip text encode")
        watch.wrap(index.image_encoder, "encode_images", "clip image encode")
        for method in ("upsert", "delete", "optimize"):
            watch.wrap(index.store, method, f"store {method}")
        cpu0 = time.process_time()
        report = index.add(source)
        cpu_s = time.process_time() - cpu0
        models = index.loaded_models()
        index.close()
    indexing._prepare_image = prepare
    seconds = report.seconds
    return {
        "corpus": name,
        "source": str(source),
        "runtime": runtime,
        "precision": precision,
        "models": [{k: m.get(k) for k in ("name", "runtime", "dtype")} for m in models],
        "seconds": round(seconds, 2),
        "model_load_s": round(load_s, 2),
        "images": report.images_encoded,
        "passages": report.passages_encoded,
        "articles": report.articles_added,
        "images_per_s": round(report.images_encoded / seconds, 1) if seconds else 0.0,
        "passages_per_s": round(report.passages_encoded / seconds, 1) if seconds else 0.0,
        "cpu_s": round(cpu_s, 2),
        "images_per_cpu_bound_s": cpu_bound_rate(report.images_encoded, cpu_s),
        "passages_per_cpu_bound_s": cpu_bound_rate(report.passages_encoded, cpu_s),
        "peak_rss_mib": round(peak_rss_mib()),
        "profile_s": watch.report(),
        "skipped": len(report.skipped),
    }


def encoder_table(quick: bool) -> list[dict[str, Any]]:
    """Throughput of each encoder in each runtime/precision (batch 32), like the issue's table."""
    import numpy as np
    from PIL import Image

    from mmretrieve.encoders import load_image_encoder, load_text_encoder
    from mmretrieve.encoders.runtime import cpu_supports_bf16

    text_dir, clip_dir = random_models()
    ensure_onnx(text_dir, clip_dir)
    rng = np.random.default_rng(0)
    photos = [
        Image.fromarray(rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)) for _ in range(32)
    ]
    # Common English words, one WordPiece token each, so a passage of n - 2 words is n tokens
    # with [CLS] and [SEP] (checked below with the model's own tokenizer).
    words = [
        "the",
        "city",
        "river",
        "music",
        "house",
        "water",
        "light",
        "history",
        "people",
        "world",
        "king",
        "war",
        "art",
        "school",
        "church",
        "army",
        "night",
        "film",
        "game",
        "sea",
        "land",
        "power",
        "family",
        "road",
        "year",
        "time",
        "book",
        "team",
        "north",
        "south",
        "west",
        "east",
        "language",
        "island",
        "bridge",
        "garden",
        "station",
        "market",
        "village",
        "mountain",
        "forest",
    ]
    passages = {
        n: [" ".join(words[(i * 7 + j) % len(words)] for i in range(n - 2)) for j in range(32)]
        for n in (128, 256)
    }
    captions = [" ".join(words[(i + j) % len(words)] for i in range(60)) for j in range(32)]
    repeat = 1 if quick else 3
    rows = []
    for runtime, precision in VARIANTS:
        if precision == "bf16" and not cpu_supports_bf16():
            continue
        clip = load_image_encoder(str(clip_dir), runtime=runtime, precision=precision)
        text = load_text_encoder(str(text_dir), runtime=runtime, precision=precision)
        row: dict[str, Any] = {"runtime": runtime, "precision": precision}
        for n, batch in passages.items():
            assert max(text.count_tokens(batch)) == n - 2, "bench passages are not n tokens"
        jobs = {
            "clip_image_batch32_img_s": lambda c=clip: c.encode_images(photos),
            "clip_text_batch32_texts_s": lambda c=clip: c.encode_texts(captions),
            **{
                f"bge_batch32x{n}_passages_s": (lambda b=b, t=text: t.encode_documents(b))
                for n, b in passages.items()
            },
        }
        for key, job in jobs.items():
            cpu: list[float] = []
            wall = sorted(time_calls(job, repeat, 1, cpu))[repeat // 2]
            row[key] = round(32_000 / wall, 1)
            row[key[:-2] + "_cpu_bound_s"] = cpu_bound_rate(32, sorted(cpu)[repeat // 2] / 1000)
        rows.append(row)
    return rows


def parity_table() -> list[dict[str, Any]]:
    """Per-vector cosine of every runtime/precision against PyTorch fp32 on the same inputs:
    the REAL all-MiniLM-L6-v2 (SQuAD passages and questions, plus one-word texts) and the
    random full-size bge-small and CLIP ViT-B/32."""
    from PIL import Image

    from mmretrieve.encoders import load_image_encoder, load_text_encoder
    from mmretrieve.encoders.onnx_export import export_model
    from mmretrieve.encoders.runtime import EXPORT_INFO, cpu_supports_bf16

    squad = SHARED / "data" / "squad_dev"
    lines = (squad / "corpus.jsonl").read_text(encoding="utf-8").splitlines()[:400:8]
    questions = (squad / "queries.jsonl").read_text(encoding="utf-8").splitlines()[:2000:40]
    texts = [json.loads(x)["text"] for x in lines] + [json.loads(x)["text"] for x in questions]
    short = ["x", "Batman", "Gotham City", "cat", "Paris"]
    photos = [
        Image.open(p).convert("RGB")
        for p in sorted((SHARED / "data" / "wiki_tutorial" / "images").glob("*.jpg"))[:24]
    ]
    minilm = SHARED / "models" / "all-MiniLM-L6-v2"
    text_dir, clip_dir = random_models()
    ensure_onnx(text_dir, clip_dir)
    minilm_onnx = CACHE / "minilm-onnx"
    if not (minilm_onnx / EXPORT_INFO).is_file():
        export_model(str(minilm), minilm_onnx)
    variants = [("onnx", "fp32"), ("onnx", "int8")]
    if cpu_supports_bf16():
        variants.insert(0, ("torch", "bf16"))

    def cos(a: Any, b: Any) -> dict[str, float]:
        c = (a * b).sum(axis=1)
        return {"min": round(float(c.min()), 5), "mean": round(float(c.mean()), 5)}

    rows = []
    for label, src, onnx_dir in (
        ("all-MiniLM-L6-v2 (real)", minilm, minilm_onnx),
        ("bge-small (random)", text_dir, text_dir),
    ):
        ref = load_text_encoder(str(src))
        ref_long, ref_short = ref.encode_documents(texts), ref.encode_documents(short)
        for runtime, precision in variants:
            folder = onnx_dir if runtime == "onnx" else src
            enc = load_text_encoder(str(folder), runtime=runtime, precision=precision)
            rows.append(
                {
                    "model": label,
                    "runtime": runtime,
                    "precision": precision,
                    "sentences_passages": cos(ref_long, enc.encode_documents(texts)),
                    "one_or_two_words": cos(ref_short, enc.encode_documents(short)),
                }
            )
    ref = load_image_encoder(str(clip_dir))
    ref_i, ref_t = ref.encode_images(photos), ref.encode_texts(texts + short)
    for runtime, precision in variants:
        enc = load_image_encoder(str(clip_dir), runtime=runtime, precision=precision)
        rows.append(
            {
                "model": "CLIP ViT-B/32 (random)",
                "runtime": runtime,
                "precision": precision,
                "images": cos(ref_i, enc.encode_images(photos)),
                "texts": cos(ref_t, enc.encode_texts(texts + short)),
            }
        )
    return rows


def efficiency(
    quick: bool, runtime: str, precision: str, device: str | None = None
) -> dict[str, Any]:
    """End to end against encoders alone, on the same inputs with the same encoder objects:
    images/s of ``Index.add`` on a photos-only corpus against the model calls those photos need
    (CLIP image, bge on captions) fed decoded pictures; passages/s of ``Index.add`` on an
    articles-only corpus against the model calls its passages need (bge; CLIP text with the
    CLIP text view; CLIP on titles) fed the chunked texts. Two alternating rounds of each; the
    medians (max of two = the better round, to discount this machine's drift, for both sides
    alike)."""
    from mmretrieve import Index
    from mmretrieve.config import Settings
    from mmretrieve.documents.chunking import chunk_article
    from mmretrieve.documents.images import load_image
    from mmretrieve.encoders.base import input_edge
    from mmretrieve.indexing import _caption_text, _title_text
    from mmretrieve.sources import open_source
    from mmretrieve.types import Article, Image

    text_dir, clip_dir = random_models()
    settings = Settings(runtime=runtime, precision=precision, device=device)
    images_corpus, text_corpus = corpus_path("images", quick), corpus_path("text", quick)
    with tempfile.TemporaryDirectory() as tmp:
        loader = Index.open(Path(tmp) / "models", text_model=str(text_dir),
                            image_model=str(clip_dir), settings=settings)  # fmt: skip
        loader._workload = "index"
        text, clip = loader.text_encoder, loader.image_encoder
        view = bool(loader.settings.clip_text_view)  # the CLIP text view of passages
        items = list(open_source(images_corpus).items()) + list(open_source(text_corpus).items())
        photos = [i for i in items if isinstance(i, Image)]
        articles = [i for i in items if isinstance(i, Article)]
        pictures = [load_image(i.uri, fit_edge=input_edge(clip)) for i in photos]
        captions = [c for c in (_caption_text(i) for i in photos) if c]
        passages = [p.text for a in articles for p in chunk_article(a, text.count_tokens, 256, 32)]
        titles = [_title_text(a) for a in articles]
        batch_i, batch_t = settings.image_batch_size, settings.text_batch_size

        def batches(fn: Any, values: list, size: int) -> None:
            for start in range(0, len(values), size):
                fn(values[start : start + size])

        def encoders_images() -> None:
            batches(clip.encode_images, pictures, batch_i)
            batches(text.encode_documents, captions, batch_i)

        def encoders_passages() -> None:
            batches(text.encode_documents, passages, batch_t)
            if view:
                batches(clip.encode_texts, passages, batch_t)
            clip.encode_texts(titles)

        def end_to_end(corpus: Path, n: int) -> Any:
            def run() -> None:
                index = Index.open(Path(tempfile.mkdtemp(dir=tmp)) / "idx", text_encoder=text,
                                   image_encoder=clip, settings=settings)  # fmt: skip
                report = index.add(corpus)
                index.close()
                assert report.images_encoded + report.passages_encoded >= n, report

            return run

        jobs = {
            "images_e2e": (end_to_end(images_corpus, len(photos)), len(photos)),
            "images_encoder": (encoders_images, len(photos)),
            "passages_e2e": (end_to_end(text_corpus, len(passages)), len(passages)),
            "passages_encoder": (encoders_passages, len(passages)),
        }
        jobs["images_encoder"][0]()  # first calls of a runtime are slow
        rates: dict[str, list[float]] = {name: [] for name in jobs}
        for _ in range(2):
            for name, (job, n) in jobs.items():
                t0 = time.perf_counter()
                job()
                rates[name].append(n / (time.perf_counter() - t0))
        best = {f"{name}_per_s": round(max(values), 2) for name, values in rates.items()}
        return {
            "runtime": runtime,
            "precision": precision,
            "models": [
                {k: m.get(k) for k in ("name", "runtime", "dtype")} for m in (text.info, clip.info)
            ],  # fmt: skip
            "images": len(photos),
            "passages": len(passages),
            **best,
            "rounds_per_s": {name: [round(v, 2) for v in values] for name, values in rates.items()},
            "images_ratio": round(best["images_e2e_per_s"] / best["images_encoder_per_s"], 3),
            "passages_ratio": round(best["passages_e2e_per_s"] / best["passages_encoder_per_s"], 3),
        }


def reuse(quick: bool) -> dict[str, Any]:
    """Photos used by several articles: ``Index.add`` on N photos each in 3 articles (3N image
    rows, N distinct files) against 3N distinct photos, same models, alternating rounds; the
    files of the first are encoded once."""
    import shutil

    from mmretrieve import Index
    from mmretrieve.config import Settings

    n = 16 if quick else 120
    distinct = synthetic_corpus(CACHE / f"corpus-images-{3 * n}", 0, 3 * n)
    shared = CACHE / f"corpus-reuse-{n}x3"
    if not (shared / ".complete").is_file():
        shutil.rmtree(shared, ignore_errors=True)
        (shared / "images").mkdir(parents=True)
        (shared / "corpus.jsonl").write_text("")  # a JSONL corpus (of images only)
        lines = (distinct / "images.jsonl").read_text(encoding="utf-8").splitlines()[:n]
        with (shared / "images.jsonl").open("w", encoding="utf-8") as fh:
            for line in lines:
                row = json.loads(line)
                shutil.copy(distinct / row["file"], shared / row["file"])
                for use in range(3):
                    fh.write(json.dumps({**row, "id": f"{row['id']}-{use}"}) + "\n")
        (shared / ".complete").write_text("ok")
    text_dir, clip_dir = random_models()
    times: dict[str, list[float]] = {"reused": [], "distinct": []}
    with tempfile.TemporaryDirectory() as tmp:
        loader = Index.open(Path(tmp) / "models", text_model=str(text_dir),
                            image_model=str(clip_dir), settings=Settings())  # fmt: skip
        loader._workload = "index"
        text, clip = loader.text_encoder, loader.image_encoder
        for _ in range(2):
            for name, corpus in (("reused", shared), ("distinct", distinct)):
                index = Index.open(Path(tempfile.mkdtemp(dir=tmp)) / "idx", text_encoder=text,
                                   image_encoder=clip)  # fmt: skip
                report = index.add(corpus)
                index.close()
                assert report.images_added == 3 * n, report
                times[name].append(report.seconds)
        storage = {f"format {v}": _stored(shared, v, text, clip, Path(tmp)) for v in (3, 4)}
    best = {name: min(values) for name, values in times.items()}
    return {
        "image_rows": 3 * n,
        "distinct_files": {"reused": n, "distinct": 3 * n},
        "seconds": {name: [round(v, 2) for v in values] for name, values in times.items()},
        "speedup": round(best["distinct"] / best["reused"], 2),
        "storage_of_the_reused_corpus": storage,
    }


def _stored(corpus: Path, version: int, text: Any, clip: Any, tmp: Path) -> dict[str, Any]:
    """The reused corpus indexed in index format ``version``: CLIP image vectors stored, and the
    bytes on disk of the image tables (images, and pictures from format 4)."""
    from unittest import mock

    from mmretrieve import Index
    from mmretrieve.store import manifest

    where = Path(tempfile.mkdtemp(dir=tmp)) / "idx"
    with mock.patch.object(manifest, "FORMAT_VERSION", version):
        index = Index.open(where, text_encoder=text, image_encoder=clip)
        index.add(corpus)
        counts = index.stats()["counts"]
        index.close()
    tables = ["images.lance", "pictures.lance"]
    size = sum(f.stat().st_size for t in tables for f in (where / t).rglob("*") if f.is_file())
    return {
        "image_rows": counts["images"],
        "clip_image_vectors": counts.get("pictures", counts["images"]),
        "image_tables_bytes": size,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small corpora (smoke run)")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    parser.add_argument(
        "--corpus",
        default=None,
        help="comma list of wiki, images, images3x, text "
        "(default: images,text,wiki; --quick: images,text)",
    )
    parser.add_argument("--runtime", default="auto", help="auto, torch or onnx (comma list ok)")
    parser.add_argument("--precision", default="auto", help="auto, fp32, bf16, int8 (comma list)")
    parser.add_argument("--encoders", action="store_true", help="encoder throughput table only")
    parser.add_argument("--parity", action="store_true", help="cosine vs fp32, every runtime")
    parser.add_argument(
        "--efficiency",
        action="store_true",
        help="end to end against the encoders alone, on the same inputs (images and passages)",
    )
    parser.add_argument(
        "--reuse", action="store_true", help="photos used by 3 articles each vs distinct photos"
    )
    parser.add_argument("--wait", action="store_true", help="wait for load average < 2.5 first")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.one:  # child: one corpus, one configuration
        name, runtime, precision = args.one.split(":")
        print(json.dumps(run_one(name, runtime, precision, args.quick)))
        return
    load = wait_for_quiet() if args.wait else None
    result: dict[str, Any] = {"bench": "ingest", "machine": machine(), "load_at_start": load}
    if args.parity:
        result["parity"] = parity_table()
    elif args.reuse:
        result["reuse"] = reuse(args.quick)
    elif args.efficiency:
        ensure_onnx(*random_models())
        result["efficiency"] = [
            efficiency(args.quick, runtime, precision)
            for runtime in args.runtime.split(",")
            for precision in args.precision.split(",")
        ]
    elif args.encoders:
        result["encoders"] = encoder_table(args.quick)
    else:
        corpora = (args.corpus or ("images,text" if args.quick else "images,text,wiki")).split(",")
        ensure_onnx(*random_models())  # once, outside the measured children
        for name in corpora:
            corpus_path(name, args.quick)  # generate before measuring
        runs = []
        for runtime in args.runtime.split(","):
            for precision in args.precision.split(","):
                for name in corpora:
                    cmd = [sys.executable, __file__, "--one", f"{name}:{runtime}:{precision}"]
                    if args.quick:
                        cmd.append("--quick")
                    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
                    if out.returncode != 0:
                        runs.append(
                            {"corpus": name, "runtime": runtime, "error": out.stderr[-2000:]}
                        )
                        continue
                    runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
                    print(
                        f"# {name} {runtime}/{precision}: {runs[-1]['images_per_s']} img/s, "
                        f"{runs[-1]['passages_per_s']} passages/s",
                        file=sys.stderr,
                    )
        result["runs"] = runs
    result["machine"]["load_avg_end"] = machine()["load_avg"]
    result["versions"] = versions()
    emit(result, args.json)


if __name__ == "__main__":
    main()
