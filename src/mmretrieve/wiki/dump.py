"""Streaming ingestion of MediaWiki ``pages-articles`` XML dumps (bz2, gzip or plain).

The dump is read with ``xml.etree.ElementTree.iterparse`` and every page is cleared once used, so
memory stays flat however big the dump is. Each article (namespace 0, not a redirect) becomes a
folder (see :mod:`.output`) whose ``image_refs.jsonl`` lists the images the article shows with
their captions; ``wiki fetch-images`` downloads them later. Wikitext conversion can run in worker
processes (``workers``), batch by batch, in order.
"""

from __future__ import annotations

import bz2
import gzip
import itertools
import time
import xml.etree.ElementTree as ET
from collections import deque
from collections.abc import Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast
from urllib.parse import quote, urlsplit

from ..errors import BadInputError, MMRetrieveError, UsageError
from .output import ArticleFolder, base_meta, folder_name
from .text import DEFAULT_DISAMBIG_TEMPLATES, Converted, Namespaces, convert_wikitext

# --- streaming the XML dump -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DumpPage:
    title: str
    ns: int
    page_id: int | None
    redirect: bool
    revision_id: int | None
    timestamp: str | None
    model: str | None
    text: str


@dataclass
class SiteInfo:
    dbname: str | None = None
    base: str | None = None
    namespaces: dict[int, str] = field(default_factory=dict)


def open_dump(path: Path) -> IO[bytes]:
    """Open a dump, decompressing bz2 or gzip by their magic bytes (not the file name)."""
    try:
        with path.open("rb") as fh:
            magic = fh.read(3)
    except OSError as exc:
        raise BadInputError(f"cannot read dump {path}: {exc.strerror}") from exc
    if magic == b"BZh":
        return bz2.open(path, "rb")
    if magic[:2] == b"\x1f\x8b":
        return cast(IO[bytes], gzip.open(path, "rb"))
    return path.open("rb")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


