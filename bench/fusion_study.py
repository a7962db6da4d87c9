"""Fusion study: which fusion method and dense:BM25 weights make a robust default (docs/QUALITY.md).

Runs the product's text->passage routes (BGE-style dense, BM25) once per query through
``mmretrieve.evaluation`` and scores every fusion setting from those same route lists, on three
query sets with the real text model ``../shared/models/all-MiniLM-L6-v2``:

1. ``squad-paragraph``: SQuAD v1.1 dev, 10,570 questions -> their paragraph among 2,067.
   Questions were written while looking at the paragraph, so word overlap is high: BM25-strong.
2. ``squad-article``: the same runs judged at article level (48 articles; relevant = the
   question's article). Coarser, topical relevance. An article ranks by its best paragraph;
   ``squad-article-grouped`` ranks it as the product's grouping does (decayed sum of its best
   three items' fused scores), which is where score-normalised fusions can differ from ranks.
3. ``coco-captions``: caption -> caption retrieval on coco_mini (795 captions of 159 images; the
   other 4 captions of the query's image are relevant, the query itself is not counted). Five
   people describing one picture use different words: a paraphrase task where dense is strong.
   all-MiniLM-L6-v2 was trained on COCO caption pairs, so dense is flattered here (see QUALITY.md).

Usage (from the repository root; about 10 minutes on 2 CPU cores):

    nice .venv/bin/python bench/fusion_study.py --cache /tmp/fscache --out /tmp/fusion_study.json
    .venv/bin/python bench/fusion_study.py --limit 300   # quick look
"""

from __future__ import annotations

import argparse
import json
import pickle
import platform
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from mmretrieve.config import settings_from_env  # noqa: E402
from mmretrieve.evaluation.building import open_eval_index  # noqa: E402
from mmretrieve.evaluation.datasets import EvalDataset, EvalQuery, load_dataset  # noqa: E402
from mmretrieve.evaluation.metrics import evaluate, has_relevant, ndcg_at_k  # noqa: E402
from mmretrieve.evaluation.report import format_markdown  # noqa: E402
from mmretrieve.evaluation.runner import (  # noqa: E402
    FusionSetting,
    RouteRuns,
    collect_runs,
)
from mmretrieve.retrieval import weights as W  # noqa: E402
from mmretrieve.retrieval.grouping import article_score  # noqa: E402
from mmretrieve.retrieval.searcher import MIN_DEPTH  # noqa: E402
from mmretrieve.types import Article  # noqa: E402

DENSE, BM25 = W.TEXT_PASSAGE_DENSE, W.TEXT_PASSAGE_BM25
ROUTES = (DENSE, BM25)
RATIOS = ((1.0, 1.0), (2.0, 1.0), (3.0, 1.0), (1.0, 2.0), (1.0, 3.0))  # dense : bm25
METHODS = ("rrf", "minmax", "zscore", "dbsf", "zscore-family")


def settings_grid() -> dict[str, FusionSetting]:
    grid: dict[str, FusionSetting] = {}
    for method in METHODS:
        for dense, bm25 in RATIOS:
            name = f"fusion:{method} {dense:g}:{bm25:g}"
            grid[name] = FusionSetting({DENSE: dense, BM25: bm25}, method)
    return grid


def coco_captions(data: Path) -> EvalDataset:
    """coco_mini captions as a text corpus: each caption is a document and a query."""
    coco = load_dataset(data / "coco_mini")
    image_of = {q.id: next(iter(rel)) for q, rel in ((q, coco.qrels[q.id]) for q in coco.queries)}
    by_image: dict[str, list[str]] = {}
    for qid, image in image_of.items():
        by_image.setdefault(image, []).append(qid)
    articles = [Article(id=q.id, title=q.id, text=str(q.text)) for q in coco.queries]
    qrels = {
        q.id: {other: 1 for other in by_image[image_of[q.id]] if other != q.id}
        for q in coco.queries
    }
    queries = [EvalQuery(q.id, q.text) for q in coco.queries]
    return EvalDataset("coco-captions", "derived", articles, [], queries, qrels, True)


