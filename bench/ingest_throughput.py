"""Per-worker ingestion throughput: what one Ray actor (or one local `index` run) does per second.

Runs the real indexing stages of one worker (``ray_ingest.IngestWorker``: hashing, chunking,
image decoding, encoding, row building) over part of a corpus, with the models timed per call,
and writes nothing (the rows are recorded and dropped). Feeds docs/SCALING.md.

    python bench/ingest_throughput.py --text-model ../shared/models/all-MiniLM-L6-v2 \\
        --image-model /tmp/models/clip-vit-b-32-random --corpus ../shared/data/wiki_tutorial \\
        --articles 6 --images 40 --json bench/ingest_throughput.json

(``python tools/random_models.py --out /tmp/models --only clip`` writes the random full-size
CLIP: same architecture and cost as the real one, meaningless vectors.)
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import time
from pathlib import Path
from typing import Any


class Timed:
    """Wraps an encoder; adds up the seconds and items of each encode method."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.seconds: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self.items: dict[str, int] = {}

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if not name.startswith("encode_"):
            return attr

        def timed(batch: Any) -> Any:
            t0, c0 = time.perf_counter(), time.process_time()
            out = attr(batch)
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0
            self.cpu[name] = self.cpu.get(name, 0.0) + time.process_time() - c0
            self.items[name] = self.items.get(name, 0) + len(batch)
            return out

        return timed

    def rates(self) -> dict[str, dict[str, float]]:
        return {
            name: {
                "items": self.items[name],
                "seconds": round(self.seconds[name], 2),
                "per_s": round(self.items[name] / self.seconds[name], 1),
                # CPU seconds of the whole process (all its threads): robust on a shared box
                "cpu_s": round(self.cpu[name], 2),
                "per_cpu_s": round(self.items[name] / self.cpu[name], 2),
            }
            for name in self.seconds
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--text-model", required=True)
    parser.add_argument("--image-model", default=None)
    parser.add_argument("--corpus", type=Path, required=True, help="a source folder or JSONL")
    parser.add_argument("--articles", type=int, default=6)
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--runtime", default="torch")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    import torch

    from mmretrieve.distributed.ray_ingest import IngestWorker
    from mmretrieve.encoders import load_image_encoder, load_text_encoder
    from mmretrieve.indexing import IndexingOptions, sources_items
    from mmretrieve.types import Article, Image

    t0 = time.perf_counter()
    text = Timed(load_text_encoder(args.text_model, runtime=args.runtime, device=args.device))
    image = None
    if args.image_model:
        image = Timed(
            load_image_encoder(args.image_model, runtime=args.runtime, device=args.device)
        )
    load_s = time.perf_counter() - t0
    items = list(sources_items([args.corpus]))
    articles = list(itertools.islice((i for i in items if isinstance(i, Article)), args.articles))
    images = list(itertools.islice((i for i in items if isinstance(i, Image)), args.images))
    worker = IngestWorker(lambda: (text, image), IndexingOptions())
    t0, c0 = time.perf_counter(), time.process_time()
    ops, report = worker.process([*articles, *images] if image else articles, {})
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    result = {
        "cpu_threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "device": args.device,
        "runtime": args.runtime,
        "text_model": text.info.get("name"),
        "image_model": image.info.get("name") if image else None,
        "model_load_s": round(load_s, 1),
        "articles": len(articles),
        "passages": report.passages_encoded,
        "images": report.images_encoded,
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        "load_average_1min": os.getloadavg()[0],
        "passages_per_s_end_to_end": round(report.passages_encoded / wall, 1),
        "text": text.rates(),
        "clip": image.rates() if image else None,
        "rows_recorded": sum(len(op[2] or []) for op in ops if op[0] == "upsert"),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
