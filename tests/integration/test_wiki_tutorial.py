"""The core on real data: ../shared/data/wiki_tutorial with the REAL all-MiniLM-L6-v2 text model and
a tiny RANDOM-weight CLIP (same architecture) built by a fixture. All of it through the CLI."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from mmretrieve.interfaces.cli import main

pytestmark = pytest.mark.slow

BATMAN_IMAGE = "wiki_batman_abonia_18.jpg"


def run(*args: str, code: int = 0, stderr: bool = False) -> str:
    """stdout of the command (with ``stderr``: both streams, as a terminal shows them)."""
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result.output if stderr else result.stdout


def _json_tail(output: str):
    """The JSON object a --json command printed (warnings go before it)."""
    return json.loads(output[output.index("{") :])


@pytest.fixture(scope="module")
def wiki_index(tmp_path_factory, wiki_tutorial_dir, minilm_dir, tiny_clip_model_dir) -> Path:
    idx = tmp_path_factory.mktemp("wiki") / "idx"
    out = run(
        "index",
        str(wiki_tutorial_dir),
        "--index",
        str(idx),
        "--text-model",
        str(minilm_dir),
        "--image-model",
        str(tiny_clip_model_dir),
        "--no-progress",
        "--json",
    )
    report = _json_tail(out)["report"]
    assert report["articles_added"] == 15 and report["images_added"] == 108
    assert report["skipped"] == []
    return idx


def search(idx: Path, *args: str) -> dict:
    return _json_tail(run("search", *args, "--index", str(idx), "--json"))


def test_bruce_wayne_finds_batman(wiki_index):
    result = search(wiki_index, "Who is Bruce Wayne?")
    assert result["articles"][0]["article"]["title"].lower() == "batman"
    assert result["articles"][0]["passages"], "the Batman card shows passages"
    assert set(result) >= {"query", "articles", "hits", "timings_ms"}


def test_van_gogh_paintings(wiki_index):
    result = search(wiki_index, "Which paintings did Van Gogh make?")
    assert result["articles"][0]["article"]["title"] == "Vincent van Gogh"


def test_image_query_returns_identical_image_first(wiki_index, shared_dir):
    image = shared_dir / "data" / "query_images" / "images" / BATMAN_IMAGE
    result = search(wiki_index, "--image", str(image), "-k", "5")
    top = result["hits"][0]
    assert (top["kind"], top["id"]) == ("image", "abonia_18")
    assert top["routes"]["image->image"] == pytest.approx(1.0, abs=1e-4)
    assert len(result["articles"]) <= 5


def test_combined_query_batman_with_its_image(wiki_index, shared_dir):
    image = shared_dir / "data" / "query_images" / "images" / BATMAN_IMAGE
    result = search(wiki_index, "Bat man", "--image", str(image))
    first = result["articles"][0]
    assert first["article"]["title"].lower() == "batman"
    assert "abonia_18" in [img["id"] for img in first["images"]]


def test_human_output_and_info(wiki_index, shared_dir):
    out = run("search", "Who is Bruce Wayne?", "--index", str(wiki_index), "-k", "2")
    assert out.splitlines()[0].lower().startswith("1. batman")
    info = _json_tail(run("info", "--index", str(wiki_index), "--json"))
    assert info["counts"]["articles"] == 15 and info["counts"]["images"] == 108
    assert info["counts"]["passages"] > 15
    assert info["models"]["image"]["random"] is True
    assert info["models"]["text"]["dim"] == 384


def test_reindex_unchanged_and_one_edit(
    tmp_path, wiki_tutorial_dir, minilm_dir, tiny_clip_model_dir
):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(wiki_tutorial_dir / "images.jsonl", corpus)
    os.symlink(wiki_tutorial_dir / "images", corpus / "images")
    lines = (wiki_tutorial_dir / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
    small = [json.loads(line) for line in lines[:4]]
    for doc in small:  # keep the test quick: four articles, cut short
        doc["text"] = doc["text"][:3000]
    (corpus / "corpus.jsonl").write_text("\n".join(json.dumps(d) for d in small), encoding="utf-8")
    idx = str(tmp_path / "idx")
    models = ["--text-model", str(minilm_dir), "--image-model", str(tiny_clip_model_dir)]
    first = _json_tail(
        run("index", str(corpus), "--index", idx, *models, "--no-progress", "--json")
    )
    assert first["report"]["passages_encoded"] > 0
    again = _json_tail(run("index", str(corpus), "--index", idx, "--no-progress", "--json"))[
        "report"
    ]
    assert (again["passages_encoded"], again["images_encoded"]) == (0, 0)
    assert again["articles_unchanged"] == 4 and again["images_unchanged"] == 108

    small[2]["text"] += " An added closing sentence about something new."
    (corpus / "corpus.jsonl").write_text("\n".join(json.dumps(d) for d in small), encoding="utf-8")
    edited = _json_tail(run("index", str(corpus), "--index", idx, "--no-progress", "--json"))
    report, counts = edited["report"], edited["stats"]["counts"]
    assert (report["articles_updated"], report["articles_unchanged"]) == (1, 3)
    assert report["images_encoded"] == 0
    info = _json_tail(run("info", "--index", idx, "--json"))
    assert info["counts"] == counts
    from mmretrieve import Index

    with Index.open(idx) as index:
        n_edited = index.store.count("passages", {"article_id": small[2]["id"]})
    assert report["passages_encoded"] == n_edited


def test_bad_inputs_reported_rest_indexed(
    tmp_path, minilm_dir, tiny_clip_model_dir, wiki_tutorial_dir
):
    corpus = tmp_path / "flat"
    corpus.mkdir()
    (corpus / "Good article.txt").write_text(
        "A good article about owls. Owls hunt at night.", encoding="utf-8"
    )
    (corpus / "Latin article.txt").write_bytes("Café crème in Zürich. Ça va.".encode("latin-1"))
    (corpus / "Garbage.txt").write_bytes(bytes(range(256)) * 8)
    shutil.copy(wiki_tutorial_dir / "images" / "abonia_18.jpg", corpus / "fine.jpg")
    jpeg = (wiki_tutorial_dir / "images" / "abonia_18.jpg").read_bytes()
    (corpus / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 3])
    (corpus / "notes.xyz").write_text("?")
    report_file = tmp_path / "report.jsonl"
    out = run(
        "index",
        str(corpus),
        "--index",
        str(tmp_path / "idx"),
        "--text-model",
        str(minilm_dir),
        "--image-model",
        str(tiny_clip_model_dir),
        "--no-progress",
        "--report",
        str(report_file),
        code=3,
        stderr=True,
    )
    skipped = {
        Path(json.loads(line)["path"]).name: json.loads(line)["reason"]
        for line in report_file.read_text().splitlines()
    }
    assert set(skipped) == {"Garbage.txt", "truncated.jpg", "notes.xyz"}
    assert "Index now holds 2 articles" in out and "1 images" in out
    assert "truncated.jpg" in out  # also listed on the terminal
