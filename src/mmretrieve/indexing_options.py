"""What an indexing run is told (IndexingOptions), what it reports (IndexReport), and the
content hashes that make it idempotent: an item whose hash is stored unchanged is not done again.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .config import Settings
from .documents.hashing import content_hash
from .types import Article, Image, Skipped

ProgressFn = Callable[[str, int], None]  # (what, how many more) e.g. ("articles", 1)


@dataclass
class IndexReport:
    """What one ``add`` run did. ``*_encoded`` count items sent through a model this run."""

    articles_added: int = 0
    articles_updated: int = 0
    articles_unchanged: int = 0
    passages_encoded: int = 0
    images_added: int = 0
    images_updated: int = 0
    images_unchanged: int = 0
    images_encoded: int = 0
    articles_pruned: int = 0
    images_pruned: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "skipped"}
        out["skipped"] = [
            {"path": s.path, "reason": s.reason, "kind": s.kind} for s in self.skipped
        ]
        return out


@dataclass(frozen=True, slots=True)
class IndexingOptions:
    chunk_tokens: int = 256
    chunk_overlap: int = 32
    text_batch_size: int = 32
    image_batch_size: int = 16
    write_batch_passages: int = 512
    write_batch_images: int = 512
    decode_workers: int = 0  # threads decoding images; 0 = min(4, CPU count)
    decode_ahead: int = 64  # images read or decoded ahead of the model, at most
    max_image_pixels: int = 64_000_000
    max_image_bytes: int = 50_000_000
    prune: bool = False
    clip_text_view: bool = False  # passages also get CLIP text vectors
    # CLIP vectors of recently encoded files, by content hash: a file that several articles use
    # (flags, logos, a photo reused across Wikipedia) is encoded once per Indexer (under Ray,
    # once per batch of work). 2 KiB each.
    reuse_image_vectors: int = 20_000
    format_version: int = 4  # 3: images get a perceptual hash, articles meta; 4: pictures once
    # Format 4: images whose picture is missing are done again (the store is read for them; a
    # Ray worker, which sees only its batch's rows, leaves this to the driver).
    repair_pictures: bool = True

    @classmethod
    def from_settings(
        cls, s: Settings, prune: bool = False, *, format_version: int = 4
    ) -> IndexingOptions:
        return cls(
            chunk_tokens=s.chunk_tokens,
            chunk_overlap=s.chunk_overlap,
            text_batch_size=s.text_batch_size,
            image_batch_size=s.image_batch_size,
            write_batch_passages=s.write_batch_size,
            max_image_pixels=s.max_image_pixels,
            max_image_bytes=s.max_image_bytes,
            prune=prune,
            clip_text_view=bool(s.clip_text_view),
            format_version=format_version,
        )


def article_hash(article: Article, options: IndexingOptions) -> str:
    settings = f"{options.chunk_tokens}/{options.chunk_overlap}"
    parts = [article.title, article.text, article.url, article.license, settings]
    if article.meta:  # (articles without meta fields keep the hash they had before them)
        parts.append(meta_json(article))
    return content_hash(*parts)


def meta_json(article: Article) -> str | None:
    """An article's meta fields as the articles table stores them (None: it has none)."""
    if not article.meta:
        return None
    return json.dumps(dict(sorted(article.meta.items())), ensure_ascii=False, sort_keys=True)


def image_hash(sha256: str, image: Image) -> str:
    parts = [sha256, image.article_id, image.caption, image.alt_text, image.license]
    if image.section:  # (images without a section keep the hash they had before sections)
        parts.append(image.section)
    return content_hash(*parts)


class ProgressBar:
    """A context giving a progress callback: tqdm on stderr for ``True``, the caller's function,
    or nothing."""

    def __init__(self, progress: bool | ProgressFn) -> None:
        self.progress = progress
        self.bar: Any = None

    def __enter__(self) -> ProgressFn | None:
        if callable(self.progress):
            return self.progress
        if not self.progress:
            return None
        from tqdm import tqdm

        self.bar = tqdm(desc="indexing", unit=" items", dynamic_ncols=True, leave=True)
        counts: dict[str, int] = {}

        def update(what: str, n: int) -> None:
            counts[what] = counts.get(what, 0) + n
            self.bar.update(n)
            self.bar.set_postfix(counts, refresh=False)

        return update

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()
