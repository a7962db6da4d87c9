"""Evaluation data sets: what to index, which queries to run, and which items are relevant.

Four on-disk formats load into one :class:`EvalDataset`:

- ``normalised`` (the layout of ``../shared/data``): optional ``corpus.jsonl`` (id, title, text),
  optional ``images.jsonl`` (id, file, article_id, caption, alt_text), ``queries.jsonl`` whose
  queries carry ``text`` and/or ``image`` (a path relative to the data set), and ``qrels.tsv``
  (query_id, doc_or_image_id, relevance) with a header line.
- ``beir``: ``corpus.jsonl`` (_id, title, text), ``queries.jsonl`` (_id, text) and
  ``qrels/<split>.tsv``. The title is put in front of the text, as BEIR does, and a document with
  the query's own id is never counted (BEIR's ``ignore_identical_ids``, which matters for ArguAna).
- ``flickr30k`` / ``coco``: a Karpathy-split caption file (``dataset_flickr30k.json`` /
  ``dataset_coco.json``: ``images[].filename``, ``filepath``, ``split``, ``sentences[].raw``) next
  to the images. Every image of the split is indexed; every caption is a text->image query whose
  one relevant item is its image.

Relevance ids name a corpus document (= an article) or an image; the runner ranks those units.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..types import Article, Image
from .metrics import has_relevant

FORMATS: tuple[str, ...] = ("auto", "normalised", "beir", "flickr30k", "coco")
KARPATHY_FILES = {"flickr30k": "dataset_flickr30k.json", "coco": "dataset_coco.json"}
CAPTIONS_PER_IMAGE = 5  # the standard 1k/5k protocols use five captions per image


@dataclass(frozen=True, slots=True)
class EvalQuery:
    """One query: text, an image file, or both."""

    id: str
    text: str | None = None
    image: str | None = None
    family: str | None = None  # e.g. passage, picture, photo, combined: figures per family


@dataclass(frozen=True)
class EvalDataset:
    """Everything an evaluation run needs, loaded from one of :data:`FORMATS`."""

    name: str
    format: str
    articles: list[Article]
    images: list[Image]
    queries: list[EvalQuery]
    qrels: dict[str, dict[str, int]]
    ignore_identical_ids: bool = False
    notes: list[str] = field(default_factory=list)
    # "article" when the qrels name articles (their header's second column is article_id):
    # then the ranking judged is the grouped articles a search returns. "flat" otherwise.
    level: str = "flat"

    @property
    def families(self) -> list[str]:
        """The query families present, in order of first appearance."""
        return list(dict.fromkeys(q.family for q in self.queries if q.family))

    def scored_queries(self) -> list[EvalQuery]:
        """Queries that have at least one relevant item (the others cannot be scored)."""
        return [q for q in self.queries if has_relevant(self.qrels.get(q.id, {}))]

    def limited(self, n: int | None) -> EvalDataset:
        """The same corpus with only the first ``n`` scorable queries (all when ``n`` is None)."""
        queries = self.scored_queries()
        if n is not None:
            if n < 1:
                raise UsageError(f"--limit must be at least 1, got {n}")
            queries = queries[:n]
        keep = {q.id for q in queries}
        return replace(
            self, queries=queries, qrels={q: r for q, r in self.qrels.items() if q in keep}
        )


# -- helpers -------------------------------------------------------------------------------------
def _jsonl(path: Path) -> Iterator[dict[str, Any]]:
    try:
        with path.open(encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except ValueError as exc:
                    raise UsageError(f"{path}:{lineno}: not valid JSON ({exc})") from None
                if not isinstance(row, dict):
                    raise UsageError(f"{path}:{lineno}: expected a JSON object")
                yield row
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path} is not UTF-8 text: {exc}") from None


def _row_id(row: dict[str, Any], path: Path) -> str:
    value = row.get("id", row.get("_id"))
    if value is None or str(value) == "":
        raise UsageError(f"{path}: a row has no 'id' (or '_id'): {str(row)[:120]}")
    return str(value)


def qrels_level(path: Path) -> str:
    """``article`` when the qrels file's header names its second column ``article_id``."""
    try:
        with path.open(encoding="utf-8") as fh:
            first = fh.readline()
    except OSError:
        return "flat"
    columns = [c.strip().lower() for c in (first.split("\t") if "\t" in first else first.split())]
    return "article" if len(columns) >= 2 and columns[1] == "article_id" else "flat"


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    """Tab-separated query id, item id, relevance; a first line that is not data is a header."""
    qrels: dict[str, dict[str, int]] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        parts = line.rstrip("\n").split("\t") if "\t" in line else line.split()
        if len(parts) == 4:  # TREC style: qid, iteration, docid, relevance
            parts = [parts[0], parts[2], parts[3]]
        if len(parts) != 3:
            raise UsageError(f"{path}:{lineno}: expected query, item, relevance; got {line!r}")
        try:
            relevance = int(float(parts[2]))
        except ValueError:
            if lineno == 1:
                continue  # header
            raise UsageError(f"{path}:{lineno}: relevance {parts[2]!r} is not a number") from None
        qrels.setdefault(parts[0].strip(), {})[parts[1].strip()] = relevance
    if not qrels:
        raise UsageError(f"{path} holds no relevance judgements")
    return qrels


