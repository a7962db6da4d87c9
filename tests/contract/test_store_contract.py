"""One contract every Store backend passes (STYLE 12). Add a backend to STORE_FACTORIES."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from mmretrieve.store import open_store, table_schemas
from mmretrieve.store.base import ARTICLES, IMAGES, PASSAGES, Store

TEXT_DIM, CLIP_DIM = 8, 6


def _lance(tmp: Path) -> Store:
    return open_store(f"lance://{tmp / 'idx'}")


STORE_FACTORIES: dict[str, Callable[[Path], Store]] = {"lance": _lance}


@pytest.fixture(params=sorted(STORE_FACTORIES))
def make_store(request, tmp_path):
    made: list[Store] = []

    def make() -> Store:
        store = STORE_FACTORIES[request.param](tmp_path)
        store.ensure_tables(table_schemas(TEXT_DIM, CLIP_DIM))
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


def unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32)
    return v / np.linalg.norm(v)


def passage(i: int, article: str, text: str, vec) -> dict:
    return {"id": f"{article}#p{i}", "article_id": article, "text": text, "position": i,
            "section": None, "content_hash": f"h{i}", "bge": unit(vec),
            "clip_text": unit(np.ones(CLIP_DIM))}


def basis(i: int, dim: int = TEXT_DIM) -> np.ndarray:
    v = np.full(dim, 0.01, np.float32)
    v[i] = 1.0
    return unit(v)


@pytest.fixture
def filled(make_store):
    store = make_store()
    store.upsert(PASSAGES, [
        passage(0, "A", "Bruce Wayne is Batman, a vigilante of Gotham", basis(0)),
        passage(1, "A", "The Batmobile is his car", basis(1)),
        passage(0, "B", "Vincent van Gogh painted sunflowers", basis(2)),
        passage(0, "C's", "Tomato soup with basil", basis(3)),
    ])
    return store


def test_count_get_scan(filled):
    assert filled.count(PASSAGES) == 4
    assert filled.count(PASSAGES, {"article_id": "A"}) == 2
    assert filled.count(PASSAGES, {"article_id": ["A", "B"]}) == 3
    rows = filled.get(PASSAGES, ["B#p0", "missing", "A#p0"])
    assert [r["id"] for r in rows] == ["B#p0", "A#p0"]
    assert "bge" not in rows[0] and rows[0]["text"].startswith("Vincent")
    ids = sorted(r["id"] for r in filled.scan(PASSAGES, ["id", "content_hash"]))
    assert ids == ["A#p0", "A#p1", "B#p0", "C's#p0"]


def test_upsert_replaces_by_id(filled):
    filled.upsert(PASSAGES, [passage(0, "B", "Van Gogh's Starry Night", basis(2))])
    assert filled.count(PASSAGES) == 4
    assert filled.get(PASSAGES, ["B#p0"])[0]["text"] == "Van Gogh's Starry Night"


def test_delete_by_ids_and_filter_with_quotes(filled):
    filled.delete(PASSAGES, ids=["C's#p0"])
    assert filled.count(PASSAGES) == 3
    filled.delete(PASSAGES, filter={"article_id": ["A"]})
    assert [r["id"] for r in filled.scan(PASSAGES, ["id"])] == ["B#p0"]
    filled.delete(PASSAGES, ids=[])  # nothing, no error
    assert filled.count(PASSAGES) == 1


def test_vector_search_inner_product_and_filter(filled):
    hits = filled.search(PASSAGES, "bge", basis(2), k=2)
    assert hits[0].id == "B#p0"
    assert hits[0].score == pytest.approx(float(basis(2) @ basis(2)), abs=1e-4)
    assert hits[0].score > hits[1].score
    assert hits[0].row["article_id"] == "B"
    only_a = filled.search(PASSAGES, "bge", basis(2), k=10, filter={"article_id": "A"})
    assert {h.id for h in only_a} == {"A#p0", "A#p1"}
    assert filled.search(PASSAGES, "bge", basis(0), k=10, filter={"article_id": []}) == []


def test_text_search_bm25(filled):
    filled.optimize()
    hits = filled.text_search(PASSAGES, "Who is Bruce Wayne?", k=3)
    assert hits and hits[0].id == "A#p0"
    assert all(h.score > 0 for h in hits)
    assert filled.text_search(PASSAGES, "sunflowers", k=3, filter={"article_id": "A"}) == []
    # rows written after the full-text index was built are found too
    filled.upsert(PASSAGES, [passage(2, "A", "Alfred Pennyworth is the butler", basis(4))])
    assert filled.text_search(PASSAGES, "butler Pennyworth", k=3)[0].id == "A#p2"


def test_text_search_odd_queries_do_not_fail(filled):
    for q in ['"unclosed', "AND OR NOT", "(", "a:b", "*", "😀 émoji"]:
        assert isinstance(filled.text_search(PASSAGES, q, k=3), list)


def test_images_bool_filter_and_nullable(make_store):
    store = make_store()
    row = {"id": "i1", "article_id": None, "uri": "/x.jpg", "caption": None, "alt_text": None,
           "search_text": "", "width": 10, "height": 10, "sha256": "s", "license": None,
           "has_caption": False, "content_hash": "h", "clip_image": unit(np.arange(1, CLIP_DIM + 1)),
           "caption_bge": np.zeros(TEXT_DIM, np.float32)}
    row2 = dict(row, id="i2", article_id="A", caption="a bat", search_text="a bat", has_caption=True,
                caption_bge=basis(1))
    store.upsert(IMAGES, [row, row2])
    hits = store.search(IMAGES, "caption_bge", basis(1), k=5, filter={"has_caption": True})
    assert [h.id for h in hits] == ["i2"]
    assert store.get(IMAGES, ["i1"])[0]["article_id"] is None


def test_manifest_roundtrip_and_reopen(make_store):
    store = make_store()
    assert store.read_manifest() is None
    store.write_manifest({"format_version": 1, "models": {"text": {"name": "m"}}})
    store.upsert(ARTICLES, [{"id": "A", "title": "Batman", "url": None, "license": None,
                             "source": None, "content_hash": "h", "n_passages": 1,
                             "clip_title": unit(np.ones(CLIP_DIM))}])
    store.close()
    again = make_store()
    assert again.read_manifest()["models"]["text"]["name"] == "m"
    assert again.get(ARTICLES, ["A"])[0]["title"] == "Batman"
