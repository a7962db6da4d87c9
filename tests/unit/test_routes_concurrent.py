"""The routes of one query overlap on a thread pool (retrieval/routes.py); a store that sets
``concurrent_reads = False`` gets them one after another. Both must give the same search: same
hits and scores, same route statuses in the same order, and the same error when a route fails.
A real LanceDB store in a temp dir, FAKE deterministic encoders (tests/fakes.py)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image as PILImage

from fakes import SAMPLE_ARTICLES, FakeClipEncoder, FakeTextEncoder
from mmretrieve import Index
from mmretrieve.retrieval.routes import RouteRunner
from mmretrieve.retrieval.weights import resolve_weights
from mmretrieve.types import Query, SearchResult

ARTICLES = {
    **SAMPLE_ARTICLES,
    "Gotham": "Gotham City is a fictional city. Batman protects Gotham at night.",
    "Sunflower": "The sunflower is a tall plant with a large yellow flower head. "
    "Van Gogh painted sunflowers in a vase.",
    "Soup": "Soup is a liquid food. Tomato soup is served hot, often with bread.",
}
CAPTIONS = {
    "Batman": "the bat signal over Gotham",
    "Tomato": "a bowl of tomato soup",
    "Sunflower": "yellow sunflowers in a field",
}
QUERIES: dict[str, dict[str, Any]] = {
    "text": {"text": "Who is Bruce Wayne in Gotham?"},
    "image": {"image": "Sunflower"},
    "text+image": {"text": "tomato soup", "image": "Batman"},
    "text+image, image->image at weight 0": {
        "text": "painter of sunflowers",
        "image": "Vincent_van_Gogh",
        "weights": {"image->image": 0},
    },
    "filtered": {
        "text": "Gotham at night",
        "image": "Batman",
        "article_ids": ["wiki:en:Batman", "wiki:en:Gotham"],
    },
}


class Boom(RuntimeError):
    """Raised by a sabotaged store call."""


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Index, Path]]:
    base = tmp_path_factory.mktemp("concurrent")
    root = base / "corpus"
    for n, (title, text) in enumerate(ARTICLES.items()):
        folder = root / title.replace(" ", "_")
        folder.mkdir(parents=True)
        (folder / "article.txt").write_text(text, encoding="utf-8")
        (folder / "meta.json").write_text(json.dumps({"id": f"wiki:en:{title}", "title": title}))
        rng = np.random.default_rng(n)
        picture = rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)
        PILImage.fromarray(picture).save(folder / "photo.png")
        if title in CAPTIONS:
            line = {"file": "photo.png", "caption": CAPTIONS[title]}
            (folder / "images.jsonl").write_text(json.dumps(line) + "\n")
    index = Index.open(
        base / "idx", text_encoder=FakeTextEncoder(), image_encoder=FakeClipEncoder()
    )
    index.add(root)
    # Every read goes to Lance: these tests compare overlapped and sequential searches exactly,
    # and a table held in memory after the first search answers within float rounding only
    # (tests/unit/test_hot_tables.py checks that).
    index.store.hot.budget_bytes = 0
    yield index, root
    index.close()


def _search(built: tuple[Index, Path], spec: dict[str, Any]) -> SearchResult:
    index, root = built
    image = root / spec["image"] / "photo.png" if "image" in spec else None
    return index.search(
        text=spec.get("text"),
        image=image,
        k=5,
        weights=spec.get("weights"),
        article_ids=spec.get("article_ids"),
    )


def _sequential(monkeypatch: pytest.MonkeyPatch, index: Index) -> None:
    monkeypatch.setattr(index.store, "concurrent_reads", False)


def _spy(
    monkeypatch: pytest.MonkeyPatch,
    index: Index,
    method: str,
    before: Callable[[tuple[Any, ...]], None] = lambda args: None,
) -> list[str]:
    """Wrap a store method: ``before`` sees each call's arguments (and may raise); returns the
    names of the threads the calls ran on."""
    inner = getattr(index.store, method)
    threads: list[str] = []

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.current_thread().name)
        before(args)
        return inner(*args, **kwargs)

    monkeypatch.setattr(index.store, method, wrapper)
    return threads


def _fingerprint(result: SearchResult) -> Any:
    """Everything a search returns but its timings, with the order of every mapping."""

    def hit(h: Any) -> Any:
        return (h.kind, h.id, h.article_id, h.score, list(h.route_scores.items()), h.text, h.uri)

    return (
        [hit(h) for h in result.hits],
        [
            (a.article, a.score, [hit(h) for h in a.passages], [hit(h) for h in a.images])
            for a in result.articles
        ],
        list(result.routes.items()),
    )


@pytest.mark.parametrize("name", list(QUERIES))
def test_search_is_the_same_with_and_without_concurrency(
    built: tuple[Index, Path], monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    index, _ = built
    threads = _spy(monkeypatch, index, "search")
    overlapped = _search(built, QUERIES[name])
    assert any(t.startswith("mmretrieve-route") for t in threads), threads
    assert overlapped.hits, "the query should find something"

    _sequential(monkeypatch, index)
    threads.clear()
    one_by_one = _search(built, QUERIES[name])
    assert set(threads) == {threading.current_thread().name}
    assert _fingerprint(overlapped) == _fingerprint(one_by_one)


@pytest.mark.parametrize("name", list(QUERIES))
def test_route_lists_and_rows_are_the_same(
    built: tuple[Index, Path], monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """Below the fusion: each route's ranked list, the statuses, and the rows kept for hits."""
    index, root = built
    spec = QUERIES[name]
    image = root / spec["image"] / "photo.png" if "image" in spec else None
    vectors = index.searcher.encode(Query(text=spec.get("text"), image=image), {})
    weights = resolve_weights(spec.get("weights"))

    def run() -> Any:
        runner = RouteRunner(
            index.store,
            20,
            article_ids=spec.get("article_ids"),
            has_clip_text=bool(index.settings.clip_text_view),
            has_phash=index.format_version >= 3,
            has_pictures=index.format_version >= 4,
        )
        results, status = runner.run(vectors, weights)
        return list(results.items()), list(status.items()), runner.rows

    overlapped = run()
    _sequential(monkeypatch, index)
    assert overlapped == run()
    assert [name for name, _ in overlapped[0]] == [s for s, why in overlapped[1] if why == "ok"]


