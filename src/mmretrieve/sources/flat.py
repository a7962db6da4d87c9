"""A plain folder: ``<Title>.txt`` / ``<Title>.md`` articles and image files side by side, with
an optional ``images.jsonl`` manifest tying images to articles."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..types import Article, Skipped
from .base import (
    ARTICLE_SUFFIXES,
    IdRegistry,
    Item,
    Source,
    image_item,
    is_hidden,
    read_article,
    read_file_listing,
    relative_file,
    skip_unless_raster,
    text_field,
)

MANIFEST_FILE = "images.jsonl"
_IGNORED = frozenset((MANIFEST_FILE, "meta.json"))
_NOT_SCANNED = (
    "folder not scanned (the flat layout reads files directly in the folder, and files "
    "named in images.jsonl)"
)


class FlatSource(Source):
    """Files directly in ``root``: article id = title = file stem; image id = file name, or the
    manifest line's ``id`` when it has one.

    Manifest lines ``{file, article_id or title, caption?, alt_text?, license?}`` attach an image
    to an article (a title is the article's id in this layout) and may also name image files in
    subfolders, which are otherwise not scanned.
    """

    layout = "flat"

    def items(self) -> Iterator[Item]:
        manifest, problems = read_file_listing(self.root / MANIFEST_FILE)
        yield from problems
        try:
            entries = sorted(self.root.iterdir(), key=lambda p: p.name)
        except OSError as exc:
            yield Skipped(str(self.root), f"cannot read: {exc.strerror or exc}")
            return
        articles = IdRegistry("article")
        images = IdRegistry("image")
        listed_dirs = {Path(key).parts[0] for key in manifest if "/" in key}
        for entry in entries:
            name = entry.name
            if is_hidden(name) or name in _IGNORED:
                continue
            if entry.is_dir():
                if name not in listed_dirs:
                    yield Skipped(str(entry), _NOT_SCANNED)
                continue
            meta = manifest.pop(name, None)
            if entry.suffix.lower() in ARTICLE_SUFFIXES:
                yield from _article(entry, articles, self.root)
            else:
                yield _image(name, entry, meta, images, self.root)
        # What remains in the manifest was not found directly in the folder.
        for key in sorted(manifest):
            path = relative_file(self.root, key)
            if path is None:
                yield Skipped(key, f"image path must stay inside {self.root}", "image")
            else:
                yield _image(key, path, manifest[key], images, self.root)


def _article(path: Path, seen: IdRegistry, root: Path) -> Iterator[Item]:
    title = path.stem
    if not title.strip():
        yield Skipped(str(path), "article file has no title (empty file stem)", "article")
        return
    duplicate = seen.claim(title, str(path))
    if duplicate is not None:
        yield duplicate
        return
    text = read_article(path, root)
    if isinstance(text, Skipped):
        yield text
    else:
        yield Article(id=title, title=title, text=text, source=str(path))


def _image(
    image_id: str, path: Path, meta: dict[str, Any] | None, seen: IdRegistry, root: Path
) -> Item:
    """An image, or why not. A manifest line may give the image its own ``id``."""
    skipped = skip_unless_raster(path, listed=meta is not None)
    if skipped is not None:
        return skipped
    article_id = None
    if meta is not None:
        article_id = text_field(meta, "article_id") or text_field(meta, "title")
        image_id = text_field(meta, "id") or image_id
    return seen.claim(image_id, str(path)) or image_item(image_id, article_id, path, meta, root)
