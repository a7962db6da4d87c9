"""sources -> documents -> encoders -> store: batched, idempotent and resumable
(docs/ARCHITECTURE.md).

Each article is written passages first and its article row last, so the article row marks the
article as complete: a killed run leaves at most an incomplete article without one, and the next
run (which deletes an article's old passages before writing new ones) replaces it.

Images are read, hashed and decoded by a small thread pool while the models run (Pillow and the
runtimes release the GIL), at most ``decode_ahead`` at a time, and handed on in source order, so
memory stays bounded however large the corpus and the report is the same as a serial run's.
JPEGs are decoded at reduced scale (draft mode) just large enough for the image model's input.
"""

from __future__ import annotations

import os
import re
import time
from collections import OrderedDict, deque
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from .documents.chunking import chunk_article
from .encoders.base import ImageTextEncoder, TextEncoder
from .indexing_images import Prepared, prepare_image
from .indexing_options import (
    IndexingOptions,
    IndexReport,
    ProgressFn,
    article_hash,
    meta_json,
)
from .store.base import ARTICLES, IMAGES, PASSAGES, PICTURES, Row, Store
from .store.pictures import drop_unused_pictures, images_without_picture
from .types import Article, Image, Passage, Skipped

_FIRST_SENTENCE = re.compile(r"(?<=[.!?])\s")


def _title_text(article: Article) -> str:
    """What CLIP sees of an article: its title and first sentence (CLIP truncates the rest)."""
    lead = article.text.strip().split("\n", 1)[0]
    first = _FIRST_SENTENCE.split(lead, 1)[0] if lead else ""
    return f"{article.title}. {first}".strip()


