"""Same data, same answers: one corpus indexed into LanceDB and into a real Milvus server (exact
FLAT index) gives the same top-k hits and the same fused article ranking.

The PyPI ``milvus`` 2.3.5 server has no BM25, so the two BM25 routes get weight 0 on BOTH stores
when the Milvus store reports ``supports_text_search = False``; every dense route is compared.
Encoders: FAKE deterministic ones (tests/fakes.py) on the wiki_tutorial articles and 24 of their
images, and the REAL all-MiniLM-L6-v2 on six of the articles (shortened), text only.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import uuid
from pathlib import Path

import pytest

from fakes import FakeClipEncoder, FakeTextEncoder
from helpers.expected_features import bm25_expected
from mmretrieve import Index
from mmretrieve.retrieval.weights import TEXT_IMAGE_BM25, TEXT_PASSAGE_BM25

pytestmark = pytest.mark.slow
pytest.importorskip("pymilvus", reason="pymilvus not installed (pip install 'mmretrieve[milvus]')")

TEXT_QUERIES = [
    "Which South Korean boy band was formed in 2010?",
    "bridge over the bay in San Francisco",
    "history of the city and its population",
    "music album released world tour",
]
K = 5


def _milvus_address() -> str:
    address = os.environ.get("MMRETRIEVE_MILVUS_URI", "127.0.0.1:19530").split("://", 1)[-1]
    host, _, port = address.rstrip("/").rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
    except OSError as exc:
        reason = f"no Milvus server at {address} ({exc}); run `scripts/milvus-server.sh start`"
        if os.environ.get("MMRETRIEVE_REQUIRE_MILVUS") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return address.rstrip("/")


@pytest.fixture(scope="module")
def milvus_address() -> str:
    return _milvus_address()


@pytest.fixture(scope="module")
def corpus(wiki_tutorial_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wiki_tutorial articles and their 24 smallest images (keeps decoding cheap)."""
    root = tmp_path_factory.mktemp("corpus")
    shutil.copy(wiki_tutorial_dir / "corpus.jsonl", root / "corpus.jsonl")
    lines = (wiki_tutorial_dir / "images.jsonl").read_text(encoding="utf-8").splitlines()
    entries = [json.loads(line) for line in lines if line.strip()]
    entries.sort(key=lambda e: ((wiki_tutorial_dir / e["file"]).stat().st_size, e["id"]))
    (root / "images").mkdir()
    with (root / "images.jsonl").open("w", encoding="utf-8") as out:
        for entry in entries[:24]:
            shutil.copy(wiki_tutorial_dir / entry["file"], root / entry["file"])
            out.write(json.dumps(entry) + "\n")
    return root


def _build(location: str, corpus: Path, **encoders) -> Index:
    index = Index.open(location, **encoders)
    report = index.add(corpus)
    assert report.skipped == [] and report.articles_added == 15
    return index


@pytest.fixture(scope="module")
def fake_pair(corpus, milvus_address, tmp_path_factory):
    def encoders():
        return {"text_encoder": FakeTextEncoder(), "image_encoder": FakeClipEncoder()}

    lance = _build(str(tmp_path_factory.mktemp("lance") / "idx"), corpus, **encoders())
    prefix = f"eq_{uuid.uuid4().hex[:10]}"
    milvus = _build(f"milvus://{milvus_address}/{prefix}?index=flat", corpus, **encoders())
    yield lance, milvus
    lance.close()
    milvus.store.drop()
    milvus.close()


def _weights(milvus: Index) -> dict[str, float]:
    """BM25 off on both stores when this Milvus cannot do it (said in the module docstring)."""
    if getattr(milvus.store, "supports_text_search", True):
        return {}
    return {TEXT_PASSAGE_BM25: 0.0, TEXT_IMAGE_BM25: 0.0}


def _signature(hit) -> tuple:
    return tuple(sorted((route, round(score, 4)) for route, score in hit.route_scores.items()))


def _canonical(hits) -> list[tuple]:
    """(signature, kind, id) with EXACT ties (the same score on every route) ordered by id: the
    FAKE bag-of-words vectors tie often, and each store orders equal scores its own way."""
    out: list[tuple] = []
    for hit in hits:
        out.append((_signature(hit), hit.kind, hit.id))
    runs: list[list[tuple]] = []
    for item in out:
        if runs and runs[-1][-1][0] == item[0]:
            runs[-1].append(item)
        else:
            runs.append([item])
    return [x for run in runs for x in sorted(run, key=lambda t: (t[1], t[2]))]


