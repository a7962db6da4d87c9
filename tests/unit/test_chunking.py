"""chunk_article: sentence- and section-aware packing, overlap, long inputs, invariants."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from mmretrieve.documents.chunking import COUNT_BATCH, ChunkSettings, chunk_article
from mmretrieve.errors import UsageError
from mmretrieve.types import Article, Passage


class WordCounter:
    """One token per whitespace-separated word; records the size of every call."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def __call__(self, texts: Sequence[str]) -> list[int]:
        self.calls.append(len(texts))
        return [len(t.split()) for t in texts]


def _article(text: str, article_id: str = "a") -> Article:
    return Article(id=article_id, title="T", text=text)


def _sentences(n: int, words: int = 10, start: int = 0) -> list[str]:
    """``n`` sentences of ``words`` distinct words each, e.g. "W0 W1 ... W9."."""
    out = []
    for i in range(n):
        base = start + i * words
        out.append(" ".join(f"W{base + j}" for j in range(words)) + ".")
    return out


def _words(text: str) -> list[str]:
    return text.split()


def _strip_overlap(passages: list[Passage]) -> list[str]:
    """The words of all passages with each passage's overlap prefix removed."""
    out: list[str] = []
    previous: list[str] = []
    previous_section: object = object()
    for p in passages:
        words = _words(p.text)
        k = 0
        if p.section == previous_section:
            for size in range(min(len(previous), len(words)), 0, -1):
                if previous[-size:] == words[:size]:
                    k = size
                    break
        out.extend(words[k:])
        previous, previous_section = words, p.section
    return out


def test_empty_and_heading_only_articles_yield_nothing() -> None:
    count = WordCounter()
    assert chunk_article(_article(""), count) == []
    assert chunk_article(_article("  \n\n \t "), count) == []
    assert chunk_article(_article("== History ==\n\n== See also ==\n"), count) == []


def test_short_article_is_one_passage() -> None:
    passages = chunk_article(_article("Hello there. General Kenobi!", "wiki:en:X"), WordCounter())
    assert passages == [
        Passage(
            id="wiki:en:X#p0",
            article_id="wiki:en:X",
            text="Hello there. General Kenobi!",
            position=0,
            section=None,
        )
    ]


def test_sentences_are_packed_greedily_with_overlap() -> None:
    s = _sentences(6)  # six sentences of 10 tokens
    passages = chunk_article(_article(" ".join(s)), WordCounter(), max_tokens=35, overlap=12)
    # 3 sentences fit in 35; the next passage starts with the last sentence (10 <= 12) again.
    assert [p.text for p in passages] == [
        " ".join(s[0:3]),
        " ".join(s[2:5]),
        " ".join(s[4:6]),
    ]
    assert [p.id for p in passages] == ["a#p0", "a#p1", "a#p2"]
    assert [p.position for p in passages] == [0, 1, 2]


def test_no_overlap_means_no_repeated_words() -> None:
    s = _sentences(7)
    passages = chunk_article(_article(" ".join(s)), WordCounter(), max_tokens=35, overlap=0)
    assert [p.text for p in passages] == [" ".join(s[0:3]), " ".join(s[3:6]), s[6]]


def test_overlap_that_would_not_fit_is_dropped() -> None:
    s = _sentences(2, words=10) + _sentences(1, words=30, start=100)
    passages = chunk_article(_article(" ".join(s)), WordCounter(), max_tokens=35, overlap=12)
    # s[1] would be overlap, but s[1] (10) + s[2] (30) > 35: the long sentence starts clean.
    assert [p.text for p in passages] == [" ".join(s[0:2]), s[2]]


def test_sections_split_passages_and_name_them() -> None:
    text = "\n".join(
        [
            "Lead sentence one. Lead sentence two.",
            "== History ==",
            "Old times were here.",
            "=== Early life ===",
            "Born somewhere. Grew up.",
            "",
            "== Reception ==  ",
            "Critics liked it.",
        ]
    )
    passages = chunk_article(_article(text), WordCounter(), max_tokens=100, overlap=20)
    assert [(p.section, p.text) for p in passages] == [
        (None, "Lead sentence one. Lead sentence two."),
        ("History", "Old times were here."),
        ("Early life", "Born somewhere. Grew up."),
        ("Reception", "Critics liked it."),
    ]
    assert all("==" not in p.text for p in passages)


def test_markdown_headings_and_code_fences() -> None:
    text = "\n".join(
        [
            "# Batman",
            "Intro text.",
            "## Powers ##",
            "He has none.",
            "```",
            "# not a heading inside code",
            "```",
            "#hashtag is not a heading either.",
        ]
    )
    passages = chunk_article(_article(text), WordCounter(), max_tokens=100, overlap=0)
    assert [p.section for p in passages] == ["Batman", "Powers"]
    assert passages[1].text == (
        "He has none.\n```\n# not a heading inside code\n```\n#hashtag is not a heading either."
    )


def test_paragraph_breaks_are_kept_inside_a_passage() -> None:
    passages = chunk_article(_article("First para. Still first.\n\nSecond para."), WordCounter())
    assert passages[0].text == "First para. Still first.\nSecond para."