class Indexer:
    """Writes one source into a store with the given encoders."""

    def __init__(
        self,
        store: Store,
        text_encoder: TextEncoder,
        image_encoder: ImageTextEncoder | None,
        options: IndexingOptions,
        progress: ProgressFn | None = None,
    ) -> None:
        self.store = store
        self.text = text_encoder
        self.clip = image_encoder
        self.options = options
        self.progress = progress or (lambda what, n: None)
        self.report = IndexReport()
        self._article_hashes = self._hashes(ARTICLES)
        self._image_hashes = self._hashes(IMAGES) if image_encoder is not None else {}
        self._pending: list[tuple[Article, str, list[Passage]]] = []
        self._pending_passages = 0
        self._pending_images: list[tuple[Image, str, Any]] = []
        self._image_rows: list[Row] = []
        self._decoding: deque[tuple[Image, Future[Prepared]]] = deque()
        self._pool: ThreadPoolExecutor | None = None
        self._seen_articles: set[str] = set()
        self._seen_images: set[str] = set()
        self._vector_of: OrderedDict[str, np.ndarray] = OrderedDict()  # sha256 -> CLIP vector
        self._phash_of: dict[str, int | None] = {}  # image id -> pHash, until its row is made
        # Format 4: the files stored once in ``pictures`` (sha256), and rows not yet written.
        self._one_picture = image_encoder is not None and options.format_version >= 4
        self._pictures: set[str] = (
            {str(r["id"]) for r in store.scan(PICTURES, ["id"])} if self._one_picture else set()
        )
        self._picture_rows: list[Row] = []
        if self._one_picture and options.repair_pictures:
            # Uses whose picture is missing (a run killed between the two writes): done again.
            for image_id in images_without_picture(store, self._pictures):
                self._image_hashes.pop(image_id, None)

    def _hashes(self, table: str) -> dict[str, str]:
        return {r["id"]: r["content_hash"] for r in self.store.scan(table, ["id", "content_hash"])}

    # -- driving ----------------------------------------------------------------------------
    def run(self, items: Iterable[Article | Image | Skipped]) -> IndexReport:
        start = time.perf_counter()
        try:
            for item in items:
                if isinstance(item, Article):
                    self._article(item)
                elif isinstance(item, Image):
                    self._image(item)
                else:
                    self._skip(item)
            while self._decoding:
                self._take_image()
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
                self._pool = None
            self._decoding.clear()
        self._flush_articles()
        self._flush_images()
        self._write_images()
        if self.options.prune:
            self._prune()
        if self._one_picture and (self.report.images_updated or self.report.images_pruned):
            drop_unused_pictures(self.store)
        self.store.optimize()
        self.report.seconds = time.perf_counter() - start
        return self.report

    def _skip(self, item: Skipped) -> None:
        self.report.skipped.append(item)
        self.progress("skipped", 1)

    # -- articles ---------------------------------------------------------------------------
    def _article(self, article: Article) -> None:
        if article.id in self._seen_articles:
            self._skip(
                Skipped(
                    article.source or article.id, f"duplicate article id {article.id!r}", "article"
                )
            )
            return
        self._seen_articles.add(article.id)
        digest = article_hash(article, self.options)
        previous = self._article_hashes.get(article.id)
        if previous == digest:
            self.report.articles_unchanged += 1
            self.progress("articles", 1)
            return
        passages = chunk_article(
            article, self.text.count_tokens, self.options.chunk_tokens, self.options.chunk_overlap
        )
        if not passages:
            self._skip(
                Skipped(article.source or article.id, "empty article (no text to index)", "article")
            )
            return
        if previous is None:
            self.report.articles_added += 1
        else:
            self.report.articles_updated += 1
        self._pending.append((article, digest, passages))
        self._pending_passages += len(passages)
        if self._pending_passages >= self.options.write_batch_passages:
            self._flush_articles()

    def _flush_articles(self) -> None:
        if not self._pending:
            return
        batch, self._pending, self._pending_passages = self._pending, [], 0
        passages = [p for _, _, ps in batch for p in ps]
        texts = [p.text for p in passages]
        bge = self.text.encode_documents(texts)
        clip_text = (
            self.clip.encode_texts(texts)
            if self.clip is not None and self.options.clip_text_view
            else None
        )
        clip_title = (
            self.clip.encode_texts([_title_text(a) for a, _, _ in batch])
            if self.clip is not None
            else None
        )
        self.report.passages_encoded += len(passages)
        digests = {a.id: d for a, d, _ in batch}
        rows: list[Row] = []
        for i, p in enumerate(passages):
            row: Row = {
                "id": p.id,
                "article_id": p.article_id,
                "text": p.text,
                "position": p.position,
                "section": p.section,
                "content_hash": digests[p.article_id],
                "bge": bge[i],
            }
            if clip_text is not None:
                row["clip_text"] = clip_text[i]
            rows.append(row)
        article_ids = [a.id for a, _, _ in batch]
        # Old passages go first (an edited article may now have fewer), the article row last.
        self.store.delete(PASSAGES, filter={"article_id": article_ids})
        self.store.upsert(PASSAGES, rows)
        article_rows: list[Row] = []
        for j, (article, digest, ps) in enumerate(batch):
            arow: Row = {
                "id": article.id,
                "title": article.title,
                "url": article.url,
                "license": article.license,
                "source": article.source,
                "content_hash": digest,
                "n_passages": len(ps),
                **({"meta": meta_json(article)} if self.options.format_version >= 3 else {}),
            }
            if clip_title is not None:
                arow["clip_title"] = clip_title[j]
            article_rows.append(arow)
        self.store.upsert(ARTICLES, article_rows)
        for article_id in article_ids:
            self._article_hashes[article_id] = digests[article_id]
        self.progress("articles", len(batch))

    # -- images -----------------------------------------------------------------------------
    def _image(self, image: Image) -> None:
        if self.clip is None:
            return  # a text-only index has no image table; nothing to report per image
        if image.id in self._seen_images:
            self._skip(Skipped(image.uri, f"duplicate image id {image.id!r}", "image"))
            return
        self._seen_images.add(image.id)
        if self._pool is None:
            workers = self.options.decode_workers or min(4, os.cpu_count() or 1)
            self._pool = ThreadPoolExecutor(workers, thread_name_prefix="mmretrieve-decode")
        previous = self._image_hashes.get(image.id)
        future = self._pool.submit(prepare_image, image, previous, self.options, self.clip)
        self._decoding.append((image, future))
        while len(self._decoding) > max(1, self.options.decode_ahead):
            self._take_image()

    def _take_image(self) -> None:
        """The oldest image in flight: wait for its decode, then report or queue it."""
        image, future = self._decoding.popleft()
        prepared = future.result()
        if prepared.skip is not None:
            self._skip(Skipped(image.uri, prepared.skip, "image"))
            return
        if prepared.unchanged:
            self.report.images_unchanged += 1
            self.progress("images", 1)
            return
        if image.id in self._image_hashes:
            self.report.images_updated += 1
        else:
            self.report.images_added += 1
        meta = Image(
            id=image.id,
            article_id=image.article_id,
            uri=image.uri,
            caption=image.caption,
            alt_text=image.alt_text,
            width=prepared.width,
            height=prepared.height,
            sha256=prepared.sha,
            license=image.license,
            section=image.section,
        )
        self._phash_of[image.id] = prepared.phash
        self._pending_images.append((meta, prepared.digest, prepared.picture))
        if len(self._pending_images) >= self.options.image_batch_size:
            self._flush_images()

    def _flush_images(self) -> None:
        if not self._pending_images or self.clip is None:
            return
        batch, self._pending_images = self._pending_images, []
        vectors: np.ndarray | None = None
        if self._one_picture:
            self._new_pictures(batch)
        else:
            vectors = self._image_vectors(batch)
        captions = [_caption_text(meta) for meta, _, _ in batch]
        with_caption = [i for i, c in enumerate(captions) if c]
        caption_vectors = np.zeros((len(batch), self.text.dim), dtype=np.float32)
        if with_caption:
            encoded = self.text.encode_documents([captions[i] for i in with_caption])
            caption_vectors[with_caption] = encoded
        rows = self._image_rows
        for i, (meta, digest, _) in enumerate(batch):
            phash = self._phash_of.pop(meta.id, None)
            rows.append(
                {
                    "id": meta.id,
                    "article_id": meta.article_id,
                    "uri": meta.uri,
                    "caption": meta.caption,
                    "alt_text": meta.alt_text,
                    "search_text": captions[i],
                    "width": meta.width,
                    "height": meta.height,
                    "sha256": meta.sha256,
                    "license": meta.license,
                    "has_caption": bool(captions[i]),
                    "content_hash": digest,
                    **({} if vectors is None else {"clip_image": vectors[i]}),
                    "caption_bge": caption_vectors[i],
                    **(
                        {"phash": phash, "section": meta.section}
                        if self.options.format_version >= 3
                        else {}
                    ),
                }
            )
        for meta, digest, _ in batch:
            self._image_hashes[meta.id] = digest
        self.progress("images", len(batch))
        if len(rows) >= self.options.write_batch_images:
            self._write_images()

    def _new_pictures(self, batch: list[tuple[Image, str, Any]]) -> None:
        """Format 4: encode and queue a ``pictures`` row for each file of ``batch`` not stored
        yet (once per file, however many uses it has); image rows carry no CLIP vector."""
        assert self.clip is not None
        todo: dict[str, int] = {}
        for i, (meta, _, _) in enumerate(batch):
            sha = meta.sha256 or ""
            if sha and sha not in self._pictures and sha not in todo:
                todo[sha] = i
        if todo:
            vectors = self.clip.encode_images([batch[i][2] for i in todo.values()])
            for (sha, i), vector in zip(todo.items(), vectors, strict=True):
                meta = batch[i][0]
                self._picture_rows.append(
                    {
                        "id": sha,
                        "phash": self._phash_of.get(meta.id),
                        "width": meta.width,
                        "height": meta.height,
                        "clip_image": vector,
                    }
                )
                self._pictures.add(sha)
        self.report.images_encoded += len(todo)

    def _image_vectors(self, batch: list[tuple[Image, str, Any]]) -> np.ndarray:
        """CLIP vectors of ``batch``; a file already encoded in this run (same content hash) is
        not encoded again."""
        assert self.clip is not None
        shas = [meta.sha256 or "" for meta, _, _ in batch]
        first: dict[str, int] = {}
        todo = []
        for i, sha in enumerate(shas):
            if not sha or (sha not in self._vector_of and sha not in first):
                todo.append(i)
                if sha:
                    first[sha] = i
        encoded = self.clip.encode_images([batch[i][2] for i in todo]) if todo else None
        fresh = {i: encoded[j] for j, i in enumerate(todo)} if encoded is not None else {}
        rows = []
        for i, sha in enumerate(shas):
            if i in fresh:
                rows.append(fresh[i])
            elif sha in first:  # the same file earlier in this batch
                rows.append(fresh[first[sha]])
            else:  # encoded in an earlier batch
                rows.append(self._vector_of[sha])
        vectors = np.stack(rows)
        for i, sha in enumerate(shas):
            if sha:
                self._vector_of[sha] = vectors[i]
                self._vector_of.move_to_end(sha)
        while len(self._vector_of) > max(0, self.options.reuse_image_vectors):
            self._vector_of.popitem(last=False)
        self.report.images_encoded += len(todo)
        return vectors

    def _write_images(self) -> None:
        """One store commit for many encoded batches (each commit has a fixed cost). Uses before
        their pictures: whoever collects unused pictures (:func:`drop_unused_pictures`, perhaps
        another process) reads pictures before uses, so it never takes a picture for unused
        while its first uses are being written. Until the picture lands, its new uses are not
        found by the CLIP routes (the caption routes find them)."""
        if self._image_rows:
            rows, self._image_rows = self._image_rows, []
            self.store.upsert(IMAGES, rows)
        if self._picture_rows:
            pictures, self._picture_rows = self._picture_rows, []
            self.store.upsert(PICTURES, pictures)

    # -- pruning ----------------------------------------------------------------------------
    def _prune(self) -> None:
        gone = sorted(set(self._article_hashes) - self._seen_articles)
        if gone:
            self.store.delete(PASSAGES, filter={"article_id": gone})
            self.store.delete(ARTICLES, ids=gone)
            self.report.articles_pruned = len(gone)
        if self.clip is not None:
            gone_images = sorted(set(self._image_hashes) - self._seen_images)
            if gone_images:
                self.store.delete(IMAGES, ids=gone_images)
                self.report.images_pruned = len(gone_images)


def _caption_text(image: Image) -> str:
    parts = [p.strip() for p in (image.caption, image.alt_text) if p and p.strip()]
    unique = list(dict.fromkeys(parts))
    return " — ".join(unique)


def sources_items(paths: Sequence[str | Path]) -> Iterable[Article | Image | Skipped]:
    """The items of every source in turn. All sources are opened first, so a missing path is a
    usage error before any work; one that disappears later is reported by its source."""
    from .sources import open_source

    sources = [open_source(path) for path in paths]
    return (item for source in sources for item in source.items())
