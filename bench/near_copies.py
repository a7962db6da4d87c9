"""How far apart perceptual hashes are for copies of a picture and for different pictures: the
measurement behind retrieval/pictures.py's NEAR_BITS and NEAR_ASPECT (docs/QUALITY.md, "One
picture, one hit").

Reads the pictures of ../shared/data (mixed_dev, coco_mini, wiki_tutorial), decodes each as the
indexer does, and compares each with resized and re-encoded copies of itself, with mixed_dev's
perturbed query photos (cropped, resized, re-encoded), and with every other picture of its set.

    python bench/near_copies.py --json
"""

from __future__ import annotations

import argparse
import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SETS = ("mixed_dev", "coco_mini", "wiki_tutorial")
COPIES = [  # (name, scale, format, options)
    ("70% + JPEG q55", 0.7, "JPEG", {"quality": 55}),
    ("50% + JPEG q40", 0.5, "JPEG", {"quality": 40}),
    ("30% + JPEG q70", 0.3, "JPEG", {"quality": 70}),
    ("150% + JPEG q90", 1.5, "JPEG", {"quality": 90}),
    ("PNG, same size", 1.0, "PNG", {}),
    ("80% + WebP q75", 0.8, "WEBP", {"quality": 75}),
]


def _hash(source: Any) -> tuple[int, float]:
    from mmretrieve.documents.images import load_image, perceptual_hash

    picture = load_image(source, fit_edge=224)
    return perceptual_hash(picture), math.log(picture.width / picture.height)


def _summary(bits: list[int], aspects: list[float]) -> dict[str, float]:
    b = np.asarray(bits)
    return {
        "pairs": len(bits),
        "bits_max": int(b.max()),
        "bits_p99": float(np.percentile(b, 99)),
        "bits_median": float(np.median(b)),
        "log_aspect_max": round(max(aspects), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = parser.parse_args()
    from PIL import Image

    from mmretrieve.documents.images import hash_distance, load_image

    copies: dict[str, tuple[list[int], list[float]]] = {name: ([], []) for name, *_ in COPIES}
    crops: tuple[list[int], list[float]] = ([], [])
    nearest: dict[str, Any] = {}
    for name in SETS:
        root = SHARED / name
        lines = (root / "images.jsonl").read_text(encoding="utf-8").splitlines()
        files = [json.loads(line)["file"] for line in lines if line.strip()]
        hashes = []
        for file in files:
            h, aspect = _hash(root / file)
            hashes.append((h, aspect))
            if name == "coco_mini":
                continue  # its photos are mixed_dev's; copies are measured once
            picture = load_image(root / file)
            for label, scale, fmt, options in COPIES:
                size = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
                out = io.BytesIO()
                picture.resize(size, Image.Resampling.BICUBIC).save(out, fmt, **options)
                h2, a2 = _hash(out.getvalue())
                copies[label][0].append(hash_distance(h, h2))
                copies[label][1].append(abs(aspect - a2))
            query = root / "query_images" / Path(file).name
            if name == "mixed_dev" and query.is_file():
                h2, a2 = _hash(query)
                crops[0].append(hash_distance(h, h2))
                crops[1].append(abs(aspect - a2))
        pairs = [
            (hash_distance(a[0], b[0]), abs(a[1] - b[1]), i, j)
            for i, a in enumerate(hashes)
            for j, b in enumerate(hashes)
            if i < j
        ]
        different = [p for p in pairs if p[0] > 0 or p[1] > 0]  # identical files aside
        closest = min(different)
        nearest[name] = {
            "pictures": len(files),
            "identical_pairs": len(pairs) - len(different),
            "nearest_bits": closest[0],
            "nearest_log_aspect_apart": round(closest[1], 3),
            "pairs_within_12_bits": sum(1 for p in different if p[0] <= 12),
        }
    report = {
        "copies": {name: _summary(*got) for name, got in copies.items()},
        "mixed_dev query photos (10% crop + 70% + q55)": _summary(*crops),
        "different pictures": nearest,
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for key, value in report.items():
            print(key, json.dumps(value))


if __name__ == "__main__":
    main()