def _articles(path: Path, title_in_text: bool) -> list[Article]:
    out = []
    for row in _jsonl(path):
        doc_id = _row_id(row, path)
        title = str(row.get("title") or "").strip()
        text = str(row.get("text") or "")
        if title_in_text and title:
            text = f"{title} {text}"
        out.append(
            Article(
                id=doc_id,
                title=title or doc_id,
                text=text,
                url=row.get("url"),
                license=row.get("license"),
                source=str(path),
            )
        )
    return out


def _resolve(root: Path, name: str) -> str:
    path = Path(name)
    return str(path if path.is_absolute() else (root / path).resolve())


# -- the formats ----------------------------------------------------------------------------------
def load_normalised(root: Path) -> EvalDataset:
    """The ``../shared/data`` layout (see the module docstring)."""
    queries_path, qrels_path = root / "queries.jsonl", root / "qrels.tsv"
    for needed in (queries_path, qrels_path):
        if not needed.is_file():
            raise UsageError(f"{root} is not a normalised data set: {needed.name} is missing")
    articles = _articles(root / "corpus.jsonl", False) if (root / "corpus.jsonl").is_file() else []
    images: list[Image] = []
    images_path = root / "images.jsonl"
    if images_path.is_file():
        for row in _jsonl(images_path):
            file = row.get("file") or row.get("uri") or row.get("path")
            if not file:
                raise UsageError(f"{images_path}: image {_row_id(row, images_path)} has no 'file'")
            images.append(
                Image(
                    id=_row_id(row, images_path),
                    article_id=row.get("article_id") or None,
                    uri=_resolve(root, str(file)),
                    caption=row.get("caption"),
                    alt_text=row.get("alt_text"),
                    license=row.get("license"),
                )
            )
    if not articles and not images:
        raise UsageError(f"{root} has neither corpus.jsonl nor images.jsonl: nothing to search")
    queries = []
    for row in _jsonl(queries_path):
        text = row.get("text")
        image = row.get("image")
        text = str(text) if text is not None and str(text).strip() else None
        if text is None and not image:
            raise UsageError(
                f"{queries_path}: query {_row_id(row, queries_path)} has no text or image"
            )
        family = row.get("family")
        queries.append(
            EvalQuery(
                _row_id(row, queries_path),
                text,
                _resolve(root, image) if image else None,
                str(family) if family not in (None, "") else None,
            )
        )
    return EvalDataset(
        root.name,
        "normalised",
        articles,
        images,
        queries,
        read_qrels(qrels_path),
        level=qrels_level(qrels_path),
    )


def load_beir(root: Path, split: str = "test") -> EvalDataset:
    """A BEIR folder: corpus.jsonl, queries.jsonl, qrels/<split>.tsv."""
    qrels_path = root / "qrels" / f"{split}.tsv"
    for needed in (root / "corpus.jsonl", root / "queries.jsonl", qrels_path):
        if not needed.is_file():
            raise UsageError(
                f"{root} is not a BEIR folder for split {split!r}: {needed} is missing"
            )
    articles = _articles(root / "corpus.jsonl", title_in_text=True)
    queries = [
        EvalQuery(_row_id(row, root / "queries.jsonl"), str(row.get("text") or "") or None)
        for row in _jsonl(root / "queries.jsonl")
    ]
    queries = [q for q in queries if q.text is not None]
    return EvalDataset(
        root.name, "beir", articles, [], queries, read_qrels(qrels_path), ignore_identical_ids=True
    )


