"""``mmretrieve eval`` end to end on a slice of ../shared/data/squad_dev with the REAL
all-MiniLM-L6-v2, checked against figures computed independently here: dense by numpy over the
indexed passages, BM25 straight from the store, the fusions and the metrics written out by hand."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from mmretrieve.interfaces.cli_eval import eval_cmd
from mmretrieve.retrieval import weights as W
from mmretrieve.retrieval.searcher import DEFAULT_METHOD

pytestmark = pytest.mark.slow

N_DOCS = 120
N_QUERIES = 150
DEPTH = 100
DENSE, BM25 = W.TEXT_PASSAGE_DENSE, W.TEXT_PASSAGE_BM25


@pytest.fixture(scope="module")
def squad_slice(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first N_DOCS paragraphs of squad_dev and every question about them."""
    src = shared_dir / "data" / "squad_dev"
    out = tmp_path_factory.mktemp("squad") / "squad_slice"
    out.mkdir()
    docs = [json.loads(line) for line in (src / "corpus.jsonl").open(encoding="utf-8")][:N_DOCS]
    keep = {d["id"] for d in docs}
    rows = [line.split("\t") for line in (src / "qrels.tsv").read_text().splitlines()[1:]]
    qrels = {q: d for q, d, _ in rows if d in keep}
    with (out / "corpus.jsonl").open("w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(d) + "\n" for d in docs)
    with (
        (out / "queries.jsonl").open("w", encoding="utf-8") as fh,
        (src / "queries.jsonl").open(encoding="utf-8") as queries,
    ):
        fh.writelines(line for line in queries if json.loads(line)["id"] in qrels)
    (out / "qrels.tsv").write_text(
        "query_id\tdoc_or_image_id\trelevance\n"
        + "".join(f"{q}\t{d}\t1\n" for q, d in qrels.items())
    )
    return out


def _invoke(*args: str) -> str:
    result = CliRunner().invoke(eval_cmd, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.fixture(scope="module")
def reported(squad_slice: Path, minilm_dir: Path, tmp_path_factory) -> tuple[dict, Path]:
    idx = tmp_path_factory.mktemp("eval") / "idx"
    out = _invoke(
        str(squad_slice),
        "--text-model",
        str(minilm_dir),
        "--index",
        str(idx),
        "--limit",
        str(N_QUERIES),
        "--no-progress",
        "--json",
        "--runtime",
        "torch",
        "--precision",
        "fp32",
    )
    return json.loads(out), idx


# -- the independent computation ------------------------------------------------------------------
def _rank_metrics(doc_ranking: list[str], relevant: str) -> dict[str, float]:
    """One relevant document per SQuAD question: everything follows from its rank."""
    r = doc_ranking.index(relevant) + 1 if relevant in doc_ranking else math.inf
    return {
        "ndcg@10": 1 / math.log2(r + 1) if r <= 10 else 0.0,
        "recall@1": float(r <= 1),
        "recall@5": float(r <= 5),
        "recall@10": float(r <= 10),
        "recall@100": float(r <= 100),
        "mrr@10": 1 / r if r <= 10 else 0.0,
    }


def _docs(passages: list[str], article_of: dict[str, str]) -> list[str]:
    return list(dict.fromkeys(article_of[p] for p in passages))


def _rrf(lists: dict[str, list[tuple[str, float]]], weights: dict[str, float]) -> list[str]:
    total: dict[str, float] = {}
    for name, items in lists.items():
        for rank, (pid, _) in enumerate(items, start=1):
            total[pid] = total.get(pid, 0.0) + weights[name] / (60 + rank)
    return sorted(total, key=lambda p: (-total[p], str(("passage", p))))


def _minmax(lists: dict[str, list[tuple[str, float]]], weights: dict[str, float]) -> list[str]:
    total: dict[str, float] = {}
    for name, items in lists.items():
        scores = [s for _, s in items]
        lo, hi = min(scores), max(scores)
        for pid, s in items:
            total[pid] = total.get(pid, 0.0) + weights[name] * (s - lo) / (hi - lo)
    return sorted(total, key=lambda p: (-total[p], str(("passage", p))))


def _zscore_family(
    lists: dict[str, list[tuple[str, float]]], weights: dict[str, float]
) -> list[str]:
    """Both routes are one family: weighted z-scores (population deviation) floored at 0, then
    min-max."""
    total: dict[str, float] = {}
    for name, items in lists.items():
        values = np.asarray([s for _, s in items], dtype=np.float64)
        mean, std = values.mean(), values.std()
        for pid, s in items:
            total[pid] = total.get(pid, 0.0) + weights[name] * max(0.0, (s - mean) / std)
    lo, hi = min(total.values()), max(total.values())
    scaled = {pid: (v - lo) / (hi - lo) for pid, v in total.items()}
    return sorted(scaled, key=lambda p: (-scaled[p], str(("passage", p))))


def _mean(per_query: list[dict[str, float]]) -> dict[str, float]:
    return {m: sum(q[m] for q in per_query) / len(per_query) for m in per_query[0]}


@pytest.fixture(scope="module")
def independent(reported, squad_slice: Path, minilm_dir: Path) -> dict[str, dict[str, float]]:
    from mmretrieve import Index
    from mmretrieve.encoders import load_text_encoder

    _, idx = reported
    qrels = {}
    for line in (squad_slice / "qrels.tsv").read_text().splitlines()[1:]:
        q, d, _ = line.split("\t")
        qrels[q] = d
    queries = [json.loads(line) for line in (squad_slice / "queries.jsonl").open()][:N_QUERIES]
    index = Index.open(idx, create=False)
    with index:
        rows = list(index.store.scan("passages", ["id", "article_id", "bge"]))
        article_of = {r["id"]: r["article_id"] for r in rows}
        bm25 = [
            [(h.id, h.score) for h in index.store.text_search("passages", q["text"], DEPTH)]
            for q in queries
        ]
    assert len(rows) >= N_DOCS  # a long paragraph may have been split
    # The passages' stored vectors (encoding them again in other batches would move scores by
    # ~1e-7, enough to swap near-ties); the questions encoded here, in the reference precision.
    passage_vectors = np.stack([np.asarray(r["bge"], dtype=np.float32) for r in rows])
    encoder = load_text_encoder(str(minilm_dir), runtime="torch", precision="fp32")
    query_vectors = encoder.encode_queries([q["text"] for q in queries])
    scores = np.asarray(query_vectors, dtype=np.float64) @ np.asarray(passage_vectors).T
    weights = {DENSE: W.DEFAULT_WEIGHTS[DENSE], BM25: W.DEFAULT_WEIGHTS[BM25]}
    per: dict[str, list[dict[str, float]]] = {
        DENSE: [],
        BM25: [],
        "rrf": [],
        "minmax": [],
        "zscore-family": [],
    }
    for i, q in enumerate(queries):
        order = np.argsort(-scores[i], kind="stable")[:DEPTH]
        dense = [(rows[j]["id"], float(scores[i, j])) for j in order]
        lists = {DENSE: dense, BM25: bm25[i]}
        relevant = qrels[q["id"]]
        per[DENSE].append(_rank_metrics(_docs([p for p, _ in dense], article_of), relevant))
        per[BM25].append(_rank_metrics(_docs([p for p, _ in bm25[i]], article_of), relevant))
        per["rrf"].append(_rank_metrics(_docs(_rrf(lists, weights), article_of)[:DEPTH], relevant))
        per["minmax"].append(
            _rank_metrics(_docs(_minmax(lists, weights), article_of)[:DEPTH], relevant)
        )
        per["zscore-family"].append(
            _rank_metrics(_docs(_zscore_family(lists, weights), article_of)[:DEPTH], relevant)
        )
    return {name: _mean(values) for name, values in per.items()}


# -- the checks -----------------------------------------------------------------------------------
def test_json_shape(reported):
    data, _ = reported
    assert data["dataset"] == "squad_slice" and data["queries"] == N_QUERIES
    names = {DENSE, BM25, "fusion:rrf", "fusion:minmax", "fusion:zscore", "fusion:dbsf"}
    assert names | {"fusion:zscore-family"} <= set(data["results"])
    assert data["default"] == f"fusion:{DEFAULT_METHOD}"
    for figures in data["results"].values():
        assert set(figures) == {
            "ndcg@10",
            "recall@1",
            "recall@5",
            "recall@10",
            "recall@100",
            "mrr@10",
        }
        assert all(0.0 <= v <= 1.0 for v in figures.values())
    assert data["timings"]["index_s"] > 0 and data["timings"]["encode_s"] > 0


@pytest.mark.parametrize(
    "name", [DENSE, BM25, "fusion:rrf", "fusion:minmax", "fusion:zscore-family"]
)
def test_figures_equal_independent_computation(reported, independent, name):
    data, _ = reported
    key = name.removeprefix("fusion:")
    assert data["results"][name] == pytest.approx(independent[key], abs=1e-9)


def test_real_model_figures_are_sane(reported):
    data, _ = reported
    r = data["results"]
    # Questions about 120 paragraphs: both routes find most answers in their top 10.
    assert r[DENSE]["recall@10"] > 0.8 and r[BM25]["recall@10"] > 0.8
    assert r[data["default"]]["ndcg@10"] >= min(r[DENSE]["ndcg@10"], r[BM25]["ndcg@10"])


def test_existing_index_is_reused_and_table_printed(reported, squad_slice, minilm_dir):
    _, idx = reported
    out = _invoke(
        str(squad_slice), "--index", str(idx), "--routes", "dense", "--limit", "5", "--no-progress"
    )
    assert "squad_slice: 5 queries" in out and DENSE in out and "index 0.0 s" in out
    assert "fusion:default *" in out
