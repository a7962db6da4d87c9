"""Ranking metrics, computed per query and then averaged (pure Python).

Conventions follow BEIR / ``pytrec_eval`` so published figures are comparable:

- relevance is graded; a judgement of 0 (or below) counts as non-relevant;
- nDCG@k uses linear gain (``rel / log2(rank + 1)``) and the ideal ranking of *all* judged
  relevant items of the query, whether retrieved or not;
- Recall@k is the fraction of the query's relevant items found in the top k (for a query with one
  relevant item, as in Flickr30k / COCO text->image, this is the usual "hit in the top k");
- MRR@k is 1 / rank of the first relevant item in the top k, else 0.

A query without any relevant item cannot be scored and is left out of the averages (the caller
reports how many queries were scored).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

Qrels = Mapping[str, Mapping[str, int]]
"""query id -> item id -> graded relevance (0 = judged non-relevant)."""

METRICS: tuple[str, ...] = ("ndcg@10", "recall@1", "recall@5", "recall@10", "recall@100", "mrr@10")


def dcg(gains: Iterable[float]) -> float:
    """Discounted cumulative gain of gains listed in rank order (rank 1 first)."""
    return sum(g / math.log2(rank + 1) for rank, g in enumerate(gains, start=1))


def ndcg_at_k(ranking: Sequence[str], relevance: Mapping[str, int], k: int) -> float:
    """nDCG@k of one ranking; 0.0 when the query has no relevant item."""
    ideal = dcg(sorted((r for r in relevance.values() if r > 0), reverse=True)[:k])
    if ideal == 0:
        return 0.0
    gains = [max(relevance.get(item, 0), 0) for item in ranking[:k]]
    return dcg(gains) / ideal


def recall_at_k(ranking: Sequence[str], relevance: Mapping[str, int], k: int) -> float:
    """Fraction of the relevant items found in the top ``k``; 0.0 when there are none."""
    relevant = {item for item, r in relevance.items() if r > 0}
    if not relevant:
        return 0.0
    return len(relevant.intersection(ranking[:k])) / len(relevant)


def mrr_at_k(ranking: Sequence[str], relevance: Mapping[str, int], k: int) -> float:
    """Reciprocal rank of the first relevant item in the top ``k``, else 0.0."""
    for rank, item in enumerate(ranking[:k], start=1):
        if relevance.get(item, 0) > 0:
            return 1.0 / rank
    return 0.0


def query_metrics(ranking: Sequence[str], relevance: Mapping[str, int]) -> dict[str, float]:
    """Every metric of :data:`METRICS` for one query. ``ranking`` must hold distinct items."""
    return {
        "ndcg@10": ndcg_at_k(ranking, relevance, 10),
        "recall@1": recall_at_k(ranking, relevance, 1),
        "recall@5": recall_at_k(ranking, relevance, 5),
        "recall@10": recall_at_k(ranking, relevance, 10),
        "recall@100": recall_at_k(ranking, relevance, 100),
        "mrr@10": mrr_at_k(ranking, relevance, 10),
    }


def has_relevant(relevance: Mapping[str, int]) -> bool:
    return any(r > 0 for r in relevance.values())


def evaluate(rankings: Mapping[str, Sequence[str]], qrels: Qrels) -> dict[str, float]:
    """Mean of each metric over the queries of ``qrels`` that have a relevant item.

    A scored query missing from ``rankings`` counts as an empty ranking (all metrics 0), so a
    system cannot look better by failing to answer. Returns all zeros when nothing is scored.
    """
    scored = [qid for qid, rel in qrels.items() if has_relevant(rel)]
    totals = dict.fromkeys(METRICS, 0.0)
    for qid in scored:
        for name, value in query_metrics(rankings.get(qid, ()), qrels[qid]).items():
            totals[name] += value
    n = len(scored)
    return {name: (total / n if n else 0.0) for name, total in totals.items()}


def dedupe(items: Iterable[str]) -> list[str]:
    """Items in order, each kept at its first (best) position."""
    return list(dict.fromkeys(items))