class DumpReader:
    """Iterate a MediaWiki export XML file page by page; ``siteinfo`` is filled once read."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.siteinfo = SiteInfo()

    def __iter__(self) -> Iterator[DumpPage]:
        root = None
        with open_dump(self.path) as fh:
            try:
                for event, elem in ET.iterparse(fh, events=("start", "end")):
                    if root is None:
                        root = elem
                    if event != "end":
                        continue
                    tag = _local(elem.tag)
                    if tag == "siteinfo":
                        self._siteinfo(elem)
                        root.clear()
                    elif tag == "page":
                        page = self._page(elem)
                        root.clear()
                        yield page
            except (ET.ParseError, EOFError, OSError) as exc:
                raise BadInputError(
                    f"{self.path} is not a readable MediaWiki XML dump: {exc}"
                ) from exc

    def _siteinfo(self, elem: ET.Element) -> None:
        for child in elem:
            tag = _local(child.tag)
            if tag == "dbname":
                self.siteinfo.dbname = (child.text or "").strip() or None
            elif tag == "base":
                self.siteinfo.base = (child.text or "").strip() or None
            elif tag == "namespaces":
                for ns in child:
                    key = _int(ns.get("key"))
                    if key is not None:
                        self.siteinfo.namespaces[key] = (ns.text or "").strip()

    @staticmethod
    def _page(elem: ET.Element) -> DumpPage:
        fields: dict[str, Any] = {"redirect": False}
        rev: dict[str, Any] = {}
        for child in elem:
            tag = _local(child.tag)
            if tag in ("title", "ns", "id"):
                fields[tag] = child.text
            elif tag == "redirect":
                fields["redirect"] = True
            elif tag == "revision":  # history dumps hold several; the last is the newest
                rev = {_local(c.tag): c.text for c in child}
        return DumpPage(
            title=(fields.get("title") or "").strip(),
            ns=_int(fields.get("ns")) or 0,
            page_id=_int(fields.get("id")),
            redirect=bool(fields["redirect"]),
            revision_id=_int(rev.get("id")),
            timestamp=rev.get("timestamp"),
            model=rev.get("model"),
            text=rev.get("text") or "",
        )


# --- dump -> folders ------------------------------------------------------------------------------


@dataclass
class DumpReport:
    scanned: int = 0
    written: int = 0
    unchanged: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def pages_per_s(self) -> float:
        return self.scanned / self.seconds if self.seconds > 0 else 0.0

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "scanned": self.scanned,
            "written": self.written,
            "unchanged": self.unchanged,
            "skipped": dict(self.skipped),
            "seconds": round(self.seconds, 3),
            "pages_per_s": round(self.pages_per_s, 1),
        }


def _lang_of(info: SiteInfo) -> str | None:
    if info.base:
        host = urlsplit(info.base).hostname or ""
        first = host.split(".")[0]
        if first and first not in ("www", "localhost") and "." in host:
            return first
    if info.dbname and info.dbname.endswith("wiki"):
        return info.dbname[: -len("wiki")].replace("_", "-") or None
    return None


def _article_url(site: str | None, title: str) -> str | None:
    if not site:
        return None
    return site + quote(title.replace(" ", "_"), safe=";@$!*(),/~:'")


_WORKER_CFG: tuple[Namespaces, frozenset[str]] | None = None


def _init_worker(cfg: tuple[Namespaces, frozenset[str]]) -> None:
    global _WORKER_CFG
    _WORKER_CFG = cfg


def _convert_batch(texts: list[str]) -> list[Converted]:
    assert _WORKER_CFG is not None
    return [convert_wikitext(t, *_WORKER_CFG) for t in texts]


def _converted(
    pages: Iterator[DumpPage], cfg: tuple[Namespaces, frozenset[str]], workers: int
) -> Iterator[tuple[DumpPage, Converted]]:
    """Convert in order, in ``workers`` processes, never more than a few batches ahead."""
    if workers <= 1:
        for page in pages:
            yield page, convert_wikitext(page.text, *cfg)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    # spawn, not fork: the parent has threads (writers, tqdm) and fork with threads is unsafe;
    # a process pool executor fails loudly (BrokenProcessPool) where a Pool would hang.
    ctx = multiprocessing.get_context("spawn")
    try:
        with ProcessPoolExecutor(workers, ctx, initializer=_init_worker, initargs=(cfg,)) as pool:
            pending: deque[tuple[list[DumpPage], Future[list[Converted]]]] = deque()
            for batch in _batched(pages, 16):
                pending.append((batch, pool.submit(_convert_batch, [p.text for p in batch])))
                while len(pending) > workers * 2:
                    done, fut = pending.popleft()
                    yield from zip(done, fut.result(), strict=True)
            while pending:
                done, fut = pending.popleft()
                yield from zip(done, fut.result(), strict=True)
    except BrokenProcessPool as exc:
        raise MMRetrieveError(
            "wikitext worker processes died (out of memory, or started from a script Python "
            "cannot re-import); run with --workers 1"
        ) from exc


def _batched(items: Iterator[DumpPage], size: int) -> Iterator[list[DumpPage]]:
    while batch := list(itertools.islice(items, size)):
        yield batch


def _write_folder(folder: ArticleFolder, conv: Converted, meta: dict[str, Any]) -> None:
    folder.write_text(conv.text)
    folder.write_refs([r.to_dict() for r in conv.refs])
    folder.commit(meta)


def ingest_dump(
    path: Path,
    out: Path,
    *,
    lang: str | None = None,
    limit: int | None = None,
    workers: int = 1,
    progress: bool = False,
    disambig_templates: frozenset[str] = DEFAULT_DISAMBIG_TEMPLATES,
) -> DumpReport:
    """Write one folder per article (namespace 0, not a redirect) of the dump at ``path``."""
    from tqdm import tqdm

    report, started = DumpReport(), time.perf_counter()
    reader = DumpReader(path)
    bar = tqdm(desc="pages", unit=" pages", disable=None if progress else True)
    site: dict[str, Any] = {}

    def setup() -> None:
        info = reader.siteinfo
        site["lang"] = lang or _lang_of(info)
        if not site["lang"]:
            raise UsageError(f"{path}: the dump does not say its language; pass --lang")
        site["prefix"] = info.base.rsplit("/wiki/", 1)[0] + "/wiki/" if info.base else None
        files = {"file", "image", info.namespaces.get(6, "file").lower()}
        cats = {"category", info.namespaces.get(14, "category").lower()}
        site["cfg"] = (Namespaces(frozenset(files), frozenset(cats)), disambig_templates)

    def candidates() -> Generator[DumpPage, None, None]:
        for page in reader:
            report.scanned += 1
            bar.update()
            if not site:
                setup()
            if page.ns != 0:
                report.skip("not an article namespace")
            elif page.redirect:
                report.skip("redirect")
            elif page.model not in (None, "wikitext"):
                report.skip("not wikitext")
            else:
                meta = ArticleFolder(out, folder_name(site["lang"], page.title)).meta() or {}
                old = meta.get("revision_id")
                if (
                    isinstance(old, int)
                    and page.revision_id is not None
                    and old >= page.revision_id
                ):
                    report.unchanged += 1
                    if limit is not None and report.written + report.unchanged >= limit:
                        return
                    continue
                yield page

    pages = candidates()
    writer = ThreadPoolExecutor(max_workers=4, thread_name_prefix="dump-writer")
    writes: deque[Future[None]] = deque()
    try:
        first = next(pages, None)  # reads siteinfo, so the converter settings are known
        todo = itertools.chain([first], pages) if first is not None else iter(())
        for page, conv in _converted(
            todo, site.get("cfg") or (Namespaces(), disambig_templates), workers
        ):
            if conv.disambiguation:
                report.skip("disambiguation page")
                continue
            if not conv.text.strip():
                report.skip("empty after markup removal")
                continue
            meta = base_meta(
                lang=site["lang"],
                title=page.title,
                url=_article_url(site["prefix"], page.title),
                page_id=page.page_id,
                revision_id=page.revision_id,
                source="wikipedia-dump",
            )
            meta.update(revision_timestamp=page.timestamp, dump=path.name)
            folder = ArticleFolder(out, folder_name(site["lang"], page.title), durable=False)
            writes.append(writer.submit(_write_folder, folder, conv, meta))
            while len(writes) > 256:  # file writes wait on the disk: overlap them, boundedly
                writes.popleft().result()
            report.written += 1
            bar.set_postfix(written=report.written, refresh=False)
            if limit is not None and report.written + report.unchanged >= limit:
                break
        while writes:
            writes.popleft().result()  # re-raises a failed write (disk full, permissions)
    finally:
        pages.close()
        writer.shutdown(wait=True)
        bar.close()
        report.seconds = time.perf_counter() - started
    return report
