"""`mmretrieve search --filter` end to end on LanceDB and on a real Milvus server: only matching
items come back, and k of them when k exist although better matches are filtered out. Models:
tiny RANDOM BERT and CLIP of the real architectures (tests/conftest.py)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from helpers.filter_corpus import filter_corpus
from mmretrieve import Index
from mmretrieve.interfaces.cli import main

pytestmark = pytest.mark.slow
N, KEPT, K = 60, 8, 5  # the 8 German articles rank last on the text query


def run(*args: str) -> dict:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout[result.stdout.index("{") :])


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return filter_corpus(tmp_path_factory.mktemp("filters"), N, german=lambda i: i >= N - KEPT)


@pytest.fixture(scope="module", params=["lance", "milvus"])
def location(request, tmp_path_factory, corpus, tiny_text_model_dir, tiny_clip_model_dir):
    if request.param == "lance":
        where = str(tmp_path_factory.mktemp("lance") / "idx")
    else:
        from test_milvus_equality import _milvus_address

        where = f"milvus://{_milvus_address()}/filters_{uuid.uuid4().hex[:10]}?index=flat"
    models = ["--text-model", str(tiny_text_model_dir), "--image-model", str(tiny_clip_model_dir)]
    report = run("index", str(corpus), "--index", where, *models, "--no-progress", "--json")
    assert report["report"]["articles_added"] == N
    yield where
    if request.param == "milvus":
        index = Index.open(where, create=False)
        index.store.drop()
        index.close()


def search(where: str, *args: str) -> dict:
    return run("search", *args, "--index", where, "-k", str(K), "--json")


def test_license_filter_returns_k_matching_articles(location):
    out = search(location, "bridge river city", "--filter", "license=CC BY-SA 4.0")
    assert out["query"]["filters"] == ["license=CC BY-SA 4.0"]
    assert len(out["articles"]) == K
    for article in out["articles"]:
        # Passages by their article's licence; an image by its own (in this corpus the CC0
        # articles hold the CC BY-SA photos).
        if int(article["article"]["id"][3:]) >= N - KEPT:
            assert article["article"]["license"] == "CC BY-SA 4.0"
            assert article["images"] == []
        else:
            assert article["passages"] == [] and article["images"]
    for hit in out["hits"]:
        assert (int(hit["article_id"][3:]) >= N - KEPT) == (hit["kind"] == "passage")
    # k passages' articles when the text filter is on a field images share with them:
    out = search(location, "bridge river city", "--filter", "lang=de")
    ids = [a["article"]["id"] for a in out["articles"]]
    assert len(ids) == K and all(int(i[3:]) >= N - KEPT for i in ids), ids


def test_not_and_prefix_filters(location, corpus):
    out = search(
        location,
        "--image",
        str(corpus / "a00" / "photo.png"),
        "--filter",
        "lang!=en",
        "--filter",
        "url=https://de.example.org/*",
    )
    ids = [a["article"]["id"] for a in out["articles"]]
    assert len(ids) == K and all(int(i[3:]) >= N - KEPT for i in ids), ids
    assert all(int(h["article_id"][3:]) >= N - KEPT for h in out["hits"])


def test_unknown_field_is_a_usage_error(location):
    result = CliRunner().invoke(
        main, ["search", "bridge", "--index", location, "--filter", "year=2020"]
    )
    assert result.exit_code != 0
    assert "no indexed article has the field 'year'" in result.output
