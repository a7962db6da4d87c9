"""Fusing ranked lists from several routes into one ranking (DESIGN §6).

Each route gives a list of (key, score), best first. Scores of different routes live on different
scales (BM25 vs cosine, BGE vs CLIP), so each route's scores are normalised before a weighted sum:
min-max, z-score, distribution-based, or ranks only (weighted reciprocal rank fusion).

``zscore-family`` (the default, chosen by the study in docs/QUALITY.md) fuses in two stages. Routes
of one family (``text->passage:dense`` and ``text->passage:bm25``, say) rank the same items for
the same query, so their z-scores compare: a route whose best item stands far above the rest says
more than one whose scores are flat. Scores below a route's mean count as 0, as if the route had
not returned the item (a plain z-score makes an item found at the bottom of a list worse off
than one not found at all, which sinks an image whose caption matched because the CLIP route
ranked it last). Across families that reading breaks down, because the best of
n scores can lie at most sqrt(n - 1) standard deviations above their mean, and families return
lists of very different lengths (a dozen images against fifty passages). So each family's fused
scores are then min-maxed: every family's best item gets the family's whole weight, as under
min-max and RRF. All functions are pure.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from statistics import fmean, pstdev
from typing import TypeVar

from .weights import family

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


def _zscore_above_mean(items: Ranked[K], k: int) -> dict[K, float]:
    """Z-scores, with those below the route's mean counted as 0: the credit of an item the route
    did not return. Finding an item never counts against it."""
    return {key: max(0.0, z) for key, z in _zscore(items, k).items()}


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


NORMALISERS: dict[str, Callable[[Ranked, int], dict]] = {
    "rrf": _rrf,
    "minmax": _minmax,
    "zscore": _zscore,
    "dbsf": _dbsf,
}
# Two-stage methods: (normaliser within a route family, normaliser across families).
BY_FAMILY: dict[str, tuple[Callable[[Ranked, int], dict], Callable[[Ranked, int], dict]]] = {
    "zscore-family": (_zscore_above_mean, _minmax),
}
METHODS: tuple[str, ...] = (*NORMALISERS, *BY_FAMILY)


def _weighted_sum(
    routes: Mapping[str, Ranked[K]], weights: Mapping[str, float], normalise: Callable, k: int
) -> dict[K, float]:
    total: dict[K, float] = {}
    for name in sorted(routes):
        items = routes[name]
        weight = weights.get(name, 1.0)
        if not items or weight == 0:
            continue
        for key, value in normalise(items, k).items():
            total[key] = total.get(key, 0.0) + weight * value
    return total


def _by_family(
    routes: Mapping[str, Ranked[K]], weights: Mapping[str, float], method: str, k: int
) -> dict[K, float]:
    within, across = BY_FAMILY[method]
    families: dict[str, dict[str, Ranked[K]]] = {}
    for name, items in routes.items():
        if items and weights.get(name, 1.0) != 0:
            families.setdefault(family(name), {})[name] = items
    total: dict[K, float] = {}
    for members in families.values():
        inner = _weighted_sum(members, weights, within, k)
        ranked = sorted(inner.items(), key=lambda kv: (-kv[1], str(kv[0])))
        weight = sum(weights.get(name, 1.0) for name in members)
        for key, value in across(ranked, k).items():
            total[key] = total.get(key, 0.0) + weight * value
    return total


def fuse(
    routes: Mapping[str, Ranked[K]],
    weights: Mapping[str, float] | None = None,
    method: str = "rrf",
    k: int = RRF_K,
) -> list[tuple[K, float]]:
    """One ranking from several. A key's fused score is the weighted sum of its per-route scores
    after the method's normalisation (for a two-stage method, of its per-family scores); a route
    that did not find a key adds nothing. Routes with weight 0 are ignored. Ties break by key so
    the result does not depend on route order."""
    weights = weights or {}
    if method in BY_FAMILY:
        total = _by_family(routes, weights, method, k)
    elif method in NORMALISERS:
        total = _weighted_sum(routes, weights, NORMALISERS[method], k)
    else:
        from ..errors import UsageError

        raise UsageError(f"unknown fusion method {method!r}; choose one of {', '.join(METHODS)}")
    return sorted(total.items(), key=lambda kv: (-kv[1], str(kv[0])))
