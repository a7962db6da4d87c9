"""Tables held in memory (store/hot.py) answer exactly as the Lance store's own exact search does,
and never with stale rows: a real LanceStore in a temp dir, random vectors, no models."""

from __future__ import annotations

import time

import numpy as np
import pytest
from test_bm25 import assert_same_ranking

from mmretrieve.store import open_store, table_schemas
from mmretrieve.store.base import Match
from mmretrieve.store.hot import CHECK_S

DIM_TEXT, DIM_CLIP = 16, 24
N_PASSAGES, N_IMAGES = 1500, 400


def _unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    v = rng.standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _fill(store, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    store.ensure_tables(table_schemas(DIM_TEXT, DIM_CLIP, clip_text_view=True, version=3))
    bge, clip = _unit(rng, N_PASSAGES, DIM_TEXT), _unit(rng, N_PASSAGES, DIM_CLIP)
    store.upsert(
        "passages",
        [
            {
                "id": f"p{i}",
                "article_id": f"a{i % 37}",
                "text": f"passage {i} about topic {i % 11}",
                "position": i // 37,
                "section": None if i % 5 == 0 else f"s{i % 3}",
                "content_hash": "h",
                "bge": bge[i],
                "clip_text": clip[i],
            }
            for i in range(N_PASSAGES)
        ],
    )
    img, cap = _unit(rng, N_IMAGES, DIM_CLIP), _unit(rng, N_IMAGES, DIM_TEXT)
    store.upsert(
        "images",
        [
            {
                "id": f"i{i}",
                "article_id": None if i % 9 == 0 else f"a{i % 37}",
                "uri": f"/x/{i}.jpg",
                "caption": None if i % 4 == 0 else f"caption {i}",
                "alt_text": None,
                "search_text": f"caption {i}",
                "width": 10,
                "height": 10,
                "sha256": "0",
                "license": None,
                "has_caption": i % 4 != 0,
                "content_hash": "h",
                "clip_image": img[i],
                "caption_bge": cap[i],
            }
            for i in range(N_IMAGES)
        ],
    )


@pytest.fixture()
def stores(tmp_path):
    """The same index opened twice: ``hot`` holds its tables in memory, ``cold`` never does."""
    hot = open_store(tmp_path / "idx")
    _fill(hot)
    cold = open_store(tmp_path / "idx")
    cold.ensure_tables(table_schemas(DIM_TEXT, DIM_CLIP, clip_text_view=True, version=3))
    cold.hot.budget_bytes = 0
    assert hot.warm() == {"articles": 0, "passages": N_PASSAGES, "images": N_IMAGES}
    yield hot, cold
    hot.close()
    cold.close()


FILTERS = [
    None,
    {"has_caption": True},
    {"article_id": ["a3", "a5", "a36"]},
    {"article_id": "a7"},
    {"id": ["p1", "p2", "p3", "i5", "nope"]},
    {"article_id": []},
    {"article_id": ["a1", "a2"], "has_caption": True},
    {"article_id": Match(values=("a3", "a5"), negate=True, null=True)},
    {"article_id": Match(prefixes=("a1",), null=False)},
    {"section": Match(values=("s1",), prefixes=("s2",), negate=True, null=False)},
    {"section": Match(values=("s0",), null=True), "article_id": Match(prefixes=("a2", "a3"))},
]


SEARCHES = [
    ("passages", "bge", DIM_TEXT, ("id", "article_id", "text", "section")),
    ("passages", "clip_text", DIM_CLIP, None),
    ("images", "clip_image", DIM_CLIP, ("id", "article_id", "caption", "width")),
    ("images", "caption_bge", DIM_TEXT, None),
]
CASES = [  # passages have no has_caption column, images no section
    (*s, f)
    for s in SEARCHES
    for f in FILTERS
    if {"passages": "has_caption", "images": "section"}[s[0]] not in (f or {})
]


@pytest.mark.parametrize(("table", "field", "dim", "fields", "flt"), CASES)
def test_held_tables_answer_as_the_stores_exact_search(stores, table, field, dim, fields, flt):
    hot, cold = stores
    rng = np.random.default_rng(7)
    for query in _unit(rng, 5, dim):
        for k in (1, 10, 60):
            a = hot.search(table, field, query, k, flt, fields)
            b = cold.search(table, field, query, k, flt, fields)
            assert [h.id for h in a] == [h.id for h in b]
            assert [h.row for h in a] == [h.row for h in b]
            np.testing.assert_allclose([h.score for h in a], [h.score for h in b], atol=1e-5)


def test_rows_by_id_match_the_store(stores):
    hot, cold = stores
    ids = ["p9", "p3", "missing", "p9", "p1499"]
    fields = ("id", "article_id", "text", "position", "section", "content_hash")
    assert hot.get("passages", ids, fields) == cold.get("passages", ids, fields)
    assert [r["id"] for r in hot.get("passages", ids, fields)] == ["p9", "p3", "p1499"]
    assert hot.get("images", ["i0", "i1"]) == cold.get("images", ["i0", "i1"])


def test_a_write_in_this_process_is_seen_at_once(stores):
    hot, _ = stores
    query = _unit(np.random.default_rng(3), 1, DIM_TEXT)[0]
    row = {
        "id": "new",
        "article_id": "a1",
        "text": "new passage",
        "position": 0,
        "section": None,
        "content_hash": "h",
        "bge": query,
        "clip_text": np.zeros(DIM_CLIP, np.float32),
    }
    hot.upsert("passages", [row])
    assert hot.search("passages", "bge", query, 3, None, ("id",))[0].id == "new"
    hot.delete("passages", ["new"])
    assert "new" not in [h.id for h in hot.search("passages", "bge", query, 3, None, ("id",))]


def test_another_processes_commit_is_seen_within_the_check_interval(stores, tmp_path):
    hot, _ = stores
    writer = open_store(tmp_path / "idx")
    writer.ensure_tables(table_schemas(DIM_TEXT, DIM_CLIP, clip_text_view=True, version=3))
    query = _unit(np.random.default_rng(4), 1, DIM_TEXT)[0]
    assert hot.search("passages", "bge", query, 1, None, ("id",))[0].id != "other"
    writer.delete("passages", ["p0"])
    writer.upsert(
        "passages",
        [
            {
                "id": "other",
                "article_id": "a1",
                "text": "x",
                "position": 0,
                "section": None,
                "content_hash": "h",
                "bge": query,
                "clip_text": np.zeros(DIM_CLIP, np.float32),
            }
        ],
    )
    deadline = time.monotonic() + 3 * CHECK_S + 2
    while hot.search("passages", "bge", query, 1, None, ("id",))[0].id != "other":
        assert time.monotonic() < deadline, "a held table hid another process's commit"
        time.sleep(0.05)
    assert hot.get("passages", ["p0"], ("id",)) == []
    writer.close()


def test_nothing_is_held_past_the_budget(tmp_path):
    store = open_store(tmp_path / "idx")
    _fill(store)
    store.hot.budget_bytes = 1000
    assert not {"passages", "images"} & set(store.warm())
    query = _unit(np.random.default_rng(5), 1, DIM_TEXT)[0]
    assert len(store.search("passages", "bge", query, 5, None, ("id",))) == 5
    store.close()


def test_a_table_is_held_after_repeated_reads_without_warm(tmp_path):
    store = open_store(tmp_path / "idx")
    _fill(store)
    query = _unit(np.random.default_rng(6), 1, DIM_TEXT)[0]
    first = store.search("passages", "bge", query, 5, None, ("id",))
    deadline = time.monotonic() + 10
    while "passages" not in store.hot.held():
        assert time.monotonic() < deadline
        store.search("passages", "bge", query, 5, None, ("id",))
        time.sleep(0.05)
    held = store.search("passages", "bge", query, 5, None, ("id",))
    assert [h.id for h in held] == [h.id for h in first]
    np.testing.assert_allclose([h.score for h in held], [h.score for h in first], atol=1e-5)
    store.close()


def test_large_fields_searched_through_8bit_codes_give_the_exact_top_k(tmp_path, monkeypatch):
    """Above CODES_MIN_ROWS a field is scanned as FAISS 8-bit codes, then rescored exactly."""
    from mmretrieve.store import hot as hot_module

    monkeypatch.setattr(hot_module, "CODES_MIN_ROWS", 1000)
    monkeypatch.setattr(hot_module, "MIN_CANDIDATES", 20)
    store = open_store(tmp_path / "idx")
    _fill(store)
    cold = open_store(tmp_path / "idx")
    cold.ensure_tables(table_schemas(DIM_TEXT, DIM_CLIP, clip_text_view=True, version=3))
    cold.hot.budget_bytes = 0
    store.warm()
    held = store.hot._current("passages")
    assert held is not None and set(held.codes) == {"bge", "clip_text"}
    assert "clip_image" not in store.hot._current("images").codes  # 400 rows: exact
    for query in _unit(np.random.default_rng(9), 20, DIM_TEXT):
        for k in (1, 10, 50):
            a = store.search("passages", "bge", query, k, None, ("id",))
            b = cold.search("passages", "bge", query, k, None, ("id",))
            assert [h.id for h in a] == [h.id for h in b]
            np.testing.assert_allclose([h.score for h in a], [h.score for h in b], atol=1e-5)
    store.close()
    cold.close()


@pytest.mark.parametrize("table", ["passages", "images"])
def test_bm25_ranked_in_memory_matches_the_store(stores, table):
    """With Lance's full-text index over every row, a held table ranks BM25 itself (bm25.py)
    and answers as Lance does: the same scores, rows and order (ties in table order)."""
    hot, cold = stores
    hot.optimize()  # builds the full-text indexes
    hot.warm()
    column = "text" if table == "passages" else hot._schemas[table].text_fields[0]
    for query in ("topic 3", "caption 17", "passage 5 about", "nothing-matches-this"):
        for flt in (None, {"article_id": ["a3", "a4"]}):
            assert hot.hot.text_search(table, column, query, 20, flt, ["id"]) is not None
            a = hot.text_search(table, query, 20, flt, None)
            b = cold.text_search(table, query, 20, flt, None)
            assert_same_ranking([(h.id, h.score) for h in b], [(h.id, h.score) for h in a], query)
            rows = {h.id: h.row for h in b}
            assert all(h.row == rows.get(h.id, cold.get(table, [h.id])[0]) for h in a)


def test_bm25_stays_with_lance_while_its_index_misses_rows(stores):
    """Rows added after the full-text index was built: Lance ranks (as it did before)."""
    hot, cold = stores
    hot.optimize()
    row = hot.get("passages", ["p1"])[0]
    vectors = {"bge": _unit(np.random.default_rng(5), 1, DIM_TEXT)[0]}
    vectors["clip_text"] = _unit(np.random.default_rng(6), 1, DIM_CLIP)[0]
    hot.upsert("passages", [{**row, **vectors, "id": "late", "text": "topic 3 late"}])
    hot.warm()
    assert hot.hot.text_search("passages", "text", "topic 3", 5, None, ["id"]) is None
    assert "late" in [h.id for h in hot.text_search("passages", "late", 5)]
