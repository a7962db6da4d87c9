"""Tables held in memory for queries: exact vector search in one matrix product, rows by id.

A store call through LanceDB costs 5-20 ms whatever the table's size (query planning, Arrow to
Python, a consistency check), where an exact NumPy search over 100,000 x 384 float32 vectors
takes about 3 ms. A long-running searcher therefore keeps each table it reads often in memory:
its scalar columns as Arrow arrays and each vector field as one float32 matrix, read from one
committed table version. Results are those of an exact search, the same as the store's own
exact search up to float rounding (tests/unit/test_hot_tables.py).

``HotTables`` decides when a table is held, and answers only when what it holds is current:

- a table is loaded in a background thread once a searcher has read it ``LOAD_AFTER`` times
  over ``LOAD_AFTER_S`` seconds (``warm()`` loads at once: the server does it at start), and
  only while every held table fits in ``budget_bytes`` (``MMRETRIEVE_HOT_CACHE_MB``, default
  2048; 0 turns it off);
- a write through the store drops the table at once; a commit by another process is noticed at
  the next check of the table's version (at most once per ``CHECK_S``); until the table is
  loaded again, at most once per ``RELOAD_S``, its reads go to the store itself;
- a filter it cannot evaluate (anything but equality and membership on scalar columns) goes to
  the store.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .arrays import dot, is_text, knn, scalar_codes
from .base import Filter, Match, Row, StoreHit
from .bm25 import Bm25Index

ENV_BUDGET = "MMRETRIEVE_HOT_CACHE_MB"
DEFAULT_BUDGET_MB = 2048
# From this many rows a vector field is also held as 8-bit codes (FAISS's scalar quantizer, when
# faiss-cpu is installed): a query scans the codes (a quarter of the bytes, about 2.3x faster at
# 100,000 x 384 here) for CANDIDATES_PER_K x k candidates, then scores those exactly. Measured on
# 200 queries at 100,000 rows: the same top 50 as the exact search (docs/BENCHMARKS.md).
CODES_MIN_ROWS = 32_768
CANDIDATES_PER_K = 4
MIN_CANDIDATES = 200
GATHER_BELOW = 4  # a filter keeping under 1/4 of the rows: score only those (else all, then pick)
# A table is loaded once it has been read LOAD_AFTER times over at least LOAD_AFTER_S seconds:
# a long-lived searcher, not a one-shot `mmretrieve search` (which would pay for a load it
# never uses, on the cores its query needs).
LOAD_AFTER = 2
LOAD_AFTER_S = 1.0
MATCHES_KEPT = 16  # Match conditions whose rows a held table keeps (see HotTable._match)
CHECK_S = 1.0  # how often a held table's version is compared with the store's
RELOAD_S = 10.0  # least time between two loads of one table (a table being written to)


def budget_from_env() -> int:
    """The memory budget in bytes, from ``MMRETRIEVE_HOT_CACHE_MB``."""
    value = os.environ.get(ENV_BUDGET, "").strip()
    try:
        mb = float(value) if value else DEFAULT_BUDGET_MB
    except ValueError:
        mb = DEFAULT_BUDGET_MB
    return max(0, int(mb * 1024 * 1024))


@dataclass
class HotTable:
    """One table version in memory."""

    version: int
    columns: Any  # pyarrow.Table of the scalar columns
    vectors: dict[str, np.ndarray]  # field -> (rows, dim) float32, C-contiguous
    nbytes: int = 0
    codes: dict[str, Any] = field(default_factory=dict)  # field -> faiss index of 8-bit codes
    bm25: dict[str, Bm25Index] = field(default_factory=dict)  # text column -> its BM25 index
    _positions: dict[str, int] | None = None
    _arrays: dict[str, np.ndarray] = field(default_factory=dict)
    _coded: dict[str, tuple[np.ndarray, dict[str, int]]] = field(default_factory=dict)
    # Rows each recent Match keeps, by the Match object (held here, so its id stays its own): a
    # search's filter plan is reused by every route and the next queries (retrieval/filters.py).
    _matched: dict[tuple[str, int], tuple[Match, np.ndarray]] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        version: int,
        arrow: Any,
        vector_fields: Sequence[str],
        text_fields: Sequence[str] = (),
    ) -> HotTable:
        """``text_fields``: columns to rank by BM25 here (bm25.py), as the store's index would."""
        vectors = {}
        for name in vector_fields:
            column = arrow.column(name).combine_chunks()
            dim = column.type.list_size
            flat = column.values.to_numpy(zero_copy_only=False)
            vectors[name] = np.ascontiguousarray(flat.reshape(len(column), dim), dtype=np.float32)
        columns = arrow.drop_columns(list(vector_fields)).combine_chunks()  # fast take()
        codes = {name: scalar_codes(m) for name, m in vectors.items() if len(m) >= CODES_MIN_ROWS}
        codes = {name: c for name, c in codes.items() if c is not None}
        nbytes = int(columns.nbytes) + sum(int(v.nbytes) for v in vectors.values())
        nbytes += sum(int(c.sa_code_size()) * int(c.ntotal) for c in codes.values())
        bm25 = {n: Bm25Index.build(columns.column(n).combine_chunks()) for n in text_fields}
        nbytes += sum(index.nbytes for index in bm25.values())
        return cls(version, columns, vectors, nbytes, codes, bm25)

    @property
    def rows(self) -> int:
        return int(self.columns.num_rows)

    def array(self, name: str) -> np.ndarray:
        """A scalar column as a NumPy array (strings as objects, nulls as None)."""
        found = self._arrays.get(name)
        if found is None:
            column = self.columns.column(name)
            if column.null_count == 0 and not is_text(column.type):
                found = column.to_numpy()
            else:
                found = np.asarray(column.to_pylist(), dtype=object)
            found = self._arrays.setdefault(name, found)
        return found

    def positions(self) -> dict[str, int]:
        if self._positions is None:
            self._positions = {id_: i for i, id_ in enumerate(self.array("id").tolist())}
        return self._positions

    def mask(self, filter: Filter | None) -> np.ndarray | None | bool:
        """Rows the filter keeps (None: all); False when it names a column not held here."""
        if not filter:
            return None
        keep = np.ones(self.rows, dtype=bool)
        names = set(self.columns.column_names)
        for name, value in filter.items():
            if name not in names:
                return False
            if isinstance(value, Match):
                keep &= self._match(name, value)
                continue
            if isinstance(value, (bool, int)):
                keep &= self.array(name) == value
                continue
            # Strings compare as small integer codes: object comparisons over 100,000 rows took
            # 30 ms per filtered search, integer ones a fraction of a millisecond.
            codes, lookup = self.coded(name)
            wanted = [value] if isinstance(value, str) else list(value)
            found = [lookup[str(v)] for v in wanted if v is not None and str(v) in lookup]
            keep &= np.isin(codes, np.asarray(found, dtype=codes.dtype)) if found else False
        return keep

    def _match(self, name: str, m: Match) -> np.ndarray:
        """Rows whose string column ``name`` meets ``m``: decided once per distinct value, and
        kept for the same Match object."""
        key = (name, id(m))
        found = self._matched.get(key)
        if found is not None and found[0] is m:
            return found[1]
        rows = self._match_rows(name, m)
        if len(self._matched) >= MATCHES_KEPT:
            self._matched.clear()
        self._matched[key] = (m, rows)
        return rows

    def _match_rows(self, name: str, m: Match) -> np.ndarray:
        codes, lookup = self.coded(name)
        values, prefixes = frozenset(m.values), m.prefixes  # (a Match may list 10,000s of ids)
        found = (v in values or any(v.startswith(p) for p in prefixes) for v in lookup)
        table = np.fromiter(found, dtype=bool, count=len(lookup)) != m.negate
        return np.where(codes >= 0, table[np.maximum(codes, 0)], m.null)

    def coded(self, name: str) -> tuple[np.ndarray, dict[str, int]]:
        """A string column as integer codes (nulls: -1) and the code of each value."""
        found = self._coded.get(name)
        if found is None:
            values = self.array(name)
            present = np.array([v is not None for v in values], dtype=bool)
            uniques, inverse = np.unique(values[present].astype(str), return_inverse=True)
            codes = np.full(len(values), -1, dtype=np.int64)
            codes[present] = inverse
            found = self._coded.setdefault(
                name, (codes, {str(u): i for i, u in enumerate(uniques.tolist())})
            )
        return found

    def search(
        self, field_name: str, vector: np.ndarray, k: int, filter: Filter | None, fields: list[str]
    ) -> list[StoreHit] | None:
        keep = self.mask(filter)
        if keep is False:
            return None
        matrix = self.vectors[field_name]
        query = np.asarray(vector, dtype=np.float32).reshape(-1)
        if keep is None and field_name in self.codes:
            rows = self._candidates(field_name, query, k)
            scores = dot(matrix[rows], query)
        elif keep is None:
            rows, scores = knn(matrix, query, k)
        else:
            assert isinstance(keep, np.ndarray)
            rows = np.flatnonzero(keep)
            if len(rows) * GATHER_BELOW > len(matrix):  # gathering would copy more
                scores = dot(matrix, query)[rows]
            elif len(rows):
                found_rows, scores = knn(matrix[rows], query, k)
                rows = rows[found_rows]
            else:
                scores = np.empty(0, np.float32)
        k = min(k, len(scores))
        if k <= 0:
            return []
        if k < len(scores):
            part = np.argpartition(-scores, k - 1)[:k]
            rows, scores = rows[part], scores[part]
        order = np.lexsort((rows, -scores))  # best first; ties in table order
        return self._hits(rows[order], scores[order], fields)

    def text_search(
        self, column: str, query: str, k: int, filter: Filter | None, fields: list[str]
    ) -> list[StoreHit] | None:
        index = self.bm25.get(column)
        keep = self.mask(filter)
        if index is None or keep is False or not set(fields) <= set(self.columns.column_names):
            return None
        assert keep is None or isinstance(keep, np.ndarray)
        rows, scores = index.search(query, k, keep)
        return self._hits(rows, scores, fields) if len(rows) else []

    def select(self, filter: Filter | None, fields: list[str]) -> list[Row] | None:
        """The rows a filter keeps, in table order (None: a column not held here)."""
        keep = self.mask(filter)
        if keep is False or not set(fields) <= set(self.columns.column_names):
            return None
        rows = np.arange(self.rows) if keep is None else np.flatnonzero(keep)
        return list(self.columns.select(fields).take(rows).to_pylist())

    def _hits(self, rows: np.ndarray, scores: np.ndarray, fields: list[str]) -> list[StoreHit]:
        """The rows (best first) with their scores, as the store returns them."""
        found = self.columns.select(fields).take(rows).to_pylist()
        return [StoreHit(str(r["id"]), float(s), r) for s, r in zip(scores, found, strict=True)]

    def _candidates(self, field_name: str, query: np.ndarray, k: int) -> np.ndarray:
        """Row numbers of the best ``CANDIDATES_PER_K * k`` rows by their 8-bit codes."""
        index = self.codes[field_name]
        wanted = min(int(index.ntotal), max(MIN_CANDIDATES, CANDIDATES_PER_K * k))
        _, found = index.search(query.reshape(1, -1), wanted)
        rows = found[0]
        return np.sort(rows[rows >= 0])  # table order, so ties break as in the exact search

    def get(self, ids: Sequence[str], fields: list[str]) -> list[Row] | None:
        if not set(fields) <= set(self.columns.column_names):
            return None
        where = self.positions()
        rows = [where[i] for i in dict.fromkeys(ids) if i in where]
        return self.columns.select(fields).take(rows).to_pylist() if rows else []


