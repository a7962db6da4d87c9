"""BM25 ranked in memory (store/bm25.py) gives Lance's own scores and rankings: real text
(squad_dev passages and questions, wiki_tutorial articles, coco captions) and Unicode words,
each indexed by a real Lance full-text index in a temp dir. No models."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from conftest import SHARED, _need
from mmretrieve.store import open_store, table_schemas
from mmretrieve.store.bm25 import LANCE_ANALYZER, Bm25Index, analyze, lance_matches

# Words from many scripts and the letters the folding treats apart; a query is each word, its
# plain-ASCII spelling, and a few words together.
UNICODE_DOCS = [
    "Łazienki Park in Warsaw; Kraków and Gdańsk",
    "œuvre complète, Æsir, straße, Þórr, Đorđe, Ħal, ıstanbul",
    "⅓ of the ½ km² area, ² and ⑬, ﬁnal ﬂight",
    "Temüjin (Чингис хаан) 大元 Yuán dynasty",
    "Σοφία and π, γδ T cells, ά",
    "İstanbul İzmir, ǅ ǈ, Ǿ, ǣ",
    "don’t “quoted” 1990–91 season — em dash",
    "a\u00a0non-breaking\u202fspace and e\u0301 decomposed",
    "ᴬᴮ ℂℍ ⅰⅱ Ⅻ ㉑ modifier and roman letters",
    "x" * 39 + " " + "y" * 40 + " " + "é" * 20 + " short",
    "the and of which were than",  # stop words only
    "",
]


def _lance_table(tmp_path, texts):
    import lancedb
    import pyarrow as pa
    from lancedb.index import FTS

    db = lancedb.connect(str(tmp_path / "lance"))
    ids = [str(i) for i in range(len(texts))]
    table = db.create_table("t", pa.table({"id": ids, "text": texts}))
    table.create_index("text", config=FTS(with_position=False), replace=True)
    return table


def _groups(ranked):
    """(score, ids) per run of equal float32 scores: Lance orders ties as it finds them."""
    return [
        (float(score), {i for i, _ in run})
        for score, run in itertools.groupby(ranked, key=lambda x: np.float32(x[1]))
    ]


def assert_same_ranking(lance, ours, query=None):
    """Two lists of (id, score), best first, rank alike: the same scores, and the same ids in
    every run of tied scores but the last (which a cut at k may split either way)."""
    a, b = _groups(lance), _groups(ours)
    assert len(lance) == len(ours) and len(a) == len(b), (query, lance[:5], ours[:5])
    for (sa, _), (sb, _) in zip(a, b, strict=True):
        assert sb == pytest.approx(sa, rel=1e-5), (query, sa, sb)
    # Every tie group but the last is whole on both sides (the last may be cut at k).
    assert [ids for _, ids in a[:-1]] == [ids for _, ids in b[:-1]], query


def _compare(table, index, queries, k=50, keep=None, where=None):
    for query in queries:
        search = table.search(query, query_type="fts").limit(k).select(["id", "_score"])
        if where:
            search = search.where(where, prefilter=True)
        try:
            lance = [(r["id"], r["_score"]) for r in search.to_list()]
        except (ValueError, RuntimeError):
            lance = []
        rows, scores = index.search(query, k, keep)
        ours = [(str(r), float(s)) for r, s in zip(rows, scores, strict=True)]
        assert_same_ranking(lance, ours, query)


def _jsonl(path):
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def test_squad_dev_questions_rank_as_lance_ranks_them(tmp_path):
    folder = _need(SHARED / "data" / "squad_dev")
    texts = [d["text"] for d in _jsonl(folder / "corpus.jsonl")]
    questions = [q["text"] for q in _jsonl(folder / "queries.jsonl")][::4]  # 2,643
    table = _lance_table(tmp_path, texts)
    _compare(table, Bm25Index.build(texts), questions)


def test_squad_dev_with_a_filter_ranks_as_lance_prefilters(tmp_path):
    folder = _need(SHARED / "data" / "squad_dev")
    texts = [d["text"] for d in _jsonl(folder / "corpus.jsonl")]
    questions = [q["text"] for q in _jsonl(folder / "queries.jsonl")][1::40]
    table = _lance_table(tmp_path, texts)
    keep = np.zeros(len(texts), dtype=bool)
    keep[::3] = True
    where = "id IN (" + ",".join(f"'{i}'" for i in np.flatnonzero(keep)) + ")"
    _compare(table, Bm25Index.build(texts), questions, k=20, keep=keep, where=where)


def test_wiki_tutorial_and_coco_captions_rank_as_lance_ranks_them(tmp_path):
    articles = _jsonl(_need(SHARED / "data" / "wiki_tutorial") / "corpus.jsonl")
    paragraphs = [p for a in articles for p in a["text"].split("\n") if p.strip()]
    table = _lance_table(tmp_path / "wiki", paragraphs)
    queries = [a["title"] for a in articles] + [p[:80] for p in paragraphs[::7]]
    _compare(table, Bm25Index.build(paragraphs), queries)

    captions = [q["text"] for q in _jsonl(_need(SHARED / "data" / "coco_mini") / "queries.jsonl")]
    table = _lance_table(tmp_path / "coco", captions[::2])
    _compare(table, Bm25Index.build(captions[::2]), captions[1::2], k=30)


def test_unicode_words_fold_and_split_as_lance_does(tmp_path):
    table = _lance_table(tmp_path, UNICODE_DOCS)
    words = sorted({w for d in UNICODE_DOCS for w in d.split()})
    plain = [
        "lazienki", "krakow", "oeuvre", "aesir", "strasse", "thorr", "dorde", "hal", "istanbul",
        "13", "12", "km2", "2", "final", "flight", "temujin", "yuan", "izmir", "dz", "lj", "o",
        "ae", "don", "t", "1990", "91", "non", "breaking", "space", "e", "decomposed", "ab",
        "ch", "i", "ii", "xii", "21", "x" * 39, "y" * 40, "short", "the", "were", "σοφία",
    ]  # fmt: skip
    together = [" ".join(words[i : i + 4]) for i in range(0, len(words), 3)]
    _compare(table, Bm25Index.build(UNICODE_DOCS), words + plain + together, k=20)


def test_the_analyzer_keeps_query_repeats_and_drops_stop_words_after_stemming():
    assert analyze("The teams' team TEAM") == ["team", "team", "team"]
    assert analyze("Which was it? Does it?") == ["doe"]  # "does" stems to "doe", not a stop word
    assert analyze("") == []


def test_the_store_creates_the_index_this_module_reproduces(tmp_path):
    store = open_store(tmp_path / "idx")
    store.ensure_tables(table_schemas(4, 4, clip_text_view=True))
    store.upsert(
        "passages",
        [
            {"id": "p1", "article_id": "a", "text": "hello world", "position": 0,
             "section": None, "content_hash": "h", "bge": [1, 0, 0, 0],
             "clip_text": [0, 1, 0, 0]},
        ],
    )  # fmt: skip
    store.optimize()
    (ix,) = [i for i in store._table("passages").list_indices() if i.index_type == "FTS"]
    assert lance_matches(ix.index_details), (ix.index_details, LANCE_ANALYZER)
    store.close()
