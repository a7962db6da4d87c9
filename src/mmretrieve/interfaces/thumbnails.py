"""A small on-disk cache of JPEG thumbnails for the HTTP API, keyed by image content hash.

Bounded twice: each thumbnail's longest side is at most ``size`` pixels, and the cache directory
holds at most ``max_bytes``; the least recently used files go first when it is full. Pictures are
decoded by the ``decode`` callable it is given (the HTTP app gives ``Index.decode_image``, with the
index's limits).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

Decode = Callable[[str | Path], "PILImage"]
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
DEFAULT_SIZE = 256
DEFAULT_MAX_BYTES = 64 * 1024 * 1024


class ThumbnailCache:
    """Thumbnails of indexed images, made on first request and kept in ``directory``.

    ``directory`` defaults to a fresh private temporary directory. Files are named only from the
    content hash (never from ids or paths given by a client), so nothing outside the directory
    is ever written. ``decode(source)`` returns the picture at most ``size`` pixels on its
    longest side, or raises BadInputError.
    """

    def __init__(
        self,
        directory: str | Path | None = None,
        *,
        decode: Decode,
        size: int = DEFAULT_SIZE,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        if size < 16:
            raise ValueError(f"thumbnail size must be at least 16 pixels, got {size}")
        self.owns_directory = directory is None  # a temporary directory we remove on close()
        if directory is None:
            directory = tempfile.mkdtemp(prefix="mmretrieve-thumbs-")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.size = size
        self.max_bytes = max_bytes
        self.decode = decode
        self._lock = threading.Lock()
        self._total = sum(p.stat().st_size for p in self._files())

    def _files(self) -> list[Path]:
        return [p for p in self.directory.glob("*.jpg") if p.is_file()]

    def path_for(self, content_hash: str) -> Path:
        """Where the thumbnail of the image with this content hash lives."""
        key = content_hash.lower()
        if not _HEX64.match(key):  # not a sha256 hex digest: hash it so it is a safe file name
            key = hashlib.sha256(content_hash.encode("utf-8")).hexdigest()
        return self.directory / f"{key}-{self.size}.jpg"

    def get(self, content_hash: str, source: str | Path) -> Path:
        """The cached thumbnail of ``source``, made now if absent. Raises BadInputError when the
        source cannot be decoded."""
        target = self.path_for(content_hash)
        if target.is_file():
            with contextlib.suppress(OSError):
                os.utime(target)  # mark as recently used
            return target
        image = self.decode(source)
        fd, tmp = tempfile.mkstemp(dir=self.directory, suffix=".part")
        try:
            with os.fdopen(fd, "wb") as fh:
                image.save(fh, format="JPEG", quality=85, optimize=True)
            size = os.path.getsize(tmp)
            with self._lock:
                existed = target.is_file()
                os.replace(tmp, target)  # atomic: readers never see half a file
                if not existed:
                    self._total += size
                self._evict_locked(keep=target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return target

    @property
    def total_bytes(self) -> int:
        return self._total

    def close(self) -> None:
        """Remove the directory when it is our own temporary one; a given one is kept."""
        if self.owns_directory:
            shutil.rmtree(self.directory, ignore_errors=True)

    def _evict_locked(self, keep: Path) -> None:
        if self._total <= self.max_bytes:
            return
        files = sorted(self._files(), key=lambda p: p.stat().st_mtime)
        self._total = sum(p.stat().st_size for p in files)
        goal = int(self.max_bytes * 0.8)
        for path in files:
            if self._total <= goal:
                break
            if path == keep:
                continue
            with contextlib.suppress(OSError):
                size = path.stat().st_size
                path.unlink()
                self._total -= size
