"""Indexing, routing, fusion and grouping end to end through a real LanceDB store in a temp dir,
with FAKE deterministic encoders (tests/fakes.py) instead of models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from fakes import SAMPLE_ARTICLES, FakeClipEncoder, FakeTextEncoder
from helpers.filter_corpus import filter_corpus
from mmretrieve import Index, IndexMismatchError, UsageError
from mmretrieve.config import Settings

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
        "pictures": 3,  # three different files
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
    index = _open(tmp_path, settings=Settings(clip_text_view=True))
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


def _passage_fields(index: Index) -> set[str]:
    return set(index.store._table("passages").schema.names)


def test_fake_new_index_has_no_clip_text_view_by_default(tmp_path, corpus):
    long = corpus / "Lighthouse"
    long.mkdir()
    sentences = [f"The lighthouse keeper wrote entry number {i} in the log." for i in range(400)]
    (long / "article.txt").write_text(" ".join(sentences), encoding="utf-8")
    (long / "meta.json").write_text(json.dumps({"id": "wiki:en:Lighthouse", "title": "Lighthouse"}))
    _picture(long / "photo.png", seed=99)
    clip = FakeClipEncoder()
    index = _open(tmp_path, clip=clip)
    index.add(corpus)
    assert index.store.count("passages", {"article_id": "wiki:en:Lighthouse"}) > 3
    # Only the article titles went through CLIP's text tower, not the passages.
    assert clip.texts_encoded == index.store.count("articles")
    assert "clip_text" not in _passage_fields(index)
    assert index.manifest["views"] == {"clip_text": False}
    result = index.search(text="lighthouse keeper", image=long / "photo.png", k=3)
    assert result.routes["image->passage:clip_text"].startswith("index built without")
    assert {v for k, v in result.routes.items() if k != "image->passage:clip_text"} == {"ok"}
    first = result.articles[0]
    assert first.article.title == "Lighthouse"
    # The article the picture votes for brings its first three passages.
    voted = [
        h.id
        for a in result.articles
        for h in a.passages
        if "image->passage:votes" in h.route_scores and h.article_id == "wiki:en:Lighthouse"
    ]
    assert sorted(voted) == [f"wiki:en:Lighthouse#p{i}" for i in range(3)]


def test_fake_clip_text_view_when_asked(tmp_path, corpus):
    clip = FakeClipEncoder()
    index = _open(tmp_path, clip=clip, settings=Settings(clip_text_view=True))
    index.add(corpus)
    assert clip.texts_encoded == index.store.count("passages") + index.store.count("articles")
    assert "clip_text" in _passage_fields(index)
    assert index.manifest["views"] == {"clip_text": True}
    result = index.search(image=corpus / "Batman" / "photo.png", k=2)
    assert result.routes["image->passage:clip_text"] == "ok"


def test_fake_clip_text_view_is_the_index_s_choice(tmp_path, corpus):
    _open(tmp_path, settings=Settings(clip_text_view=True)).close()
    again = _open(tmp_path)  # not asked: the index's own choice
    assert again.settings.clip_text_view is True
    again.close()
    with pytest.raises(IndexMismatchError, match="--no-clip-text-view"):
        _open(tmp_path, settings=Settings(clip_text_view=False))
    other = tmp_path / "plain"
    Index.open(other, text_encoder=FakeTextEncoder(), image_encoder=FakeClipEncoder()).close()
    with pytest.raises(IndexMismatchError, match="built without"):
        Index.open(
            other,
            text_encoder=FakeTextEncoder(),
            image_encoder=FakeClipEncoder(),
            settings=Settings(clip_text_view=True),
        )
    with pytest.raises(UsageError, match="needs an image model"):
        Index.open(
            tmp_path / "text-only",
            text_encoder=FakeTextEncoder(),
            image_model="none",
            settings=Settings(clip_text_view=True, image_model=None),
        )


def test_fake_index_from_before_the_choice_keeps_its_view(tmp_path, corpus):
    """An index whose manifest predates the option has CLIP text vectors: it keeps them."""
    index = _open(tmp_path, settings=Settings(clip_text_view=True))
    index.add(corpus)
    manifest = dict(index.manifest)
    del manifest["views"]
    index.store.write_manifest(manifest)
    index.close()
    clip = FakeClipEncoder()
    again = _open(tmp_path, clip=clip)
    assert again.settings.clip_text_view is True
    (corpus / "Batman" / "article.txt").write_text(
        ARTICLES["Batman"] + " He lives in Wayne Manor.", encoding="utf-8"
    )
    again.add(corpus)
    changed = again.store.count("passages", {"article_id": "wiki:en:Batman"})
    assert clip.texts_encoded == changed + 1  # the edited article's passages and its title
    result = again.search(image=corpus / "Batman" / "photo.png", k=2)
    assert result.routes["image->passage:clip_text"] == "ok"


@pytest.mark.parametrize("batch", [16, 1], ids=["one-batch", "batch-per-image"])
def test_fake_one_picture_in_three_articles_is_one_image_hit(tmp_path, corpus, batch):
    """The same file in three articles: one image in the flat list, naming all three (best
    first); each article still shows it and counts it."""
    shared = corpus / "Batman" / "photo.png"
    for title in ("Tomato", "Vincent_van_Gogh"):
        (corpus / title / "photo.png").write_bytes(shared.read_bytes())
    clip = FakeClipEncoder()
    index = _open(tmp_path, clip=clip, settings=Settings(image_batch_size=batch))
    report = index.add(corpus)
    assert index.store.count("images") == 3  # three rows: one per article that uses it
    # ... and one model call: the file is encoded once, its vector reused for the copies.
    assert (report.images_added, report.images_encoded, clip.images_encoded) == (3, 1, 1)
    # ... and stored once: one picture row with the CLIP vector, three uses without one.
    (picture,) = index.store.scan("pictures", ["id", "clip_image"])
    assert picture["id"] == index.store.get("images", ["wiki:en:Batman/photo.png"])[0]["sha256"]
    assert index.stats()["counts"]["pictures"] == 1
    result = index.search(image=shared, k=10)
    images = [h for h in result.hits if h.kind == "image"]
    assert len(images) == 1
    hit = images[0]
    assert sorted(hit.article_ids) == sorted(f"wiki:en:{t}" for t in ARTICLES)
    assert hit.article_ids[0] == hit.article_id
    shown = {a.article.id: a.images for a in result.articles}
    assert set(shown) == set(hit.article_ids)
    for article_id, pictures in shown.items():
        assert len(pictures) == 1 and pictures[0].article_ids == hit.article_ids
        assert pictures[0].article_id == article_id
    from mmretrieve.interfaces.render import hit_dict

    assert hit_dict(hit)["article_ids"] == list(hit.article_ids)
    # The articles of copies this search did not reach are named too (after those it found).
    narrow = index.search(image=shared, k=10, article_ids=["wiki:en:Batman"])
    (only,) = [h for h in narrow.hits if h.kind == "image"]
    assert only.article_ids[0] == "wiki:en:Batman"
    assert sorted(only.article_ids) == sorted(hit.article_ids)
    # Different pictures stay apart.
    (corpus / "Tomato" / "photo.png").unlink()
    _picture(corpus / "Tomato" / "photo.png", seed=7)
    index.add(corpus)
    again = index.search(image=shared, k=10)
    assert len([h for h in again.hits if h.kind == "image"]) == 2


def test_fake_format_versions(tmp_path, corpus, monkeypatch):
    """New indexes are format 4 (pictures stored once); format 3, 2 and 1 indexes open, search
    and grow as they are; an unknown version is refused with a clear message."""
    from mmretrieve.store import manifest as manifest_module

    for version in (2, 3):
        old = tmp_path / f"format{version}"
        with monkeypatch.context() as patch:  # an index as the previous version made it
            patch.setattr(manifest_module, "FORMAT_VERSION", version)
            index = _open(old)
            index.add(corpus)
            index.close()
        index = _open(old)
        assert index.format_version == version and "pictures" not in index.stats()["counts"]
        second = corpus / "Vincent_van_Gogh" / f"second{version}.png"
        _picture(second, seed=7 + version)
        report = index.add(corpus)
        assert report.images_added == 1
        hits = index.search(image=second, k=5).hits
        assert hits[0].kind == "image" and hits[0].uri.endswith(second.name)
        assert index.manifest["format_version"] == version
        index.close()

    index = _open(tmp_path)
    assert index.format_version == 4
    index.add(corpus)
    manifest = dict(index.manifest, format_version=1)
    manifest.pop("views")
    index.store.write_manifest(manifest)
    index.close()
    again = _open(tmp_path)
    assert again.manifest["format_version"] == 1
    again.close()
    index = _open(tmp_path)
    index.store.write_manifest(dict(index.manifest, format_version=99))
    index.close()
    with pytest.raises(IndexMismatchError, match="format version 99"):
        _open(tmp_path)


def test_fake_resized_copy_in_a_fourth_article_is_the_same_hit(tmp_path, corpus):
    """One photo in three articles and a resized, re-encoded copy in a fourth: one image hit
    naming all four articles, whichever copy the search reaches first; each article still shows
    and counts it. A different picture stays its own hit."""
    from helpers.scenes import scene

    photo = scene(3)
    for title in ARTICLES:
        photo.save(corpus / title.replace(" ", "_") / "photo.png")
    fourth = corpus / "Gotham_City"
    fourth.mkdir()
    (fourth / "article.txt").write_text("Gotham City is a fictional city.", encoding="utf-8")
    (fourth / "meta.json").write_text(json.dumps({"id": "wiki:en:Gotham", "title": "Gotham"}))
    photo.resize((224, 168), PILImage.Resampling.BICUBIC).save(fourth / "copy.jpg", quality=60)
    scene(4).save(fourth / "other.png")
    index = _open(tmp_path)
    index.add(corpus)
    assert index.store.count("images") == 5
    everyone = sorted([f"wiki:en:{t}" for t in ARTICLES] + ["wiki:en:Gotham"])
    for query in (corpus / "Batman" / "photo.png", fourth / "copy.jpg"):
        result = index.search(image=query, k=10)
        images = [h for h in result.hits if h.kind == "image"]
        assert len(images) == 2, [h.uri for h in images]
        first = images[0]
        assert Path(first.uri).name == Path(query).name
        assert sorted(first.article_ids) == everyone and first.article_ids[0] == first.article_id
        assert Path(images[1].uri).name == "other.png"
        assert images[1].article_ids == ("wiki:en:Gotham",)
        shown = {a.article.id: [Path(h.uri).name for h in a.images] for a in result.articles}
        assert set(everyone) <= set(shown)
        assert shown["wiki:en:Gotham"][0] in ("copy.jpg", "other.png")


def test_fake_filters_keep_k_results_and_only_matching_items(tmp_path):
    """A filter is applied inside every store query: the top k come from the kept items only,
    so a search returns k articles when k exist, even where every best match is filtered out."""
    index = _open(tmp_path)
    index.add(filter_corpus(tmp_path / "corpus"))
    plain = index.search("bridge river city", k=3)
    assert {a.article.id for a in plain.articles} & {"art01", "art03"}
    for filters in ({"license": "CC BY-SA 4.0"}, ["license=CC BY-SA 4.0"], {"lang": "de"}):
        result = index.search("bridge river city", k=3, filters=filters)
        assert len(result.articles) == 3
        assert all(int(a.article.id[3:]) % 2 == 1 for a in result.articles), result.articles
        for hit in result.hits:
            if hit.kind == "passage":
                assert int(hit.article_id[3:]) % 2 == 1
        assert all(a.article.license == "CC BY-SA 4.0" for a in result.articles)
    # An image is judged by its own licence: CC0 photos sit in the CC BY-SA articles.
    images = index.search(image=tmp_path / "corpus" / "a03" / "photo.png", k=5,
                          filters={"license": "CC0"})  # fmt: skip
    pictures = [h for h in images.hits if h.kind == "image"]
    assert pictures and all(int(h.article_id[3:]) % 2 == 1 for h in pictures)
    assert pictures[0].article_id == "art03"
    for hit in images.hits:
        if hit.kind == "passage":  # passages by their article's licence
            assert int(hit.article_id[3:]) % 2 == 0
    # Not, prefixes, several values, numbers, meta fields, with article ids.
    cases = [
        ({"lang!=": "en"}, {1, 3, 5, 7, 9, 11}),
        ({"url": "https://de.*"}, {1, 3, 5, 7, 9, 11}),
        ({"url!=": "https://de.*", "lang": ["en", "fr"]}, {0, 2, 4, 6, 8, 10}),
        ({"page_id": [1004, 1005]}, {4, 5}),
        (["title=Article 1*"], {1, 10, 11}),
    ]
    for filters, expected in cases:
        result = index.search("bridge river city", k=12, filters=filters)
        assert {int(a.article.id[3:]) for a in result.articles} == expected, filters
    narrowed = index.search("bridge", k=5, filters={"lang": "en"}, article_ids=["art01", "art02"])
    assert [a.article.id for a in narrowed.articles] == ["art02"]
    # Nothing kept: nothing found; an unknown field: a clear error, not an empty result.
    assert index.search("bridge", k=3, filters={"lang": "xx"}).articles == []
    with pytest.raises(UsageError, match="no indexed article has the field 'year'.*lang"):
        index.search("bridge", k=3, filters={"year": "2020"})
    with pytest.raises(UsageError, match="write KEY=VALUE"):
        index.search("bridge", k=3, filters=["license"])


def test_fake_filter_reaches_below_every_routes_depth(tmp_path):
    """The 5 kept articles rank below 115 others in every route (deeper than the 50 candidates
    a route fetches for k=5): all 5 still come back, by text and by image."""
    index = _open(tmp_path)
    index.add(filter_corpus(tmp_path / "corpus", 120, german=lambda i: i >= 115))
    for query in (
        {"text": "bridge river city"},
        {"image": tmp_path / "corpus" / "a00" / "photo.png"},
    ):
        result = index.search(**query, k=5, filters=["lang=de"])
        assert sorted(a.article.id for a in result.articles) == [f"art{i}" for i in range(115, 120)]


def test_fake_results_by_section(tmp_path):
    """Images carry the section they are placed in (images.jsonl ``section``); an article result
    also comes by section, best first, each section's passages and images together."""
    root = tmp_path / "corpus"
    folder = root / "Gotham"
    folder.mkdir(parents=True)
    text = (
        "Gotham is a city.\n\n== History ==\nThe bridge was built over the river in 1900.\n\n"
        "== Geography ==\nThe city lies in a valley with hills and a lake."
    )
    (folder / "article.txt").write_text(text, encoding="utf-8")
    (folder / "meta.json").write_text(json.dumps({"id": "gotham", "title": "Gotham"}))
    _picture(folder / "bridge.png", seed=1)
    _picture(folder / "lake.png", seed=2)
    (folder / "images.jsonl").write_text(
        json.dumps({"file": "bridge.png", "caption": "the old bridge", "section": "History"})
        + "\n"
        + json.dumps({"file": "lake.png", "caption": "the lake", "section": "Geography"})
        + "\n"
    )
    index = _open(tmp_path)
    index.add(root)
    result = index.search("the bridge over the river", k=3)
    (article,) = result.articles
    titles = [s.title for s in article.sections]
    assert titles[0] == "History" and set(titles) <= {"History", "Geography", None}
    best = article.sections[0]
    assert [h.section for h in best.passages] == ["History"]
    assert [h.uri.rsplit("/", 1)[-1] for h in best.images] == ["bridge.png"]
    assert best.score >= max(s.score for s in article.sections)
    images = {h.uri.rsplit("/", 1)[-1]: h.section for h in result.hits if h.kind == "image"}
    assert images == {"bridge.png": "History", "lake.png": "Geography"}
    from mmretrieve.interfaces.render import result_dict, result_text

    as_json = result_dict(result, {})["articles"][0]["sections"][0]
    assert as_json["title"] == "History" and as_json["images"][0]["section"] == "History"
    assert "§ History" in result_text(result, sections=True)


