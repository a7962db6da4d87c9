"""Stores are named by URI: ``lance://PATH`` (default; a plain path means this),
``milvus://HOST:PORT/NAME`` (a Milvus server or cluster), ``milvus-lite://FILE.db``."""

from __future__ import annotations

from pathlib import Path

from ..errors import UsageError
from .base import (
    ARTICLES,
    IMAGES,
    PASSAGES,
    PICTURES,
    Filter,
    Row,
    Store,
    StoreHit,
    TableSchema,
    table_schemas,
)

__all__ = [
    "ARTICLES",
    "IMAGES",
    "PICTURES",
    "PASSAGES",
    "Filter",
    "Row",
    "Store",
    "StoreHit",
    "TableSchema",
    "open_store",
    "table_schemas",
]


def _lance(location: str) -> Store:
    from .lance import LanceStore

    return LanceStore(location)


def _milvus(location: str) -> Store:
    from .milvus import open_milvus

    return open_milvus(location)


def _milvus_lite(location: str) -> Store:
    from .milvus import open_milvus_lite

    return open_milvus_lite(location)


# Explicit registry of URI schemes; a plain path is the embedded default.
BACKENDS = {"lance": _lance, "milvus": _milvus, "milvus-lite": _milvus_lite}


def open_store(uri: str | Path) -> Store:
    """Open (creating if needed) the store a URI names."""
    text = str(uri)
    scheme, sep, rest = text.partition("://")
    if not sep:
        return _lance(text)
    try:
        factory = BACKENDS[scheme]
    except KeyError:
        raise UsageError(
            f"unknown store {text!r}: use a path or one of {', '.join(s + '://' for s in BACKENDS)}"
        ) from None
    return factory(rest)
