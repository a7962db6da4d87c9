"""The distributed store: the tables as Milvus collections, through pymilvus (docs/SCALING.md).

``milvus://HOST:PORT/NAME`` talks to a standalone server or a cluster, ``milvus-lite://FILE.db``
to Milvus Lite. NAME prefixes the collections (``NAME_passages``, ``NAME_images``,
``NAME_articles``, ``NAME_manifest``); ``DB/NAME`` also picks a database. Options ride in the
query string: ``?index=auto|flat|hnsw|ivf_sq8`` (default auto), ``&shards=N`` (DML channels of
new tables), ``&replicas=N`` (in-memory replicas when this store loads a collection).

Servers differ by version, so features are detected from the server version when a table is
created and from the collection's own description when it is opened:
- several vector fields in one collection (2.4+); otherwise every vector field after the first
  lives in its own collection ``NAME_table__field`` with the same scalar fields ("split" layout);
- nullable scalars (2.5+); otherwise a null is stored as the type's zero value and its field name
  listed in the hidden ``_nulls`` field;
- BM25 full-text search (2.5+, Milvus Lite 3+); otherwise ``supports_text_search`` is False and
  ``text_search`` returns [] with a one-time warning, so the searcher can report the lexical
  route as unavailable instead of silently ranking without it.
"""

from __future__ import annotations

import json
import re
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import MMRetrieveError, UsageError, require
from .base import Filter, Row, StoreHit, TableSchema
from .milvus_spec import (
    BM25_FIELD,
    MAX_TOPK,
    NO_VECTOR,
    NULLS,
    Features,
    IndexSpec,
    TableLayout,
    choose_index,
    collection_layout,
    collection_schema,
    decode_row,
    encode_row,
    lite_location,
    manifest_schema,
    parse_location,
    quiet_mvcc_warning,
    spec_from_description,
    store_options,
    to_expr,
)

_ID_CHUNK = 1000
# Reads on the query path see this process's own writes ("Session"): "Strong" would wait for the
# server's time tick (200 ms a read on 2.3) and make every route that slow. Scans (the indexer's
# content hashes), deletes and the manifest stay strongly consistent (collection default).
READ = "Session"
INDEX_WAIT_S = 3600  # optimize() waits at most this long for index builds