def test_fake_deleting_an_article_keeps_a_shared_picture_for_the_others(tmp_path, corpus):
    """Deleting an article removes its passages and the images it uses; the same picture in
    the other articles stays, and its hit names only them."""
    shared = corpus / "Batman" / "photo.png"
    (corpus / "Tomato" / "photo.png").write_bytes(shared.read_bytes())
    index = _open(tmp_path)
    index.add(corpus)
    index.delete(article_ids=["wiki:en:Batman"])
    assert index.store.count("images", {"article_id": "wiki:en:Batman"}) == 0
    assert index.store.count("passages", {"article_id": "wiki:en:Batman"}) == 0
    result = index.search(image=shared, k=5)
    (hit,) = [h for h in result.hits if h.kind == "image" and h.article_id == "wiki:en:Tomato"]
    assert hit.article_ids == ("wiki:en:Tomato",)
    assert "wiki:en:Batman" not in {a.article.id for a in result.articles}
    assert Path(hit.uri).read_bytes() == shared.read_bytes()  # the file itself is untouched


def test_fake_copies_of_one_file_do_not_crowd_out_other_pictures(tmp_path):
    """One file used by 60 articles and another picture: the image route searches distinct
    pictures, so the other one is still a candidate (60 copies used to fill the 50 candidates a
    route fetches); the file is stored once and goes when its last use does."""
    from helpers.filter_corpus import picture

    root = tmp_path / "corpus"
    picture(tmp_path / "flag.png", seed=1)
    for i in range(61):
        folder = root / f"a{i:02d}"
        folder.mkdir(parents=True)
        (folder / "article.txt").write_text(f"Article {i} about a country.", encoding="utf-8")
        (folder / "meta.json").write_text(json.dumps({"id": f"a{i:02d}", "title": f"A {i}"}))
        if i < 60:
            (folder / "flag.png").write_bytes((tmp_path / "flag.png").read_bytes())
        else:
            picture(folder / "river.png", seed=2)
    index = _open(tmp_path)
    index.add(root)
    assert index.stats()["counts"]["images"] == 61 and index.stats()["counts"]["pictures"] == 2
    only_images = {"image->passage": 0.0}  # the image->image route alone
    result = index.search(image=tmp_path / "flag.png", k=10, weights=only_images)
    images = [h for h in result.hits if h.kind == "image"]
    assert [Path(h.uri).name for h in images] == ["flag.png", "river.png"]
    assert len(images[0].article_ids) == 60
    assert "image->image" in images[1].route_scores
    index.delete(article_ids=[f"a{i:02d}" for i in range(60)])
    assert index.stats()["counts"]["pictures"] == 1
    index.delete(article_ids=["a60"])
    assert index.stats()["counts"]["pictures"] == 0


def test_fake_uses_without_their_picture_are_done_again(tmp_path, corpus):
    """A run killed after writing images but before their pictures: the next run encodes the
    missing pictures again instead of taking those images for unchanged."""
    index = _open(tmp_path)
    index.add(corpus)
    lost = sorted(r["id"] for r in index.store.scan("pictures", ["id"]))[:1]
    index.store.delete("pictures", ids=lost)
    report = index.add(corpus)
    assert report.images_encoded == 1 and index.stats()["counts"]["pictures"] == 3
    assert index.add(corpus).images_encoded == 0
