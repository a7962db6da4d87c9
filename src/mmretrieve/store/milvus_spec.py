"""What a Milvus deployment can do and how we ask it: server features by version, the ANN index
policy, collection schemas and rows, filter expressions and store URIs (for :mod:`.milvus`)."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import numpy as np

from ..errors import UsageError
from .base import Filter, FilterValue, Match, TableSchema

NULLS, BM25_FIELD, NO_VECTOR = "_nulls", "_bm25", "_novec"
MAX_VARCHAR = 65_535  # bytes, Milvus' limit
MAX_TOPK = 16_384
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# ANN index policy, from bench/milvus_index.py (docs/SCALING.md). Milvus builds one index per
# sealed segment (a few hundred thousand rows), so build parameters do not grow with the table;
# what changes with size is memory: HNSW keeps float32 vectors and a graph in RAM, IVF_SQ8 one
# byte per dimension. ``auto`` therefore moves a table from HNSW to IVF_SQ8 past HNSW_MAX_ROWS.
HNSW_BUILD = {"M": 16, "efConstruction": 200}
HNSW_EF = 64
IVF_NLIST, IVF_NPROBE = 1024, 64
HNSW_MAX_ROWS = 5_000_000
INDEX_MODES = ("auto", "flat", "hnsw", "ivf_sq8")


@dataclass(frozen=True, slots=True)
class IndexSpec:
    """One ANN index type with its build and search parameters."""

    kind: str  # FLAT | HNSW | IVF_SQ8 | IVF_FLAT
    build: Mapping[str, int] = field(default_factory=dict)
    search: Mapping[str, int] = field(default_factory=dict)

    def search_params(self, k: int) -> dict[str, int]:
        if self.kind == "HNSW":
            return {"ef": max(int(self.search.get("ef", HNSW_EF)), k)}
        return dict(self.search)


def choose_index(mode: str, rows: int) -> IndexSpec:
    """The index for a table of ``rows`` rows under ``mode`` (one of INDEX_MODES)."""
    mode = mode.lower()
    if mode not in INDEX_MODES:
        raise UsageError(f"unknown Milvus index {mode!r}; choose one of {', '.join(INDEX_MODES)}")
    if mode == "flat":
        return IndexSpec("FLAT")
    if mode == "hnsw" or (mode == "auto" and rows < HNSW_MAX_ROWS):
        return IndexSpec("HNSW", HNSW_BUILD, {"ef": HNSW_EF})
    return IndexSpec("IVF_SQ8", {"nlist": IVF_NLIST}, {"nprobe": IVF_NPROBE})


def spec_from_description(described: Mapping[str, Any]) -> IndexSpec:
    """The IndexSpec of an existing index (``describe_index``), with our search parameters."""
    kind = str(described.get("index_type", "FLAT")).upper()
    if kind == "HNSW":
        build = {k: int(described[k]) for k in ("M", "efConstruction") if k in described}
        return IndexSpec(kind, build, {"ef": HNSW_EF})
    if kind.startswith("IVF"):
        nlist = int(described.get("nlist", IVF_NLIST))
        return IndexSpec(kind, {"nlist": nlist}, {"nprobe": min(IVF_NPROBE, nlist)})
    return IndexSpec(kind)


@dataclass(frozen=True, slots=True)
class Features:
    """What the server can do, from its version string (``v2.5.4``, ``milvus_lite-3.2.2``)."""

    version: str
    multi_vector: bool
    nullable: bool
    bm25: bool

    @classmethod
    def from_version(cls, version: str) -> Features:
        found = re.search(r"(\d+)\.(\d+)", version)
        ver = (int(found[1]), int(found[2])) if found else (0, 0)
        if version.startswith("milvus_lite"):
            return cls(version, True, ver >= (3, 0), ver >= (3, 0))
        return cls(version, ver >= (2, 4), ver >= (2, 5), ver >= (2, 5))


def parse_location(location: str) -> tuple[str, str | None, str, dict[str, str]]:
    """``HOST:PORT/[DB/]NAME?opts`` -> (``http://HOST:PORT``, DB, NAME, opts)."""
    path, _, query = location.partition("?")
    opts = {k: v[-1] for k, v in parse_qs(query).items()}
    hostport, _, name = path.partition("/")
    db, _, rest = name.rpartition("/")
    if not hostport or not rest or not NAME.match(rest) or (db and not NAME.match(db)):
        raise UsageError(
            f"bad Milvus location {location!r}: use milvus://HOST:PORT/NAME or "
            "milvus://HOST:PORT/DB/NAME, NAME made of letters, digits and underscores"
        )
    if ":" not in hostport:
        hostport += ":19530"
    return f"http://{hostport}", db or None, rest, opts


def quote(value: str) -> str:
    """A Milvus string literal."""
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _after_prefix(prefix: str) -> str | None:
    """The least string greater than every string that starts with ``prefix`` (None: none)."""
    while prefix:
        last = ord(prefix[-1])
        if last < 0x10FFFF:
            step = 0xE000 if last == 0xD7FF else last + 1  # no surrogates in UTF-8
            return prefix[:-1] + chr(step)
        prefix = prefix[:-1]
    return None


def _starts_with(name: str, prefix: str, not_null: str) -> str:
    """``name`` starts with ``prefix``, as a range of strings: Milvus's ``like`` cannot escape
    its ``%`` wildcard (checked on 2.3.5), and strings compare by UTF-8 bytes, which is code
    point order."""
    end = _after_prefix(prefix)
    if end is None:  # the empty prefix: any value
        return not_null
    return f"({name} >= {quote(prefix)} and {name} < {quote(end)})"


def _match(name: str, m: Match, native_null: bool) -> str | None:
    """The condition as an expression; None when nothing can match (Milvus has no ``false``)."""
    # Without nullable fields (before Milvus 2.5) a null string is stored as "" (milvus_spec).
    is_null, not_null = (
        (f"{name} is null", f"{name} is not null")
        if native_null
        else (f'{name} == ""', f'{name} != ""')
    )
    parts = []
    if m.values:
        parts.append(f"{name} in [{', '.join(quote(v) for v in m.values)}]")
    parts += [_starts_with(name, p, not_null) for p in m.prefixes]
    found = " or ".join(parts)
    if m.negate:
        present: str | None = f"({not_null} and not ({found}))" if found else not_null
    else:
        present = f"({not_null} and ({found}))" if found else None
    either = [e for e in ((is_null if m.null else None), present) if e]
    return " or ".join(either) if either else None


def _term(name: str, value: FilterValue, native_null: bool = True) -> str:
    if isinstance(value, Match):
        return _match(name, value, native_null) or "false"
    if isinstance(value, bool):
        return f"{name} == {'true' if value else 'false'}"
    if isinstance(value, int):
        return f"{name} == {value}"
    if isinstance(value, str):
        return f"{name} == {quote(value)}"
    return f"{name} in [{', '.join(_literal(v) for v in value)}]"


def _literal(value: object) -> str:
    return (
        str(value) if isinstance(value, int) and not isinstance(value, bool) else quote(str(value))
    )


def to_expr(filter: Filter | None, native_null: bool = True) -> str | None:
    """The filter mapping as a Milvus boolean expression; '' means "matches nothing".
    ``native_null``: the server has nullable fields (else nulls are stored as zero values)."""
    if not filter:
        return None
    if any(
        _match(k, v, native_null) is None
        if isinstance(v, Match)
        else not isinstance(v, (str, int, bool)) and not list(v)
        for k, v in filter.items()
    ):
        return ""
    return " and ".join(f"({_term(k, v, native_null)})" for k, v in filter.items())


def store_options(opts: dict[str, str]) -> dict[str, Any]:
    """The URI's ``?index=...&shards=N&replicas=N`` as MilvusStore keyword arguments."""
    out: dict[str, Any] = {}
    unknown = set(opts) - {"index", "shards", "replicas"}
    if unknown:
        raise UsageError(f"unknown Milvus store option(s): {', '.join(sorted(unknown))}")
    if "index" in opts:
        choose_index(opts["index"], 0)  # validates
        out["index"] = opts["index"]
    for key in ("shards", "replicas"):
        if key in opts:
            if not opts[key].isdigit() or int(opts[key]) < 1:
                raise UsageError(f"{key} must be a positive integer, got {opts[key]!r}")
            out[key] = int(opts[key])
    return out


def lite_location(location: str) -> tuple[Path, str, dict[str, str]]:
    """``FILE.db?name=NAME&index=...`` -> (file, collection prefix, options)."""
    path, _, query = location.partition("?")
    opts = {k: v[-1] for k, v in parse_qs(query).items()}
    if not path.endswith(".db"):
        raise UsageError(f"milvus-lite://{location}: the file name must end in .db")
    name = opts.pop("name", "mmretrieve")
    if not NAME.match(name):
        raise UsageError(f"bad collection prefix {name!r}: letters, digits and underscores only")
    return Path(path).expanduser().resolve(), name, opts


@dataclass
class TableLayout:
    """One open table: the collection of each vector field, how nulls and BM25 work there."""

    schema: TableSchema
    primary: str
    by_vector: dict[str, str] = field(default_factory=dict)
    native_null: bool = True
    bm25: bool = False
    specs: dict[str, IndexSpec] = field(default_factory=dict)  # collection -> its ANN index

    @property
    def collections(self) -> list[str]:
        return list(dict.fromkeys([self.primary, *self.by_vector.values()]))

    def vectors_in(self, collection: str) -> list[str]:
        return [v for v, c in self.by_vector.items() if c == collection]


def collection_layout(primary: str, vectors: list[str], features: Features) -> dict[str, list[str]]:
    """Collection name -> the vector fields it holds: all in one where the server allows it,
    else one collection per vector field ("split" layout; the first keeps the table's name)."""
    if features.multi_vector:
        return {primary: vectors}
    return {primary: vectors[:1], **{f"{primary}__{v}": [v] for v in vectors[1:]}}


def collection_schema(
    client: Any,
    schema: TableSchema,
    vectors: list[str],
    features: Features,
    spec: IndexSpec,
    primary: bool,
) -> tuple[Any, Any]:
    """(pymilvus schema, index params) of one collection of ``schema``: every scalar field,
    ``vectors`` (a 2-d placeholder when none: Milvus needs one), BM25 on the primary."""
    from pymilvus import DataType, Function, FunctionType, MilvusClient

    types = {
        "str": DataType.VARCHAR,
        "int": DataType.INT64,
        "float": DataType.DOUBLE,
        "bool": DataType.BOOL,
    }
    bm25 = primary and features.bm25 and bool(schema.text_fields)
    s = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    params = client.prepare_index_params()
    for f in schema.fields:
        extra: dict[str, Any] = {"max_length": MAX_VARCHAR} if f.type == "str" else {}
        if f.nullable and features.nullable:
            extra["nullable"] = True
        if bm25 and f.name == schema.text_fields[0]:
            extra["enable_analyzer"] = True
        s.add_field(f.name, types[f.type], is_primary=f.name == "id", **extra)
    if not features.nullable:
        s.add_field(NULLS, DataType.VARCHAR, max_length=1024)
    for v in vectors or [NO_VECTOR]:
        s.add_field(v, DataType.FLOAT_VECTOR, dim=schema.vectors.get(v, 2))
        params.add_index(v, index_type=spec.kind, metric_type="IP", params=dict(spec.build))
    if bm25:
        s.add_field(BM25_FIELD, DataType.SPARSE_FLOAT_VECTOR)
        s.add_function(
            Function(
                name=f"{schema.name}_bm25",
                function_type=FunctionType.BM25,
                input_field_names=[schema.text_fields[0]],
                output_field_names=[BM25_FIELD],
            )
        )
        params.add_index(BM25_FIELD, index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
    return s, params


def manifest_schema(client: Any) -> tuple[Any, Any]:
    """The manifest collection: one row, the JSON manifest in ``body``."""
    from pymilvus import DataType, MilvusClient

    s = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    s.add_field("id", DataType.VARCHAR, is_primary=True, max_length=64)
    s.add_field("body", DataType.VARCHAR, max_length=MAX_VARCHAR)
    s.add_field(NO_VECTOR, DataType.FLOAT_VECTOR, dim=2)
    params = client.prepare_index_params()
    params.add_index(NO_VECTOR, index_type="FLAT", metric_type="IP")
    return s, params


_ZERO = {"str": "", "int": 0, "float": 0.0, "bool": False}
_CAST = {"int": int, "float": float, "bool": bool}


def _clip(text: str) -> str:
    data = text.encode("utf-8")
    return text if len(data) <= MAX_VARCHAR else data[:MAX_VARCHAR].decode("utf-8", "ignore")


def encode_row(
    schema: TableSchema, row: Mapping[str, Any], vectors: list[str], native_null: bool
) -> dict[str, Any]:
    """One row for one collection: typed scalars (nulls as zero values listed in ``_nulls``
    where the server has no nullable fields), the collection's vectors (or the placeholder)."""
    out: dict[str, Any] = {}
    nulls = []
    for f in schema.fields:
        value = row.get(f.name)
        if value is None and f.nullable and not native_null:
            nulls.append(f.name)
            value = _ZERO[f.type]
        elif value is not None:
            value = _clip(str(value)) if f.type == "str" else _CAST[f.type](value)
        out[f.name] = value
    if not native_null:
        out[NULLS] = ",".join(nulls)
    for v in vectors:
        out[v] = np.asarray(row[v], dtype=np.float32).reshape(-1)
    if not vectors:
        out[NO_VECTOR] = [0.0, 0.0]
    return out


def decode_row(row: Mapping[str, Any], wanted: list[str]) -> dict[str, Any]:
    """The ``wanted`` fields of a row Milvus returned, nulls restored."""
    out = {k: row.get(k) for k in wanted if k != NULLS}
    for name in filter(None, str(row.get(NULLS) or "").split(",")):
        if name in out:
            out[name] = None
    return out


@contextmanager
def quiet_mvcc_warning() -> Iterator[None]:
    """pymilvus logs a warning for every iterator on servers older than 2.4 (no MVCC timestamp;
    its fallback is correct here, as scans are strongly consistent): hide just that one."""
    logger = logging.getLogger("pymilvus.client.iterator.query_iterator")

    def keep(record: logging.LogRecord) -> bool:
        return "mvccTs" not in record.getMessage()

    logger.addFilter(keep)
    try:
        yield
    finally:
        logger.removeFilter(keep)
