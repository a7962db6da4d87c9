"""Queries arriving together are encoded together (retrieval/batching.py): batches form from
what waits, a lone query is not held back, one bad query fails alone, and searches running at
once return what they return one at a time. FAKE encoders, except the tiny random model of the
real architecture for batch-vs-single vectors."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from fakes import FakeClipEncoder, FakeTextEncoder
from mmretrieve import Index
from mmretrieve.retrieval.batching import Batcher


def _gate_fn(calls: list[list[str]], gate: threading.Event):
    def fn(items):
        calls.append(list(items))
        if items[0] == "first":
            assert gate.wait(5)
        if "bad" in items:
            raise ValueError("bad item")
        return np.array([[len(i)] for i in items], dtype=np.float32)

    return fn


def _busy(max_batch: int):
    """A batcher whose first batch ("first") is running, held on a gate: (batcher, calls, gate,
    the first item's future)."""
    calls: list[list[str]] = []
    gate = threading.Event()
    batcher = Batcher(_gate_fn(calls, gate), max_batch=max_batch, name="t")
    first = batcher.submit("first")
    while not calls:
        threading.Event().wait(0.01)
    return batcher, calls, gate, first


def test_items_waiting_behind_a_running_batch_go_together():
    batcher, calls, gate, first = _busy(8)
    later = [batcher.submit(word) for word in ("a", "bb", "ccc")]
    gate.set()
    assert first.result(5)[0] == 5
    assert [f.result(5)[0] for f in later] == [1, 2, 3]
    assert calls == [["first"], ["a", "bb", "ccc"]]
    assert (batcher.batches, batcher.items) == (2, 4)


def test_a_lone_item_is_not_held_back():
    calls: list[list[str]] = []
    batcher = Batcher(_gate_fn(calls, threading.Event()), max_batch=8, name="t")
    assert batcher("xy")[0] == 2 and batcher("x")[0] == 1
    assert calls == [["xy"], ["x"]]


def test_one_bad_item_fails_alone():
    batcher, _, gate, first = _busy(8)
    ok, bad, ok2 = batcher.submit("aa"), batcher.submit("bad"), batcher.submit("a")
    gate.set()
    first.result(5)
    assert ok.result(5)[0] == 2 and ok2.result(5)[0] == 1
    with pytest.raises(ValueError, match="bad item"):
        bad.result(5)


def test_batches_are_capped():
    batcher, calls, gate, first = _busy(2)
    rest = [batcher.submit(w) for w in ("a", "b", "c")]
    gate.set()
    first.result(5)
    [f.result(5) for f in rest]
    assert calls[1:] == [["a", "b"], ["c"]]


@pytest.fixture(scope="module")
def fake_index(tmp_path_factory) -> Index:
    from PIL import Image

    root = tmp_path_factory.mktemp("batching")
    corpus = root / "corpus"
    for n, (title, text) in enumerate(
        {
            "Batman": "Batman is a superhero. Bruce Wayne is Batman, in Gotham City.",
            "Tomato": "The tomato is a red fruit, used in soup and salad.",
            "Paris": "Paris is the capital of France, on the Seine.",
        }.items()
    ):
        folder = corpus / title
        folder.mkdir(parents=True)
        (folder / "article.txt").write_text(text, encoding="utf-8")
        pixels = np.random.default_rng(n).integers(0, 255, (40, 60, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / "photo.png")
    index = Index.open(
        root / "idx", text_encoder=FakeTextEncoder(), image_encoder=FakeClipEncoder()
    )
    index.add(corpus)
    index.store.hot.budget_bytes = 0  # exact equality below: every read from Lance
    index.corpus = corpus  # type: ignore[attr-defined]
    return index


def _key(result) -> list:
    return [(h.kind, h.id, h.score) for h in result.hits]


def test_searches_at_once_answer_as_one_at_a_time(fake_index: Index):
    corpus: Path = fake_index.corpus  # type: ignore[attr-defined]
    queries = [
        {"text": "Who is Bruce Wayne?"},
        {"text": "red soup"},
        {"image": corpus / "Paris" / "photo.png"},
        {"text": "capital city", "image": corpus / "Batman" / "photo.png"},
    ] * 6
    alone = [_key(fake_index.search(**q)) for q in queries]
    with ThreadPoolExecutor(12) as pool:
        together = list(pool.map(lambda q: _key(fake_index.search(**q)), queries))
    assert together == alone
    encoders = fake_index.searcher.encoders
    assert encoders.text.items == 2 * len([q for q in queries if "text" in q])
    assert encoders.clip_text.items == encoders.text.items
    assert encoders.image.items == 2 * len([q for q in queries if "image" in q])


@pytest.mark.slow
def test_a_batch_gives_the_vectors_one_at_a_time_gives(tiny_text_model_dir, tiny_clip_model_dir):
    """Real architectures (tiny, random weights), torch fp32: padding in a batch changes nothing
    beyond float rounding."""
    from PIL import Image

    from mmretrieve.encoders import load_image_encoder, load_text_encoder

    text = load_text_encoder(str(tiny_text_model_dir), runtime="torch", precision="fp32")
    clip = load_image_encoder(str(tiny_clip_model_dir), runtime="torch", precision="fp32")
    queries = ["a", "Who is Bruce Wayne?", "the tomato is a red fruit used in soup " * 3]
    rng = np.random.default_rng(0)
    pictures = [
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
        for h, w in ((30, 40), (200, 90))
    ]
    for fn, items in (
        (text.encode_queries, queries),
        (clip.encode_texts, queries),
        (clip.encode_images, pictures),
    ):
        together = fn(items)  # what a batcher runs for queries that wait together
        alone = np.concatenate([fn([i]) for i in items])
        np.testing.assert_allclose(together, alone, atol=1e-5)


def test_warm_runs_each_query_model_and_holds_the_tables(tmp_path, fake_index: Index):
    """What `mmretrieve serve` does before it listens (FAKE encoders)."""
    corpus: Path = fake_index.corpus  # type: ignore[attr-defined]
    index = Index.open(
        tmp_path / "idx", text_encoder=FakeTextEncoder(), image_encoder=FakeClipEncoder()
    )
    index.add(corpus)
    ready = index.warm()
    assert ready["tables_held"] == {"articles": 3, "passages": 3, "images": 3, "pictures": 3}
    encoders = index.searcher.encoders
    assert encoders.text.items == encoders.clip_text.items == 4 and encoders.image.items == 2
    index.close()
