"""The embedded default store: LanceDB tables in the index directory (docs/ARCHITECTURE.md).

Writes are Lance commits, so a killed run leaves the last committed version readable. The manifest
is a JSON file written atomically beside the tables.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ReadOnlyIndexError
from .arrays import is_text, vector_fields_of
from .base import Filter, Row, StoreHit, TableSchema
from .bm25 import lance_matches
from .filters import ids_sql, to_sql
from .hot import HotTables
from .lance_ann import ANN_KIND, ANN_MIN_ROWS, ANN_REFINE, ann_config, ann_probes

os.environ.setdefault("LANCE_LOG", "error")  # keep Lance's Rust warnings off users' terminals

MANIFEST = "manifest.json"
READ_CONSISTENCY_S = 1.0
_ID_CHUNK = 1000  # ids per IN (...) predicate
_ARROW_TYPES = {"str": "string", "int": "int64", "float": "float64", "bool": "bool_"}


def _has_fts(table: Any) -> bool:
    return any(ix.index_type == "FTS" for ix in table.list_indices())


def _arrow_schema(schema: TableSchema) -> Any:
    import pyarrow as pa

    fields = [
        pa.field(f.name, getattr(pa, _ARROW_TYPES[f.type])(), nullable=f.nullable)
        for f in schema.fields
    ]
    fields += [pa.field(name, pa.list_(pa.float32(), dim)) for name, dim in schema.vectors.items()]
    return pa.schema(fields)


class LanceStore:
    """LanceDB in a local directory: one table per kind, BM25 through Lance's full-text index."""

    supports_text_search = True  # BM25 always works here (the searcher's lexical routes)
    # The searcher's routes call this store from several threads at once (routes.py): Lance's
    # tables are safe to share, and _lock covers what this class fills in lazily.
    concurrent_reads = True

    def __init__(self, path: str | Path) -> None:
        import lancedb

        self.path = Path(path)
        self.uri = f"lance://{self.path}"
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            msg = f"cannot create the index at {self.path}: {exc.strerror}"
            raise ReadOnlyIndexError(msg) from exc
        # An index this process cannot write (a read-only filesystem, or folders this user may
        # not write) opens for searching; every write raises ReadOnlyIndexError up front instead
        # of an OSError half-way through. Root passes os.access on a writable filesystem
        # whatever the modes, as it can write there.
        self.read_only = any(
            not os.access(folder, os.W_OK)
            for folder in (self.path, *self.path.glob("*.lance"), *self.path.glob("*.lance/*"))
            if folder.is_dir()
        )
        # Check for other processes' commits at most once a second, so a long-running server
        # sees a concurrent `mmretrieve index` without a restart.
        self._db = lancedb.connect(
            str(self.path), read_consistency_interval=timedelta(seconds=READ_CONSISTENCY_S)
        )
        self._tables: dict[str, Any] = {}
        self._lock = threading.Lock()  # opening a table, building a missing full-text index
        self._schemas: dict[str, TableSchema] = {}
        # Per store, so benchmarks and tests can move them.
        self.ann_min_rows = ANN_MIN_ROWS
        self.ann_kind = ANN_KIND
        self.ann_nprobes: int | None = None  # None: ANN_PROBE_FRACTION of the partitions
        self.ann_refine = ANN_REFINE
        self._ann_fields: dict[str, set[str]] = {}  # table -> vector fields with an ANN index
        self._probes: dict[str, int] = {}  # table -> nprobes for the size its indexes were built at
        # Tables read often are held in memory for exact searches without a Lance call (hot.py).
        self.hot = HotTables(self._read_whole, self.version)

    # -- tables ------------------------------------------------------------------------------
    def _existing(self) -> set[str]:
        return set(self._db.list_tables().tables)

    def writable(self, what: str) -> None:
        """Raise ReadOnlyIndexError, saying ``what`` could not be done, when read-only."""
        if self.read_only:
            raise ReadOnlyIndexError(
                f"the index at {self.path} is read-only (a read-only filesystem, or no write "
                f"permission): it can be searched, but cannot {what}"
            )

    def ensure_tables(self, schemas: Sequence[TableSchema]) -> None:
        existing = self._existing()
        for schema in schemas:
            self._schemas[schema.name] = schema
            if schema.name not in existing:
                self.writable(f"create its table {schema.name!r}")
                self._db.create_table(schema.name, schema=_arrow_schema(schema))

    def _table(self, name: str) -> Any:
        table = self._tables.get(name)
        if table is None:
            with self._lock:  # concurrent routes: open each table once, all share that handle
                table = self._tables.get(name)
                if table is None:
                    table = self._tables[name] = self._db.open_table(name)
        return table

    def has_table(self, name: str) -> bool:
        return name in self._tables or name in self._existing()

    # -- manifest ----------------------------------------------------------------------------
    def read_manifest(self) -> dict[str, Any] | None:
        path = self.path / MANIFEST
        if not path.exists():
            return None
        return json.loads(path.read_text(encoding="utf-8"))

    def write_manifest(self, manifest: Mapping[str, Any]) -> None:
        self.writable("write its manifest")
        tmp = self.path / (MANIFEST + ".tmp")
        tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True), encoding="utf-8")
        os.replace(tmp, self.path / MANIFEST)

    # -- writes ------------------------------------------------------------------------------
    def _to_arrow(self, table: str, rows: Sequence[Row]) -> Any:
        import pyarrow as pa

        schema = self._table(table).schema
        columns = {}
        for field in schema:
            values = [row.get(field.name) for row in rows]
            if pa.types.is_fixed_size_list(field.type):
                flat = np.asarray(values, dtype=np.float32).reshape(-1)
                columns[field.name] = pa.FixedSizeListArray.from_arrays(
                    pa.array(flat, pa.float32()), field.type.list_size
                )
            else:
                columns[field.name] = pa.array(values, type=field.type)
        return pa.table(columns, schema=schema)

    def upsert(self, table: str, rows: Sequence[Row]) -> None:
        if not rows:
            return
        self.writable(f"write to its table {table!r}")
        data = self._to_arrow(table, rows)
        self.hot.drop(table)
        (
            self._table(table)
            .merge_insert("id")
            .when_matched_update_all()
            .when_not_matched_insert_all()
            .execute(data)
        )

    def delete(
        self, table: str, ids: Sequence[str] | None = None, filter: Filter | None = None
    ) -> None:
        self.writable(f"delete from its table {table!r}")
        self.hot.drop(table)
        if ids:
            ids = list(ids)
            for start in range(0, len(ids), _ID_CHUNK):
                self._table(table).delete(ids_sql(ids[start : start + _ID_CHUNK]))
        where = to_sql(filter)
        if where:
            self._table(table).delete(where)

    # -- reads -------------------------------------------------------------------------------
    def _scalar_fields(self, table: str, fields: Sequence[str] | None) -> list[str]:
        if fields is not None:
            return list(fields)
        import pyarrow as pa

        return [
            f.name for f in self._table(table).schema if not pa.types.is_fixed_size_list(f.type)
        ]

    def get(self, table: str, ids: Sequence[str], fields: Sequence[str] | None = None) -> list[Row]:
        ids = list(dict.fromkeys(ids))
        cols = self._scalar_fields(table, fields)
        held = self.hot.get(table, ids, cols)
        return held if held is not None else self._get_from_lance(table, ids, cols)

    def _get_from_lance(self, table: str, ids: list[str], cols: list[str]) -> list[Row]:
        out: list[Row] = []
        for start in range(0, len(ids), _ID_CHUNK):
            chunk = ids[start : start + _ID_CHUNK]
            query = self._table(table).search().where(ids_sql(chunk)).select(cols).limit(None)
            out.extend(query.to_list())
        order = {id_: i for i, id_ in enumerate(ids)}
        out.sort(key=lambda row: order.get(str(row.get("id")), 0))
        return out

    def scan(
        self, table: str, fields: Sequence[str], filter: Filter | None = None
    ) -> Iterator[Row]:
        if filter:  # a narrow scan a search makes (the uses of some pictures): held rows answer
            held = self.hot.select(table, filter, list(fields))
            if held is not None:
                yield from held
                return
        query = self._table(table).search().select(list(fields)).limit(None)
        where = to_sql(filter)
        if where:
            query = query.where(where)
        for batch in query.to_batches(batch_size=8192):
            yield from batch.to_pylist()

    def search(
        self,
        table: str,
        vector_field: str,
        vector: np.ndarray,
        k: int,
        filter: Filter | None = None,
        fields: Sequence[str] | None = None,
    ) -> list[StoreHit]:
        cols = self._scalar_fields(table, fields)
        held = self.hot.search(table, vector_field, vector, k, filter, cols)
        if held is not None:
            return held
        query = (
            self._table(table)
            .search(np.asarray(vector, dtype=np.float32), vector_column_name=vector_field)
            .distance_type("dot")
            .limit(k)
            .select([*cols, "_distance"])
        )
        if vector_field in self._vector_indexes(table):
            query = query.nprobes(self._nprobes(table))
            if self.ann_refine > 1:
                query = query.refine_factor(self.ann_refine)
        where = to_sql(filter)
        if where:
            query = query.where(where, prefilter=True)
        rows = query.to_list()
        # Lance's dot "distance" is 1 - inner product; report the inner product (cosine).
        return [StoreHit(r["id"], 1.0 - float(r.pop("_distance")), r) for r in rows]

    def text_search(
        self,
        table: str,
        query: str,
        k: int,
        filter: Filter | None = None,
        fields: Sequence[str] | None = None,
    ) -> list[StoreHit]:
        schema = self._schemas.get(table)
        column = schema.text_fields[0] if schema and schema.text_fields else "text"
        cols = self._scalar_fields(table, fields)
        hits = self.hot.text_search(table, column, query, k, filter, cols)
        if hits is not None:  # held, with Lance's index rebuilt in memory (bm25.py)
            return hits
        self._ensure_fts(table, column)
        # Lance ranks; a table held in memory gives the rows (a third of the call's cost).
        held = self.hot.holds(table, cols)
        search = (
            self._table(table)
            .search(query, query_type="fts", fts_columns=column)
            .limit(k)
            .select(["id", "_score"] if held else [*cols, "_score"])
        )
        where = to_sql(filter)
        if where:
            search = search.where(where, prefilter=True)
        try:
            rows = search.to_list()
        except (ValueError, RuntimeError):  # a query the parser rejects finds nothing
            return []
        if held:
            ids = [r["id"] for r in rows]
            found = self.hot.get(table, ids, cols)
            if found is None or len(found) != len(set(ids)):  # held rows older than Lance's
                found = self._get_from_lance(table, list(dict.fromkeys(ids)), cols)
            by_id = {r["id"]: r for r in found}
            rows = [{**by_id[r["id"]], "_score": r["_score"]} for r in rows if r["id"] in by_id]
        return [StoreHit(r["id"], float(r.pop("_score")), r) for r in rows]

    def count(self, table: str, filter: Filter | None = None) -> int:
        if not self.has_table(table):
            return 0
        return int(self._table(table).count_rows(to_sql(filter)))

    # -- maintenance -------------------------------------------------------------------------
    def _ensure_fts(self, table: str, column: str) -> None:
        tbl = self._table(table)
        if self.read_only or _has_fts(tbl):  # read-only without one: BM25 finds nothing
            return
        from lancedb.index import FTS

        with self._lock:  # two concurrent searches would both build it, one replacing the other
            if not _has_fts(tbl):
                tbl.create_index(column, config=FTS(with_position=False), replace=True)

    def _nprobes(self, table: str) -> int:
        if self.ann_nprobes:
            return self.ann_nprobes
        probes = self._probes.get(table)
        if probes is None:  # built by another process: about what it was built with
            probes = self._probes[table] = ann_probes(self.count(table))
        return probes

    def _vector_indexes(self, table: str) -> set[str]:
        fields = self._ann_fields.get(table)
        if fields is None:
            found = {
                ix.columns[0]
                for ix in self._table(table).list_indices()
                if str(ix.index_type).lower().startswith(("ivf", "hnsw"))
            }
            # The first set stored stays (threads may look at once): _ensure_vector_indexes adds
            # to the set it got, which a later, staler look must not replace.
            fields = self._ann_fields.setdefault(table, found)
        return fields

    def _ensure_vector_indexes(self, name: str, schema: TableSchema) -> None:
        """Build an ANN index on each vector field once the table is large enough; ``optimize``
        folds later rows into it."""
        rows = self.count(name)
        if rows < self.ann_min_rows:
            return
        have = self._vector_indexes(name)
        for field_name, dim in schema.vectors.items():
            if field_name in have:
                continue
            config = ann_config(self.ann_kind, rows, dim)
            self._table(name).create_index(field_name, config=config, replace=True)
            self._probes[name] = ann_probes(rows)
            have.add(field_name)

    def optimize(self) -> None:
        """Fold new rows into the full-text and vector indexes, compact small fragments, and
        build vector indexes on tables that have grown past ``ann_min_rows``."""
        self.writable("optimize its tables")
        for name, schema in self._schemas.items():
            if schema.text_fields:
                self._ensure_fts(name, schema.text_fields[0])
            if schema.text_fields or self._vector_indexes(name):
                self._table(name).optimize()
            if schema.vectors:
                self._ensure_vector_indexes(name, schema)

    def version(self, table: str) -> int:
        return int(self._table(table).version)

    def _read_whole(self, table: str) -> tuple[int, Any, list[str], list[str]]:
        handle = self._table(table)
        version = int(handle.version)
        arrow = handle.to_arrow()
        return version, arrow, vector_fields_of(arrow.schema), self._bm25_here(handle)

    def _bm25_here(self, handle: Any) -> list[str]:
        """Text columns whose BM25 a held table may rank itself: Lance's index covers every
        row, with the analyzer bm25.py reproduces (so the ranking is Lance's own)."""
        out = []
        for ix in handle.list_indices():
            details = getattr(ix, "index_details", None) or {}
            column = ix.columns[0] if ix.columns else None
            if ix.index_type != "FTS" or column is None or not lance_matches(details):
                continue
            stats = handle.index_stats(ix.name)
            covered = stats is not None and stats.num_unindexed_rows == 0
            if covered and is_text(handle.schema.field(column).type):
                out.append(column)
        return out

    def warm(self, tables: Sequence[str] | None = None) -> dict[str, int]:
        """Hold ``tables`` (default: all) in memory now, as far as the budget allows; returns the
        rows held per table."""
        names = list(tables) if tables is not None else sorted(self._existing())
        self.hot.warm([n for n in names if self.has_table(n)])
        return self.hot.held()

    def close(self) -> None:
        self._tables.clear()
        self.hot = HotTables(self._read_whole, self.version, self.hot.budget_bytes)