def article_level(
    runs: RouteRuns, squad: EvalDataset
) -> tuple[RouteRuns, dict[str, dict[str, int]]]:
    """The same route lists with paragraphs mapped to their article (title)."""
    title = {a.id: a.title for a in squad.articles}
    units = {key: title.get(unit, unit) for key, unit in runs.units.items()}
    qrels = {q: {title[d]: 1 for d, r in rel.items() if r > 0} for q, rel in squad.qrels.items()}
    return replace(runs, units=units), qrels


def grouped_rankings(
    runs: RouteRuns, setting: FusionSetting | str, route_depth: int | None
) -> dict[str, list[str]]:
    """Units ranked as the product ranks articles: the decayed sum of an article's best items'
    fused scores (``retrieval.grouping.article_score``), not just its best item."""
    out: dict[str, list[str]] = {}
    for qid, items in runs.ranked(setting, route_depth):
        scores: dict[str, list[float]] = {}
        for key, score in items:
            scores.setdefault(runs.units[key], []).append(score)
        grouped = {unit: article_score(values) for unit, values in scores.items()}
        out[qid] = sorted(grouped, key=lambda u: (-grouped[u], u))
    return out


def score_all(
    runs: RouteRuns,
    qrels: dict[str, dict[str, int]],
    exclude_self: bool,
    grouped: bool = False,
    route_depth: int | None = None,
) -> tuple[dict[str, Any], dict[str, list[float]]]:
    """Every single route and every setting of the grid, each route cut to ``route_depth``:
    mean figures, and each query's nDCG@10 (for paired standard errors)."""
    results: dict[str, dict[str, float]] = {}
    per_query: dict[str, list[float]] = {}
    settings: dict[str, FusionSetting | str] = {route: route for route in ROUTES}
    settings.update(settings_grid())
    scored = [q for q, rel in qrels.items() if has_relevant(rel)]
    for name, setting in settings.items():
        if grouped:
            ranked = grouped_rankings(runs, setting, route_depth)
        else:
            ranked = runs.rankings(setting, exclude_self, route_depth=route_depth)
        results[name] = evaluate(ranked, qrels)
        per_query[name] = [ndcg_at_k(ranked.get(q, []), qrels[q], 10) for q in scored]
    return results, per_query


def cached_runs(
    cache: Path | None, key: str, dataset: EvalDataset, args: argparse.Namespace
) -> tuple[RouteRuns, EvalDataset, dict[str, Any]]:
    """run_set, kept in ``cache`` (a pickle of our own making) so re-scoring needs no re-run."""
    limit = args.limit
    tag = f"{key}-{limit or 'all'}-{args.runtime}-{args.precision}"
    path = cache / f"{tag}.pickle" if cache else None
    if path is not None and path.is_file():
        with path.open("rb") as fh:
            runs, timing = pickle.load(fh)
        return runs, dataset.limited(limit), timing
    runs, data, timing = run_set(dataset, args.text_model, limit, args.runtime, args.precision)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as fh:
            pickle.dump((runs, timing), fh)
    return runs, data, timing


def run_set(
    dataset: EvalDataset, model: str, limit: int | None, runtime: str, precision: str
) -> tuple[RouteRuns, EvalDataset, dict[str, Any]]:
    data = dataset.limited(limit)
    with tempfile.TemporaryDirectory(prefix="fusion-study-") as tmp:
        index, index_s = open_eval_index(
            dataset,
            None,
            text_model=model,
            image_model="none",
            settings=settings_from_env(image_model="none", runtime=runtime, precision=precision),
            workdir=tmp,
        )
        with index:
            runs = collect_runs(index, data.queries, ROUTES, depth=100, batch_size=64)
            encoder = index.manifest.get("runtime")
    timing = {
        "index_s": index_s,
        "encode_s": runs.encode_s,
        "search_s": runs.search_s,
        "queries": len(data.queries),
        "documents": len(dataset.articles),
        "encoder": encoder,
    }
    return runs, data, timing


