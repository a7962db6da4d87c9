"""Calibrated fusion: evidence against a route's background, worked on small fixtures.

Nulls here are built from seeded random scores (a stand-in for a route's background sample), not
from a model; the lists fused are hand-made, so each test states exactly what the routes found.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from mmretrieve.retrieval.calibration import Background, Null, log_distance
from mmretrieve.retrieval.fusion import fuse, fuse_explained, route_confidence
from mmretrieve.retrieval.weights import DEFAULT_WEIGHTS

DENSE, BM25 = "text->passage:dense", "text->passage:bm25"
CLIP, CAPTION = "text->image:clip", "text->image:caption"
IMAGE, VOTES, CLIP_TEXT = "image->image", "image->passage:votes", "image->passage:clip_text"


def _unrelated(mean: float, sd: float, n: int, seed: int) -> np.ndarray:
    """``n`` cosines of unrelated items around ``mean``: Laplace-distributed on the log-distance
    scale (text-embedding scores have tails heavier than a normal's), ``sd`` about their
    standard deviation."""
    rng = np.random.default_rng(seed)
    y = rng.laplace(float(log_distance(mean)), sd / np.sqrt(2), n)
    return 1.0 - np.exp(-y)


def null_of(mean: float, sd: float, n: int, seed: int = 0) -> Null:
    """The null a route would get from a background of ``n`` unrelated cosines."""
    return Null.of(_unrelated(mean, sd, n, seed), n)


def chance_list(null_mean: float, sd: float, n: int, depth: int, seed: int, prefix: str):
    """The top ``depth`` of ``n`` scores drawn from the null itself: what a route finds when
    nothing in the index matches the query."""
    scores = np.sort(_unrelated(null_mean, sd, n, seed))[::-1][:depth]
    return [(f"{prefix}{i}", float(s)) for i, s in enumerate(scores)]


def test_evidence_of_a_chance_best_is_near_zero_and_a_real_match_is_high():
    null = null_of(0.1, 0.05, 5000)
    best_of_chance = [
        null.evidence(chance_list(0.1, 0.05, 5000, 1, seed, "x")[0][1]) for seed in range(1, 200)
    ]
    assert abs(float(np.median(best_of_chance))) < 1.0  # -ln(ln 2) = 0.37 in theory
    # A chance best reaches 3 for about 1 query in 20.
    assert 0.01 < float(np.mean(np.array(best_of_chance) > 3)) < 0.12
    assert null.evidence(0.6) > 10  # far above anything unrelated
    assert null.evidence(0.6) > null.evidence(0.4) > null.evidence(0.2)  # increasing


def test_log_distance_separates_near_copies():
    # On the cosine scale 0.998 and 0.991 are close; a near-copy stands apart on the log scale.
    assert log_distance(0.998) - log_distance(0.991) > 1.4
    assert log_distance(0.2) == pytest.approx(-math.log(0.8))


def test_a_route_of_pure_noise_does_not_change_the_top():
    dense_null = null_of(0.1, 0.05, 2000, seed=1)
    clip_null = null_of(0.2, 0.02, 300, seed=2)
    routes = {
        DENSE: [("match", 0.55), ("near", 0.4), *chance_list(0.1, 0.05, 2000, 40, 3, "p")],
        CLIP: chance_list(0.2, 0.02, 300, 40, 4, "img"),  # nothing better than chance
    }
    calibration = {DENSE: dense_null, CLIP: clip_null}
    with_noise = fuse(routes, DEFAULT_WEIGHTS, "calibrated", calibration=calibration)
    without = fuse({DENSE: routes[DENSE]}, DEFAULT_WEIGHTS, "calibrated", calibration=calibration)
    assert with_noise[0][0] == without[0][0] == "match"
    scores = dict(with_noise)
    # The noise route's best item adds almost nothing next to the real match.
    assert scores["img0"] < 0.1 * scores["match"]
    conf = route_confidence(routes, [DENSE, CLIP], calibration)
    assert conf[DENSE][0] > 0.99 and conf[CLIP][0] < 0.2


def test_a_confident_single_route_wins_over_weak_ones():
    # A caption that matches far better than any passage (one BGE space, one background):
    # the image is first although the passage routes weigh as much and found their own best.
    bge_null = null_of(0.1, 0.06, 2500, seed=5)
    routes = {
        DENSE: [("passage", 0.33), *chance_list(0.1, 0.06, 2500, 30, 6, "p")],
        BM25: [("passage", 7.0), ("p3", 5.0), ("p4", 4.0)],
        CAPTION: [("photo", 0.8), *chance_list(0.1, 0.06, 2500, 30, 7, "c")],
    }
    calibration = {DENSE: bge_null, CAPTION: bge_null}
    fused = fuse_explained(routes, DEFAULT_WEIGHTS, "calibrated", calibration=calibration)
    assert fused[0].key == "photo"
    assert fused[0].confidence is not None and fused[0].confidence > 0.99


def test_contributions_sum_to_the_score_for_every_method():
    routes = {
        DENSE: [("a", 0.9), ("b", 0.5), ("c", 0.1)],
        BM25: [("b", 3.0), ("a", 1.0), ("d", 0.5)],
        IMAGE: [("i1", 0.99), ("i2", 0.9)],
    }
    calibration = {DENSE: null_of(0.1, 0.1, 500), IMAGE: null_of(0.8, 0.05, 50, seed=3)}
    for method in ("calibrated", "rrf", "minmax", "zscore", "dbsf", "zscore-family"):
        for f in fuse_explained(routes, DEFAULT_WEIGHTS, method, calibration=calibration):
            assert sum(f.contributions.values()) == pytest.approx(f.score, abs=1e-12), method
            assert set(f.contributions) <= set(routes)


def test_each_part_of_a_combined_query_gets_its_best_item_full_credit():
    # Text that matches strongly and a picture that matches weakly: the user asked with both,
    # so each part's best item gets 1 and the item found by both parts wins.
    routes = {
        DENSE: [("p-title", 0.7), ("p-article", 0.69), ("p-other", 0.2)],
        VOTES: [("p-article", 0.95), ("p-x", 0.94)],
        IMAGE: [("img", 0.95), ("img2", 0.94)],
    }
    calibration = {
        DENSE: null_of(0.1, 0.05, 1000),
        IMAGE: null_of(0.9, 0.02, 100, seed=9),
        VOTES: null_of(0.9, 0.02, 100, seed=9),
    }
    fused = fuse_explained(routes, DEFAULT_WEIGHTS, "calibrated", calibration=calibration)
    assert fused[0].key == "p-article"
    by_part: dict[str, float] = {}
    for f in fused:
        for part in ("text", "image"):
            value = sum(v for r, v in f.contributions.items() if r.startswith(part))
            by_part[part] = max(by_part.get(part, 0.0), value)
    assert by_part["text"] == pytest.approx(1.0) and by_part["image"] == pytest.approx(1.0)


def test_without_calibration_routes_count_fully_and_have_no_confidence():
    routes = {DENSE: [("a", 0.9), ("b", 0.5), ("c", 0.1)], BM25: [("b", 3.0), ("a", 1.0)]}
    fused = fuse_explained(routes, DEFAULT_WEIGHTS, "calibrated")
    assert all(f.confidence is None for f in fused)
    assert {f.key for f in fused} == {"a", "b", "c"}


def test_bm25_borrows_its_partners_confidence():
    dense_null = null_of(0.1, 0.05, 2000)
    routes = {
        DENSE: chance_list(0.1, 0.05, 2000, 30, 11, "p"),  # dense finds nothing
        BM25: [("p7", 9.0), ("p8", 2.0)],
    }
    conf = route_confidence(routes, [DENSE, BM25], {DENSE: dense_null})
    assert conf[BM25] == conf[DENSE]
    assert conf[DENSE][0] < 0.3


class _ListStore:
    """A store stand-in that only answers what Background asks: count, scan ids, get vectors."""

    def __init__(self, tables: dict[str, dict[str, np.ndarray]]) -> None:
        self.tables = tables
        self.calls = 0

    def count(self, table, filter=None):
        return len(next(iter(self.tables[table].values()))) if table in self.tables else 0

    def scan(self, table, fields, filter=None):
        n = self.count(table)
        return ({"id": f"{i:05d}"} for i in range(n))

    def get(self, table, ids, fields=None):
        self.calls += 1
        field = [f for f in fields if f != "id"][0]
        data = self.tables[table][field]
        return [{"id": i, field: data[int(i)]} for i in ids]


def test_background_samples_evenly_and_pools_in_proportion():
    rng = np.random.default_rng(0)
    unit = lambda n, d: (lambda m: m / np.linalg.norm(m, axis=1, keepdims=True))(  # noqa: E731
        rng.normal(size=(n, d)).astype(np.float32)
    )
    store = _ListStore(
        {
            "passages": {"bge": unit(3000, 16)},
            "images": {"caption_bge": unit(1000, 16), "clip_image": unit(1000, 8)},
        }
    )
    background = Background(store, sample_rows=400)  # type: ignore[arg-type]

    class Q:
        bge = unit(1, 16)[0]
        clip_image = None
        clip_text = None

    nulls = background.nulls(Q(), [DENSE, CAPTION, IMAGE])
    assert set(nulls) == {DENSE, CAPTION}  # no image vector in the query
    assert nulls[DENSE] is nulls[CAPTION]  # one shared space
    assert nulls[DENSE].n == 4000  # what the routes search, not the sample size
    sample = background._samples["bge-text"]
    assert sample is not None and len(sample.vectors) == 400  # 300 passages + 100 captions
    calls = store.calls
    background.nulls(Q(), [DENSE])
    assert store.calls == calls  # kept in memory


def test_an_exact_copy_in_a_tiny_index_is_confident():
    # A small index is sampled whole, copy included: the copy must not widen its own scale.
    null = Null.of(np.array([1.0, 0.9, 0.85, 0.8, 0.7]), 5)
    routes = {IMAGE: [("copy", 1.0), ("other", 0.9)]}
    fused = fuse_explained(routes, DEFAULT_WEIGHTS, "calibrated", calibration={IMAGE: null})
    assert fused[0].key == "copy" and fused[0].confidence is not None
    assert fused[0].confidence > 0.99


def test_rounding_in_a_model_whose_vectors_all_point_one_way_is_not_evidence():
    """A degenerate (e.g. random tiny) model: every cosine within 1e-5 of 1. The best of them
    stands out on the log scale by rounding alone; it must not read as a match. A near-copy
    among ordinary scores still does."""
    rng = np.random.default_rng(0)
    crowded = 1 - np.abs(rng.normal(1.1e-5, 1e-6, 2000))
    null = Null.of(crowded, 2000)
    assert null.evidence(1 - 3e-6) < 1.0  # the gibberish query's "best" passage, by 1e-5
    ordinary = Null.of(np.clip(rng.normal(0.5, 0.1, 2000), -1, 0.95), 2000)
    assert ordinary.evidence(0.995) > 10
