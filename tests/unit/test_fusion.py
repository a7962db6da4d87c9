from __future__ import annotations

import pytest

from mmretrieve.errors import UsageError
from mmretrieve.retrieval.fusion import RRF_K, fuse
from mmretrieve.retrieval.weights import parse_weights, resolve_weights


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
    assert w["image->passage:votes"] == 0.4
    with pytest.raises(UsageError, match="unknown route"):
        resolve_weights({"text->video": 1})
    with pytest.raises(UsageError, match=">= 0"):
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
