"""A corpus for metadata filters: articles with licences, URLs and meta.json fields."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image as PILImage


def picture(path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    PILImage.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)).save(path)


def filter_corpus(
    root: Path, n: int = 12, german: Callable[[int], bool] = lambda i: i % 2 == 1
) -> Path:
    """n articles on the same words; even ones CC0 in English, odd ones CC BY-SA in German; each
    with one photo whose own licence is the other one (the first article's photo has none)."""
    for i in range(n):
        folder = root / f"a{i:02d}"
        folder.mkdir(parents=True)
        free = not german(i)
        words = " ".join(["bridge river city"] * (n - i))  # earlier articles match better
        (folder / "article.txt").write_text(f"Article {i}. {words}.", encoding="utf-8")
        meta = {
            "id": f"art{i:02d}",
            "title": f"Article {i}",
            "license": "CC0" if free else "CC BY-SA 4.0",
            "url": f"https://{'en' if free else 'de'}.example.org/wiki/{i}",
            "lang": "en" if free else "de",
            "page_id": 1000 + i,
        }
        (folder / "meta.json").write_text(json.dumps(meta))
        picture(folder / "photo.png", seed=100 + i)
        photo = {"file": "photo.png", "caption": f"bridge over the river {i}"}
        if i:
            photo["license"] = "CC BY-SA 4.0" if free else "CC0"
        (folder / "images.jsonl").write_text(json.dumps(photo) + "\n")
    return root
