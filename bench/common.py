"""Shared helpers for the benchmark scripts: machine facts, timing, memory, same-architecture
random models (and their ONNX exports), and generated corpora at realistic sizes.

Nothing here is imported by mmretrieve itself. Figures go to docs/BENCHMARKS.md.
"""

from __future__ import annotations

import json
import os
import platform
import random
import resource
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MMRETRIEVE_SHARED", REPO.parent / "shared"))
CACHE = Path(os.environ.get("MMRETRIEVE_BENCH_CACHE", Path.home() / ".cache" / "mmretrieve-bench"))
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "src"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

_VERSIONED = (
    "mmretrieve",
    "torch",
    "transformers",
    "onnxruntime",
    "openvino",
    "faiss-cpu",
    "onnx",
    "tokenizers",
    "lancedb",
    "pyarrow",
    "numpy",
    "pillow",
    "qdrant-client",
    "llama-index-core",
    "sentence-transformers",
)


# -- machine ------------------------------------------------------------------------------------
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def versions() -> dict[str, str]:
    """Installed versions of the packages the figures depend on."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def machine() -> dict[str, Any]:
    """Machine facts recorded with every result (versions only of modules already loaded)."""
    from mmretrieve.encoders.runtime import cpu_flags

    flags = sorted(
        f
        for f in cpu_flags()
        if f in {"avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8"}
    )
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "flags": flags,
        "ram_gib": round(mem, 1),
        "load_avg": [round(x, 2) for x in os.getloadavg()],
        "platform": platform.platform(),
    }


def wait_for_quiet(max_load: float = 2.5, timeout_s: float = 1200, poll_s: float = 30) -> float:
    """Wait (up to ``timeout_s``) until the 1-minute load average is under ``max_load``;
    return the load average when the benchmark starts (measure anyway after the timeout)."""
    deadline = time.monotonic() + timeout_s
    while os.getloadavg()[0] >= max_load and time.monotonic() < deadline:
        time.sleep(poll_s)
    return os.getloadavg()[0]


# -- measuring ----------------------------------------------------------------------------------
def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def percentiles(samples_ms: Iterable[float]) -> dict[str, float]:
    xs = sorted(samples_ms)
    if not xs:
        return {}

    def at(q: float) -> float:
        return xs[min(len(xs) - 1, max(0, round(q * (len(xs) - 1))))]

    return {
        "p50": round(at(0.5), 2),
        "p95": round(at(0.95), 2),
        "mean": round(statistics.fmean(xs), 2),
        "n": len(xs),
    }


def time_calls(
    fn: Callable[[], Any], repeat: int, warmup: int = 2, cpu: list[float] | None = None
) -> list[float]:
    """Wall milliseconds per call of ``fn`` after ``warmup`` untimed calls; with ``cpu``, also
    append the process CPU milliseconds of each call (all threads) to it."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeat):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
        if cpu is not None:
            cpu.append((time.process_time() - c0) * 1000)
    return out


def cpu_bound_rate(items: int, cpu_s: float) -> float:
    """Items per second if the CPU time used had run on every core of an idle machine: what a
    wall-clock rate would be without the other tenants' load (assumes the work spreads over all
    cores, as the thread pools here do). Reported next to the wall-clock rate, never instead."""
    cores = os.cpu_count() or 1
    return round(items / (cpu_s / cores), 1) if cpu_s > 0 else 0.0


