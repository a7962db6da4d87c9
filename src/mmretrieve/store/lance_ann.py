"""LanceDB vector (ANN) index settings, chosen by measurement (bench/query.py,
docs/BENCHMARKS.md)."""

from __future__ import annotations

import math
from typing import Any

# Vector (ANN) indexes, chosen by bench/query.py (docs/BENCHMARKS.md): below ANN_MIN_ROWS rows
# a table is searched exactly; from there on through IVF-flat over dot product (no quantization:
# a 4 s build at 100k rows against 88 s for IVF-PQ and 49 s for IVF-HNSW-SQ, at the same
# latency). Many small partitions, few probed: 4 sqrt(rows) partitions (1,265 at 100k) probing
# 3 % of them gave recall@10 0.992 in 5.7 ms at 100k, where 97 partitions probing a third gave
# 0.959 in 9.5 ms (the build takes 9.5 s instead of 4). With the shipped probes, recall@10 was
# 0.988-1.0 from 5k to 100k rows, in 5.6-7.1 ms against 7.8-96 ms for exact search, so tables
# get an index from 10k rows.
ANN_MIN_ROWS = 10_000
ANN_KIND = "ivf_flat"
ANN_PARTITIONS_PER_SQRT_ROW = 4  # num_partitions = this * sqrt(rows)
ANN_DIMS_PER_SUBVECTOR = 8  # PQ sub-vector width (ivf_pq only)
ANN_PROBE_FRACTION = 0.03  # of the partitions searched per query
ANN_MIN_NPROBES = 32
# ... and enough partitions to hold this many rows: a small table's partitions are small (at 10k
# rows, 32 of 400 partitions found 0.72 of the true top 10, 164 of them 0.93).
ANN_MIN_ROWS_PROBED = 8192
ANN_REFINE = 1  # re-rank refine x k candidates with full vectors (only quantized kinds need it)


def ann_partitions(rows: int) -> int:
    return max(1, round(ANN_PARTITIONS_PER_SQRT_ROW * math.sqrt(rows)))


def ann_nprobes(partitions: int, rows: int) -> int:
    """Partitions to search per query: a share of them, at least ANN_MIN_NPROBES, and at least
    ANN_MIN_ROWS_PROBED rows' worth."""
    per_partition = max(1.0, rows / max(1, partitions))
    wanted = max(
        ANN_MIN_NPROBES,
        math.ceil(partitions * ANN_PROBE_FRACTION),
        math.ceil(ANN_MIN_ROWS_PROBED / per_partition),
    )
    return min(partitions, wanted)


def ann_probes(rows: int) -> int:
    """Partitions to search per query in a table of ``rows`` rows."""
    return ann_nprobes(ann_partitions(rows), rows)


def ann_config(kind: str, rows: int, dim: int) -> Any:
    """The LanceDB index config for ``kind`` ("ivf_pq", "ivf_sq", "ivf_flat", "ivf_hnsw_sq")
    over dot product."""
    from lancedb.index import IvfFlat, IvfHnswSq, IvfPq, IvfSq

    partitions = ann_partitions(rows)
    if kind == "ivf_pq":
        return IvfPq(
            distance_type="dot",
            num_partitions=partitions,
            num_sub_vectors=max(1, dim // ANN_DIMS_PER_SUBVECTOR),
        )
    if kind == "ivf_sq":
        return IvfSq(distance_type="dot", num_partitions=partitions)
    if kind == "ivf_flat":
        return IvfFlat(distance_type="dot", num_partitions=partitions)
    if kind == "ivf_hnsw_sq":
        return IvfHnswSq(distance_type="dot", num_partitions=max(1, partitions // 16))
    raise ValueError(f"unknown ANN index kind {kind!r}")
