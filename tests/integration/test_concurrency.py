"""Searches during indexing never see a half-written article (DESIGN §9, issue 8).

The indexer writes an article's passages first and its article row last. A search that runs in
between must not return those passages, neither for a new article (no article row yet) nor for an
edited one (the passages carry the new content hash, the article row still the old one). The
window is made deterministic by a store wrapper that holds the indexer just before it writes
the article rows. FAKE encoders (tests/fakes.py) stand in for models.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from fakes import FakeClipEncoder, FakeTextEncoder
from mmretrieve import Index
from mmretrieve.config import Settings
from mmretrieve.indexing import Indexer, IndexingOptions, sources_items
from mmretrieve.store.base import ARTICLES, PASSAGES

WAIT = 30.0  # seconds; only reached when something is broken


class HoldBeforeArticles:
    """Delegates to a real store, but parks the writer before each article-row upsert until the
    test lets it go: the exact moment an article's passages are written and its row is not."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.holding = threading.Event()
        self.release = threading.Event()

    def upsert(self, table: str, rows: Sequence[dict[str, Any]]) -> None:
        if table == ARTICLES:
            self.holding.set()
            assert self.release.wait(WAIT), "the test never released the writer"
        self._store.upsert(table, rows)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def _write(root: Path, name: str, text: str) -> None:
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "article.txt").write_text(text, encoding="utf-8")
    (folder / "meta.json").write_text(json.dumps({"id": f"wiki:en:{name}", "title": name}))


@pytest.fixture
def index(tmp_path: Path) -> Index:
    corpus = tmp_path / "corpus"
    _write(corpus, "Tomato", "The tomato is a red fruit. Tomato soup is a common dish.")
    idx = Index.open(
        tmp_path / "idx", text_encoder=FakeTextEncoder(), image_encoder=FakeClipEncoder()
    )
    assert idx.add(corpus).skipped == []
    idx.corpus = corpus  # type: ignore[attr-defined]
    return idx


def _held_run(index: Index, corpus: Path) -> tuple[HoldBeforeArticles, threading.Thread]:
    """Start indexing ``corpus`` in a thread and return once it is parked mid-article."""
    store = HoldBeforeArticles(index.store)
    indexer = Indexer(store, index.text_encoder, index.image_encoder, IndexingOptions())  # type: ignore[arg-type]
    errors: list[BaseException] = []

    def work() -> None:
        try:
            indexer.run(sources_items([corpus]))
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            errors.append(exc)
            store.holding.set()

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    assert store.holding.wait(WAIT), "the indexer never reached the article write"
    assert not errors, errors
    return store, thread


def _passage_articles(index: Index, text: str) -> set[str | None]:
    result = index.search(text=text, k=10)
    return {h.article_id for h in result.hits if h.kind == "passage"} | {
        a.article.id for a in result.articles
    }


def test_new_article_is_invisible_until_its_row_is_written(index: Index) -> None:
    corpus = index.corpus  # type: ignore[attr-defined]
    _write(corpus, "Batman", "Batman is a superhero. Bruce Wayne is the secret identity of Batman.")
    store, thread = _held_run(index, corpus)
    try:
        # The passages are in the table (the half-written state really exists) ...
        assert index.store.count(PASSAGES, {"article_id": "wiki:en:Batman"}) > 0
        assert index.store.get(ARTICLES, ["wiki:en:Batman"], ("id",)) == []
        # ... and no search returns them, in the flat list or grouped.
        for query in ("Bruce Wayne Batman superhero", "secret identity", "tomato"):
            assert "wiki:en:Batman" not in _passage_articles(index, query), query
    finally:
        store.release.set()
        thread.join(WAIT)
    assert "wiki:en:Batman" in _passage_articles(index, "Bruce Wayne Batman superhero")


def test_edited_article_never_mixes_old_row_and_new_passages(index: Index) -> None:
    corpus = index.corpus  # type: ignore[attr-defined]
    (corpus / "Tomato" / "article.txt").write_text(
        "Tomatoes are berries botanically. Gardeners grow heirloom varieties.", encoding="utf-8"
    )
    store, thread = _held_run(index, corpus)
    try:
        assert index.store.count(PASSAGES, {"article_id": "wiki:en:Tomato"}) > 0
        for query in ("heirloom berries gardeners", "tomato soup red fruit"):
            assert "wiki:en:Tomato" not in _passage_articles(index, query), query
    finally:
        store.release.set()
        thread.join(WAIT)
    assert "wiki:en:Tomato" in _passage_articles(index, "heirloom berries gardeners")


def test_searching_in_a_loop_while_another_thread_indexes(tmp_path: Path) -> None:
    """No search fails and no passage hit belongs to an article that is not (yet) in the index."""
    corpus = tmp_path / "corpus"
    for n in range(60):
        _write(corpus, f"Topic{n}", f"Topic{n} is about subject {n}. " * 20 + "Gotham bats fly.")
    settings = Settings(chunk_tokens=32, chunk_overlap=4, write_batch_size=40)
    index = Index.open(
        tmp_path / "idx",
        text_encoder=FakeTextEncoder(),
        image_encoder=FakeClipEncoder(),
        settings=settings,
    )
    done = threading.Event()
    errors: list[BaseException] = []

    def work() -> None:
        try:
            index.add(corpus)  # many small write batches (write_batch_size above)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            done.set()

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    searches = 0
    while not done.is_set() or searches == 0:
        result = index.search(text="Gotham bats subject", k=5)
        searches += 1
        ids = {h.article_id for h in result.hits if h.kind == "passage"}
        present = {r["id"] for r in index.store.get(ARTICLES, sorted(i for i in ids if i), ("id",))}
        assert ids <= present, ids - present
    thread.join(WAIT)
    assert not errors, errors
    assert searches >= 1 and index.stats()["counts"]["articles"] == 60