class MilvusStore:
    """Milvus collections; every read is strongly consistent with the writes before it."""

    concurrent_reads = True

    def __init__(
        self,
        uri: str,
        *,
        database: str | None = None,
        name: str = "mmretrieve",
        index: str = "auto",
        shards: int = 1,
        replicas: int = 1,
        display: str | None = None,
    ) -> None:
        pymilvus = require("pymilvus", "milvus")
        self.uri = display or uri
        self.prefix = name
        self.index_mode = index.lower()
        self.shards = shards
        self.replicas = replicas
        kwargs: dict[str, Any] = {"uri": uri, "timeout": 10}
        if database:
            kwargs["db_name"] = database
        try:
            self._client = pymilvus.MilvusClient(**kwargs)
            version = str(self._client.get_server_version())
        except Exception as exc:  # pymilvus raises several types for the same "not there"
            raise MMRetrieveError(
                f"cannot reach Milvus at {self.uri}: {exc}. Start one (for tests: "
                "scripts/milvus-server.sh start) or check the address."
            ) from exc
        self.features = Features.from_version(version)
        self._tables: dict[str, TableLayout] = {}
        self._warned = False
        # Reads see this client's writes ("Session"). A delete does not advance the session on
        # every server (2.3), so once this store has deleted, its reads wait for all writes.
        self._read_level = READ

    # -- tables ------------------------------------------------------------------------------
    @property
    def supports_text_search(self) -> bool:
        """Whether BM25 works here: on the server, and in every table that has text fields."""
        tables = [t for t in self._tables.values() if t.schema.text_fields]
        return all(t.bm25 for t in tables) if tables else self.features.bm25

    def _name(self, table: str) -> str:
        return f"{self.prefix}_{table}"

    def ensure_tables(self, schemas: Sequence[TableSchema]) -> None:
        for schema in schemas:
            primary = self._name(schema.name)
            if not self._client.has_collection(primary):
                self._create(schema)
            self._tables[schema.name] = self._open(schema)

    def _open(self, schema: TableSchema) -> TableLayout:
        primary = self._name(schema.name)
        described = self._client.describe_collection(primary)
        fields = {f["name"]: f for f in described["fields"]}
        table = TableLayout(schema, primary, native_null=NULLS not in fields)
        table.bm25 = BM25_FIELD in fields
        for vector in schema.vectors:
            table.by_vector[vector] = primary if vector in fields else f"{primary}__{vector}"
        for collection in table.collections:
            self._ensure_loaded(collection)
            table.specs[collection] = self._current_spec(collection, table)
        return table

    def _ensure_loaded(self, collection: str) -> None:
        if self._client.get_load_state(collection).get("state").name != "Loaded":
            self._client.load_collection(collection, replica_number=self.replicas)

    def _current_spec(self, collection: str, table: TableLayout) -> IndexSpec:
        vectors = table.vectors_in(collection) or [NO_VECTOR]
        return spec_from_description(self._client.describe_index(collection, vectors[0]))

    def _create(self, schema: TableSchema) -> None:
        spec = choose_index(self.index_mode, 0)
        layout = collection_layout(self._name(schema.name), list(schema.vectors), self.features)
        for i, (collection, vectors) in enumerate(layout.items()):
            s, params = collection_schema(
                self._client, schema, vectors, self.features, spec, i == 0
            )
            self._client.create_collection(
                collection,
                schema=s,
                index_params=params,
                consistency_level="Strong",
                num_shards=self.shards,
            )
            if self.replicas > 1:  # create_collection loads one replica
                self._client.release_collection(collection)
                self._client.load_collection(collection, replica_number=self.replicas)

    def _table(self, name: str) -> TableLayout:
        table = self._tables.get(name)
        if table is None:
            raise UsageError(f"table {name!r} is not open in {self.uri}")
        return table

    def drop(self) -> None:
        """Remove every collection of this store (tests, and rebuilding an index from scratch)."""
        mine = re.compile(re.escape(self.prefix) + r"_(passages|images|articles|manifest)(__\w+)?$")
        for collection in self._client.list_collections():
            if mine.match(collection):
                self._client.drop_collection(collection)
        self._tables.clear()

    # -- manifest ----------------------------------------------------------------------------
    def _manifest_collection(self, create: bool) -> str | None:
        name = f"{self.prefix}_manifest"
        if self._client.has_collection(name):
            # A collection written by another process, or before a server restart, comes back
            # released: it must be loaded before it can be read.
            self._ensure_loaded(name)
            return name
        if not create:
            return None
        s, params = manifest_schema(self._client)
        self._client.create_collection(
            name, schema=s, index_params=params, consistency_level="Strong"
        )
        return name

    def read_manifest(self) -> dict[str, Any] | None:
        name = self._manifest_collection(create=False)
        if name is None:
            return None
        rows = self._client.query(name, filter='id == "manifest"', output_fields=["body"])
        return json.loads(rows[0]["body"]) if rows else None

    def write_manifest(self, manifest: Mapping[str, Any]) -> None:
        name = self._manifest_collection(create=True)
        body = json.dumps(manifest, sort_keys=True)
        self._client.upsert(name, [{"id": "manifest", "body": body, NO_VECTOR: [0.0, 0.0]}])

    # -- writes ------------------------------------------------------------------------------
    def upsert(self, table: str, rows: Sequence[Row]) -> None:
        if not rows:
            return
        t = self._table(table)
        for collection in t.collections:
            self._client.upsert(
                collection,
                [encode_row(t.schema, r, t.vectors_in(collection), t.native_null) for r in rows],
            )

    def delete(
        self, table: str, ids: Sequence[str] | None = None, filter: Filter | None = None
    ) -> None:
        t = self._table(table)
        ids = list(ids or [])
        expr = to_expr(filter, t.native_null)
        if ids or expr:
            self._read_level = "Strong"
        for collection in t.collections:
            for start in range(0, len(ids), _ID_CHUNK):  # pymilvus' ids= does not escape quotes
                self._client.delete(
                    collection, filter=to_expr({"id": ids[start : start + _ID_CHUNK]})
                )
            if expr:
                self._client.delete(collection, filter=expr)

    # -- reads -------------------------------------------------------------------------------
    def _outputs(self, t: TableLayout, fields: Sequence[str] | None) -> list[str]:
        names = list(fields) if fields is not None else t.schema.field_names
        return [*names, NULLS] if not t.native_null else names

    def _split(self, t: TableLayout, outputs: list[str]) -> tuple[list[str], dict[str, list[str]]]:
        """Fields read from the primary collection, and vector fields kept elsewhere (split
        layout) by collection."""
        here = [f for f in outputs if t.by_vector.get(f, t.primary) == t.primary]
        elsewhere: dict[str, list[str]] = {}
        for f in outputs:
            if t.by_vector.get(f, t.primary) != t.primary:
                elsewhere.setdefault(t.by_vector[f], []).append(f)
        return here, elsewhere

    def _read(
        self,
        t: TableLayout,
        rows: list[Mapping[str, Any]],
        outputs: list[str],
        elsewhere: dict[str, list[str]],
    ) -> list[Row]:
        out = [decode_row(r, outputs) for r in rows]
        for collection, vectors in elsewhere.items():
            by_id = {r["id"]: r for r in out}
            expr = to_expr({"id": list(by_id)})
            found = self._client.query(
                collection,
                filter=expr,
                output_fields=["id", *vectors],
                consistency_level=self._read_level,
            )
            for r in found:
                by_id[r["id"]].update({v: r[v] for v in vectors})
        return out

    def get(self, table: str, ids: Sequence[str], fields: Sequence[str] | None = None) -> list[Row]:
        t = self._table(table)
        ids = list(dict.fromkeys(ids))
        outputs, elsewhere = self._split(t, self._outputs(t, fields))
        found: dict[str, Row] = {}
        for start in range(0, len(ids), _ID_CHUNK):
            expr = to_expr({"id": ids[start : start + _ID_CHUNK]})
            rows = self._client.query(
                t.primary,
                filter=expr,
                output_fields=[*outputs, "id"],
                consistency_level=self._read_level,
            )
            for r, row in zip(rows, self._read(t, rows, [*outputs, "id"], elsewhere), strict=True):
                found[r["id"]] = {k: v for k, v in row.items() if k != "id" or "id" in outputs}
        return [found[i] for i in ids if i in found]

    def scan(
        self, table: str, fields: Sequence[str], filter: Filter | None = None
    ) -> Iterator[Row]:
        t = self._table(table)
        expr = to_expr(filter, t.native_null)
        if expr == "":
            return
        outputs, elsewhere = self._split(t, self._outputs(t, fields))
        if elsewhere and "id" not in outputs:
            outputs.append("id")
        batch_size = _ID_CHUNK if elsewhere else 4096
        with quiet_mvcc_warning():
            it = self._client.query_iterator(
                t.primary, batch_size=batch_size, filter=expr or "", output_fields=outputs
            )
        try:
            while batch := it.next():
                for row in self._read(t, batch, outputs, elsewhere):
                    yield {k: row[k] for k in fields}
        finally:
            it.close()

    def search(
        self,
        table: str,
        vector_field: str,
        vector: np.ndarray,
        k: int,
        filter: Filter | None = None,
        fields: Sequence[str] | None = None,
    ) -> list[StoreHit]:
        t = self._table(table)
        expr = to_expr(filter, t.native_null)
        if expr == "" or k < 1:
            return []
        collection = t.by_vector[vector_field]
        k = min(k, MAX_TOPK)
        outputs = self._outputs(t, fields)
        result = self._client.search(
            collection,
            consistency_level=self._read_level,
            data=[np.asarray(vector, dtype=np.float32).reshape(-1)],
            anns_field=vector_field,
            limit=k,
            filter=expr or "",
            output_fields=outputs,
            search_params={"metric_type": "IP", "params": t.specs[collection].search_params(k)},
        )
        return [
            StoreHit(str(h["id"]), float(h["distance"]), decode_row(h["entity"], outputs))
            for h in result[0]
        ]

    def text_search(
        self,
        table: str,
        query: str,
        k: int,
        filter: Filter | None = None,
        fields: Sequence[str] | None = None,
    ) -> list[StoreHit]:
        t = self._table(table)
        if not t.bm25:
            if not self._warned:
                self._warned = True
                warnings.warn(
                    f"BM25 full-text search is not available on this Milvus server "
                    f"({self.features.version}; it needs Milvus 2.5+), so the lexical routes "
                    "return nothing here.",
                    RuntimeWarning,
                    stacklevel=2,
                )
            return []
        expr = to_expr(filter, t.native_null)
        if expr == "" or not query.strip() or k < 1:
            return []
        outputs = self._outputs(t, fields)
        result = self._client.search(
            t.primary,
            consistency_level=self._read_level,
            data=[query],
            anns_field=BM25_FIELD,
            limit=min(k, MAX_TOPK),
            filter=expr or "",
            output_fields=outputs,
            search_params={"metric_type": "BM25", "params": {"drop_ratio_search": 0.0}},
        )
        # Milvus Lite reports BM25 as a negative distance, the server as a positive score.
        return [
            StoreHit(str(h["id"]), abs(float(h["distance"])), decode_row(h["entity"], outputs))
            for h in result[0]
        ]

    def count(self, table: str, filter: Filter | None = None) -> int:
        t = self._tables.get(table)
        if t is None:
            if not self._client.has_collection(self._name(table)):
                return 0
            raise UsageError(f"table {table!r} is not open in {self.uri}")
        expr = to_expr(filter, t.native_null)
        if expr == "":
            return 0
        rows = self._client.query(
            t.primary,
            filter=expr or "",
            output_fields=["count(*)"],
            consistency_level=self._read_level,
        )
        return int(rows[0]["count(*)"])

    # -- maintenance -------------------------------------------------------------------------
    def optimize(self) -> None:
        """Seal what was written, move a table to the index its size calls for (``index=auto``:
        HNSW -> IVF_SQ8 past HNSW_MAX_ROWS), and wait until the indexes cover every row: then
        no search reads a growing segment, and ``index=flat`` answers exactly and repeatably."""
        for t in self._tables.values():
            rows = self.count(t.schema.name)
            for collection in t.collections:
                self._client.flush(collection)
                vectors = t.vectors_in(collection)
                if self.index_mode == "auto" and vectors:
                    wanted = choose_index("auto", rows)
                    if wanted.kind != t.specs[collection].kind:
                        self._reindex(collection, vectors, wanted)
                        t.specs[collection] = wanted
                extra = [BM25_FIELD] if t.bm25 and collection == t.primary else []
                self._wait_indexed(collection, [*(vectors or [NO_VECTOR]), *extra], rows)

    def _wait_indexed(self, collection: str, fields: list[str], rows: int) -> None:
        deadline = time.monotonic() + INDEX_WAIT_S
        for f in fields:
            while True:
                info = self._client.describe_index(collection, f)
                total = int(info.get("total_rows", rows))  # Milvus Lite reports no row counts
                if total >= rows and int(info.get("pending_index_rows", 0)) == 0:
                    break
                if time.monotonic() > deadline:
                    warnings.warn(f"{collection}.{f}: index still building", stacklevel=3)
                    return
                time.sleep(0.2)

    def _reindex(self, collection: str, vectors: list[str], spec: IndexSpec) -> None:
        self._client.release_collection(collection)
        params = self._client.prepare_index_params()
        for v in vectors:
            self._client.drop_index(collection, v)
            params.add_index(v, index_type=spec.kind, metric_type="IP", params=dict(spec.build))
        self._client.create_index(collection, params)
        self._client.load_collection(collection, replica_number=self.replicas)

    def close(self) -> None:
        self._tables.clear()
        self._client.close()


def open_milvus(location: str) -> MilvusStore:
    """``HOST:PORT/[DB/]NAME?index=...&shards=N&replicas=N`` (the part after ``milvus://``)."""
    uri, database, name, opts = parse_location(location)
    return MilvusStore(
        uri, database=database, name=name, display=f"milvus://{location}", **store_options(opts)
    )


def open_milvus_lite(location: str) -> MilvusStore:
    """``FILE.db?name=NAME&index=...`` (the part after ``milvus-lite://``): Milvus Lite."""
    file, name, opts = lite_location(location)
    file.parent.mkdir(parents=True, exist_ok=True)
    display = f"milvus-lite://{location}"
    return MilvusStore(str(file), name=name, display=display, **store_options(opts))
