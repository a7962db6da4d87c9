"""Split an article into passages sized by the text model's tokenizer (docs/ARCHITECTURE.md,
"Indexing").

Passages follow sentences where they can and never span two sections. Token counts come from the
caller's tokenizer, in batches, so a multi-megabyte article is chunked in bounded memory. Counts
are summed per sentence: exact for tokenizers that pre-split on whitespace (WordPiece, CLIP BPE).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass

from ..errors import UsageError
from ..types import Article, Passage

CountTokens = Callable[[Sequence[str]], list[int]]
"""Token count of each string (the text model's tokenizer, no special tokens)."""

COUNT_BATCH = 1024  # strings per count_tokens call: bounded memory, few calls
MAX_CHARS_PER_TOKEN = 32  # real text averages 1-6; more means the tokenizer is collapsing junk
_GROUP = 16  # words counted together when splitting an over-long sentence
_MAX_HEADING_CHARS = 300

# "== History ==" (Wikipedia plain-text extracts, any depth) and markdown "# Heading".
_WIKI_HEADING = re.compile(r"^(={1,6})\s*([^=\s](?:.*?[^=\s])?)\s*\1\s*$")
_MD_HEADING = re.compile(r"^#{1,6}[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
# A sentence ends at . ! or ? (plus closing quotes/brackets) followed by whitespace.
_SENTENCE_END = re.compile(r"[.!?][\"'\u201d\u2019)\]]*(\s+)(?=\S)")
_INITIAL = re.compile(r"(?:^|[\s(])[A-Z]\.$")  # "J. R. R. Tolkien": an initial, not an end


@dataclass(frozen=True, slots=True)
class ChunkSettings:
    """How articles are cut into passages; stored in the index manifest."""

    max_tokens: int = 256
    overlap: int = 32

    def __post_init__(self) -> None:
        _check_settings(self.max_tokens, self.overlap)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class _Unit:
    """A sentence (or a piece of one) with where it sits and how it joins the previous unit."""

    section_index: int
    section: str | None
    sep: str  # "\n" after a paragraph break, " " inside a paragraph, "" inside a split word
    text: str


_Counted = tuple[_Unit, int]


def passage_id(article_id: str, position: int) -> str:
    """The id of an article's passage at ``position`` (0 = its first)."""
    return f"{article_id}#p{position}"


def chunk_article(
    article: Article,
    count_tokens: CountTokens,
    max_tokens: int = 256,
    overlap: int = 32,
) -> list[Passage]:
    """Cut ``article.text`` into passages of at most ``max_tokens`` tokens.

    Sentences are packed greedily; each passage after the first in a section starts with the
    previous passage's trailing sentences worth at most ``overlap`` tokens. Headings start new
    sections (``Passage.section``) and are not part of any passage. An empty body yields ``[]``.
    A passage is also kept under ``MAX_CHARS_PER_TOKEN * max_tokens`` characters, which only
    binds on junk the tokenizer collapses into a few tokens.
    """
    _check_settings(max_tokens, overlap)
    budget = _Budget(max_tokens)
    units = _counted(_units(article.text), count_tokens, budget)
    passages: list[Passage] = []
    for section, texts in _pack(units, budget, overlap):
        position = len(passages)
        passages.append(
            Passage(
                id=passage_id(article.id, position),
                article_id=article.id,
                text=texts,
                position=position,
                section=section,
            )
        )
    return passages


def _check_settings(max_tokens: int, overlap: int) -> None:
    if max_tokens < 1:
        raise UsageError(f"max_tokens must be at least 1, got {max_tokens}")
    if not 0 <= overlap < max_tokens:
        raise UsageError(f"overlap must be between 0 and max_tokens - 1, got {overlap}")


def _heading(line: str) -> str | None:
    """The heading text when ``line`` is a section heading, else ``None``."""
    if len(line) > _MAX_HEADING_CHARS:  # also keeps the regexes off megabyte-long lines
        return None
    m = _WIKI_HEADING.match(line)
    if m:
        return m.group(2).strip()
    m = _MD_HEADING.match(line)
    if m and m.group(1).strip():
        return m.group(1).strip()
    return None


def _units(text: str) -> Iterator[_Unit]:
    """Sentences of ``text`` in order, each tagged with its section; headings are dropped."""
    section: str | None = None
    section_index = 0
    in_fence = False  # "# comment" inside a markdown code block is not a heading
    paragraph_break = False
    for line in _lines(text):
        if _FENCE.match(line):
            in_fence = not in_fence
        heading = None if in_fence else _heading(line.strip())
        if heading is not None:
            section, section_index = heading, section_index + 1
            paragraph_break = False
            continue
        first = True
        for sentence in _sentences(line):
            sep = "\n" if first and paragraph_break else " "
            yield _Unit(section_index, section, sep, sentence)
            first = False
        paragraph_break = paragraph_break or not first


def _lines(text: str) -> Iterator[str]:
    """Lines of ``text`` without building a list of them (articles can be megabytes)."""
    start = 0
    while start <= len(text):
        end = text.find("\n", start)
        if end < 0:
            end = len(text)
        yield text[start:end]
        start = end + 1


def _sentences(line: str) -> Iterator[str]:
    start = 0
    for m in _SENTENCE_END.finditer(line):
        end = m.start(1)
        following = line[m.end(1) : m.end(1) + 1]
        # Keep "e.g. this" and initials together: these are not sentence ends. (Only the last
        # three characters are looked at, so a long run of them stays linear in time.)
        if following.islower() or _INITIAL.search(line[max(start, end - 3) : end]):
            continue
        head = line[start:end].strip()
        if head:
            yield head
        start = m.end(1)
    tail = line[start:].strip()
    if tail:
        yield tail


def _batched(units: Iterable[_Unit], size: int) -> Iterator[list[_Unit]]:
    batch: list[_Unit] = []
    for unit in units:
        batch.append(unit)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


class _Budget:
    """Limits of one passage: ``max_tokens`` tokens and, against text the tokenizer collapses
    (a 1 MB run of symbols can be a single [UNK]), ``max_chars`` characters."""

    def __init__(self, max_tokens: int) -> None:
        self.max_tokens = max_tokens
        self.max_chars = max_tokens * MAX_CHARS_PER_TOKEN

    def fits(self, tokens: int, chars: int) -> bool:
        return tokens <= self.max_tokens and chars <= self.max_chars


def _count_some(
    texts: Sequence[str], count_tokens: CountTokens, max_chars: int
) -> list[int | None]:
    """Token counts of ``texts``; ``None`` for texts over ``max_chars``, which are not counted
    because tokenizing one multi-megabyte string is slow and they get split anyway."""
    short = [t for t in texts if len(t) <= max_chars]
    counts = list(count_tokens(short)) if short else []
    if len(counts) != len(short):
        raise ValueError(f"count_tokens returned {len(counts)} counts for {len(short)} texts")
    it = iter(counts)
    return [next(it) if len(t) <= max_chars else None for t in texts]


def _counted(
    units: Iterable[_Unit], count_tokens: CountTokens, budget: _Budget
) -> Iterator[_Counted]:
    """Units with their token counts; a unit over the budget comes back in pieces."""
    for batch in _batched(units, COUNT_BATCH):
        counts = _count_some([u.text for u in batch], count_tokens, budget.max_chars)
        for unit, n in zip(batch, counts, strict=True):
            if n is not None and n <= budget.max_tokens:
                yield unit, n
            else:
                yield from _Splitter(unit, count_tokens, budget).pieces()


class _Splitter:
    """Pieces of one over-long sentence: whole words where possible, characters otherwise.

    Words are first counted in groups of ``_GROUP`` (one tokenizer call per word would dominate
    the time on a megabyte-long unpunctuated line); a group is opened word by word only where
    it does not fit, so pieces still end exactly at the budget.
    """

    def __init__(self, unit: _Unit, count_tokens: CountTokens, budget: _Budget) -> None:
        self.unit, self.count_tokens, self.budget = unit, count_tokens, budget
        self.words: list[str] = []
        self.tokens = 0
        self.chars = -1  # no separator before the first word
        self.sep = unit.sep

    def pieces(self) -> Iterator[_Counted]:
        words = self.unit.text.split()
        step = _GROUP * COUNT_BATCH
        for start in range(0, len(words), step):
            groups = [
                words[i : i + _GROUP] for i in range(start, min(start + step, len(words)), _GROUP)
            ]
            texts = [" ".join(g) for g in groups]
            counts = _count_some(texts, self.count_tokens, self.budget.max_chars)
            for group, text, n in zip(groups, texts, counts, strict=True):
                if n is not None and self._fits(n, len(text)):
                    self._add(text, n)
                    continue
                word_counts = _count_some(group, self.count_tokens, self.budget.max_chars)
                for word, m in zip(group, word_counts, strict=True):
                    if m is not None and self.budget.fits(m, len(word)):
                        if not self._fits(m, len(word)):
                            yield from self._flush()
                        self._add(word, m)
                    else:
                        yield from self._flush()
                        yield from self._split_word(word, m)
        yield from self._flush()

    def _fits(self, tokens: int, chars: int) -> bool:
        return self.budget.fits(self.tokens + tokens, self.chars + 1 + chars)

    def _add(self, text: str, tokens: int) -> None:
        self.words.append(text)
        self.tokens += tokens
        self.chars += 1 + len(text)

    def _piece(self, text: str, tokens: int) -> _Counted:
        unit = self.unit
        piece = _Unit(unit.section_index, unit.section, self.sep, text)
        self.sep = " "
        return piece, tokens

    def _flush(self) -> Iterator[_Counted]:
        if self.words:
            yield self._piece(" ".join(self.words), self.tokens)
            self.words, self.tokens, self.chars = [], 0, -1

    def _split_word(self, word: str, n_tokens: int | None) -> Iterator[_Counted]:
        """Character slices of one giant "word", each within the budget."""
        budget = self.budget
        width = budget.max_chars
        if n_tokens:  # first guess from the average characters per token
            width = min(width, max(1, len(word) * budget.max_tokens // n_tokens))
        start = 0
        while start < len(word):
            while True:
                fragment = word[start : start + width]
                (n,) = self.count_tokens([fragment])
                if n <= budget.max_tokens or width == 1:
                    break
                width = min(max(1, width * budget.max_tokens // n), len(fragment) - 1) or 1
            yield self._piece(fragment, n)
            self.sep = ""  # the next fragment continues the same word
            start += len(fragment)
        self.sep = " "


def _pack(
    units: Iterable[_Counted], budget: _Budget, overlap: int
) -> Iterator[tuple[str | None, str]]:
    """Greedy packing of counted units into ``(section, text)`` passages.

    Every iteration ends by appending a new unit, so a non-empty ``current`` always holds at
    least one unit that no earlier passage has: no passage is pure overlap.
    """
    current: list[_Counted] = []
    tokens = chars = 0
    for unit, n in units:
        size = len(unit.sep) + len(unit.text)
        if current and unit.section_index != current[0][0].section_index:
            yield current[0][0].section, _join(current)
            current, tokens, chars = [], 0, 0  # overlap never crosses a section boundary
        elif current and not budget.fits(tokens + n, chars + size):
            yield current[0][0].section, _join(current)
            current = _tail(current, overlap)
            tokens = sum(m for _, m in current)
            chars = sum(len(u.sep) + len(u.text) for u, _ in current)
            while current and not budget.fits(tokens + n, chars + size):
                dropped, m = current.pop(0)
                tokens -= m
                chars -= len(dropped.sep) + len(dropped.text)
        current.append((unit, n))
        tokens += n
        chars += size
    if current:
        yield current[0][0].section, _join(current)


def _join(items: list[_Counted]) -> str:
    return items[0][0].text + "".join(u.sep + u.text for u, _ in items[1:])


def _tail(items: list[_Counted], overlap: int) -> list[_Counted]:
    """The trailing units of ``items`` worth at most ``overlap`` tokens, never all of them."""
    if overlap <= 0:
        return []
    total = 0
    start = len(items)
    while start > 1 and total + items[start - 1][1] <= overlap:
        start -= 1
        total += items[start][1]
    return items[start:]
