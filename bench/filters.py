"""What a metadata filter costs a search: the same text queries with no filter and with filters of
different selectivity, on a generated text index (real all-MiniLM-L6-v2 queries, generated
passage vectors and text), through ``Index.search`` with the tables held as a server holds them.
A search reuses a filter's plan (the articles it keeps) for up to a second; ``plan_uncached``
is what making one costs (the first query with that filter).

Every filter here keeps at least k articles, and the bench checks each answer: k articles, all
meeting the filter.

    python bench/filters.py --json                 # 100,000 passages of 20,000 articles
    python bench/filters.py --quick                # 10,000 passages
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from query import Vectors, _vocabulary, synthetic_text, text_queries  # noqa: E402

LICENSES = ["CC BY-SA 4.0", "CC BY 4.0", "CC0", "Public domain"]  # a quarter of articles each
LANGS = ["en"] * 9 + ["de"]  # a tenth German
FILTERS: dict[str, Any] = {
    "none": None,
    "license= (25 % kept)": {"license": "CC0"},
    "license!= (75 % kept)": {"license!=": "CC0"},
    "lang= meta field (10 % kept)": {"lang": "de"},
    "url prefix (50 % kept)": {"url": "https://en.example.org/*"},
}


def _article(j: int) -> dict[str, Any]:
    lang = LANGS[j % len(LANGS)]
    return {
        "license": LICENSES[j % len(LICENSES)],
        "url": f"https://{'en' if j % 2 == 0 else 'fr'}.example.org/wiki/{j}",
        "lang": lang,
    }


def build(root: Path, passages: int, per_article: int, text_dir: Path) -> Path:
    from mmretrieve import Index
    from mmretrieve.documents.chunking import passage_id

    if (root / ".complete").is_file():
        return root
    vec, rng, vocab = Vectors(7), random.Random(7), _vocabulary()
    articles = max(1, passages // per_article)
    index = Index.open(root, text_model=str(text_dir), image_model="none")
    store = index.store
    store.ann_min_rows = 10**12  # exact search: the filter's cost, not an index's
    step = 10_000
    for start in range(0, passages, step):
        n = min(step, passages - start)
        bge = vec.sample(n, 384)
        rows = []
        for i in range(n):
            k = start + i
            rows.append(
                {
                    "id": passage_id(f"a{k % articles}", k // articles),
                    "article_id": f"a{k % articles}",
                    "text": synthetic_text(rng, vocab, 120),
                    "position": k // articles,
                    "section": "",
                    "content_hash": "h",
                    "bge": bge[i],
                }
            )
        store.upsert("passages", rows)
    rows = []
    for j in range(articles):
        meta = _article(j)
        rows.append(
            {
                "id": f"a{j}",
                "title": f"Article {j}",
                "url": meta["url"],
                "license": meta["license"],
                "source": "bench",
                "content_hash": "h",
                "n_passages": per_article,
                "meta": json.dumps({"lang": meta["lang"]}),
            }
        )
    store.upsert("articles", rows)
    store.optimize()
    index.close()
    (root / ".complete").write_text("ok")
    return root


def _holds(filters: Any, article_id: str) -> bool:
    from mmretrieve.retrieval.filters import parse_filters

    record = _article(int(article_id[1:]))
    return all(c.holds(record) for c in parse_filters(filters))


def run(root: Path, text_dir: Path, n_queries: int, k: int, rounds: int) -> dict[str, Any]:
    from mmretrieve import Index
    from mmretrieve.retrieval.filters import parse_filters, plan_filters

    queries = text_queries(n_queries)
    out: dict[str, Any] = {}
    with Index.open(root, text_model=str(text_dir), create=False) as index:
        index.hold_tables()
        for q in queries[:3]:  # warm the model and the held tables
            index.search(q, k=k)
        samples: dict[str, dict[str, list[float]]] = {name: {} for name in FILTERS}
        for _ in range(rounds):  # alternating rounds: drift hits every filter alike
            for name, filters in FILTERS.items():
                for q in queries:
                    result = index.search(q, k=k, filters=filters)
                    ids = [a.article.id for a in result.articles]
                    assert len(ids) == k, (name, ids)
                    assert all(_holds(filters, i) for i in ids), (name, ids)
                    for key in ("total_ms", "search_ms", "filter_ms"):
                        if key in result.timings:
                            samples[name].setdefault(key, []).append(result.timings[key])
        plans: dict[str, float] = {}
        for name, filters in FILTERS.items():  # a plan made afresh (the first query's cost)
            if filters:
                took = []
                for _ in range(5):
                    t0 = time.perf_counter()
                    plan_filters(
                        index.store, parse_filters(filters), has_images=False, has_meta=True
                    )
                    took.append((time.perf_counter() - t0) * 1000)
                plans[name] = statistics.median(took)
        base = statistics.median(samples["none"]["total_ms"])
        for name, got in samples.items():
            total = statistics.median(got["total_ms"])
            out[name] = {
                "total_p50_ms": round(total, 2),
                "routes_p50_ms": round(statistics.median(got["search_ms"]), 2),
                "filter_plan_p50_ms": round(statistics.median(got.get("filter_ms", [0.0])), 2),
                "plan_uncached_p50_ms": round(plans.get(name, 0.0), 2),
                "ratio_to_no_filter": round(total / base, 2),
                "queries": len(got["total_ms"]),
            }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10,000 passages, 10 queries")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    parser.add_argument("--passages", type=int, default=None, help="default 100000")
    parser.add_argument("--per-article", type=int, default=5, help="passages per article")
    parser.add_argument("--queries", type=int, default=None, help="per filter and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument(
        "--text-model",
        type=Path,
        default=Path(__file__).resolve().parents[1].parent / "shared/models/all-MiniLM-L6-v2",
    )
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache/mmretrieve-bench")
    args = parser.parse_args()
    passages = args.passages or (10_000 if args.quick else 100_000)
    n_queries = args.queries or (10 if args.quick else 20)
    t0 = time.perf_counter()
    root = build(
        args.cache / f"filters-{passages}-{args.per_article}",
        passages,
        args.per_article,
        args.text_model,
    )
    built_s = time.perf_counter() - t0
    figures = run(root, args.text_model, n_queries, args.k, args.rounds)
    import mmretrieve

    report = {
        "machine": f"{platform.processor() or platform.machine()}, {platform.python_version()}",
        "mmretrieve": getattr(mmretrieve, "__version__", "?"),
        "passages": passages,
        "articles": passages // args.per_article,
        "k": args.k,
        "build_s": round(built_s, 1),
        "filters": figures,
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for name, row in figures.items():
            print(f"{name:32s} {row}")


if __name__ == "__main__":
    main()