def _same(a, b) -> None:
    """Same hits, scores, articles and route statuses (BM25 routes aside: "weight 0" on one
    store may read "lexical route unavailable on this store" on the other)."""
    assert _canonical(a.hits) == _canonical(b.hits)
    # Raw scores agree to float32 rounding (~1e-7); fusion divides by each route's spread (a
    # z-score, then min-max), which magnifies that by up to ~100x on fused scores in [0, 2].
    close = {"rel": 1e-5, "abs": 1e-5}
    assert [h.score for h in a.hits] == pytest.approx([h.score for h in b.hits], **close)
    assert [r.article.id for r in a.articles] == [r.article.id for r in b.articles]
    assert [r.score for r in a.articles] == pytest.approx([r.score for r in b.articles], **close)
    for x, y in zip(a.articles, b.articles, strict=True):
        assert _canonical(x.passages) == _canonical(y.passages)
        assert _canonical(x.images) == _canonical(y.images)
    lexical = {TEXT_PASSAGE_BM25, TEXT_IMAGE_BM25}
    assert {k: v for k, v in a.routes.items() if k not in lexical} == {
        k: v for k, v in b.routes.items() if k not in lexical
    }


def test_same_rows_in_both_stores(fake_pair):
    lance, milvus = fake_pair
    assert lance.stats()["counts"] == milvus.stats()["counts"]
    fields = ["id", "article_id", "text", "position", "section", "content_hash"]
    rows = {r["id"]: r for r in lance.store.scan("passages", fields)}
    assert {r["id"]: r for r in milvus.store.scan("passages", fields)} == rows


@pytest.mark.parametrize("text", TEXT_QUERIES)
def test_fake_text_queries_equal(fake_pair, text):
    lance, milvus = fake_pair
    weights = _weights(milvus)
    _same(
        lance.search(text=text, k=K, weights=weights),
        milvus.search(text=text, k=K, weights=weights),
    )


@pytest.mark.parametrize("n", [0, 7, 19])
def test_fake_image_and_combined_queries_equal(fake_pair, corpus, n):
    lance, milvus = fake_pair
    image = sorted((corpus / "images").iterdir())[n]
    weights = _weights(milvus)
    _same(lance.search(image=image, k=K), milvus.search(image=image, k=K))
    both = {"text": TEXT_QUERIES[n % len(TEXT_QUERIES)], "image": image, "k": K, "weights": weights}
    _same(lance.search(**both), milvus.search(**both))


def test_lexical_route_status(fake_pair, milvus_address):
    """The one outcome this server must give: CI's 2.3.5 has no BM25 (helpers/expected_features),
    so text_search answers [] with a warning and the searcher reports the route unavailable; a
    2.5+ server runs the route."""
    _, milvus = fake_pair
    has_bm25 = bm25_expected("milvus", milvus_address)
    assert milvus.store.supports_text_search is has_bm25
    if has_bm25:
        result = milvus.search(text="Which South Korean boy band", k=3)
        assert result.routes[TEXT_PASSAGE_BM25] == "ok"
        assert any(TEXT_PASSAGE_BM25 in h.route_scores for h in result.hits)
        return
    with pytest.warns(RuntimeWarning, match="BM25"):
        assert milvus.store.text_search("passages", "BTS", k=3) == []
    result = milvus.search(text="Which South Korean boy band", k=3)  # default weights
    # The searcher checks the capability and says why the route did not run.
    assert result.routes[TEXT_PASSAGE_BM25] == "lexical route unavailable on this store"
    assert not any(TEXT_PASSAGE_BM25 in h.route_scores for h in result.hits)


@pytest.mark.realmodel
def test_real_minilm_text_only_equal(corpus, milvus_address, minilm_dir, tmp_path):
    from mmretrieve.encoders import load_text_encoder

    small = tmp_path / "corpus.jsonl"  # 6 articles cut to ~2,000 characters: seconds, not minutes
    with small.open("w", encoding="utf-8") as out:
        for line in (corpus / "corpus.jsonl").read_text(encoding="utf-8").splitlines()[:6]:
            article = json.loads(line)
            out.write(json.dumps(dict(article, text=article["text"][:2000])) + "\n")
    text = load_text_encoder(str(minilm_dir), device="cpu")
    lance = Index.open(tmp_path / "idx", text_encoder=text, image_model="none")
    lance.add(small)
    milvus = Index.open(
        f"milvus://{milvus_address}/eqm_{uuid.uuid4().hex[:10]}?index=flat",
        text_encoder=text,
        image_model="none",
    )
    try:
        milvus.add(small)
        weights = _weights(milvus)
        for query in TEXT_QUERIES:
            _same(
                lance.search(text=query, k=K, weights=weights),
                milvus.search(text=query, k=K, weights=weights),
            )
    finally:
        milvus.store.drop()
        milvus.close()
        lance.close()
