"""Fusing ranked lists from several routes into one ranking (DESIGN §6).

Each route gives a list of (key, score), best first. Scores of different routes live on different
scales (BM25 vs cosine, BGE vs CLIP), so each route's scores are normalised before a weighted sum:
min-max (the default, chosen by the study in docs/QUALITY.md), z-score, distribution-based, or
ranks only (weighted reciprocal rank fusion). All functions are pure.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from statistics import fmean, pstdev
from typing import TypeVar

K = TypeVar("K", bound=Hashable)
Ranked = Sequence[tuple[K, float]]

RRF_K = 60


def _rrf(items: Ranked[K], k: int) -> dict[K, float]:
    return {key: 1.0 / (k + rank) for rank, (key, _) in enumerate(items, start=1)}


def _minmax(items: Ranked[K], k: int) -> dict[K, float]:
    scores = [s for _, s in items]
    lo, hi = min(scores), max(scores)
    if hi - lo < 1e-12:
        return {key: 1.0 for key, _ in items}
    return {key: (s - lo) / (hi - lo) for key, s in items}


def _zscore(items: Ranked[K], k: int) -> dict[K, float]:
    scores = [s for _, s in items]
    mu, sigma = fmean(scores), pstdev(scores)
    if sigma < 1e-12:
        return {key: 1.0 for key, _ in items}
    return {key: (s - mu) / sigma for key, s in items}


def _dbsf(items: Ranked[K], k: int) -> dict[K, float]:
    """Distribution-based score fusion: scale by mean ± 3 standard deviations, clip to [0, 1].
    Equal scores all sit at the mean, which this scale puts at 0.5 (1.0 would make raising one
    of them lower its fused score: not monotonic)."""
    scores = [s for _, s in items]
    mu, sigma = fmean(scores), pstdev(scores)
    if sigma < 1e-12:
        return {key: 0.5 for key, _ in items}
    lo, hi = mu - 3 * sigma, mu + 3 * sigma
    return {key: min(1.0, max(0.0, (s - lo) / (hi - lo))) for key, s in items}


METHODS: dict[str, Callable[[Ranked, int], dict]] = {
    "rrf": _rrf,
    "minmax": _minmax,
    "zscore": _zscore,
    "dbsf": _dbsf,
}


def fuse(
    routes: Mapping[str, Ranked[K]],
    weights: Mapping[str, float] | None = None,
    method: str = "rrf",
    k: int = RRF_K,
) -> list[tuple[K, float]]:
    """One ranking from several. A key's fused score is the weighted sum of its per-route scores
    after the method's normalisation; a route that did not find a key adds nothing. Routes with
    weight 0 are ignored. Ties break by key so the result does not depend on route order."""
    try:
        normalise = METHODS[method]
    except KeyError:
        from ..errors import UsageError

        raise UsageError(
            f"unknown fusion method {method!r}; choose one of {sorted(METHODS)}"
        ) from None
    weights = weights or {}
    total: dict[K, float] = {}
    for name in sorted(routes):
        items = routes[name]
        weight = weights.get(name, 1.0)
        if not items or weight == 0:
            continue
        for key, value in normalise(items, k).items():
            total[key] = total.get(key, 0.0) + weight * value
    return sorted(total.items(), key=lambda kv: (-kv[1], str(kv[0])))
