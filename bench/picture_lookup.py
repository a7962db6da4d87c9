"""What naming the articles of a picture's unreached copies costs a search: the lookup of
retrieval/pictures.py (``articles_by_picture``) on a LanceDB images table of 20,000 rows
(15,000 distinct files, 5,000 articles), by file hash and perceptual hash, and by file hash alone.

    python bench/picture_lookup.py --json
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = parser.parse_args()
    from mmretrieve.retrieval.pictures import Picture, articles_by_picture
    from mmretrieve.store import open_store, table_schemas

    rng, pick = np.random.default_rng(0), random.Random(0)
    store = open_store(tempfile.mkdtemp() + "/idx")
    store.ensure_tables(table_schemas(384, 512, clip_text_view=False))
    store.ann_min_rows = 10**12  # type: ignore[attr-defined]  # the lookup is a scalar scan
    files = max(1, args.rows * 3 // 4)
    rows = [
        {
            "id": f"i{i}",
            "article_id": f"a{i % max(1, args.rows // 4)}",
            "uri": f"/x/{i}.jpg",
            "caption": None,
            "alt_text": None,
            "search_text": "",
            "width": 640,
            "height": 480,
            "sha256": f"{i % files:064x}",
            "license": None,
            "has_caption": False,
            "content_hash": "h",
            "phash": int(rng.integers(0, 2**62)),
            "section": None,
            "clip_image": np.full(512, 0.01, np.float32),
            "caption_bge": np.zeros(384, np.float32),
        }
        for i in range(args.rows)
    ]
    for start in range(0, len(rows), 5000):
        store.upsert("images", rows[start : start + 5000])
    store.optimize()
    report = {"rows": args.rows, "lookups": {}}
    for n in (1, 10, 50):
        chosen = [rows[j] for j in pick.sample(range(len(rows)), n)]
        both = [Picture((r["sha256"],), (r["phash"],), 0.29) for r in chosen]
        by_file = [Picture((r["sha256"],), (), 0.29) for r in chosen]
        took: dict[str, list[float]] = {"file_and_perceptual_hash": [], "file_hash_only": []}
        for _ in range(7):  # alternating
            for name, pictures in (("file_and_perceptual_hash", both), ("file_hash_only", by_file)):
                t0 = time.perf_counter()
                articles_by_picture(store, pictures)
                took[name].append((time.perf_counter() - t0) * 1000)
        report["lookups"][f"{n} pictures"] = {
            name: round(statistics.median(values), 2) for name, values in took.items()
        }
    store.close()
    print(json.dumps(report, indent=2) if args.json else report)


if __name__ == "__main__":
    main()
