"""Exact vector search over in-memory matrices and Arrow schema helpers, shared by the held
tables (store/hot.py) and the stores."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np


def dot(matrix: np.ndarray, query: np.ndarray) -> np.ndarray:
    """``matrix @ query`` without BLAS: OpenBLAS's threads keep spinning after each call and took
    the cores from the query encoders (a text query at 100k: 60 ms with them, 34 ms without)."""
    return np.einsum("ij,j->i", matrix, query, optimize=False)


def knn(matrix: np.ndarray, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Row numbers and inner products of the ``k`` best rows, by an exact scan (FAISS's, one
    thread, no BLAS for a single query; NumPy's when faiss-cpu is not installed)."""
    k = min(k, len(matrix))
    faiss = faiss_module()
    if faiss is None:
        return np.arange(len(matrix)), dot(matrix, query)
    scores, rows = faiss.knn(
        query.reshape(1, -1), np.ascontiguousarray(matrix), k, metric=faiss.METRIC_INNER_PRODUCT
    )
    keep = rows[0] >= 0
    return rows[0][keep].astype(np.int64), scores[0][keep].astype(np.float32)


@functools.cache
def faiss_module() -> Any:
    """The faiss module set to one OpenMP thread (one query per call; concurrent searches use
    the other cores), or None without faiss-cpu."""
    try:
        import faiss
    except ImportError:
        return None
    faiss.omp_set_num_threads(1)
    return faiss


def scalar_codes(matrix: np.ndarray) -> Any:
    """A FAISS index of ``matrix`` as 8-bit scalar codes (inner product), or None without
    faiss-cpu."""
    faiss = faiss_module()
    if faiss is None:
        return None
    index = faiss.IndexScalarQuantizer(
        matrix.shape[1], faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
    )
    index.train(matrix)
    index.add(matrix)
    return index


def is_text(arrow_type: Any) -> bool:
    import pyarrow as pa

    return bool(pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type))


def vector_fields_of(arrow_schema: Any) -> list[str]:
    import pyarrow as pa

    return [f.name for f in arrow_schema if pa.types.is_fixed_size_list(f.type)]
