"""One subfolder per article: ``article.txt`` or ``article.md``, optional ``meta.json`` and
``images.jsonl``, and the article's image files (what the Wikipedia fetcher writes)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..types import Article, Skipped
from .base import (
    IdRegistry,
    Item,
    Source,
    image_item,
    is_hidden,
    meta_fields,
    read_article,
    read_file_listing,
    skip_unless_raster,
    text_field,
    walk_files,
)

# The layout's file names, defined here once; the Wikipedia writer (mmretrieve.wiki) imports them.
ARTICLE_FILE = "article.txt"
ARTICLE_MD_FILE = "article.md"
ARTICLE_FILES = (ARTICLE_FILE, ARTICLE_MD_FILE)  # the first present wins
META_FILE = "meta.json"
IMAGES_FILE = "images.jsonl"
REFS_FILE = "image_refs.jsonl"
"""Images an article references but that are not downloaded yet (written by ``wiki dump``)."""
_OWN_FILES = frozenset((*ARTICLE_FILES, META_FILE, IMAGES_FILE, REFS_FILE))
# Other JSON files beside the article are metadata sidecars, not content to report one by one.
_SIDECAR_SUFFIXES = (".json", ".jsonl")


def is_article_dir(path: Path) -> bool:
    """Whether ``path`` is a folder holding ``article.txt`` or ``article.md``."""
    return any((path / name).is_file() for name in ARTICLE_FILES)


class FolderSource(Source):
    """Articles from subfolders of ``root``, each followed by its images.

    Article id and title come from ``meta.json`` ("id", "title") and default to the subfolder
    name; image ids are ``"{article_id}/{path inside the subfolder}"``.
    """

    layout = "folder"

    def items(self) -> Iterator[Item]:
        articles = IdRegistry("article")
        images = IdRegistry("image")
        try:
            entries = sorted(self.root.iterdir(), key=lambda p: p.name)
        except OSError as exc:
            yield Skipped(str(self.root), f"cannot read: {exc.strerror or exc}")
            return
        for entry in entries:
            if is_hidden(entry.name):
                continue
            if entry.is_symlink() and entry.is_dir():
                yield Skipped(str(entry), "symlinked folder not followed")
            elif entry.is_dir():
                yield from self._article_dir(entry, articles, images)
            elif not entry.is_symlink() and not entry.exists():
                yield Skipped(str(entry), "disappeared during the run")
            else:
                yield Skipped(str(entry), "not inside an article folder")

    def _article_dir(
        self, folder: Path, articles: IdRegistry, images: IdRegistry
    ) -> Iterator[Item]:
        article_file = next((folder / n for n in ARTICLE_FILES if (folder / n).is_file()), None)
        if article_file is None and not folder.is_dir():
            yield Skipped(str(folder), "folder disappeared during the run", "article")
            return
        if article_file is None:
            yield Skipped(
                str(folder), f"no {ARTICLE_FILE} or {ARTICLE_MD_FILE} in this folder", "article"
            )
            return
        meta = _read_meta(folder / META_FILE)
        if isinstance(meta, Skipped):
            # Falling back to the folder name would silently change the article's id.
            yield meta
            return
        article_id = text_field(meta, "id") or folder.name
        duplicate = articles.claim(article_id, str(folder))
        if duplicate is not None:
            yield duplicate  # its images would collide with the first article's image ids
            return
        text = read_article(article_file, self.root)
        if isinstance(text, Skipped):
            yield text  # its images are still worth indexing; the indexer decides
        else:
            yield Article(
                id=article_id,
                title=text_field(meta, "title") or folder.name,
                text=text,
                url=text_field(meta, "url"),
                license=text_field(meta, "license"),
                source=str(article_file),
                meta=meta_fields(meta),
            )
        yield from _images(folder, article_id, images, self.root)


def _read_meta(path: Path) -> dict[str, Any] | Skipped:
    if not path.exists():
        return {}
    try:
        meta = json.loads(path.read_bytes().decode("utf-8-sig"))
    except OSError as exc:
        return Skipped(str(path), f"cannot read: {exc.strerror or exc}", "article")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return Skipped(str(path), f"bad {META_FILE}: {exc}", "article")
    if not isinstance(meta, dict):
        return Skipped(str(path), f"bad {META_FILE}: expected a JSON object", "article")
    return meta


def _images(folder: Path, article_id: str, seen: IdRegistry, root: Path) -> Iterator[Item]:
    listed, problems = read_file_listing(folder / IMAGES_FILE)
    yield from problems
    used: set[str] = set()
    for entry in walk_files(folder):
        if isinstance(entry, Skipped):
            yield entry
            continue
        rel = entry.relative_to(folder).as_posix()
        if rel in _OWN_FILES or ("/" not in rel and entry.suffix.lower() in _SIDECAR_SUFFIXES):
            continue
        # Listing lines name the file by its path in the folder, or by bare file name.
        key = rel if rel in listed else entry.name
        meta = listed.get(key)
        if meta is not None:
            used.add(key)
        skipped = skip_unless_raster(entry, listed=meta is not None)
        if skipped is not None:
            yield skipped
            continue
        image_id = f"{article_id}/{rel}"
        yield seen.claim(image_id, str(entry)) or image_item(
            image_id, article_id, entry, meta, root
        )
    for key in sorted(listed.keys() - used):
        yield Skipped(str(folder / key), f"image file missing (listed in {IMAGES_FILE})", "image")
