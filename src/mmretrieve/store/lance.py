"""The embedded default store: LanceDB tables in the index directory (DESIGN §7).

Writes are Lance commits, so a killed run leaves the last committed version readable. The manifest
is a JSON file written atomically beside the tables.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .base import Filter, Row, StoreHit, TableSchema
from .filters import ids_sql, to_sql

os.environ.setdefault("LANCE_LOG", "error")  # keep Lance's Rust warnings off users' terminals

MANIFEST = "manifest.json"
_ID_CHUNK = 1000  # ids per IN (...) predicate
_ARROW_TYPES = {"str": "string", "int": "int64", "float": "float64", "bool": "bool_"}


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

    def __init__(self, path: str | Path) -> None:
        import lancedb

        self.path = Path(path)
        self.uri = f"lance://{self.path}"
        self.path.mkdir(parents=True, exist_ok=True)
        self._db = lancedb.connect(str(self.path))
        self._tables: dict[str, Any] = {}
        self._schemas: dict[str, TableSchema] = {}

    # -- tables ------------------------------------------------------------------------------
    def _existing(self) -> set[str]:
        return set(self._db.list_tables().tables)

    def ensure_tables(self, schemas: Sequence[TableSchema]) -> None:
        existing = self._existing()
        for schema in schemas:
            self._schemas[schema.name] = schema
            if schema.name not in existing:
                self._db.create_table(schema.name, schema=_arrow_schema(schema))

    def _table(self, name: str) -> Any:
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
        data = self._to_arrow(table, rows)
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

        return [f.name for f in self._table(table).schema if not pa.types.is_fixed_size_list(f.type)]

    def get(self, table: str, ids: Sequence[str], fields: Sequence[str] | None = None) -> list[Row]:
        ids = list(dict.fromkeys(ids))
        out: list[Row] = []
        cols = self._scalar_fields(table, fields)
        for start in range(0, len(ids), _ID_CHUNK):
            chunk = ids[start : start + _ID_CHUNK]
            query = self._table(table).search().where(ids_sql(chunk)).select(cols).limit(None)
            out.extend(query.to_list())
        order = {id_: i for i, id_ in enumerate(ids)}
        out.sort(key=lambda row: order.get(row.get("id"), 0))
        return out

    def scan(self, table: str, fields: Sequence[str], filter: Filter | None = None) -> Iterator[Row]:
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
        query = (
            self._table(table)
            .search(np.asarray(vector, dtype=np.float32), vector_column_name=vector_field)
            .distance_type("dot")
            .limit(k)
            .select([*cols, "_distance"])
        )
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
        self._ensure_fts(table, column)
        cols = self._scalar_fields(table, fields)
        search = (
            self._table(table)
            .search(query, query_type="fts", fts_columns=column)
            .limit(k)
            .select([*cols, "_score"])
        )
        where = to_sql(filter)
        if where:
            search = search.where(where, prefilter=True)
        try:
            rows = search.to_list()
        except (ValueError, RuntimeError):  # a query the parser rejects finds nothing
            return []
        return [StoreHit(r["id"], float(r.pop("_score")), r) for r in rows]

    def count(self, table: str, filter: Filter | None = None) -> int:
        if not self.has_table(table):
            return 0
        return int(self._table(table).count_rows(to_sql(filter)))

    # -- maintenance -------------------------------------------------------------------------
    def _ensure_fts(self, table: str, column: str) -> None:
        tbl = self._table(table)
        if any(ix.index_type == "FTS" for ix in tbl.list_indices()):
            return
        from lancedb.index import FTS

        tbl.create_index(column, config=FTS(with_position=False), replace=True)

    def optimize(self) -> None:
        """Fold new rows into the full-text indexes and compact small fragments."""
        for name, schema in self._schemas.items():
            if not schema.text_fields:
                continue
            self._ensure_fts(name, schema.text_fields[0])
            self._table(name).optimize()

    def version(self, table: str) -> int:
        return int(self._table(table).version)

    def close(self) -> None:
        self._tables.clear()
