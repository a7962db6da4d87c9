"""Latency of ``POST /search`` (text queries) through a real HTTP server on loopback.

Builds (or reuses) an index of the wiki_tutorial corpus, starts ``create_app(index)`` under
uvicorn on a free 127.0.0.1 port in this process, sends JSON text queries over one keep-alive
connection, and prints p50 / p90 / mean, next to the in-process ``Index.search`` time that the
server reports (``timings_ms.total``), so the HTTP overhead is visible.

Models: a real text model folder (default ../shared/models/all-MiniLM-L6-v2) and, unless
``--image-model`` names a real CLIP, a RANDOM CLIP built with tools/random_models.py (``tiny``
or full ViT-B/32 ``base`` size, so the CLIP text tower costs what the real one does).

Example:
    python bench/http_latency.py --index /tmp/wiki-idx --clip-size tiny --queries 60
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MMRETRIEVE_SHARED", REPO.parent / "shared"))
sys.path.insert(0, str(REPO))

QUERIES = [
    "Who is Bruce Wayne?",
    "Bat man",
    "Starry Night painter",
    "electric SUV with falcon wing doors",
    "Korean boy band",
    "Golden Gate Bridge fog",
    "Neo and Morpheus",
    "vampire film 1922",
    "Supreme Court of India chief justice",
    "Frodo and the One Ring",
    "Picasso cubism",
    "iPhone release Steve Jobs",
    "Springfield cartoon family",
    "basic structure doctrine",
    "Rivian pickup truck",
    "Tesla Model S battery range",
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    low, high = int(pos), min(int(pos) + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def _image_model(args: argparse.Namespace) -> str:
    if args.image_model:
        return str(args.image_model)
    from tools.random_models import build_clip_model

    out = Path(tempfile.gettempdir()) / f"mmretrieve-bench-clip-{args.clip_size}-random"
    if not (out / "config.json").is_file():
        vocab = SHARED / "models" / "clip-vit-b-32-tokenizer" / "bpe_simple_vocab_16e6.txt.gz"
        build_clip_model(out, bpe_vocab=vocab, tiny=args.clip_size == "tiny", seed=0)
    return str(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--index",
        type=Path,
        default=Path(tempfile.gettempdir()) / "mmr-wiki-idx",
        help="index directory (built from --wiki when it holds no index yet)",
    )
    parser.add_argument(
        "--wiki",
        type=Path,
        default=SHARED / "data" / "wiki_tutorial",
        help="wiki_tutorial folder (corpus.jsonl + images.jsonl)",
    )
    parser.add_argument(
        "--text-model",
        default=str(SHARED / "models" / "all-MiniLM-L6-v2"),
        help="text model name or folder",
    )
    parser.add_argument("--image-model", default=None, help="CLIP name or folder (default: random)")
    parser.add_argument(
        "--clip-size",
        choices=["tiny", "base"],
        default="tiny",
        help="size of the random CLIP when --image-model is not given",
    )
    parser.add_argument("--queries", type=int, default=60, help="timed requests")
    parser.add_argument("--warmup", type=int, default=5, help="untimed requests first")
    parser.add_argument("-k", type=int, default=5, help="k of each search")
    parser.add_argument(
        "--threads", type=int, default=0, help="torch CPU threads (default: all cores)"
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)

    import httpx
    import torch
    import uvicorn

    from mmretrieve import Index, IndexNotFoundError
    from mmretrieve.interfaces.http import create_app

    torch.set_num_threads(args.threads or max(1, os.cpu_count() or 1))
    try:
        index = Index.open(args.index, create=False)
    except IndexNotFoundError:
        index = Index.open(args.index, text_model=args.text_model, image_model=_image_model(args))
    if index.stats()["counts"]["articles"] == 0:
        t0 = time.perf_counter()
        index.add(args.wiki, progress=True)
        print(f"indexed {args.wiki} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    stats = index.stats()
    app = create_app(index)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)

    wall: list[float] = []
    inner: list[float] = []
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
        for n in range(args.warmup + args.queries):
            body = {"text": QUERIES[n % len(QUERIES)], "k": args.k}
            t0 = time.perf_counter()
            response = client.post("/search", json=body)
            elapsed = (time.perf_counter() - t0) * 1000
            response.raise_for_status()
            if n >= args.warmup:
                wall.append(elapsed)
                inner.append(response.json()["timings_ms"]["total"])
    server.should_exit = True
    thread.join(timeout=10)
    index.close()

    figures = {
        "requests": len(wall),
        "p50_ms": round(_percentile(wall, 0.5), 1),
        "p90_ms": round(_percentile(wall, 0.9), 1),
        "mean_ms": round(statistics.fmean(wall), 1),
        "search_p50_ms": round(_percentile(inner, 0.5), 1),
        "counts": stats["counts"],
        "models": {role: (m or {}).get("name") for role, m in stats["models"].items()},
        "cpu_threads": torch.get_num_threads(),
    }
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        print(
            f"POST /search (text, k={args.k}) over HTTP on loopback, {len(wall)} requests: "
            f"p50 {figures['p50_ms']} ms, p90 {figures['p90_ms']} ms, mean {figures['mean_ms']} ms "
            f"(Index.search alone: p50 {figures['search_p50_ms']} ms)"
        )
        print(f"index: {stats['counts']}, models: {figures['models']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
