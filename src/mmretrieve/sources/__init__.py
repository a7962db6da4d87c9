"""Corpora on disk -> Article / Image / Skipped items (docs/ARCHITECTURE.md, "Indexing", step 1).

``open_source(path)`` picks the layout: a folder with ``corpus.jsonl`` or a ``.jsonl`` file ->
"jsonl"; a folder with article subfolders -> "folder"; any other folder -> "flat". Asking for
"jsonl" explicitly also accepts a folder with only ``images.jsonl`` (an image collection).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import UsageError
from .base import Item, Source
from .flat import FlatSource
from .folder import FolderSource, is_article_dir
from .jsonl import CORPUS_FILE, IMAGES_FILE, JsonlSource

LAYOUTS = ("jsonl", "folder", "flat")

__all__ = [
    "LAYOUTS",
    "FlatSource",
    "FolderSource",
    "Item",
    "JsonlSource",
    "Source",
    "detect_layout",
    "open_source",
]


def detect_layout(path: str | Path) -> str:
    """The layout ``open_source`` would use for ``path`` (which must exist)."""
    path = Path(path)
    if path.is_file():
        if path.suffix.lower() == ".jsonl":
            return "jsonl"
        raise UsageError(f"{path} is a file; give a folder or a .jsonl file")
    if (path / CORPUS_FILE).is_file():
        return "jsonl"
    try:
        for entry in path.iterdir():
            # Symlinked folders are not followed anywhere, so they cannot make the layout.
            if entry.is_dir() and not entry.is_symlink() and is_article_dir(entry):
                return "folder"
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return "flat"


def open_source(path: str | Path, layout: str | None = None) -> Source:
    """A :class:`Source` over ``path``; ``layout`` ("jsonl", "folder", "flat") or detected."""
    given = Path(path).expanduser()
    if not given.exists():
        raise UsageError(f"no such file or folder: {path}")
    root = given.resolve()
    if layout is None:
        layout = detect_layout(root)
    if layout not in LAYOUTS:
        raise UsageError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    if layout == "jsonl":
        if root.is_file():
            # Only corpus.jsonl brings its images.jsonl along; any other file is just itself.
            return (
                JsonlSource.from_dir(root.parent) if root.name == CORPUS_FILE else JsonlSource(root)
            )
        source = JsonlSource.from_dir(root) if _has_listing(root) else None
        if source is None:
            raise UsageError(f"{path} has neither {CORPUS_FILE} nor {IMAGES_FILE}")
        return source
    if not root.is_dir():
        raise UsageError(f"the {layout} layout needs a folder, and {path} is a file")
    return FolderSource(root) if layout == "folder" else FlatSource(root)


def _has_listing(folder: Path) -> bool:
    return (folder / CORPUS_FILE).is_file() or (folder / IMAGES_FILE).is_file()