class Stopwatch:
    """Wraps methods of an object and adds up the seconds spent in each (profile evidence)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}

    def wrap(self, obj: Any, method: str, label: str) -> None:
        inner = getattr(obj, method)

        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.seconds[label] = self.seconds.get(label, 0.0) + time.perf_counter() - t0
                self.calls[label] = self.calls.get(label, 0) + 1

        setattr(obj, method, timed)

    def report(self) -> dict[str, float]:
        return {k: round(v, 2) for k, v in sorted(self.seconds.items())}


def emit(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(result, default=str))
    else:
        print(json.dumps(result, indent=2, default=str))


# -- models ---------------------------------------------------------------------------------------
def random_models(tiny: bool = False) -> tuple[Path, Path]:
    """Random-weight bge-small and CLIP ViT-B/32 folders (real architectures and tokenizers)."""
    from tools.random_models import build_clip_model, build_text_model

    root = CACHE / ("models-tiny" if tiny else "models")
    text, clip = root / "bge-small-random", root / "clip-vit-b-32-random"
    if not (text / "model.safetensors").is_file():
        build_text_model(
            text, tokenizer_dir=SHARED / "models" / "bge-small-en-v1.5-tokenizer", tiny=tiny, seed=0
        )
    if not (clip / "model.safetensors").is_file():
        vocab = SHARED / "models" / "clip-vit-b-32-tokenizer" / "bpe_simple_vocab_16e6.txt.gz"
        build_clip_model(clip, bpe_vocab=vocab, tiny=tiny, seed=0)
    return text, clip


def ensure_onnx(*model_dirs: Path) -> None:
    """Export each model into the ONNX export cache once (what `mmretrieve models export` does)."""
    from mmretrieve.encoders.onnx_export import export_model
    from mmretrieve.encoders.resolve import resolve_model
    from mmretrieve.encoders.runtime import EXPORT_INFO, export_dir_for

    for path in model_dirs:
        resolved = resolve_model(str(path), "text")
        if not (export_dir_for(resolved.name, resolved.revision) / EXPORT_INFO).is_file():
            export_model(str(path), log=lambda m: print(m, file=sys.stderr))


def query_pictures() -> list[Path]:
    """Photos to query with: ../shared/data/query_images, then the wiki_tutorial photos."""
    found = []
    for folder in (
        SHARED / "data" / "query_images" / "images",
        SHARED / "data" / "wiki_tutorial" / "images",
    ):
        found += sorted(p for p in folder.glob("*") if p.suffix.lower() in {".jpg", ".png"})
    if not found:  # no shared data on this machine: generated photos
        corpus = synthetic_corpus(CACHE / "corpus-query-photos", 0, 24)
        found = sorted((corpus / "images").glob("*.jpg"))
    return found


# -- corpora --------------------------------------------------------------------------------------
def _vocabulary() -> list[str]:
    words: list[str] = []
    corpus = SHARED / "data" / "squad_dev" / "corpus.jsonl"
    if corpus.is_file():
        with corpus.open(encoding="utf-8") as fh:
            for line in fh:
                words.extend(json.loads(line)["text"].split())
                if len(words) > 200_000:
                    break
    return words or [f"word{i}" for i in range(5000)]


def synthetic_text(rng: random.Random, vocab: list[str], words: int) -> str:
    """Sentences of real English words in random order (tokenizes like real prose)."""
    out, n = [], 0
    while n < words:
        length = rng.randint(8, 30)
        sentence = " ".join(rng.choice(vocab) for _ in range(length))
        out.append(sentence[0].upper() + sentence[1:].rstrip(".,;") + ".")
        n += length
    paragraphs = [" ".join(out[i : i + 6]) for i in range(0, len(out), 6)]
    return "\n\n".join(paragraphs)


def synthetic_photo(rng: random.Random, size: tuple[int, int]) -> Any:
    """A photo-like picture: smooth colour fields, shapes and grain, so JPEG sizes are real."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFilter

    w, h = size
    gen = np.random.default_rng(rng.randrange(2**32))
    base = gen.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    img = Image.fromarray(base).resize((w, h), Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(img)
    for _ in range(12):
        x0, y0 = rng.randrange(w), rng.randrange(h)
        box = (x0, y0, x0 + rng.randrange(20, w // 2), y0 + rng.randrange(20, h // 2))
        draw.ellipse(box, fill=tuple(rng.randrange(256) for _ in range(3)))
    img = img.filter(ImageFilter.GaussianBlur(2))
    grain = gen.normal(0, 12, (h, w, 3))
    return Image.fromarray(np.clip(np.asarray(img, np.float32) + grain, 0, 255).astype(np.uint8))


def synthetic_corpus(
    root: Path,
    articles: int,
    images: int,
    *,
    words: int = 1500,
    size: tuple[int, int] = (1000, 700),
    seed: int = 0,
) -> Path:
    """A JSONL corpus (corpus.jsonl, images.jsonl, images/) like ../shared/data/wiki_tutorial:
    ``articles`` articles of ``words`` words, ``images`` JPEG photos of ``size``, spread over
    the articles. Reused when already there."""
    done = root / ".complete"
    if done.is_file():
        return root
    rng, vocab = random.Random(seed), _vocabulary()
    (root / "images").mkdir(parents=True, exist_ok=True)
    with (root / "corpus.jsonl").open("w", encoding="utf-8") as fh:
        for i in range(articles):
            text = synthetic_text(rng, vocab, words)
            fh.write(json.dumps({"id": f"syn:{i}", "title": f"Article {i}", "text": text}) + "\n")
    with (root / "images.jsonl").open("w", encoding="utf-8") as fh:
        for j in range(images):
            file = f"images/img_{j:06d}.jpg"
            synthetic_photo(rng, size).save(root / file, quality=88)
            row = {"id": f"img:{j}", "file": file, "caption": f"photo {j} " + rng.choice(vocab)}
            if articles:
                row["article_id"] = f"syn:{j % articles}"
            fh.write(json.dumps(row) + "\n")
    done.write_text("ok")
    return root
