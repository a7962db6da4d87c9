"""Indexing, routing, fusion and grouping end to end through a real LanceDB store in a temp dir,
with FAKE deterministic encoders (tests/fakes.py) instead of models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from fakes import SAMPLE_ARTICLES, FakeClipEncoder, FakeTextEncoder
from mmretrieve import Index, IndexMismatchError, UsageError

ARTICLES = SAMPLE_ARTICLES


def _picture(path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    PILImage.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)).save(path)


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    root = tmp_path / "corpus"
    for n, (title, text) in enumerate(ARTICLES.items()):
        folder = root / title.replace(" ", "_")
        folder.mkdir(parents=True)
        (folder / "article.txt").write_text(text, encoding="utf-8")
        (folder / "meta.json").write_text(json.dumps({"id": f"wiki:en:{title}", "title": title}))
        _picture(folder / "photo.png", seed=n)
        caption = {"Batman": "the bat signal over Gotham", "Tomato": "a bowl of tomato soup"}
        if title in caption:
            (folder / "images.jsonl").write_text(
                json.dumps({"file": "photo.png", "caption": caption[title]}) + "\n"
            )
    return root


def _open(tmp_path: Path, text=None, clip=None, **kw) -> Index:
    return Index.open(
        tmp_path / "idx",
        text_encoder=text or FakeTextEncoder(),
        image_encoder=clip or FakeClipEncoder(),
        **kw,
    )


def test_fake_text_query_finds_article(tmp_path, corpus):
    index = _open(tmp_path)
    report = index.add(corpus)
    assert (report.articles_added, report.images_added, report.skipped) == (3, 3, [])
    assert index.stats()["counts"] == {
        "articles": 3,
        "passages": index.store.count("passages"),
        "images": 3,
    }
    result = index.search(text="Who is Bruce Wayne?", k=2)
    assert result.articles[0].article.title == "Batman"
    assert result.routes["text->passage:dense"] == "ok"
    assert result.routes["image->image"] == "no image in the query"
    assert len(result.articles) == 2
    assert all(h.kind in {"passage", "image"} for h in result.hits)
    assert len(result.hits) == 2


def test_fake_caption_routes_find_image(tmp_path, corpus):
    index = _open(tmp_path)
    index.add(corpus)
    result = index.search(text="bowl of soup", k=3)
    images = [h for h in result.hits if h.kind == "image"]
    top_image = max((h for h in result.articles[0].images), key=lambda h: h.score, default=None)
    assert result.articles[0].article.title == "Tomato"
    assert top_image is not None and top_image.id.endswith("photo.png")
    assert "text->image:caption" in top_image.route_scores
    assert "text->image:bm25" in top_image.route_scores
    assert images


def test_fake_image_query_finds_same_image_and_article(tmp_path, corpus):
    index = _open(tmp_path)
    index.add(corpus)
    query = corpus / "Vincent_van_Gogh" / "photo.png"
    result = index.search(image=query, k=3)
    assert result.hits[0].kind == "image" and result.hits[0].uri == str(query.resolve())
    assert result.hits[0].route_scores["image->image"] == pytest.approx(1.0, abs=1e-5)
    assert result.articles[0].article.title == "Vincent van Gogh"
    assert result.articles[0].passages, "votes bring the article's passages"
    assert "image->passage:votes" in result.articles[0].passages[0].route_scores


def test_fake_combined_query(tmp_path, corpus):
    index = _open(tmp_path)
    index.add(corpus)
    result = index.search(text="Bat man", image=corpus / "Batman" / "photo.png", k=3)
    first = result.articles[0]
    assert first.article.title == "Batman"
    assert any(h.uri and h.uri.endswith("Batman/photo.png") for h in first.images)
    assert set(result.routes.values()) == {"ok"}


def test_fake_weights_change_ranking(tmp_path, corpus):
    index = _open(tmp_path)
    index.add(corpus)
    img = corpus / "Tomato" / "photo.png"
    text_heavy = index.search(
        text="Bruce Wayne Batman", image=img, k=3, weights={"image->image": 0, "image->passage": 0}
    )
    image_heavy = index.search(
        text="Bruce Wayne Batman", image=img, k=3, weights={"text->passage": 0, "text->image": 0}
    )
    assert text_heavy.articles[0].article.title == "Batman"
    assert image_heavy.articles[0].article.title == "Tomato"
    assert text_heavy.routes["image->image"] == "weight 0"


def test_fake_filter_by_article(tmp_path, corpus):
    index = _open(tmp_path)
    index.add(corpus)
    result = index.search(text="Bruce Wayne", k=5, article_ids=["wiki:en:Tomato"])
    assert {a.article.id for a in result.articles} == {"wiki:en:Tomato"}
    assert all(h.article_id == "wiki:en:Tomato" for h in result.hits)


def test_fake_reindex_is_idempotent_and_incremental(tmp_path, corpus):
    text, clip = FakeTextEncoder(), FakeClipEncoder()
    index = _open(tmp_path, text, clip)
    index.add(corpus)
    passages_before = index.store.count("passages")
    again = index.add(corpus)
    assert (
        again.passages_encoded,
        again.images_encoded,
        again.articles_unchanged,
        again.images_unchanged,
    ) == (0, 0, 3, 3)
    old_tomato = index.store.count("passages", {"article_id": "wiki:en:Tomato"})
    edited = corpus / "Tomato" / "article.txt"
    edited.write_text("The tomato is a berry. It is eaten raw or cooked.", encoding="utf-8")
    docs_before = text.documents_encoded
    report = index.add(corpus)
    assert report.articles_updated == 1 and report.articles_unchanged == 2
    tomato_passages = index.store.count("passages", {"article_id": "wiki:en:Tomato"})
    assert report.passages_encoded == tomato_passages
    assert text.documents_encoded - docs_before == tomato_passages
    assert index.store.count("passages") == passages_before - old_tomato + tomato_passages
    hits = index.search(text="berry eaten raw", k=1)
    assert hits.articles[0].article.id == "wiki:en:Tomato"


def test_fake_prune_removes_gone_items(tmp_path, corpus):
    index = _open(tmp_path)
    index.add(corpus)
    import shutil

    shutil.rmtree(corpus / "Batman")
    report = index.add(corpus)  # without --prune nothing goes
    assert index.stats()["counts"]["articles"] == 3 and report.articles_pruned == 0
    report = index.add(corpus, prune=True)
    assert (report.articles_pruned, report.images_pruned) == (1, 1)
    counts = index.stats()["counts"]
    assert (counts["articles"], counts["images"]) == (2, 2)
    assert index.store.count("passages", {"article_id": "wiki:en:Batman"}) == 0


def test_fake_reopen_and_model_guard(tmp_path, corpus):
    index = _open(tmp_path)
    index.add(corpus)
    index.close()
    again = _open(tmp_path)
    assert (
        again.search(text="Starry Night painter", k=1).articles[0].article.title
        == "Vincent van Gogh"
    )
    other = FakeTextEncoder(dim=64)
    other.info = dict(other.info, revision="fake-2")
    with pytest.raises(IndexMismatchError, match="revision"):
        _open(tmp_path, text=other)


def test_fake_usage_errors(tmp_path, corpus):
    index = _open(tmp_path)
    index.add(corpus)
    with pytest.raises(UsageError, match="text, an image"):
        index.search()
    with pytest.raises(UsageError, match="text, an image"):
        index.search(text="   ")
    with pytest.raises(UsageError, match="k must be"):
        index.search(text="x", k=0)
    with pytest.raises(UsageError, match="unknown route"):
        index.search(text="x", weights={"bogus": 1})


def test_fake_text_only_index(tmp_path, corpus):
    index = Index.open(tmp_path / "t", text_encoder=FakeTextEncoder(), image_model="none")
    report = index.add(corpus)
    assert report.images_added == 0 and index.stats()["counts"]["images"] == 0
    result = index.search(text="Bruce Wayne", k=1)
    assert result.articles[0].article.title == "Batman"
    assert result.routes["text->image:clip"] == "index has no image model"
    with pytest.raises(UsageError, match="without an image model"):
        index.search(image=corpus / "Batman" / "photo.png")