def summarise(
    sets: dict[str, dict[str, Any]], per_query: dict[str, dict[str, list[float]]]
) -> list[dict[str, Any]]:
    """Per setting and set: nDCG@10 minus the better single route there, with the standard error
    of that paired difference over the queries; worst case first."""
    rows = []
    for name in next(iter(sets.values())):
        row: dict[str, Any] = {"setting": name}
        for set_name, results in sets.items():
            best = max(ROUTES, key=lambda r: results[r]["ndcg@10"])
            diff = np.asarray(per_query[set_name][name]) - np.asarray(per_query[set_name][best])
            row[set_name] = results[name]["ndcg@10"] - results[best]["ndcg@10"]
            row[f"{set_name}:se"] = float(diff.std(ddof=1) / np.sqrt(len(diff)))
        row["worst_delta"] = min(row[s] for s in sets)
        rows.append(row)
    return sorted(rows, key=lambda r: -r["worst_delta"])


def environment() -> dict[str, str]:
    import lancedb
    import numpy
    import torch
    import transformers

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "lancedb": lancedb.__version__,
        "numpy": numpy.__version__,
        "cpu": cpu,
        "platform": platform.platform(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument(
        "--text-model", default=str(REPO.parent / "shared" / "models" / "all-MiniLM-L6-v2")
    )
    parser.add_argument("--runtime", default="torch", help="encoder runtime (default torch)")
    parser.add_argument("--precision", default="fp32", help="encoder precision (default fp32)")
    parser.add_argument("--limit", type=int, default=None, help="queries per set (default: all)")
    parser.add_argument(
        "--cache", type=Path, default=None, help="keep the route lists here to re-score quickly"
    )
    parser.add_argument("--out", type=Path, default=None, help="write every figure here as JSON")
    args = parser.parse_args()

    started = time.time()
    squad = load_dataset(args.data / "squad_dev")
    runs, squad_q, t_squad = cached_runs(args.cache, "squad", squad, args)
    art_runs, art_qrels = article_level(runs, squad_q)
    coco = coco_captions(args.data)
    coco_runs, coco_q, t_coco = cached_runs(args.cache, "coco", coco, args)
    inputs = {
        "squad-paragraph": (runs, squad_q.qrels, False),
        "squad-article": (art_runs, art_qrels, False),
        "squad-article-grouped": (art_runs, art_qrels, False, True),
        "coco-captions": (coco_runs, coco_q.qrels, True),
    }
    scored = {name: score_all(*given) for name, given in inputs.items()}
    # What the product ranks for k=10: each route fetches MIN_DEPTH candidates, not 100.
    scored_product = {
        name: score_all(*given, route_depth=MIN_DEPTH) for name, given in inputs.items()
    }
    sets = {name: results for name, (results, _) in scored.items()}
    product = {name: results for name, (results, _) in scored_product.items()}
    summary = summarise(sets, {name: pq for name, (_, pq) in scored.items()})
    summary_product = summarise(product, {name: pq for name, (_, pq) in scored_product.items()})
    out = {
        "model": args.text_model,
        "sets": sets,
        "summary": summary,
        "sets_product_depth": product,
        "summary_product_depth": summary_product,
        "timings": {"squad": t_squad, "coco-captions": t_coco},
        "environment": environment(),
        "seconds": time.time() - started,
        "command": " ".join(sys.argv),
    }
    for set_name, results in sets.items():
        print(f"\n### {set_name}\n")
        print(format_markdown(results))
    for title, rows in (
        ("100 candidates per route", summary),
        (f"{MIN_DEPTH} candidates per route (the product at k=10)", summary_product),
    ):
        print(f"\n### nDCG@10 minus the better single route (points ± paired SE), {title}\n")
        print("| setting | worst | " + " | ".join(sets) + " |")
        print("|---" * (len(sets) + 2) + "|")
        for row in rows:
            cells = " | ".join(f"{100 * row[s]:+.1f} ±{100 * row[s + ':se']:.1f}" for s in sets)
            print(f"| `{row['setting']}` | {100 * row['worst_delta']:+.1f} | {cells} |")
    print(f"\n{json.dumps(out['timings'])}\n{json.dumps(out['environment'])}")
    if args.out:
        args.out.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
