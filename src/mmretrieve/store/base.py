"""The Store protocol every backend implements, and the backend-neutral table schemas
(docs/ARCHITECTURE.md, "The index").

A filter is a mapping of scalar field name to a value (equality), a list of values (membership)
or a :class:`Match` (membership, prefixes, negation, nulls); several entries must all hold.
Backends translate it to their own syntax.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

ScalarType = Literal["str", "int", "float", "bool"]


@dataclass(frozen=True, slots=True)
class Match:
    """A string field's condition: its value is one of ``values`` or starts with one of
    ``prefixes`` (``negate``: neither); a null value matches exactly when ``null`` is True."""

    values: tuple[str, ...] = ()
    prefixes: tuple[str, ...] = ()
    negate: bool = False
    null: bool = False

    def holds(self, value: str | None) -> bool:
        """The condition evaluated in Python (what every backend must agree with)."""
        if value is None:
            return self.null
        found = value in self.values or any(value.startswith(p) for p in self.prefixes)
        return found != self.negate


FilterValue = str | int | bool | Sequence[str] | Sequence[int] | Match
Filter = Mapping[str, FilterValue]
Row = dict[str, Any]

PASSAGES, IMAGES, ARTICLES = "passages", "images", "articles"
PICTURES = "pictures"  # one row per distinct image file (index format 4 on)


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    type: ScalarType
    nullable: bool = True


@dataclass(frozen=True, slots=True)
class TableSchema:
    """Scalar fields, float32 vector fields (name -> dimension) and the fields BM25 searches."""

    name: str
    fields: tuple[Field, ...]
    vectors: Mapping[str, int]
    text_fields: tuple[str, ...] = ()

    @property
    def field_names(self) -> list[str]:
        return [f.name for f in self.fields]


@dataclass(frozen=True, slots=True)
class StoreHit:
    """A search result from a store: ``score`` is higher-is-better (cosine for vectors)."""

    id: str
    score: float
    row: Row = field(default_factory=dict)


@runtime_checkable
class Store(Protocol):
    """What the indexer and the searcher need from a vector store."""

    uri: str
    # Whether reads may run at once from several threads (a search runs its routes in a pool
    # when they may, one after another when not).
    concurrent_reads: bool

    @property
    def supports_text_search(self) -> bool:
        """False: ``text_search`` returns [] and warns once (the backend has no BM25)."""
        ...

    def ensure_tables(self, schemas: Sequence[TableSchema]) -> None:
        """Create missing tables; existing ones are left as they are."""
        ...

    def read_manifest(self) -> dict[str, Any] | None: ...

    def write_manifest(self, manifest: Mapping[str, Any]) -> None: ...

    def upsert(self, table: str, rows: Sequence[Row]) -> None:
        """Insert rows, replacing any with the same ``id``."""
        ...

    def delete(
        self, table: str, ids: Sequence[str] | None = None, filter: Filter | None = None
    ) -> None:
        """Delete rows by id and/or filter (both given: rows matching either)."""
        ...

    def get(self, table: str, ids: Sequence[str], fields: Sequence[str] | None = None) -> list[Row]:
        """Rows with these ids (missing ids are left out), without vector fields unless named."""
        ...

    def scan(
        self, table: str, fields: Sequence[str], filter: Filter | None = None
    ) -> Iterator[Row]: ...

    def search(
        self,
        table: str,
        vector_field: str,
        vector: np.ndarray,
        k: int,
        filter: Filter | None = None,
        fields: Sequence[str] | None = None,
    ) -> list[StoreHit]:
        """Nearest rows by inner product, best first."""
        ...

    def text_search(
        self,
        table: str,
        query: str,
        k: int,
        filter: Filter | None = None,
        fields: Sequence[str] | None = None,
    ) -> list[StoreHit]:
        """BM25 over the table's ``text_fields``, best first."""
        ...

    def count(self, table: str, filter: Filter | None = None) -> int: ...

    def optimize(self) -> None:
        """Bring search indexes up to date after writes (full-text, ANN when large enough)."""
        ...

    def close(self) -> None: ...


def table_schemas(
    text_dim: int, clip_dim: int | None, *, clip_text_view: bool, version: int = 4
) -> list[TableSchema]:
    """The tables of an index (docs/ARCHITECTURE.md). Without an image model, CLIP vectors and
    images are absent; passages carry a CLIP text vector only with ``clip_text_view``. From
    index format ``version`` 3, images carry a perceptual hash (``phash``, int64) and the
    article section they are placed in, and articles the other fields their source gave
    (``meta``, a JSON object of strings). From version 4, a picture is stored once however many
    articles use it: ``pictures`` holds one row per distinct file (id: its sha256) with its
    CLIP vector, and an ``images`` row is one use of it (article, caption, section, licence)."""
    passage_vectors = {"bge": text_dim}
    if clip_dim and clip_text_view:
        passage_vectors["clip_text"] = clip_dim
    passages = TableSchema(
        PASSAGES,
        (
            Field("id", "str", False),
            Field("article_id", "str", False),
            Field("text", "str", False),
            Field("position", "int", False),
            Field("section", "str"),
            Field("content_hash", "str", False),
        ),
        passage_vectors,
        text_fields=("text",),
    )
    articles = TableSchema(
        ARTICLES,
        (
            Field("id", "str", False),
            Field("title", "str", False),
            Field("url", "str"),
            Field("license", "str"),
            Field("source", "str"),
            Field("content_hash", "str", False),
            Field("n_passages", "int", False),
            *((Field("meta", "str"),) if version >= 3 else ()),
        ),
        {"clip_title": clip_dim} if clip_dim else {},
    )
    schemas = [passages, articles]
    if clip_dim:
        schemas.append(
            TableSchema(
                IMAGES,
                (
                    Field("id", "str", False),
                    Field("article_id", "str"),
                    Field("uri", "str", False),
                    Field("caption", "str"),
                    Field("alt_text", "str"),
                    Field("search_text", "str", False),  # caption + alt text, for BM25
                    Field("width", "int"),
                    Field("height", "int"),
                    Field("sha256", "str", False),
                    Field("license", "str"),
                    Field("has_caption", "bool", False),
                    Field("content_hash", "str", False),
                    *((Field("phash", "int"), Field("section", "str")) if version >= 3 else ()),
                ),
                {"caption_bge": text_dim}
                if version >= 4
                else {"clip_image": clip_dim, "caption_bge": text_dim},
                text_fields=("search_text",),
            )
        )
        if version >= 4:
            schemas.append(
                TableSchema(
                    PICTURES,
                    (
                        Field("id", "str", False),  # the file's sha256
                        Field("phash", "int"),
                        Field("width", "int"),
                        Field("height", "int"),
                    ),
                    {"clip_image": clip_dim},
                )
            )
    return schemas
