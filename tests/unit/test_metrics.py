"""Ranking metrics against cases computed by hand (the arithmetic is in the comments)."""

from __future__ import annotations

import math

import pytest

from mmretrieve.evaluation.metrics import (
    METRICS,
    dedupe,
    evaluate,
    mrr_at_k,
    ndcg_at_k,
    query_metrics,
    recall_at_k,
)

# Ranking a b c d; b is relevant (1), d very relevant (2), e relevant but never retrieved,
# f judged non-relevant (0).
RANKING = ["a", "b", "c", "d"]
RELEVANCE = {"b": 1, "d": 2, "e": 1, "f": 0}


def test_ndcg_graded_linear_gain():
    # DCG  = 1/log2(3) + 2/log2(5)            = 0.6309298 + 0.8613531 = 1.4922829
    # IDCG = 2/log2(2) + 1/log2(3) + 1/log2(4) = 2 + 0.6309298 + 0.5   = 3.1309298
    assert ndcg_at_k(RANKING, RELEVANCE, 10) == pytest.approx(1.4922829 / 3.1309298, abs=1e-7)
    assert ndcg_at_k(RANKING, RELEVANCE, 10) == pytest.approx(0.4766254, abs=1e-6)


def test_ndcg_cut_off_and_perfect():
    # @2: DCG = 1/log2(3) = 0.6309298; IDCG@2 = 2 + 0.6309298
    assert ndcg_at_k(RANKING, RELEVANCE, 2) == pytest.approx(0.6309298 / 2.6309298, abs=1e-7)
    assert ndcg_at_k(["d", "b", "e"], RELEVANCE, 10) == pytest.approx(1.0)
    assert ndcg_at_k(["d", "e", "b"], RELEVANCE, 10) == pytest.approx(1.0)  # equal gains tie
    assert ndcg_at_k([], RELEVANCE, 10) == 0.0


def test_recall_is_a_fraction_of_the_relevant():
    assert recall_at_k(RANKING, RELEVANCE, 1) == 0.0
    assert recall_at_k(RANKING, RELEVANCE, 2) == pytest.approx(1 / 3)
    assert recall_at_k(RANKING, RELEVANCE, 5) == pytest.approx(2 / 3)  # e is never found
    assert recall_at_k(["x", "b"], {"b": 1}, 1) == 0.0
    assert recall_at_k(["x", "b"], {"b": 1}, 5) == 1.0


def test_mrr_first_relevant_within_k():
    assert mrr_at_k(RANKING, RELEVANCE, 10) == 0.5
    assert mrr_at_k(RANKING, RELEVANCE, 1) == 0.0
    ranking = [f"n{i}" for i in range(10)] + ["b"]  # first relevant at rank 11
    assert mrr_at_k(ranking, RELEVANCE, 10) == 0.0


def test_zero_relevance_counts_as_not_relevant():
    only_zero = {"f": 0}
    assert query_metrics(["f"], only_zero) == dict.fromkeys(METRICS, 0.0)
    assert mrr_at_k(["f", "b"], RELEVANCE, 10) == 0.5  # f (0) is skipped over
    assert recall_at_k(["f"], RELEVANCE, 1) == 0.0


def test_query_metrics_all_names():
    m = query_metrics(["x", "y", "z", "b"], {"b": 1})
    # one relevant at rank 4: nDCG = (1/log2(5)) / 1, R@1 0, R@5 1, MRR 1/4
    assert m == pytest.approx(
        {
            "ndcg@10": 1 / math.log2(5),
            "recall@1": 0.0,
            "recall@5": 1.0,
            "recall@10": 1.0,
            "recall@100": 1.0,
            "mrr@10": 0.25,
        }
    )


def test_evaluate_averages_per_query_and_skips_unjudged():
    qrels = {
        "q1": {"a": 1},  # found at rank 1: every metric 1
        "q2": {"z": 1},  # found at rank 2
        "q3": {"x": 0},  # no relevant item: not scored
        "q4": {"m": 1},  # no ranking at all: counts as zeros
    }
    rankings = {"q1": ["a", "b"], "q2": ["y", "z"], "q3": ["x"]}
    got = evaluate(rankings, qrels)
    # mean over q1, q2, q4
    assert got["recall@1"] == pytest.approx((1 + 0 + 0) / 3)
    assert got["recall@5"] == pytest.approx((1 + 1 + 0) / 3)
    assert got["mrr@10"] == pytest.approx((1 + 0.5 + 0) / 3)
    assert got["ndcg@10"] == pytest.approx((1 + 1 / math.log2(3) + 0) / 3)
    assert evaluate({}, {"q": {"x": 0}}) == dict.fromkeys(METRICS, 0.0)


def test_recall_at_100_needs_deep_rankings():
    ranking = [f"n{i}" for i in range(99)] + ["hit"]
    assert recall_at_k(ranking, {"hit": 1}, 100) == 1.0
    assert recall_at_k(ranking + ["late"], {"late": 1}, 100) == 0.0


def test_dedupe_keeps_first_position():
    assert dedupe(["d1", "d2", "d1", "d3", "d2"]) == ["d1", "d2", "d3"]
