"""One contract every Store backend passes (STYLE 12). Add a backend to STORE_FACTORIES."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from helpers.expected_features import bm25_expected
from mmretrieve.store import open_store, table_schemas
from mmretrieve.store.base import ARTICLES, IMAGES, PASSAGES, Match, Store

TEXT_DIM, CLIP_DIM = 8, 6


def _lance(tmp: Path) -> Store:
    return open_store(f"lance://{tmp / 'idx'}")


# -- Milvus: a real server (scripts/milvus-server.sh start), and Milvus Lite when installed. ----
# Making collections costs seconds each, so one set per backend serves the whole session, under
# a prefix of its own; after each test its rows and manifest go, at the end its collections.
# Without a server the Milvus cases skip, saying why; MMRETRIEVE_REQUIRE_MILVUS=1 (CI) fails.
_MILVUS_URIS: dict[str, str] = {}


def milvus_address() -> str:
    raw = os.environ.get("MMRETRIEVE_MILVUS_URI", "127.0.0.1:19530")
    return raw.split("://", 1)[-1].rstrip("/")


def need_milvus_server() -> str:
    """HOST:PORT of a reachable Milvus server, or skip (fail when MMRETRIEVE_REQUIRE_MILVUS=1)."""
    address = milvus_address()
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host or "127.0.0.1", int(port or 19530)), timeout=2).close()
    except OSError as exc:
        reason = (
            f"no Milvus server at {address} ({exc}); start one with "
            "`scripts/milvus-server.sh start` or set MMRETRIEVE_MILVUS_URI"
        )
        if os.environ.get("MMRETRIEVE_REQUIRE_MILVUS") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return address


def _milvus(tmp: Path) -> Store:
    pytest.importorskip("pymilvus", reason="pymilvus missing: pip install 'mmretrieve[milvus]'")
    prefix = f"contract_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    uri = _MILVUS_URIS.setdefault("milvus", f"milvus://{need_milvus_server()}/{prefix}?index=hnsw")
    return open_store(uri)


def _milvus_lite(tmp: Path) -> Store:
    pytest.importorskip("milvus_lite", reason="milvus-lite not installed")
    path = Path(tempfile.gettempdir()) / f"mmretrieve-contract-{os.getpid()}" / "lite.db"
    return open_store(_MILVUS_URIS.setdefault("milvus-lite", f"milvus-lite://{path}"))


STORE_FACTORIES: dict[str, Callable[[Path], Store]] = {
    "lance": _lance,
    "milvus": _milvus,
    "milvus-lite": _milvus_lite,
}


@pytest.fixture(autouse=True)
def _reset_milvus():
    """After each test: delete the rows and the manifest of the shared Milvus collections."""
    yield
    for uri in _MILVUS_URIS.values():
        store = open_store(uri)
        client, prefix = store._client, store.prefix  # type: ignore[attr-defined]
        for name in client.list_collections():
            if name == f"{prefix}_manifest":
                client.drop_collection(name)
            elif name.startswith(f"{prefix}_"):
                client.delete(name, filter='id != ""')
        store.close()


@pytest.fixture(autouse=True, scope="module")
def _drop_milvus():
    yield
    for uri in _MILVUS_URIS.values():
        store = open_store(uri)
        store.drop()  # type: ignore[attr-defined]
        store.close()
        if uri.startswith("milvus-lite://"):
            shutil.rmtree(Path(uri.split("://", 1)[1]).parent, ignore_errors=True)
    _MILVUS_URIS.clear()


@pytest.fixture(params=sorted(STORE_FACTORIES))
def make_store(request, tmp_path):
    made: list[Store] = []

    def make() -> Store:
        store = STORE_FACTORIES[request.param](tmp_path)
        # Format 3 tables: images with their own CLIP vectors (pictures: test_pictures_table).
        store.ensure_tables(table_schemas(TEXT_DIM, CLIP_DIM, clip_text_view=True, version=3))
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


def unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32)
    return v / np.linalg.norm(v)


def passage(i: int, article: str, text: str, vec) -> dict:
    return {
        "id": f"{article}#p{i}",
        "article_id": article,
        "text": text,
        "position": i,
        "section": None,
        "content_hash": f"h{i}",
        "bge": unit(vec),
        "clip_text": unit(np.ones(CLIP_DIM)),
    }


def basis(i: int, dim: int = TEXT_DIM) -> np.ndarray:
    v = np.full(dim, 0.01, np.float32)
    v[i] = 1.0
    return unit(v)


@pytest.fixture
def filled(make_store):
    store = make_store()
    store.upsert(
        PASSAGES,
        [
            passage(0, "A", "Bruce Wayne is Batman, a vigilante of Gotham", basis(0)),
            passage(1, "A", "The Batmobile is his car", basis(1)),
            passage(0, "B", "Vincent van Gogh painted sunflowers", basis(2)),
            passage(0, "C's", "Tomato soup with basil", basis(3)),
        ],
    )
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


def store_has_bm25(request: pytest.FixtureRequest, store: Store) -> bool:
    """Assert the store reports the BM25 its backend kind must have (helpers/expected_features:
    Lance and Milvus Lite 3 yes, CI's Milvus 2.3.5 server no), and return it."""
    kind = request.node.callspec.params["make_store"]
    expected = bm25_expected(kind, milvus_address() if kind == "milvus" else None)
    assert store.supports_text_search is expected, (
        f"{store.uri} ({kind}) must {'' if expected else 'not '}report BM25 full-text search"
    )
    return expected


def test_text_search_bm25(filled, request):
    if not store_has_bm25(request, filled):  # the one outcome such a server gives: [] and a warning
        with pytest.warns(RuntimeWarning, match="BM25"):
            assert filled.text_search(PASSAGES, "Bruce Wayne", k=3) == []
        pytest.skip(f"{filled.uri}: this server has no BM25 (Milvus < 2.5); text_search says so")
    filled.optimize()
    hits = filled.text_search(PASSAGES, "Who is Bruce Wayne?", k=3)
    assert hits and hits[0].id == "A#p0"
    assert all(h.score > 0 for h in hits)
    assert filled.text_search(PASSAGES, "sunflowers", k=3, filter={"article_id": "A"}) == []
    # rows written after the full-text index was built are found too
    filled.upsert(PASSAGES, [passage(2, "A", "Alfred Pennyworth is the butler", basis(4))])
    assert filled.text_search(PASSAGES, "butler Pennyworth", k=3)[0].id == "A#p2"


def test_text_search_odd_queries_do_not_fail(filled, request):
    odd = ['"unclosed', "AND OR NOT", "(", "a:b", "*", "😀 émoji"]
    if not store_has_bm25(request, filled):  # the one outcome such a server gives: []
        with warnings.catch_warnings():  # (it warns once per store: test_text_search_bm25 saw it)
            warnings.simplefilter("ignore", RuntimeWarning)
            assert [filled.text_search(PASSAGES, q, k=3) for q in odd] == [[]] * len(odd)
        return
    filled.optimize()
    for q in odd:
        assert isinstance(filled.text_search(PASSAGES, q, k=3), list)
    # Query syntax is not interpreted: the words around it are still found.
    assert filled.text_search(PASSAGES, '"Bruce (Wayne', k=3)[0].id == "A#p0"


def test_images_bool_filter_and_nullable(make_store):
    store = make_store()
    row = {
        "id": "i1",
        "article_id": None,
        "uri": "/x.jpg",
        "caption": None,
        "alt_text": None,
        "search_text": "",
        "width": 10,
        "height": 10,
        "sha256": "s",
        "license": None,
        "has_caption": False,
        "content_hash": "h",
        "clip_image": unit(np.arange(1, CLIP_DIM + 1)),
        "caption_bge": np.zeros(TEXT_DIM, np.float32),
        "phash": 2**63 - 5,  # a perceptual hash uses all 63 bits of an int64
    }
    row2 = dict(
        row,
        id="i2",
        article_id="A",
        caption="a bat",
        search_text="a bat",
        has_caption=True,
        caption_bge=basis(1),
        phash=None,
    )
    row3 = dict(row, id="i3", phash=7)
    store.upsert(IMAGES, [row, row2, row3])
    hits = store.search(IMAGES, "caption_bge", basis(1), k=5, filter={"has_caption": True})
    assert [h.id for h in hits] == ["i2"]
    assert store.get(IMAGES, ["i1"])[0]["article_id"] is None
    assert store.get(IMAGES, ["i1", "i2"], ["id", "phash"]) == [
        {"id": "i1", "phash": 2**63 - 5},
        {"id": "i2", "phash": None},
    ]
    # Membership on an integer column (how a search finds the copies of a picture).
    found = store.scan(IMAGES, ["id"], {"phash": [2**63 - 5, 7, 11]})
    assert sorted(r["id"] for r in found) == ["i1", "i3"]


def test_manifest_roundtrip_and_reopen(make_store):
    store = make_store()
    assert store.read_manifest() is None
    store.write_manifest({"format_version": 1, "models": {"text": {"name": "m"}}})
    store.upsert(
        ARTICLES,
        [
            {
                "id": "A",
                "title": "Batman",
                "url": None,
                "license": None,
                "source": None,
                "content_hash": "h",
                "n_passages": 1,
                "clip_title": unit(np.ones(CLIP_DIM)),
            }
        ],
    )
    store.close()
    again = make_store()
    assert again.read_manifest()["models"]["text"]["name"] == "m"
    assert again.get(ARTICLES, ["A"])[0]["title"] == "Batman"


MATCH_SECTIONS = ["History", "History of art", "Geography", None, "50%_off", "50 off", "a_b", "axb"]
MATCHES = [
    Match(values=("History",)),
    Match(prefixes=("History",)),
    Match(prefixes=("History",), negate=True),
    Match(prefixes=("History",), negate=True, null=True),
    Match(values=("Geography",), prefixes=("Hist",), null=True),
    Match(prefixes=("50%",)),  # wildcards in a prefix are plain characters
    Match(prefixes=("a_",)),
    Match(values=(), prefixes=()),
    Match(negate=True),
    Match(null=True),
]


@pytest.mark.parametrize("match", MATCHES, ids=repr)
def test_match_conditions_agree_with_python(make_store, match):
    """Membership, prefixes, negation and nulls on a string field mean what Match.holds says, in
    scans, counts and vector searches (the filter is applied before the top k)."""
    store = make_store()
    rows = [
        dict(passage(i, f"M{i}", f"text {i}", basis(i)), section=section)
        for i, section in enumerate(MATCH_SECTIONS)
    ]
    store.upsert(PASSAGES, rows)
    expected = sorted(r["id"] for r in rows if match.holds(r["section"]))
    flt = {"section": match}
    assert sorted(r["id"] for r in store.scan(PASSAGES, ["id"], flt)) == expected
    assert store.count(PASSAGES, flt) == len(expected)
    hits = store.search(PASSAGES, "bge", basis(0), k=len(expected) or 1, filter=flt)
    assert sorted(h.id for h in hits) == expected
    combined = {"section": match, "article_id": Match(prefixes=("M1", "M2", "M3"))}
    wanted = [
        r["id"] for r in rows if match.holds(r["section"]) and r["article_id"] in ("M1", "M2", "M3")
    ]
    assert sorted(r["id"] for r in store.scan(PASSAGES, ["id"], combined)) == sorted(wanted)


def test_pictures_table(make_store):
    """Format 4: pictures (one row per file, its CLIP vector) and images (its uses, without one)
    live side by side; a picture is found by vector and its uses by file hash."""
    store = make_store()
    store.ensure_tables(
        [s for s in table_schemas(TEXT_DIM, CLIP_DIM, clip_text_view=False) if s.name == "pictures"]
    )
    store.upsert(
        "pictures",
        [
            {"id": "s1", "phash": 2**62, "width": 4, "height": 3, "clip_image": basis(1, CLIP_DIM)},
            {"id": "s2", "phash": None, "width": None, "height": None,
             "clip_image": basis(2, CLIP_DIM)},
        ],
    )  # fmt: skip
    hits = store.search("pictures", "clip_image", basis(2, CLIP_DIM), k=1, fields=["id", "phash"])
    assert [(h.id, h.row["phash"]) for h in hits] == [("s2", None)]
    hits = store.search("pictures", "clip_image", basis(1, CLIP_DIM), k=5, filter={"id": ["s1"]})
    assert [h.id for h in hits] == ["s1"]
    assert store.count("pictures") == 2
    store.delete("pictures", ids=["s1"])
    assert [r["id"] for r in store.scan("pictures", ["id"])] == ["s2"]
