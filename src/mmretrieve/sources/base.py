"""What every source shares: the Source base class, file classification, JSONL lines, walking."""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..documents.images import IMAGE_EXTENSIONS, NON_RASTER_EXTENSIONS
from ..documents.text import read_text_file
from ..errors import BadInputError
from ..types import Article, Image, Skipped, valid_unicode

Item = Article | Image | Skipped

MAX_ARTICLE_BYTES = 64 * 1024 * 1024
"""Article files larger than this are reported, not read (a misnamed dump, a log file)."""

ARTICLE_SUFFIXES = (".txt", ".md")


class Source(ABC):
    """A corpus on disk. ``items()`` streams its articles, images and skipped inputs in a
    deterministic order; an article's images may follow it directly."""

    layout: str = ""

    def __init__(self, root: Path) -> None:
        self.root = root

    @abstractmethod
    def items(self) -> Iterator[Item]:
        """Articles, images and :class:`Skipped` records, in a stable order."""

    def __iter__(self) -> Iterator[Item]:
        return self.items()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.root)!r})"


class IdRegistry:
    """Remembers ids already yielded, so that a later duplicate is reported instead."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._first: dict[str, str] = {}

    def claim(self, item_id: str, where: str) -> Skipped | None:
        """``None`` when ``item_id`` is new (and now taken), else the Skipped for ``where``."""
        first = self._first.setdefault(item_id, where)
        if first == where:
            return None
        return Skipped(
            where, f"duplicate {self.kind} id {item_id!r} (first seen in {first})", self.kind
        )


def skip_unless_raster(path: Path, *, listed: bool = False) -> Skipped | None:
    """A Skipped when ``path`` is not a raster image we can index, else ``None``.

    A file a listing names as an image (``listed``) is taken whatever its extension (an .img
    holding a JPEG is fine: the indexer decodes it and reports what it cannot), unless it is a
    vector format.
    """
    suffix = path.suffix.lower()
    if suffix in IMAGE_EXTENSIONS:
        return None
    if suffix in NON_RASTER_EXTENSIONS:
        return Skipped(str(path), f"not a raster image ({NON_RASTER_EXTENSIONS[suffix]})", "image")
    if listed:
        return None
    what = f"'{suffix}'" if suffix else "(no extension)"
    return Skipped(str(path), f"unknown file type {what}")


def is_hidden(name: str) -> bool:
    return name.startswith(".")


def outside_link(path: Path, root: Path, kind: str) -> Skipped | None:
    """A Skipped when ``path`` is a symlink to a file outside ``root`` (the corpus), else None.

    Such files are refused at index time, so that neither their bytes (images, served by the
    HTTP API) nor their text (passages) can ever leave the machine through the index. Paths
    that reach a file through a symlinked *folder* are only ever named by a listing
    (images.jsonl), a deliberate act of the corpus author; scanning never enters such folders.
    """
    if not path.is_symlink():
        return None
    try:
        target = path.resolve(strict=True)
    except (OSError, RuntimeError):
        return None  # a broken or looping link: the reader reports it
    if target.is_relative_to(root.resolve()):
        return None
    return Skipped(str(path), f"symlink to a file outside the corpus: {target}", kind)


def read_article(path: Path, root: Path | None = None) -> str | Skipped:
    """The article text in ``path``, or a Skipped saying why it cannot be used. With ``root``,
    a symlink to a file outside it is refused (:func:`outside_link`)."""
    if root is not None and (outside := outside_link(path, root, "article")) is not None:
        return outside
    try:
        text = read_text_file(path, max_bytes=MAX_ARTICLE_BYTES)
    except BadInputError as exc:
        return Skipped(str(path), str(exc), "article")
    if not text.strip():
        return Skipped(str(path), "empty article", "article")
    return text


# Fields of an article's meta.json or JSONL line with their own place in an Article, and the
# wiki writer's bookkeeping (fetched_at changes at every fetch): the others become Article.meta.
RESERVED_FIELDS = frozenset(
    {"id", "title", "text", "url", "license", "images", "fetched_at", "image_settings",
     "image_refs_sha256"}
)  # fmt: skip


def meta_fields(obj: dict[str, Any]) -> dict[str, str]:
    """The filterable extra fields of an article: scalar values as strings (booleans as
    ``true``/``false``), keys sorted; nested values and reserved fields are left out."""
    out = {}
    for key in sorted(obj):
        value = obj[key]
        if key in RESERVED_FIELDS or not isinstance(key, str) or value is None:
            continue
        if isinstance(value, bool):
            out[key] = "true" if value else "false"
        elif isinstance(value, (int, float, str)):
            out[key] = valid_unicode(str(value))
    return out


def text_field(obj: dict[str, Any], key: str) -> str | None:
    """``obj[key]`` when it is a non-blank string (numbers are accepted as ids), else ``None``."""
    value = obj.get(key)
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value
    return None


def iter_jsonl(path: Path, kind: str) -> Iterator[tuple[str, dict[str, Any]] | Skipped]:
    """``(location, object)`` for each JSON object line of ``path``, where location is
    ``"path:lineno"``; a line that is not UTF-8, not JSON or not an object becomes a Skipped.
    Lines are read one at a time, so the file is never held in memory whole."""
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed in the finally below
    except OSError as exc:
        yield Skipped(str(path), f"cannot read: {exc.strerror or exc}", kind)
        return
    try:
        lineno = 0
        while True:
            try:
                raw = f.readline()
            except OSError as exc:
                yield Skipped(f"{path}:{lineno + 1}", f"cannot read: {exc.strerror or exc}", kind)
                return
            if not raw:
                return
            lineno += 1
            where = f"{path}:{lineno}"
            if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]  # a UTF-8 BOM some editors write
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield Skipped(
                    where, f"not valid UTF-8 ({exc.reason} at byte offset {exc.start})", kind
                )
                continue
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                # pos, not colno: a line's own newline would otherwise count as a second line.
                yield Skipped(where, f"bad JSON: {exc.msg} (column {exc.pos + 1})", kind)
                continue
            if not isinstance(obj, dict):
                yield Skipped(where, f"expected a JSON object, got {type(obj).__name__}", kind)
                continue
            yield where, obj
    finally:
        f.close()


def relative_file(root: Path, value: str) -> Path | None:
    """``root / value`` for a relative path that stays inside ``root`` (checked by name, so a
    symlinked images folder still works), else ``None``."""
    rel = Path(value)
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        return None
    return root / rel


def image_item(
    image_id: str,
    article_id: str | None,
    path: Path,
    meta: dict[str, Any] | None = None,
    root: Path | None = None,
) -> Image | Skipped:
    """An Image for the file at ``path`` with optional metadata, or a Skipped if it is gone
    (or, with ``root``, a symlink to a file outside it: :func:`outside_link`)."""
    if not path.is_file():
        if path.is_symlink():
            return Skipped(
                str(path), "broken symbolic link (its target is missing, or a link loop)", "image"
            )
        return Skipped(str(path), "image file missing", "image")
    if root is not None and (outside := outside_link(path, root, "image")) is not None:
        return outside
    meta = meta or {}
    return Image(
        id=image_id,
        article_id=article_id,
        uri=str(path.resolve()),
        caption=text_field(meta, "caption"),
        alt_text=text_field(meta, "alt_text"),
        section=text_field(meta, "section"),
        license=text_field(meta, "license"),
    )


def walk_files(top: Path) -> Iterator[Path | Skipped]:
    """Files under ``top`` in sorted order, without entering symlinked folders (so link loops
    cannot hang us) or hidden ones; unreadable folders come back as Skipped."""
    errors: list[OSError] = []
    for dirpath, dirnames, filenames in os.walk(top, onerror=errors.append, followlinks=False):
        while errors:
            exc = errors.pop(0)
            yield Skipped(str(exc.filename or dirpath), f"cannot read: {exc.strerror or exc}")
        here = Path(dirpath)
        kept = []
        for name in sorted(dirnames):
            if is_hidden(name):
                continue
            if (here / name).is_symlink():
                yield Skipped(str(here / name), "symlinked folder not followed")
                continue
            kept.append(name)
        dirnames[:] = kept  # os.walk descends in this (sorted) order
        for name in sorted(filenames):
            if not is_hidden(name):
                yield here / name
    for exc in errors:
        yield Skipped(str(exc.filename or top), f"cannot read: {exc.strerror or exc}")


def normalize_newlines(text: str) -> str:
    """``\r\n`` and ``\r`` to ``\n``, as :func:`read_text_file` does for files."""
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


def read_file_listing(path: Path) -> tuple[dict[str, dict[str, Any]], list[Skipped]]:
    """An ``images.jsonl`` listing's lines keyed by their ``file`` (a path relative to its
    folder; the first line for a file wins), and the lines that could not be used."""
    listed: dict[str, dict[str, Any]] = {}
    problems: list[Skipped] = []
    if not path.is_file():
        return listed, problems
    for entry in iter_jsonl(path, "image"):
        if isinstance(entry, Skipped):
            problems.append(entry)
            continue
        where, obj = entry
        file = text_field(obj, "file")
        if file is None:
            problems.append(Skipped(where, "missing 'file'", "image"))
        else:
            listed.setdefault(Path(file).as_posix(), obj)
    return listed, problems
