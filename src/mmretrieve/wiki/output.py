"""Writes the folder-per-article layout that :mod:`mmretrieve.sources.folder` reads and defines
(its file names come from there), for `wiki fetch` and `wiki dump`.

```
<out>/<folder>/article.txt       plain text, headings kept as "== Heading ==" lines
               meta.json         id, title, url, page_id, revision_id, license, lang, source...
               images.jsonl      one line per downloaded image: file, caption, alt_text, licence...
               image_refs.jsonl  dump only: images referenced, not downloaded yet (title, caption)
               <image files>
```
Every file is written atomically (temp file + rename) and ``meta.json`` last, so a folder whose
``meta.json`` names the current revision is complete. A new article is built in a hidden
``.<folder>.partial`` directory and renamed into place when done, so readers never see half of it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import unicodedata
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

# The file names belong to the layout, which the folder source defines.
from ..sources.folder import ARTICLE_FILE, IMAGES_FILE, META_FILE, REFS_FILE

TEXT_LICENSE = "CC BY-SA 4.0"
TEXT_LICENSE_URL = "https://creativecommons.org/licenses/by-sa/4.0/"
PARTIAL_SUFFIX = ".partial"

_UNSAFE = re.compile(r"[^\w\-.(),]+", re.UNICODE)
_MAX_NAME_BYTES = 120
_EXT_BY_MIME = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/gif": ".gif",
    "image/webp": ".webp",
    "image/tiff": ".tif",
    "image/bmp": ".bmp",
}


def canonical_title(title: str) -> str:
    """MediaWiki's display form: underscores as spaces, single spaces, trimmed."""
    return " ".join(title.replace("_", " ").split())


def article_id(lang: str, title: str) -> str:
    """Stable article id, e.g. ``wiki:en:Vincent_van_Gogh``."""
    return f"wiki:{lang}:{canonical_title(title).replace(' ', '_')}"


def _short_hash(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:8]


def _readable(text: str) -> str:
    text = unicodedata.normalize("NFC", text).replace(" ", "_")
    text = _UNSAFE.sub("_", text)
    text = re.sub(r"_+", "_", text).strip("._-")
    data = text.encode("utf-8")[:_MAX_NAME_BYTES]
    return data.decode("utf-8", errors="ignore").rstrip("._-") or "untitled"


def folder_name(lang: str, title: str) -> str:
    """Filesystem-safe, deterministic, unique folder name for an article.

    The readable part comes from the title; the suffix hashes the exact article id, so titles that
    differ only in case ("Red Dwarf" / "Red dwarf") or in characters the filesystem cannot hold
    ("AC/DC" / "AC_DC") never share a folder, on any filesystem.
    """
    return f"{_readable(canonical_title(title))}-{_short_hash(article_id(lang, title))}"


def image_file_name(file_title: str, mime: str | None) -> str:
    """Deterministic local file name for a ``File:...`` title, extension from the real mime type."""
    name = canonical_title(file_title.split(":", 1)[-1])
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    suffix = _EXT_BY_MIME.get((mime or "").lower()) or (f".{ext.lower()}" if ext else ".img")
    return f"{_readable(stem)[:80]}-{_short_hash(name)}{suffix}"


def now_iso() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


# --- atomic files -------------------------------------------------------------------------------


def atomic_write_bytes(path: Path, data: bytes, durable: bool = True) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half.

    ``durable`` also fsyncs before the rename (survives a power cut, not only a killed process).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str, durable: bool = True) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), durable)


def write_json(path: Path, data: dict[str, Any], durable: bool = True) -> None:
    atomic_write_text(path, json.dumps(data, ensure_ascii=False, indent=2) + "\n", durable)


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]], durable: bool = True) -> None:
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    atomic_write_text(path, text, durable)


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, or None when it is missing or unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Objects in a JSON-lines file; missing file -> []; unreadable lines are dropped."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    rows = []
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str | None:
    h = hashlib.sha256()
    try:
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    except OSError:
        return None
    return h.hexdigest()


# --- one article folder --------------------------------------------------------------------------


