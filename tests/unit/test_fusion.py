from __future__ import annotations

import pytest

from mmretrieve.errors import UsageError
from mmretrieve.retrieval.fusion import RRF_K, fuse
from mmretrieve.retrieval.weights import DEFAULT_WEIGHTS, parse_weights, resolve_weights


def test_rrf_by_hand():
    routes = {"a": [("x", 9.0), ("y", 5.0)], "b": [("y", 0.9), ("z", 0.1)]}
    fused = dict(fuse(routes, {"a": 1.0, "b": 2.0}))
    assert fused["x"] == pytest.approx(1 / (RRF_K + 1))
    assert fused["y"] == pytest.approx(1 / (RRF_K + 2) + 2 / (RRF_K + 1))
    assert fused["z"] == pytest.approx(2 / (RRF_K + 2))
    assert [key for key, _ in fuse(routes, {"a": 1.0, "b": 2.0})] == ["y", "z", "x"]


def test_rrf_ignores_raw_scales():
    a = {"a": [("x", 1000.0), ("y", 999.0)], "b": [("y", 0.02), ("x", 0.01)]}
    assert dict(fuse(a))["x"] == pytest.approx(dict(fuse(a))["y"])


def test_minmax_and_dbsf_by_hand():
    routes = {"a": [("x", 3.0), ("y", 2.0), ("z", 1.0)]}
    assert dict(fuse(routes, method="minmax")) == {"x": 1.0, "y": 0.5, "z": 0.0}
    dbsf = dict(fuse(routes, method="dbsf"))
    assert dbsf["y"] == pytest.approx(0.5)
    assert dbsf["x"] > dbsf["y"] > dbsf["z"]


def test_zero_weight_route_ignored_and_route_order_irrelevant():
    r1 = {"a": [("x", 1.0)], "b": [("y", 1.0)]}
    r2 = {"b": [("y", 1.0)], "a": [("x", 1.0)]}
    assert fuse(r1, {"b": 0}) == [("x", pytest.approx(1 / (RRF_K + 1)))]
    assert fuse(r1) == fuse(r2)


def test_unknown_method():
    with pytest.raises(UsageError, match="unknown fusion method"):
        fuse({"a": [("x", 1.0)]}, method="nope")


def test_weights_family_and_exact():
    w = resolve_weights({"text->passage": 2.0, "text->passage:bm25": 0.5})
    assert w["text->passage:dense"] == 2.0
    assert w["text->passage:bm25"] == 0.5
    assert w["image->image"] == 1.0
    assert w["image->passage:votes"] == DEFAULT_WEIGHTS["image->passage:votes"]
    with pytest.raises(UsageError, match="unknown route"):
        resolve_weights({"text->video": 1})
    with pytest.raises(UsageError, match="from 0 to"):
        resolve_weights({"image->image": -1})


def test_parse_weights():
    assert parse_weights(["image->image=2", "text->passage:bm25=0.5"]) == {
        "image->image": 2.0,
        "text->passage:bm25": 0.5,
    }
    with pytest.raises(UsageError):
        parse_weights(["image->image"])
    with pytest.raises(UsageError):
        parse_weights(["image->image=abc"])


def test_zscore_family_by_hand():
    """Within a family: weighted z-scores, those below the route's mean counted as 0; across
    families: min-max of each family's sums, times the family's weight."""
    dense = [("a", 0.9), ("b", 0.8), ("c", 0.4)]  # z: +0.98, +0.39, -1.37 -> 0
    bm25 = [("b", 12.0), ("d", 4.0)]  # z: +1, -1 -> 0
    image = [("i", 1.0)]
    routes = {"text->passage:dense": dense, "text->passage:bm25": bm25, "image->image": image}
    weights = {"text->passage:dense": 1.0, "text->passage:bm25": 0.5, "image->image": 1.0}
    fused = dict(fuse(routes, weights, method="zscore-family"))
    z = dict(fuse({"x": dense}, method="zscore"))
    sums = {"a": z["a"], "b": z["b"] + 0.5, "c": 0.0, "d": 0.0}
    lo, hi = min(sums.values()), max(sums.values())
    assert set(fused) == {*sums, "i"}
    for key, value in sums.items():
        assert fused[key] == pytest.approx(1.5 * (value - lo) / (hi - lo))
    assert fused["i"] == pytest.approx(1.0)  # a family of one item: its best gets its weight


def test_zscore_family_never_counts_a_route_against_what_it_found():
    """An image whose caption matched, ranked last of three by CLIP, must not lose to the image
    CLIP put first and nothing else found: a plain z-score (-1.2 from CLIP) lets it."""
    routes = {
        "text->image:clip": [("tomato", 0.10), ("gogh", -0.07), ("batman", -0.19)],
        "text->image:caption": [("batman", 0.78)],
        "text->image:bm25": [("batman", 0.86)],
    }
    weights = dict.fromkeys(routes, 0.5)
    assert fuse(routes, weights, method="zscore")[0][0] == "tomato"
    assert fuse(routes, weights, method="zscore-family")[0][0] == "batman"


def test_zscore_family_gives_an_exact_image_match_first_place_however_short_its_list():
    """Plain z-scores cap the best of n items at sqrt(n - 1) deviations, so a two-image table
    loses to fifty passages the picture only implies; by family, each family's best gets its
    family's whole weight (image->image 1.0 against 0.9 for the three image->passage routes)."""
    passages = [(f"p{i}", 0.3 - i * 0.004) for i in range(50)]
    passages[0] = ("p0", 0.6)  # one passage stands far out: a large z-score
    routes = {
        "image->image": [("exact", 1.0), ("other", 0.2)],
        "image->passage:clip_text": passages,
        "image->passage:title": passages,
        "image->passage:votes": passages,
    }
    weights = {
        "image->image": 1.0,
        "image->passage:clip_text": 0.3,
        "image->passage:title": 0.2,
        "image->passage:votes": 0.4,
    }
    assert fuse(routes, weights, method="zscore")[0][0] == "p0"
    top = fuse(routes, weights, method="zscore-family")
    assert top[0] == ("exact", pytest.approx(1.0)) and top[1] == ("p0", pytest.approx(0.9))
