"""What a confidence means, measured: how often the top article is relevant at each confidence,
and how confident the top article is when the routes asked found nothing relevant.

For every query of an article-level data set (e.g. ../shared/data/mixed_dev) the routes are asked
once, as ``mmretrieve eval`` does, and ranked by the product's own ``rank`` with the default
settings. Then the query is ranked again with only the routes whose candidates hold none of its
relevant articles (for a SQuAD question, the routes over captions; for a caption, the routes
over passages): a search over items that have nothing to do with it. One JSON object: per
confidence bin, how many queries' top article fell there and what share of them was relevant;
and, per query family, the share of those searches whose top article still reached 0.5 and 0.8
(what ``min_score`` lets through).

Example:
    python bench/confidence.py ../shared/data/mixed_dev --index /tmp/mixed-idx \\
        --text-model ../shared/models/all-MiniLM-L6-v2 --image-model /tmp/clip-random
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict

BINS = (0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99, 1.01)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__)
    parser.add_argument("dataset")
    parser.add_argument("--index", required=True, help="index folder (built when missing)")
    parser.add_argument("--text-model", default=None)
    parser.add_argument("--image-model", default=None)
    parser.add_argument("--limit", type=int, default=None, help="first N queries only")
    args = parser.parse_args(argv)

    from mmretrieve.evaluation.building import open_eval_index
    from mmretrieve.evaluation.datasets import load_dataset
    from mmretrieve.evaluation.runner import ARTICLE_DEPTH, collect_runs
    from mmretrieve.retrieval import weights as W
    from mmretrieve.retrieval.searcher import DEFAULT_METHOD, SearchOptions, rank
    from mmretrieve.types import Article

    data = load_dataset(args.dataset).limited(args.limit)
    index, _ = open_eval_index(
        data, args.index, text_model=args.text_model, image_model=args.image_model, progress=True
    )
    runs = collect_runs(index, data.queries, W.ALL_ROUTES, depth=ARTICLE_DEPTH, progress=True)
    options = SearchOptions(k=10, method=DEFAULT_METHOD)
    weights = dict(W.DEFAULT_WEIGHTS)

    def bare(article_id: str) -> Article:
        return Article(id=article_id, title=article_id)

    def article_of(key: tuple[str, str]) -> str | None:
        return runs.rows.get(key, {}).get("article_id")

    bins: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    empty_top: dict[str, list[float]] = defaultdict(list)
    for query, lists, nulls in zip(data.queries, runs.lists, runs.nulls, strict=True):
        relevant = {a for a, r in data.qrels[query.id].items() if r > 0}
        _, grouped = rank(lists, runs.rows, bare, weights, options, nulls)
        if grouped:
            top = grouped[0]
            label = _bin(top.confidence or 0.0)
            bins[label][0] += 1
            bins[label][1] += top.article.id in relevant
        blind = {
            name: items
            for name, items in lists.items()
            if not any(article_of(k) in relevant for k, _ in items)
        }
        if not blind:
            continue
        _, without = rank(blind, runs.rows, bare, weights, options, nulls)
        family = query.family or "all"
        empty_top[family].append((without[0].confidence or 0.0) if without else 0.0)
    out = {
        "dataset": data.name,
        "queries": len(data.queries),
        "top_article_by_confidence": {
            label: {"queries": n, "relevant_share": round(hits / n, 3) if n else None}
            for label, (n, hits) in sorted(bins.items())
        },
        "routes_that_found_nothing_relevant": {
            family: {
                "queries": len(values),
                "share_top_confidence_at_least_0.5": round(
                    sum(v >= 0.5 for v in values) / len(values), 3
                ),
                "share_at_least_0.8": round(sum(v >= 0.8 for v in values) / len(values), 3),
            }
            for family, values in empty_top.items()
        },
        "models": {r: (m or {}).get("name") for r, m in index.manifest["models"].items()},
    }
    index.close()
    json.dump(out, sys.stdout, indent=2)
    print()
    return 0


def _bin(value: float) -> str:
    for lo, hi in zip(BINS, BINS[1:], strict=False):
        if lo <= value < hi:
            return f"{lo:.2f}-{min(hi, 1.0):.2f}"
    return "1.00"


if __name__ == "__main__":
    raise SystemExit(main())
