"""JSONL corpora: ``corpus.jsonl`` (articles) and an optional ``images.jsonl`` beside it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from ..types import Article, Skipped
from .base import (
    IdRegistry,
    Item,
    Source,
    image_item,
    iter_jsonl,
    meta_fields,
    normalize_newlines,
    relative_file,
    skip_unless_raster,
    text_field,
)

CORPUS_FILE = "corpus.jsonl"
IMAGES_FILE = "images.jsonl"


class JsonlSource(Source):
    """Articles from ``{id, title, text, url?, license?}`` lines, then images from
    ``{id, file, article_id?, caption?, alt_text?, license?}`` lines (``file`` relative to the
    folder holding ``images.jsonl``). Either file may be absent (an image-only collection)."""

    layout = "jsonl"

    def __init__(self, corpus: Path | None, images: Path | None = None) -> None:
        listing = corpus or images
        if listing is None:
            raise ValueError("a JSONL source needs a corpus file, an images file, or both")
        super().__init__(listing.parent)
        self.corpus = corpus
        self.images = images

    @classmethod
    def from_dir(cls, folder: Path) -> JsonlSource:
        """``corpus.jsonl`` and ``images.jsonl`` in ``folder``, whichever of them exist."""
        corpus, images = folder / CORPUS_FILE, folder / IMAGES_FILE
        return cls(corpus if corpus.is_file() else None, images if images.is_file() else None)

    def items(self) -> Iterator[Item]:
        if self.corpus is not None:
            yield from self._articles(self.corpus)
        if self.images is not None:
            yield from self._images(self.images)

    def _articles(self, corpus: Path) -> Iterator[Item]:
        seen = IdRegistry("article")
        for entry in iter_jsonl(corpus, "article"):
            if isinstance(entry, Skipped):
                yield entry
                continue
            where, obj = entry
            article_id = text_field(obj, "id")
            text = obj.get("text")
            if article_id is None:
                yield Skipped(where, "missing 'id'", "article")
            elif not isinstance(text, str):
                yield Skipped(where, "missing 'text'", "article")
            elif not text.strip():
                yield Skipped(where, "empty article", "article")
            else:
                yield seen.claim(article_id, where) or Article(
                    id=article_id,
                    title=text_field(obj, "title") or article_id,
                    text=normalize_newlines(text),
                    url=text_field(obj, "url"),
                    license=text_field(obj, "license"),
                    source=where,
                    meta=meta_fields(obj),
                )

    def _images(self, listing: Path) -> Iterator[Item]:
        folder = listing.parent
        seen = IdRegistry("image")
        for entry in iter_jsonl(listing, "image"):
            if isinstance(entry, Skipped):
                yield entry
                continue
            where, obj = entry
            file = text_field(obj, "file")
            path = relative_file(folder, file) if file is not None else None
            if file is None:
                yield Skipped(where, "missing 'file'", "image")
            elif path is None:
                yield Skipped(where, f"image path must stay inside {folder}: {file!r}", "image")
            elif (skipped := skip_unless_raster(path, listed=True)) is not None:
                yield skipped
            else:
                image_id = text_field(obj, "id") or Path(file).as_posix()
                yield seen.claim(image_id, where) or image_item(
                    image_id, text_field(obj, "article_id"), path, obj, folder
                )