def test_abbreviations_and_initials_do_not_end_sentences() -> None:
    text = "Tolkien, i.e. J. R. R. Tolkien, wrote it. The end came."
    passages = chunk_article(_article(text), WordCounter(), max_tokens=9, overlap=0)
    assert [p.text for p in passages] == [
        "Tolkien, i.e. J. R. R. Tolkien, wrote it.",
        "The end came.",
    ]


def test_long_sentence_is_split_on_words() -> None:
    sentence = " ".join(f"x{i}" for i in range(95)) + "."
    passages = chunk_article(_article(sentence), WordCounter(), max_tokens=40, overlap=0)
    assert [len(_words(p.text)) for p in passages] == [40, 40, 15]
    assert _words(" ".join(p.text for p in passages)) == _words(sentence)


def test_giant_word_is_split_by_characters() -> None:
    def count(texts: Sequence[str]) -> list[int]:
        return [len(t) // 4 + (1 if len(t) % 4 else 0) for t in texts]  # ~4 chars per token

    word = "".join(chr(ord("a") + i % 26) for i in range(1000))
    passages = chunk_article(_article(f"Before. {word} after."), count, max_tokens=50, overlap=0)
    # 1000 characters = 250 tokens: five slices of 200 characters (50 tokens) each.
    fragments = [word[i : i + 200] for i in range(0, 1000, 200)]
    assert [p.text for p in passages] == ["Before.", *fragments, "after."]


def test_text_the_tokenizer_collapses_is_still_capped_by_characters() -> None:
    passages = chunk_article(
        _article("x" * 100_000), lambda ts: [1] * len(ts), max_tokens=8, overlap=0
    )
    assert "".join(p.text for p in passages) == "x" * 100_000
    assert max(len(p.text) for p in passages) <= 8 * 32


@pytest.mark.parametrize("overlap", [0, 7, 30])
def test_every_body_word_appears_once_apart_from_overlap(overlap: int) -> None:
    lines = ["Lead " + " ".join(_sentences(9, words=7, start=0))]
    lines.append("== Part ==")
    lines.append(" ".join(_sentences(5, words=13, start=1000)))
    lines.append(" ".join(f"y{i}" for i in range(120)) + ".")  # one over-long sentence
    lines.append("=== Sub part ===")
    lines.append(" ".join(_sentences(11, words=3, start=5000)))
    text = "\n".join(lines)
    body_words = [w for line in lines if not line.startswith("=") for w in line.split()]
    count = WordCounter()
    passages = chunk_article(_article(text), count, max_tokens=50, overlap=overlap)
    assert all(p.text.strip() == p.text and p.text for p in passages)
    assert max(count([p.text for p in passages])) <= 50
    assert _strip_overlap(passages) == body_words
    sections = [p.section for p in passages]
    assert sections == sorted(sections, key=[None, "Part", "Sub part"].index)


def test_big_article_is_counted_in_bounded_batches_quickly() -> None:
    text = "\n".join(" ".join(_sentences(20, words=12, start=i * 240)) for i in range(500))
    count = WordCounter()
    started = time.perf_counter()
    passages = chunk_article(_article(text), count, max_tokens=256, overlap=32)
    assert time.perf_counter() - started < 5
    assert max(count.calls) <= COUNT_BATCH
    assert len(count.calls) < 30  # 10,000 sentences: about ten calls, not one per sentence
    assert _strip_overlap(passages) == text.split()


def test_settings_are_validated_and_serialisable() -> None:
    settings = ChunkSettings(max_tokens=128, overlap=16)
    assert settings.as_dict() == {"max_tokens": 128, "overlap": 16}
    with pytest.raises(AttributeError):
        settings.max_tokens = 5  # type: ignore[misc]
    with pytest.raises(UsageError):
        ChunkSettings(max_tokens=10, overlap=10)
    with pytest.raises(UsageError):
        chunk_article(_article("x."), WordCounter(), max_tokens=0)


def test_counter_returning_the_wrong_number_of_counts_is_an_error() -> None:
    with pytest.raises(ValueError, match="counts"):
        chunk_article(_article("One. Two."), lambda texts: [1])


def test_real_bge_tokenizer_respects_the_limit(shared_dir: Path) -> None:
    tokenizers = pytest.importorskip("tokenizers")
    tok_file = shared_dir / "models" / "bge-small-en-v1.5-tokenizer" / "tokenizer.json"
    corpus = shared_dir / "data" / "wiki_tutorial" / "corpus.jsonl"
    if not tok_file.exists() or not corpus.exists():
        pytest.skip("BGE tokenizer or wiki_tutorial not in shared data")
    tok = tokenizers.Tokenizer.from_file(str(tok_file))
    tok.no_truncation()

    def count(texts: Sequence[str]) -> list[int]:
        return [len(e.ids) for e in tok.encode_batch(list(texts), add_special_tokens=False)]

    with corpus.open(encoding="utf-8") as f:
        row = json.loads(f.readline())
    article = Article(id=row["id"], title=row["title"], text=row["text"])
    passages = chunk_article(article, count)
    assert len(passages) > 20
    assert max(count([p.text for p in passages])) <= 256
    sections = {p.section for p in passages}
    assert {None, "Name", "2010–2014: Formation and early years"} <= sections
    assert "History" not in sections  # "== History ==" is followed directly by a subsection