def _set(event: threading.Event) -> threading.Event:
    event.set()
    return event


@dataclass
class _Entry:
    table: HotTable | None = None
    reads: int = 0
    first_read: float | None = None
    loading: bool = False
    loaded_at: float = -1e9
    checked_at: float = 0.0
    stale: bool = False
    generation: int = 0  # bumped by every write: a load begun before it must not be kept
    idle: threading.Event = field(default_factory=lambda: _set(threading.Event()))  # no load runs


class HotTables:
    """The in-memory tables of one store. ``read_table(name)`` returns (version, Arrow table of
    every column, vector fields, text columns to rank by BM25); ``version(name)`` the store's
    current version of the table."""

    def __init__(
        self,
        read_table: Callable[[str], tuple[int, Any, Sequence[str], Sequence[str]]],
        version: Callable[[str], int],
        budget_bytes: int | None = None,
    ) -> None:
        self._read = read_table
        self._version = version
        self.budget_bytes = budget_from_env() if budget_bytes is None else budget_bytes
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    # -- what the store calls ----------------------------------------------------------------
    def search(
        self,
        table: str,
        field_name: str,
        vector: np.ndarray,
        k: int,
        filter: Filter | None,
        fields: list[str],
    ) -> list[StoreHit] | None:
        held = self._current(table)
        if held is None or field_name not in held.vectors:
            return None
        return held.search(field_name, vector, k, filter, fields)

    def select(self, table: str, filter: Filter | None, fields: list[str]) -> list[Row] | None:
        """Rows of a held table that a filter keeps; None: ask the store."""
        held = self._current(table)
        return None if held is None else held.select(filter, fields)

    def text_search(
        self, table: str, column: str, query: str, k: int, filter: Filter | None, fields: list[str]
    ) -> list[StoreHit] | None:
        """BM25 over a held table, when it holds that column's index; None: ask the store."""
        held = self._current(table)
        if held is None or column not in held.bm25:
            return None
        return held.text_search(column, query, k, filter, fields)

    def get(self, table: str, ids: Sequence[str], fields: list[str]) -> list[Row] | None:
        held = self._current(table)
        return None if held is None else held.get(ids, fields)

    def holds(self, table: str, fields: Sequence[str]) -> bool:
        """Whether ``table`` is held now with these columns (does not count as a read)."""
        with self._lock:
            entry = self._entries.get(table)
            held = entry.table if entry is not None else None
        return held is not None and set(fields) <= set(held.columns.column_names)

    def drop(self, table: str) -> None:
        """The store wrote to ``table``: forget what is held (reads go to the store until the
        table is loaded again)."""
        with self._lock:
            entry = self._entries.get(table)
            if entry is not None:
                entry.table, entry.stale = None, True
                entry.generation += 1

    def warm(self, tables: Sequence[str]) -> None:
        """Load ``tables`` now (those the budget allows), in this thread; a load already under
        way is waited for."""
        for name in tables:
            with self._lock:
                entry = self._entries.setdefault(name, _Entry())
                running = entry.loading
                if not running:
                    entry.loading = True
                    entry.idle.clear()
            if running:
                entry.idle.wait()
            else:
                self._load(name, entry)

    def held(self) -> dict[str, int]:
        """Rows of each table held now."""
        with self._lock:
            return {n: e.table.rows for n, e in self._entries.items() if e.table is not None}

    # -- internals ---------------------------------------------------------------------------
    def _current(self, table: str) -> HotTable | None:
        if self.budget_bytes <= 0:
            return None
        now = time.monotonic()
        start = False
        with self._lock:
            entry = self._entries.setdefault(table, _Entry())
            entry.reads += 1
            if entry.first_read is None:
                entry.first_read = now
            held = entry.table
            check = held is not None and now - entry.checked_at >= CHECK_S
            if check:
                entry.checked_at = now
            settled = entry.reads >= LOAD_AFTER and now - entry.first_read >= LOAD_AFTER_S
            if held is None and not entry.loading and settled:
                start = now - entry.loaded_at >= RELOAD_S or not entry.stale
                entry.loading = start
                if start:
                    entry.idle.clear()
        if check and held is not None and self._version(table) != held.version:
            self.drop(table)
            held = None
        if start:
            threading.Thread(
                target=self._load, args=(table, entry), name=f"mmretrieve-hot-{table}", daemon=True
            ).start()
        return held

    def _load(self, table: str, entry: _Entry) -> None:
        loaded: HotTable | None = None
        with self._lock:
            generation = entry.generation
        try:
            version, arrow, vector_fields, text_fields = self._read(table)
            candidate = HotTable.of(version, arrow, vector_fields, text_fields)
            with self._lock:
                others = sum(
                    e.table.nbytes for n, e in self._entries.items() if n != table and e.table
                )
            if others + candidate.nbytes <= self.budget_bytes:
                loaded = candidate
        except Exception:  # a table being replaced, a transient read error: the store answers
            loaded = None
        finally:
            with self._lock:
                entry.loading = False
                entry.loaded_at = time.monotonic()
                entry.checked_at = entry.loaded_at
                if loaded is not None and entry.generation == generation:
                    entry.table, entry.stale = loaded, False
                entry.idle.set()