def _parse_split(split: str) -> tuple[str, int | None]:
    name, _, count = split.partition(":")
    if not count:
        return name, None
    try:
        n = int(count)
    except ValueError:
        raise UsageError(f"split {split!r}: write NAME or NAME:N, e.g. test:1000") from None
    if n < 1:
        raise UsageError(f"split {split!r}: N must be at least 1")
    return name, n


def _image_file(root: Path, entry: dict[str, Any]) -> Path | None:
    filename = str(entry.get("filename") or "")
    candidates = [
        root / str(entry.get("filepath") or "") / filename,
        root / "images" / filename,
        root / "flickr30k-images" / filename,
        root / filename,
    ]
    return next((c for c in candidates if c.is_file()), None)


def load_karpathy(path: Path, kind: str, split: str = "test") -> EvalDataset:
    """A Karpathy-split caption file (``kind`` flickr30k or coco) and its images folder.

    ``split`` is a split name (test, val, train, restval), optionally ``NAME:N`` for the first N
    images of it (e.g. ``test:1000`` for the COCO 1k protocol's first fold).
    """
    file = path / KARPATHY_FILES[kind] if path.is_dir() else path
    if not file.is_file():
        raise UsageError(f"{path}: no {KARPATHY_FILES[kind]} (Karpathy-split caption file) found")
    root = file.parent
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
        entries = data["images"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"{file} is not a Karpathy caption file: {exc}") from None
    name, count = _parse_split(split)
    chosen = [e for e in entries if e.get("split") == name][:count]
    if not chosen:
        splits = sorted({str(e.get("split")) for e in entries})
        raise UsageError(f"{file} has no images in split {name!r}; splits: {', '.join(splits)}")
    images: list[Image] = []
    queries: list[EvalQuery] = []
    qrels: dict[str, dict[str, int]] = {}
    missing: list[str] = []
    for entry in chosen:
        image_path = _image_file(root, entry)
        if image_path is None:
            missing.append(str(entry.get("filename")))
            continue
        image_id = str(entry.get("cocoid", entry.get("imgid", entry.get("filename"))))
        images.append(Image(id=image_id, article_id=None, uri=str(image_path.resolve())))
        for sentence in entry.get("sentences", [])[:CAPTIONS_PER_IMAGE]:
            qid = str(sentence.get("sentid", f"{image_id}:{len(queries)}"))
            queries.append(EvalQuery(qid, str(sentence.get("raw", "")).strip()))
            qrels[qid] = {image_id: 1}
    if missing:
        raise UsageError(
            f"{len(missing)} of {len(chosen)} images of split {name!r} are not under {root} "
            f"(looked in FILEPATH/, images/, flickr30k-images/ and the folder itself), "
            f"e.g. {missing[0]}"
        )
    label = f"{kind}-{split}"
    return EvalDataset(label, kind, [], images, queries, qrels)


def detect_format(path: Path) -> str:
    """Guess the format of ``path`` from the files it holds."""
    if path.is_file():
        for kind, filename in KARPATHY_FILES.items():
            if path.name == filename:
                return kind
        if path.suffix == ".json":
            raise UsageError(f"cannot tell whether {path} is Flickr30k or COCO: use --format")
        raise UsageError(f"{path} is a file; give a data set folder or a Karpathy caption file")
    if not path.is_dir():
        raise UsageError(f"no data set at {path}")
    for kind, filename in KARPATHY_FILES.items():
        if (path / filename).is_file():
            return kind
    if (path / "qrels").is_dir() and (path / "corpus.jsonl").is_file():
        return "beir"
    if (path / "qrels.tsv").is_file():
        return "normalised"
    raise UsageError(
        f"cannot tell the format of {path}: expected qrels.tsv (normalised), qrels/ (BEIR) or "
        f"{' / '.join(KARPATHY_FILES.values())}"
    )


def load_dataset(path: str | Path, format: str = "auto", split: str | None = None) -> EvalDataset:
    """Load a data set; ``split`` picks BEIR's qrels file (default test) or the Karpathy split."""
    root = Path(path).expanduser()
    if format not in FORMATS:
        raise UsageError(f"unknown format {format!r}; choose one of {', '.join(FORMATS)}")
    kind = detect_format(root) if format == "auto" else format
    if not root.exists():
        raise UsageError(f"no data set at {root}")
    if kind == "normalised":
        if split:
            raise UsageError("--split applies to BEIR and Karpathy (flickr30k/coco) data sets only")
        return load_normalised(root)
    if kind == "beir":
        return load_beir(root, split or "test")
    return load_karpathy(root, kind, split or "test")