class ArticleFolder:
    """Reads and writes one article's folder; new articles are assembled under a hidden name.

    ``durable=False`` skips fsync: still safe against a killed run (renames are atomic), and much
    faster when a dump writes thousands of small folders.
    """

    def __init__(self, out: Path, name: str, durable: bool = True) -> None:
        self.final = out / name
        self.partial = out / f".{name}{PARTIAL_SUFFIX}"
        self.durable = durable

    @property
    def path(self) -> Path:
        """Where to read and write now: the final folder once it exists, else the partial one."""
        return self.final if self.final.is_dir() else self.partial

    def meta(self) -> dict[str, Any] | None:
        return read_json(self.final / META_FILE)

    def images(self) -> list[dict[str, Any]]:
        return read_jsonl(self.path / IMAGES_FILE)

    def refs(self) -> list[dict[str, Any]]:
        return read_jsonl(self.path / REFS_FILE)

    def verified(self, entry: dict[str, Any]) -> bool:
        """True when the entry's file is on disk with the recorded sha256."""
        name = entry.get("file")
        if not isinstance(name, str) or not entry.get("sha256"):
            return False
        return sha256_file(self.path / name) == entry["sha256"]

    def _write(self, name: str, data: bytes) -> None:
        """Atomic in the final folder; a plain write in the partial one (its rename commits)."""
        where = self.path
        if where == self.final:
            atomic_write_bytes(where / name, data, self.durable)
            return
        where.mkdir(parents=True, exist_ok=True)
        with (where / name).open("wb") as fh:
            fh.write(data)
            if self.durable:
                fh.flush()
                os.fsync(fh.fileno())

    def _write_jsonl(self, name: str, rows: list[dict[str, Any]]) -> None:
        self._write(name, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode())

    def write_image(self, name: str, data: bytes) -> None:
        self._write(name, data)

    def write_images(self, entries: list[dict[str, Any]]) -> None:
        self._write_jsonl(IMAGES_FILE, entries)

    def prune_images(self, keep: list[dict[str, Any]], old: list[dict[str, Any]]) -> None:
        """Delete files listed in ``old`` but not in ``keep`` (never touches unknown files)."""
        kept = {e.get("file") for e in keep}
        for entry in old:
            name = entry.get("file")
            if isinstance(name, str) and name not in kept and "/" not in name and name:
                (self.path / name).unlink(missing_ok=True)

    def write_refs(self, refs: list[dict[str, Any]]) -> None:
        if refs:
            self._write_jsonl(REFS_FILE, refs)
        else:
            (self.path / REFS_FILE).unlink(missing_ok=True)

    def remove_refs(self) -> None:
        (self.path / REFS_FILE).unlink(missing_ok=True)

    def write_text(self, text: str) -> None:
        self._write(ARTICLE_FILE, (text.rstrip() + "\n").encode("utf-8"))

    def commit(self, meta: dict[str, Any]) -> None:
        """Write ``meta.json`` last, then move a new article's folder into place."""
        self._write(META_FILE, (json.dumps(meta, ensure_ascii=False, indent=2) + "\n").encode())
        if self.path == self.partial:
            if self.final.exists():  # another writer finished first; keep theirs
                shutil.rmtree(self.partial, ignore_errors=True)
            else:
                os.replace(self.partial, self.final)
        elif self.partial.exists():  # left by a run killed before another source wrote the folder
            shutil.rmtree(self.partial, ignore_errors=True)

    def update_meta(self, changes: dict[str, Any]) -> None:
        meta = self.meta() or {}
        meta.update(changes)
        write_json(self.final / META_FILE, meta)


def base_meta(
    *,
    lang: str,
    title: str,
    url: str | None,
    page_id: int | None,
    revision_id: int | None,
    source: str,
) -> dict[str, Any]:
    """The meta.json fields every source writes."""
    return {
        "id": article_id(lang, title),
        "title": canonical_title(title),
        "url": url,
        "page_id": page_id,
        "revision_id": revision_id,
        "license": TEXT_LICENSE,
        "license_url": TEXT_LICENSE_URL,
        "lang": lang,
        "fetched_at": now_iso(),
        "source": source,
    }
