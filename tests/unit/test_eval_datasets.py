"""Evaluation loaders on small files written here in each format, and the runner on them with the
FAKE encoders of tests/fakes.py (fast; the real model runs in tests/integration/test_eval_squad.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from fakes import FakeClipEncoder, FakeTextEncoder
from mmretrieve import Index, UsageError
from mmretrieve.evaluation.building import build_index
from mmretrieve.evaluation.datasets import detect_format, load_dataset, read_qrels
from mmretrieve.evaluation.metrics import METRICS
from mmretrieve.evaluation.report import format_report
from mmretrieve.evaluation.runner import (
    DEFAULT_NAME,
    EvalOptions,
    parse_routes,
    run_eval,
)


def _jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def _picture(path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    PILImage.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(path)


DOCS = {
    "bat": ("Batman", "Batman is a superhero. Bruce Wayne is the secret identity of Batman."),
    "gogh": ("Vincent van Gogh", "Vincent van Gogh was a Dutch painter of sunflowers."),
    "tomato": ("Tomato", "The tomato is a red fruit used in soup and sauce."),
}


@pytest.fixture
def normalised(tmp_path: Path) -> Path:
    root = tmp_path / "norm"
    (root / "images").mkdir(parents=True)
    _jsonl(root / "corpus.jsonl", [{"id": k, "title": t, "text": x} for k, (t, x) in DOCS.items()])
    for n, name in enumerate(("bat1", "soup1")):
        _picture(root / "images" / f"{name}.png", n)
    _jsonl(
        root / "images.jsonl",
        [
            {
                "id": "bat1",
                "file": "images/bat1.png",
                "article_id": "bat",
                "caption": "the bat signal",
            },
            {"id": "soup1", "file": "images/soup1.png", "caption": "a bowl of tomato soup"},
        ],
    )
    _jsonl(
        root / "queries.jsonl",
        [
            {"id": "q1", "text": "Who is Bruce Wayne?"},
            {"id": "q2", "text": "Dutch painter sunflowers"},
            {"id": "q3", "text": "bowl of soup", "image": "images/soup1.png"},
            {"id": "q4", "image": "images/bat1.png"},
            {"id": "q5", "text": "unjudged query"},
        ],
    )
    (root / "qrels.tsv").write_text(
        "query_id\tdoc_or_image_id\trelevance\n"
        "q1\tbat\t2\nq1\tbat1\t1\nq2\tgogh\t1\nq3\tsoup1\t1\nq4\tbat1\t1\nq5\ttomato\t0\n"
    )
    return root


def test_normalised_layout(normalised: Path):
    ds = load_dataset(normalised)
    assert ds.format == "normalised" and ds.name == "norm"
    assert [a.id for a in ds.articles] == ["bat", "gogh", "tomato"]
    assert ds.articles[0].title == "Batman" and ds.articles[0].text.startswith("Batman is")
    bat1, soup1 = ds.images
    assert bat1.article_id == "bat" and soup1.article_id is None
    assert Path(bat1.uri).is_absolute() and Path(bat1.uri).is_file()
    assert soup1.caption == "a bowl of tomato soup"
    q3, q4 = ds.queries[2], ds.queries[3]
    assert q3.text == "bowl of soup" and q3.image == str(normalised / "images" / "soup1.png")
    assert q4.text is None and q4.image is not None
    assert ds.qrels["q1"] == {"bat": 2, "bat1": 1}
    assert [q.id for q in ds.scored_queries()] == ["q1", "q2", "q3", "q4"]  # q5: only a 0
    assert [q.id for q in ds.limited(2).queries] == ["q1", "q2"]
    assert set(ds.limited(2).qrels) == {"q1", "q2"}
    assert ds.limited(None).articles == ds.articles


def test_normalised_images_only(tmp_path: Path):
    root = tmp_path / "imgs"
    root.mkdir()
    _picture(root / "a.png", 0)
    _jsonl(root / "images.jsonl", [{"id": "a", "file": "a.png"}])
    _jsonl(root / "queries.jsonl", [{"id": "c1", "text": "a caption"}])
    (root / "qrels.tsv").write_text("query_id\tdoc_or_image_id\trelevance\nc1\ta\t1\n")
    ds = load_dataset(root, "normalised")
    assert ds.articles == [] and [i.id for i in ds.images] == ["a"]


def test_qrels_header_and_trec_style(tmp_path: Path):
    path = tmp_path / "q.tsv"
    path.write_text("q1 0 d1 1\nq1 0 d2 0\nq2 0 d3 2\n")
    assert read_qrels(path) == {"q1": {"d1": 1, "d2": 0}, "q2": {"d3": 2}}
    path.write_text("query-id\tcorpus-id\tscore\nq1\td1\tx\n")
    with pytest.raises(UsageError, match="not a number"):
        read_qrels(path)


def _beir(root: Path) -> Path:
    (root / "qrels").mkdir(parents=True)
    _jsonl(
        root / "corpus.jsonl",
        [
            {"_id": "d1", "title": "Vitamin D", "text": "Vitamin D helps bones."},
            {"_id": "d2", "title": "", "text": "Untitled text."},
            {"_id": "q1", "title": "Self", "text": "A document with the query's id."},
        ],
    )
    _jsonl(
        root / "queries.jsonl",
        [{"_id": "q1", "text": "vitamin d bones"}, {"_id": "q2", "text": "x"}],
    )
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\t0\n")
    (root / "qrels" / "dev.tsv").write_text("query-id\tcorpus-id\tscore\nq2\td2\t1\n")
    return root


def test_beir_folder(tmp_path: Path):
    root = _beir(tmp_path / "scifact")
    assert detect_format(root) == "beir"
    ds = load_dataset(root)
    assert ds.format == "beir" and ds.ignore_identical_ids
    d1, d2, _ = ds.articles
    assert (
        d1.text == "Vitamin D Vitamin D helps bones." and d1.title == "Vitamin D"
    )  # BEIR: title + text
    assert d2.title == "d2" and d2.text == "Untitled text."
    assert ds.qrels == {"q1": {"d1": 1, "d2": 0}}
    assert [q.id for q in ds.scored_queries()] == ["q1"]
    assert load_dataset(root, "beir", split="dev").qrels == {"q2": {"d2": 1}}
    with pytest.raises(UsageError, match="split 'train'"):
        load_dataset(root, split="train")


def _karpathy(root: Path, kind: str) -> Path:
    images = []
    for n, split in enumerate(("test", "test", "train")):
        filename = f"img{n}.jpg"
        folder = root / ("val2014" if kind == "coco" else "flickr30k-images")
        folder.mkdir(parents=True, exist_ok=True)
        _picture(folder / filename, n)
        entry = {
            "filename": filename,
            "imgid": n,
            "split": split,
            "sentences": [
                {"raw": f"caption {j} of image {n}", "sentid": 10 * n + j} for j in range(6)
            ],
        }
        if kind == "coco":
            entry.update(filepath="val2014", cocoid=1000 + n)
        images.append(entry)
    name = "dataset_coco.json" if kind == "coco" else "dataset_flickr30k.json"
    (root / name).write_text(json.dumps({"images": images, "dataset": kind}))
    return root


@pytest.mark.parametrize("kind", ["flickr30k", "coco"])
def test_karpathy_caption_files(tmp_path: Path, kind: str):
    root = _karpathy(tmp_path / kind, kind)
    assert detect_format(root) == kind
    ds = load_dataset(root)
    assert ds.format == kind and ds.articles == []
    first = "1000" if kind == "coco" else "0"
    assert [i.id for i in ds.images] == [first, "1001" if kind == "coco" else "1"]
    assert len(ds.queries) == 10  # 2 test images, 5 captions each (the 6th is dropped)
    assert ds.queries[0].text == "caption 0 of image 0"
    assert ds.qrels["0"] == {first: 1} and ds.qrels["14"] == {ds.images[1].id: 1}
    one = load_dataset(root / f"dataset_{kind}.json", split="test:1")
    assert len(one.images) == 1 and len(one.queries) == 5
    assert len(load_dataset(root, kind, split="train").images) == 1
    with pytest.raises(UsageError, match="splits: test, train"):
        load_dataset(root, split="val")


def test_karpathy_missing_images_are_an_error(tmp_path: Path):
    root = _karpathy(tmp_path / "f", "flickr30k")
    (root / "flickr30k-images" / "img1.jpg").unlink()
    with pytest.raises(UsageError, match="1 of 2 images"):
        load_dataset(root)


def test_detect_and_bad_input(tmp_path: Path):
    with pytest.raises(UsageError, match="cannot tell the format"):
        detect_format(tmp_path)
    with pytest.raises(UsageError, match="unknown format"):
        load_dataset(tmp_path, "trec")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "queries.jsonl").write_text("{not json}\n")
    (bad / "qrels.tsv").write_text("q\td\t1\n")
    (bad / "corpus.jsonl").write_text(json.dumps({"id": "d", "text": "x"}) + "\n")
    with pytest.raises(UsageError, match="not valid JSON"):
        load_dataset(bad)


def test_parse_routes():
    assert parse_routes([]) is None
    assert parse_routes(["dense,bm25"]) == ("text->passage:dense", "text->passage:bm25")
    assert parse_routes(["text-image"]) == (
        "text->image:clip",
        "text->image:caption",
        "text->image:bm25",
    )
    assert parse_routes(["text->passage"]) == ("text->passage:dense", "text->passage:bm25")
    assert parse_routes(["image->image", "image->image"]) == ("image->image",)
    with pytest.raises(UsageError, match="unknown route"):
        parse_routes(["sparse"])


@pytest.fixture
def fake_index(tmp_path: Path, normalised: Path):
    ds = load_dataset(normalised)
    index = Index.open(
        tmp_path / "idx", text_encoder=FakeTextEncoder(), image_encoder=FakeClipEncoder()
    )
    build_index(index, ds)
    yield ds, index
    index.close()


def test_runner_routes_and_fusions_side_by_side(fake_index):
    ds, index = fake_index
    text_encoder = index.text_encoder
    report = run_eval(ds, index)
    assert report.queries == 4  # q5 has no relevant item
    assert text_encoder.queries_encoded == 3  # the text queries, once each (in one batch)
    names = set(report.results)
    assert {"text->passage:dense", "text->passage:bm25", "image->image"} <= names
    assert {"fusion:rrf", "fusion:minmax", "fusion:zscore", "fusion:dbsf"} <= names
    assert report.default in report.results and report.default != DEFAULT_NAME
    for figures in report.results.values():
        assert set(figures) == set(METRICS)
        assert all(0.0 <= v <= 1.0 for v in figures.values())
    # The image query's own picture is in the index: image->image finds it first.
    assert report.results["image->image"]["recall@1"] > 0
    data = report.as_dict()
    assert list(data)[:4] == ["dataset", "queries", "results", "default"]
    assert json.loads(json.dumps(data)) == data
    assert "fusion:rrf" in format_report(report)


def test_runner_weights_routes_and_limit(fake_index):
    ds, index = fake_index
    report = run_eval(ds, index, EvalOptions(routes=("text->passage:dense",), limit=2))
    assert report.queries == 2
    assert set(report.results) == {"text->passage:dense", DEFAULT_NAME}
    weighted = run_eval(
        ds, index, EvalOptions(weights={"text->passage:bm25": 0.0}, methods=("rrf",))
    )
    assert weighted.default == DEFAULT_NAME and "fusion:rrf" in weighted.results
    with pytest.raises(UsageError, match="unknown fusion method"):
        run_eval(ds, index, EvalOptions(methods=("borda",)))
