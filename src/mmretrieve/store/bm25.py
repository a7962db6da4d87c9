"""BM25 over a table held in memory, ranked as Lance's full-text index ranks it.

A Lance full-text search costs 6-8 ms per call at 100,000 passages on a 2-core machine whatever
the query (and 15-30 ms while the query's other routes run beside it), where scoring the
posting lists of a query's few words takes a fraction of a millisecond. A table held by the
searcher (hot.py) therefore gets its own inverted index, built from the same text with the same
analyzer and scored with the same formula as Lance's index (the default ``FTS()`` config this
store creates):

- words: maximal runs of Unicode alphabetic or numeric characters; a word of 40 bytes or more is
  dropped; lower-cased; English Snowball stemmer; stop words removed after stemming; then ASCII
  folding (a compatibility decomposition keeping its ASCII characters, or a short table for
  letters that have none, such as "ł" or "æ");
- BM25 with k1 = 1.2 and b = 0.75, idf = ln(1 + (N - n + 0.5) / (n + 0.5)), document length =
  its number of terms, computed in float32; a word repeated in the query counts each time.

tests/unit/test_bm25.py compares scores and rankings with Lance's own on real text (squad_dev
questions and passages, wiki_tutorial, coco captions) and on a sample of Unicode letters. A
table is ranked here only while Lance's index covers all of its rows with that analyzer
(``lance_matches``); otherwise Lance ranks, as before.
"""

from __future__ import annotations

import functools
import itertools
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

K1 = 1.2
B = 0.75
MAX_WORD_BYTES = 40
# The stop words of Lance's English analyzer. They are removed after stemming, so an entry only
# matters where it is a stem ("because" stems to "becaus" and stays).
STOP_WORDS = frozenset(
    """i me my myself we our ours ourselves you you're you've you'll you'd your yours yourself
    yourselves he him his himself she she's her hers herself it it's its itself they them their
    theirs themselves what which who whom this that that'll these those am is are was were be been
    being have has had having do does did doing a an the and but if or because as until while of
    at by for with about against between into through during before after above below to from up
    down in out on off over under again further then once here there when where why how all any
    both each few more most other some such no nor not only own same so than too very s t can
    will just don don't should should've now d ll m o re ve y ain aren aren't couldn couldn't
    didn didn't doesn doesn't hadn hadn't hasn hasn't haven haven't isn isn't ma mightn mightn't
    mustn mustn't needn needn't shan shan't shouldn shouldn't wasn wasn't weren weren't won won't
    wouldn wouldn't""".split()  # noqa: SIM905 - a word list reads best as words
)
# Lower-case letters with no compatibility decomposition that the folding still maps.
_FOLD_TABLE = {
    "æ": "ae", "ð": "d", "ø": "o", "þ": "th", "ß": "ss", "đ": "d", "ħ": "h", "ı": "i",
    "ł": "l", "ŋ": "n", "œ": "oe", "ŧ": "t", "ǣ": "ae", "ǽ": "ae", "ǿ": "o",
}  # fmt: skip
# The analyzer settings of Lance's index that this module reproduces (its index_details).
LANCE_ANALYZER = {
    "base_tokenizer": "simple",
    "language": "English",
    "max_token_length": MAX_WORD_BYTES,
    "lower_case": True,
    "stem": True,
    "remove_stop_words": True,
    "custom_stop_words": None,
    "ascii_folding": True,
}


def lance_matches(details: Mapping[str, Any]) -> bool:
    """Whether a Lance full-text index with these ``index_details`` analyzes text as here."""
    return all(details.get(key) == value for key, value in LANCE_ANALYZER.items())


@functools.cache
def _words() -> Any:
    try:
        import regex
    except ImportError as exc:  # pragma: no cover - a core dependency
        raise ImportError("BM25 in memory needs `pip install regex`") from exc
    return regex.compile(r"[\p{Alphabetic}\p{N}]+")


@functools.cache
def _stemmer() -> Any:
    try:
        import Stemmer
    except ImportError as exc:  # pragma: no cover - a core dependency
        raise ImportError("BM25 in memory needs `pip install PyStemmer`") from exc
    return Stemmer.Stemmer("english")


@functools.lru_cache(maxsize=1 << 12)
def _fold_char(char: str) -> str:
    table = _FOLD_TABLE.get(char)
    if table is not None:
        return table
    kept = "".join(c for c in unicodedata.normalize("NFKD", char) if c.isascii())
    return kept or char


@functools.lru_cache(maxsize=1 << 18)
def term(word: str) -> str | None:
    """The index term of one word (a run of letters and digits), or None when it is dropped."""
    if not word or len(word.encode()) >= MAX_WORD_BYTES:
        return None
    lower = word.lower() if word.isascii() else "".join(c.lower() for c in word)
    stem = _stemmer().stemWord(lower)
    if stem in STOP_WORDS:
        return None
    return stem if stem.isascii() else "".join(map(_fold_char, stem))


def analyze(text: str) -> list[str]:
    """The terms of ``text``, in order, repeats kept."""
    return [t for t in map(term, _words().findall(text)) if t is not None]


