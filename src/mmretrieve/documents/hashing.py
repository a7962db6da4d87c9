"""Content hashes that make re-indexing idempotent (docs/ARCHITECTURE.md, "Indexing")."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from pathlib import Path

_WHITESPACE = re.compile(r"\s+")
_SEPARATOR = "\x1f"  # ASCII unit separator: cannot occur in normalised text, so parts never blur


def normalize_text(s: str) -> str:
    """NFC-normalise, collapse runs of whitespace to one space, strip the ends."""
    return _WHITESPACE.sub(" ", unicodedata.normalize("NFC", s)).strip()


def content_hash(*parts: str | None) -> str:
    """sha256 hex of the normalised ``parts`` joined by U+001F (``None`` counts as "")."""
    joined = _SEPARATOR.join(normalize_text(p) if p is not None else "" for p in parts)
    return hashlib.sha256(joined.encode("utf-8")).hexdigest()


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """sha256 hex of a file's bytes, read ``chunk`` bytes at a time."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def bytes_sha256(b: bytes) -> str:
    """sha256 hex of ``b``."""
    return hashlib.sha256(b).hexdigest()