@pytest.mark.parametrize("concurrent", [True, False], ids=["overlapped", "one-by-one"])
def test_a_failing_route_raises_its_own_exception(
    built: tuple[Index, Path], monkeypatch: pytest.MonkeyPatch, concurrent: bool
) -> None:
    index, _ = built
    boom = Boom("the full-text index is gone")

    def fail(args: tuple[Any, ...]) -> None:
        raise boom

    _spy(monkeypatch, index, "text_search", fail)
    if not concurrent:
        _sequential(monkeypatch, index)
    with pytest.raises(Boom) as caught:
        _search(built, QUERIES["text+image"])
    assert caught.value is boom


@pytest.mark.parametrize("concurrent", [True, False], ids=["overlapped", "one-by-one"])
def test_the_first_failing_route_in_order_wins_and_nothing_is_left_running(
    built: tuple[Index, Path], monkeypatch: pytest.MonkeyPatch, concurrent: bool
) -> None:
    """text->passage:dense fails late, text->image:bm25 (after it in route order) at once: the
    caller sees dense's error, as when the routes ran one after another, and only once no route
    is still running (image->passage:title ends last)."""
    index, _ = built
    dense, bm25 = Boom("dense"), Boom("image bm25")
    running = [0]
    lock = threading.Lock()

    def slow_dense(args: tuple[Any, ...]) -> None:
        if args[:2] == ("passages", "bge"):
            time.sleep(0.2)
            raise dense

    def fast_bm25(args: tuple[Any, ...]) -> None:
        if args[0] == "images":
            raise bm25

    def counted(method: str) -> None:
        inner = getattr(index.store, method)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with lock:
                running[0] += 1
            try:
                time.sleep(0.4 if args[0] == "articles" else 0.05)  # image->passage:title last
                return inner(*args, **kwargs)
            finally:
                with lock:
                    running[0] -= 1

        monkeypatch.setattr(index.store, method, wrapper)

    _spy(monkeypatch, index, "search", slow_dense)
    _spy(monkeypatch, index, "text_search", fast_bm25)
    counted("search")
    counted("text_search")
    if not concurrent:
        _sequential(monkeypatch, index)
    with pytest.raises(Boom) as caught:
        _search(built, QUERIES["text+image"])
    assert caught.value is dense
    assert running[0] == 0


@pytest.mark.parametrize("concurrent", [True, False], ids=["overlapped", "one-by-one"])
def test_image_image_errors_count_at_weight_zero(
    built: tuple[Index, Path], monkeypatch: pytest.MonkeyPatch, concurrent: bool
) -> None:
    """image->image runs whatever its weight (it feeds the votes), so its failure surfaces."""
    index, _ = built
    boom = Boom("images table unreadable")

    def fail(args: tuple[Any, ...]) -> None:
        if args[:2] in {("images", "clip_image"), ("pictures", "clip_image")}:
            raise boom

    _spy(monkeypatch, index, "search", fail)
    if not concurrent:
        _sequential(monkeypatch, index)
    spec = {"image": "Tomato", "weights": {"image->image": 0, "image->passage:votes": 0}}
    with pytest.raises(Boom) as caught:
        _search(built, spec)
    assert caught.value is boom