@dataclass(frozen=True)
class Bm25Index:
    """Posting lists of one text column: for term t, rows ``docs[starts[t]:starts[t+1]]`` with
    their precomputed length-normalised term weights ``weights[...]``."""

    vocabulary: dict[str, int]
    starts: np.ndarray  # int64, len(vocabulary) + 1
    docs: np.ndarray  # int32 row numbers, by term then row
    weights: np.ndarray  # float32, (k1 + 1) tf / (tf + k1 (1 - b + b len / avg len))
    idf: np.ndarray  # float32 per term
    rows: int

    @property
    def nbytes(self) -> int:
        return int(self.starts.nbytes + self.docs.nbytes + self.weights.nbytes + self.idf.nbytes)

    @classmethod
    def build(cls, texts: Any) -> Bm25Index:
        """The index of ``texts`` (strings or None, as a sequence or an Arrow string array):
        words are split and deduplicated in Arrow, and each distinct word is analyzed once
        (``_words_of``)."""
        import pyarrow as pa

        column = texts if isinstance(texts, pa.Array) else pa.array(texts, pa.large_string())
        column = column.cast(pa.large_string())
        rows = len(column)
        vocabulary: dict[str, int] = {}

        owner, term_of = _words_of(column, vocabulary)
        lengths = np.bincount(owner, minlength=rows)
        # Rows are in order; a stable sort by term keeps them so within each term.
        narrow = np.uint16 if len(vocabulary) <= 1 << 16 else np.int64
        order = np.argsort(term_of.astype(narrow), kind="stable")
        term_of, owner = term_of[order], owner[order]
        new = np.ones(len(owner), dtype=bool)
        new[1:] = (term_of[1:] != term_of[:-1]) | (owner[1:] != owner[:-1])
        firsts = np.flatnonzero(new)
        tf = np.diff(np.append(firsts, len(owner)))
        docs, term_sorted = owner[firsts], term_of[firsts]
        starts = np.searchsorted(term_sorted, np.arange(len(vocabulary) + 1)).astype(np.int64)
        # A row without terms is not a document to Lance's index: it counts in neither N nor
        # the average length.
        documents = np.float32(max(1, int(np.count_nonzero(lengths))))
        avg = np.float32(lengths.sum()) / documents
        tf32 = tf.astype(np.float32)
        norm = np.float32(K1) * (
            np.float32(1 - B) + np.float32(B) * lengths[docs].astype(np.float32) / avg
        )
        weights = (np.float32(K1 + 1) * tf32 / (tf32 + norm)).astype(np.float32)
        n = np.diff(starts).astype(np.float32)
        idf = np.log((documents - n + np.float32(0.5)) / (n + np.float32(0.5)) + np.float32(1.0))
        return cls(vocabulary, starts, docs.astype(np.int32), weights, idf.astype(np.float32), rows)

    def search(
        self, query: str, k: int, keep: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Row numbers and scores of the best ``k`` rows for ``query`` (rows ``keep`` allows),
        best first, ties in row order."""
        vocabulary = self.vocabulary
        ids = [vocabulary[t] for t in analyze(query) if t in vocabulary]
        empty = np.empty(0, np.int64), np.empty(0, np.float32)
        if not ids or k <= 0:
            return empty
        scores = np.zeros(self.rows, dtype=np.float32)
        for i in ids:
            lo, hi = self.starts[i], self.starts[i + 1]
            scores[self.docs[lo:hi]] += self.idf[i] * self.weights[lo:hi]
        if keep is not None:
            scores[~keep] = 0
        rows = np.flatnonzero(scores)  # every term's weight is > 0
        found = scores[rows]
        if k < len(rows):
            part = np.argpartition(-found, k - 1)[:k]
            rows, found = rows[part], found[part]
        order = np.lexsort((rows, -found))
        return rows[order], found[order]


# Every ASCII byte that is not a letter or digit separates words; other bytes are kept.
_SEPARATORS = bytes(c if c >= 128 or chr(c).isalnum() else 32 for c in range(256))


def _words_of(column: Any, vocabulary: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """(row, term id) of every term of ``column``, rows in order. ASCII punctuation and spaces
    never belong to a word, so Arrow splits the text at them and encodes the pieces; each
    distinct piece is then cut into words by the exact pattern (most pieces are one ASCII word)
    and each distinct word is analyzed once. The whole build took 12.4 s at 100,000 passages of
    1,200 characters here, where the pattern and the analyzer word by word took 14.1 s."""
    import pyarrow as pa
    import pyarrow.compute as pc

    part = pa.concat_arrays([column])  # own buffers, offset 0
    validity, offsets, data = part.buffers()
    if data is None or not len(part):
        return np.empty(0, np.int64), np.empty(0, np.int64)
    spaced = pa.py_buffer(data.to_pybytes().translate(_SEPARATORS))
    part = pa.LargeStringArray.from_buffers(len(part), offsets, spaced, validity, part.null_count)
    split = pc.ascii_split_whitespace(part)
    counts = pc.fill_null(pc.list_value_length(split), 0).to_numpy(zero_copy_only=False)
    encoded = pc.dictionary_encode(pc.list_flatten(split))
    pieces = encoded.dictionary.to_pylist()
    findall = _words().findall

    def term_id(word: str) -> int:
        found = term(word)
        return -1 if found is None else vocabulary.setdefault(found, len(vocabulary))

    # Each distinct piece -> its term ids, as one flat array with offsets.
    ids_of = [
        [term_id(piece)] if piece.isascii() else [term_id(w) for w in findall(piece)]
        for piece in pieces
    ]
    sizes = np.fromiter((len(ids) for ids in ids_of), dtype=np.int64, count=len(ids_of))
    flat = np.fromiter(itertools.chain.from_iterable(ids_of), dtype=np.int64, count=sizes.sum())
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    which = encoded.indices.to_numpy(zero_copy_only=False)
    owner = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    if bool((sizes == 1).all()):
        term_of = flat[which]
    else:  # a piece of n words stands for n terms in its row
        per = sizes[which]
        owner = np.repeat(owner, per)
        first = np.repeat(starts[which] - np.cumsum(per) + per, per)
        term_of = flat[first + np.arange(len(first))]
    kept = term_of >= 0
    return owner[kept], term_of[kept]
