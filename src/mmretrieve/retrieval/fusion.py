"""Fusing ranked lists from several routes into one ranking (docs/ARCHITECTURE.md, fusion).

Each route gives a list of (key, score), best first. Scores of different routes live on different
scales (BM25 vs cosine, BGE vs CLIP), so each route's scores are normalised before a weighted sum:
min-max, z-score, distribution-based, or ranks only (weighted reciprocal rank fusion).

``calibrated`` (the default, chosen by the study in docs/QUALITY.md) also asks how much each
route found for *this* query: a route's weight is scaled by its confidence, the calibrated
chance that its best item is more than chance (from :mod:`.calibration`), so a route with
nothing better than chance adds almost nothing, and a confident route can win on its own. See
:func:`_calibrated`.

``zscore-family`` fuses in two stages. Routes
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

import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from . import weights as R
from .calibration import SPACES, Null, log_distance
from .weights import family, query_part

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


def descending(score: float) -> float:
    """Sort key, best first, blind to the last bits of a float: two stores (or two ways of
    computing the same dot product) can differ there, and must still order ties alike (by key)."""
    return -round(score, 9)


def _mean_sd(scores: list[float]) -> tuple[float, float]:
    """Mean and population standard deviation in floats (statistics.pstdev computes in exact
    fractions: a tenth of a search's time, for digits nothing reads)."""
    mu = math.fsum(scores) / len(scores)
    return mu, math.sqrt(math.fsum((s - mu) ** 2 for s in scores) / len(scores))


def _zscore(items: Ranked[K], k: int) -> dict[K, float]:
    scores = [s for _, s in items]
    mu, sigma = _mean_sd(scores)
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
    mu, sigma = _mean_sd(scores)
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


# -- explained results ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Fused:
    """One fused item: its score, what each route added to it (the parts sum to the score), and,
    for the calibrated method, its confidence: the calibrated chance, in [0, 1], that the best
    route that found it matched more than chance would (docs/QUALITY.md)."""

    key: Hashable
    score: float
    contributions: Mapping[str, float] = field(default_factory=dict)
    confidence: float | None = None


Parts = dict[K, dict[str, float]]


def _add(parts: Parts, key: K, route: str, value: float) -> None:
    bucket = parts.setdefault(key, {})
    bucket[route] = bucket.get(route, 0.0) + value


def _weighted_sum(
    routes: Mapping[str, Ranked[K]], weights: Mapping[str, float], normalise: Callable, k: int
) -> Parts:
    parts: Parts = {}
    for name in sorted(routes):
        items = routes[name]
        weight = weights.get(name, 1.0)
        if not items or weight == 0:
            continue
        for key, value in normalise(items, k).items():
            _add(parts, key, name, weight * value)
    return parts


def _by_family(
    routes: Mapping[str, Ranked[K]], weights: Mapping[str, float], method: str, k: int
) -> Parts:
    within, across = BY_FAMILY[method]
    families: dict[str, dict[str, Ranked[K]]] = {}
    for name in sorted(routes):  # sums in one order, whatever the order of ``routes``
        items = routes[name]
        if items and weights.get(name, 1.0) != 0:
            families.setdefault(family(name), {})[name] = items
    parts: Parts = {}
    for members in families.values():
        inner = _weighted_sum(members, weights, within, k)
        sums = {key: sum(p.values()) for key, p in inner.items()}
        ranked = sorted(sums.items(), key=lambda kv: (-kv[1], str(kv[0])))
        weight = sum(weights.get(name, 1.0) for name in members)
        for key, value in across(ranked, k).items():
            share = sums[key]
            for name, part in inner[key].items():  # the family's credit, split by route
                _add(parts, key, name, weight * value * (part / share if share else 0.0))
            parts.setdefault(key, {})
    return parts


# -- calibrated -----------------------------------------------------------------------------------
# BM25 has no background to read its scores against; it takes the confidence of the dense route
# that ranks the same items for the same query.
PARTNERS: Mapping[str, str] = {
    R.TEXT_PASSAGE_BM25: R.TEXT_PASSAGE_DENSE,
    R.TEXT_IMAGE_BM25: R.TEXT_IMAGE_CAPTION,
}
# Evidence (calibration.Null.evidence) at which a route's best counts as half confident: a chance
# match gets there for about 1 query in 20.
EVIDENCE_AT_HALF = 3.0
# Routes reading the same part of the query compete: one whose best lies this many units below
# the best of its part keeps 1/e of its confidence. Chosen by the study in docs/QUALITY.md.
COMPETITION = 5.0


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x > -60 else 0.0


def route_confidence(
    routes: Mapping[str, Ranked[K]],
    active: Sequence[str],
    calibration: Mapping[str, Null] | None,
) -> dict[str, tuple[float | None, float]]:
    """Per route: (confidence, weight factor). Confidence is the calibrated chance that the
    route's best item matched more than chance would; the weight factor is that, shrunk when
    another route reading the same part of the query (its text or its image) found much more.
    A route with no calibration counts fully and has no confidence: (None, 1)."""
    calibration = calibration or {}
    evidence: dict[str, float] = {}
    for name in active:
        null = calibration.get(name)
        if null is not None and routes[name]:
            evidence[name] = null.evidence(routes[name][0][1])
    best: dict[str, float] = {}
    for name, x in evidence.items():
        part = query_part(name)
        best[part] = max(best.get(part, x), x)
    out: dict[str, tuple[float | None, float]] = {}
    for name in active:
        source = name if name in evidence else PARTNERS.get(name, name)
        if source not in evidence:
            out[name] = (None, 1.0)
            continue
        x = evidence[source]
        confidence = _sigmoid(x - EVIDENCE_AT_HALF)
        lag = max(0.0, best[query_part(source)] - x)
        out[name] = (confidence, confidence * math.exp(-lag / COMPETITION))
    return out


def _as_read(name: str, items: Ranked[K]) -> Ranked[K]:
    """A cosine route's scores as log distances (calibration.log_distance), the scale its
    evidence is read on: an exact copy stands far apart from near neighbours that all score
    0.99. BM25 scores stay as they are."""
    if name not in SPACES:
        return items
    return [(key, float(log_distance(score))) for key, score in items]


def _calibrated(
    routes: Mapping[str, Ranked[K]],
    weights: Mapping[str, float],
    calibration: Mapping[str, Null] | None,
) -> tuple[Parts, dict[K, float]]:
    """Routes of one family (they rank the same items for the same query) are combined as
    z-scores (of log distances for cosine routes), each weighted by ``weight x confidence``
    (:func:`route_confidence`); the family's
    best item then gets the sum of those, so a family adds as much as its routes found. Each part
    of a query (text, image) is summed over its families; when a query has both, each part's
    best item gets 1, because the user asked with both. Confidence of an item: the highest, over
    its families, of the family's confidence scaled by the item's standing in the family."""
    active = [n for n, items in routes.items() if items and weights.get(n, 1.0) > 0]
    factors = route_confidence(routes, active, calibration)
    families: dict[str, list[str]] = {}
    for name in sorted(active):
        families.setdefault(family(name), []).append(name)
    by_part: dict[str, Parts] = {}
    confidence: dict[K, float] = {}
    for members in families.values():
        inner: Parts = {}
        for name in members:
            factor = weights.get(name, 1.0) * factors[name][1]
            for key, z in _zscore_above_mean(_as_read(name, routes[name]), RRF_K).items():
                _add(inner, key, name, factor * z)
        sums = {key: sum(p.values()) for key, p in inner.items()}
        top = max(sums.values(), default=0.0)
        mass = sum(weights.get(n, 1.0) * factors[n][1] for n in members)
        known = [c for c in (factors[n][0] for n in members) if c is not None]
        sure = max(known) if known else None
        parts = by_part.setdefault(query_part(members[0]), {})
        for key, bucket in inner.items():
            if sure is not None:
                standing = sums[key] / top if top > 0 else 0.0
                confidence[key] = max(confidence.get(key, 0.0), sure * standing)
            for name, value in bucket.items():
                _add(parts, key, name, mass * value / top if top > 0 else 0.0)
            parts.setdefault(key, {})
    total: Parts = {}
    for parts in by_part.values():
        best = max((sum(p.values()) for p in parts.values()), default=0.0)
        scale = 1.0 / best if len(by_part) > 1 and best > 0 else 1.0
        for key, bucket in parts.items():
            for name, value in bucket.items():
                _add(total, key, name, scale * value)
            total.setdefault(key, {})
    return total, confidence


METHODS: tuple[str, ...] = ("calibrated", *NORMALISERS, *BY_FAMILY)


def fuse_explained(
    routes: Mapping[str, Ranked[K]],
    weights: Mapping[str, float] | None = None,
    method: str = "rrf",
    k: int = RRF_K,
    calibration: Mapping[str, Null] | None = None,
) -> list[Fused]:
    """One ranking from several, best first, with each item's per-route contributions (after
    normalisation and weights; they sum to its score). A route that did not find a key adds
    nothing; routes with weight 0 are ignored. Ties break by key, so the result does not depend
    on route order. ``calibration`` (route -> :class:`~.calibration.Null`) is read by the
    ``calibrated`` method only."""
    weights = weights or {}
    confidence: Mapping[K, float] = {}
    if method == "calibrated":
        parts, confidence = _calibrated(routes, weights, calibration)
    elif method in BY_FAMILY:
        parts = _by_family(routes, weights, method, k)
    elif method in NORMALISERS:
        parts = _weighted_sum(routes, weights, NORMALISERS[method], k)
    else:
        from ..errors import UsageError

        raise UsageError(f"unknown fusion method {method!r}; choose one of {', '.join(METHODS)}")
    scored = [(key, sum(bucket.values()), bucket) for key, bucket in parts.items()]
    scored.sort(key=lambda t: (descending(t[1]), str(t[0])))
    return [
        Fused(key, score, dict(bucket), confidence.get(key) if confidence else None)
        for key, score, bucket in scored
    ]


def fuse(
    routes: Mapping[str, Ranked[K]],
    weights: Mapping[str, float] | None = None,
    method: str = "rrf",
    k: int = RRF_K,
    calibration: Mapping[str, Null] | None = None,
) -> list[tuple[K, float]]:
    """:func:`fuse_explained` without the explanations: (key, score), best first."""
    return [
        (f.key, f.score)  # type: ignore[misc]
        for f in fuse_explained(routes, weights, method, k, calibration)
    ]
