"""The calibrated ranking on real data: the REAL all-MiniLM-L6-v2 text model and a tiny
RANDOM-weight CLIP (same architecture) built by a fixture.

- wiki_tutorial through the Python API: min_score answers "nothing relevant" for an unrelated
  query and keeps the answer for a related one; an indexed photo queried with itself puts its
  article first with full confidence; the evaluation's article ranking is the one
  ``Index.search`` returns.
- a slice of mixed_dev through ``mmretrieve eval``: article-level figures per query family.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from mmretrieve import Index
from mmretrieve.evaluation.datasets import EvalQuery
from mmretrieve.evaluation.runner import FusionSetting, collect_runs
from mmretrieve.interfaces.cli import main
from mmretrieve.retrieval import weights as W
from mmretrieve.retrieval.searcher import DEFAULT_METHOD

pytestmark = pytest.mark.slow

BATMAN_IMAGE = "wiki_batman_abonia_18.jpg"


@pytest.fixture(scope="module")
def index(tmp_path_factory, wiki_tutorial_dir, minilm_dir, tiny_clip_model_dir):
    path = tmp_path_factory.mktemp("ranking") / "idx"
    idx = Index.open(path, text_model=str(minilm_dir), image_model=str(tiny_clip_model_dir))
    report = idx.add(wiki_tutorial_dir)
    assert not report.skipped
    idx.path = path  # for the CLI tests
    yield idx
    idx.close()


def test_min_score_answers_nothing_for_an_unrelated_query(index):
    unrelated = index.search(text="lattice quantum chromodynamics gluon propagator", k=5)
    assert unrelated.articles, "without min_score the closest matches come back"
    assert all(a.confidence is not None and a.confidence < 0.5 for a in unrelated.articles)
    filtered = index.search(
        text="lattice quantum chromodynamics gluon propagator", k=5, min_score=0.5
    )
    assert filtered.articles == [] and filtered.hits == []

    related = index.search(text="Who is Bruce Wayne?", k=5, min_score=0.5)
    assert related.articles and related.articles[0].article.title.lower() == "batman"
    assert related.articles[0].confidence is not None and related.articles[0].confidence >= 0.5


def test_cli_why_and_min_score(index):
    def cli(*args: str) -> str:
        result = CliRunner().invoke(main, [*args, "--index", str(index.path)])
        assert result.exit_code == 0, result.output
        return result.stdout

    shown = cli("search", "Who is Bruce Wayne?", "-k", "2", "--why")
    first = shown.splitlines()[0]
    assert first.lower().startswith("1. batman") and "confidence" in first
    assert "why: " in shown and "text->passage:dense" in shown  # what each route added
    nothing = cli("search", "lattice quantum chromodynamics gluon propagator", "--min-score", "0.5")
    assert nothing.startswith("Nothing relevant")
    data = json.loads(cli("search", "Who is Bruce Wayne?", "--json", "--min-score", "0.5"))
    top = data["articles"][0]
    assert top["confidence"] >= 0.5 and data["query"]["min_score"] == 0.5
    assert sum(top["contributions"].values()) == pytest.approx(top["score"], abs=1e-4)


def test_an_indexed_photo_puts_its_article_first_with_full_confidence(index, shared_dir):
    image = shared_dir / "data" / "query_images" / "images" / BATMAN_IMAGE
    result = index.search(image=image, k=5)
    top = result.articles[0]
    assert top.article.title.lower() == "batman"
    assert top.confidence is not None and top.confidence > 0.95
    first = result.hits[0]
    assert (first.kind, first.id) == ("image", "abonia_18")
    # Why: image->image added most of its score, and the parts add up to the score.
    assert max(first.contributions, key=first.contributions.get) == "image->image"
    assert sum(first.contributions.values()) == pytest.approx(first.score)
    assert sum(top.contributions.values()) == pytest.approx(top.score)


def test_bat_man_with_the_photo_ranks_batman_first(index, shared_dir):
    image = shared_dir / "data" / "query_images" / "images" / BATMAN_IMAGE
    result = index.search(text="Bat man", image=image, k=5)
    assert result.articles[0].article.title.lower() == "batman"
    parts = {r.split("->")[0] for r, v in result.articles[0].contributions.items() if v > 0}
    assert parts == {"text", "image"}  # both parts of the query count


def test_evaluation_ranks_articles_exactly_as_search_does(index, shared_dir):
    image = str(shared_dir / "data" / "query_images" / "images" / BATMAN_IMAGE)
    queries = [
        EvalQuery("q1", text="Who is Bruce Wayne?"),
        EvalQuery("q2", text="Which paintings did Van Gogh make?"),
        EvalQuery("q3", image=image),
        EvalQuery("q4", text="Bat man", image=image),
        EvalQuery("q5", text="a vampire film from Germany"),
    ]
    runs = collect_runs(index, queries, W.ALL_ROUTES, depth=50)
    ranked = runs.article_rankings(FusionSetting(dict(W.DEFAULT_WEIGHTS), DEFAULT_METHOD), 10)
    for q in queries:
        found = index.search(text=q.text, image=q.image, k=10)
        assert ranked[q.id] == [a.article.id for a in found.articles], q


def _slice_of_mixed_dev(src: Path, dst: Path, per_family: int = 6) -> None:
    """The articles that hold a photo, 150 others, and the first queries of each family."""
    images = [json.loads(x) for x in (src / "images.jsonl").read_text().splitlines() if x]
    holders = {i["article_id"] for i in images}
    corpus = [json.loads(x) for x in (src / "corpus.jsonl").read_text().splitlines() if x]
    others = [a for a in corpus if a["id"] not in holders][:150]
    kept = [a for a in corpus if a["id"] in holders] + others
    dst.mkdir()
    (dst / "corpus.jsonl").write_text("".join(json.dumps(a) + "\n" for a in kept))
    shutil.copy(src / "images.jsonl", dst / "images.jsonl")
    (dst / "images").symlink_to(src / "images")
    (dst / "query_images").symlink_to(src / "query_images")
    ids = {a["id"] for a in kept}
    qrels = [line.split("\t") for line in (src / "qrels.tsv").read_text().splitlines()[1:]]
    relevant = {q for q, a, _ in qrels if a in ids}
    counts: dict[str, int] = {}
    chosen = []
    for line in (src / "queries.jsonl").read_text().splitlines():
        q = json.loads(line)
        if q["id"] in relevant and counts.get(q["family"], 0) < per_family:
            counts[q["family"]] = counts.get(q["family"], 0) + 1
            chosen.append(q)
    (dst / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in chosen))
    header = (src / "qrels.tsv").read_text().splitlines()[0]
    keep = {q["id"] for q in chosen}
    lines = [header] + ["\t".join(r) for r in qrels if r[0] in keep]
    (dst / "qrels.tsv").write_text("\n".join(lines) + "\n")


def test_eval_reports_articles_per_query_family(
    tmp_path, shared_dir, minilm_dir, tiny_clip_model_dir
):
    data = tmp_path / "mixed"
    _slice_of_mixed_dev(shared_dir / "data" / "mixed_dev", data)

    def evaluate(*extra: str) -> str:
        models = ["--text-model", str(minilm_dir), "--image-model", str(tiny_clip_model_dir)]
        args = ["eval", str(data), *models, "--no-progress", *extra]
        result = CliRunner().invoke(main, args, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.stdout

    report = json.loads(evaluate("--json"))
    assert report["settings"]["level"] == "article"
    assert report["default"] == "fusion:calibrated"
    assert set(report["families"]) == {"passage", "picture", "photo", "combined"}
    for family in report["families"].values():
        assert family["queries"] == 6
        assert set(family["results"]) == set(report["results"])
    assert {"family:text->passage", "image->image", "fusion:zscore-family"} <= set(
        report["results"]
    )
    # The human table shows the same figures per family.
    text = evaluate("--method", "calibrated")
    assert "Per query family (" in text
    for family in ("passage", "picture", "photo", "combined"):
        assert f"{family} 6" in text
