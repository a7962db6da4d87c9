"""Fetch articles with their images and captions through the MediaWiki Action API.

Calls used (all ``formatversion=2``, ``maxlag=5``):
- resolve titles, 50 at a time: ``prop=info|pageprops&inprop=url&ppprop=disambiguation&redirects=1``
  (plus ``meta=siteinfo`` once, for the File/Category namespace names);
- one article: ``prop=extracts|revisions&explaintext=1&exsectionformat=wiki&rvprop=ids|timestamp|
  content&rvslots=main`` (the plain-text extract keeps ``== Heading ==`` lines; the wikitext gives
  the captions the article puts under its images);
- its images: ``generator=images&prop=imageinfo&iiprop=url|size|mime|extmetadata&iiurlwidth=N``;
- ``wiki fetch-images`` (:mod:`.refs`): ``titles=File:...&prop=imageinfo`` for references a
  dump recorded.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import MMRetrieveError
from .http import HttpSettings, PoliteClient
from .images import EXTMETADATA, Candidate, FileInfo, ImageRules, collect_images
from .output import (
    ArticleFolder,
    article_id,
    base_meta,
    canonical_title,
    folder_name,
)
from .text import Namespaces, convert_wikitext, tidy_text

BATCH = 50  # titles per API request (the limit for clients without the apihighlimits right)
OK_STATUSES = ("fetched", "updated", "unchanged")


@dataclass(frozen=True, slots=True)
class WikiSite:
    lang: str = "en"
    base_url: str | None = None  # default https://{lang}.wikipedia.org

    @property
    def api_url(self) -> str:
        base = (self.base_url or f"https://{self.lang}.wikipedia.org").rstrip("/")
        return base if base.endswith("api.php") else f"{base}/w/api.php"


@dataclass
class TitleReport:
    """What happened to one requested title (or, for fetch-images, one article folder)."""

    title: str
    status: str = "pending"  # fetched updated unchanged missing invalid disambiguation error
    canonical: str | None = None
    id: str | None = None
    folder: str | None = None
    images: int = 0
    downloaded: int = 0
    skipped_images: list[dict[str, str]] = field(default_factory=list)
    message: str | None = None
    same_as: str | None = None  # an earlier requested title that led to the same article

    @property
    def ok(self) -> bool:
        return self.status in OK_STATUSES


@dataclass
class FetchReport:
    items: list[TitleReport]

    @property
    def ok(self) -> int:
        return sum(item.ok for item in self.items)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for item in self.items:
            out[item.status] = out.get(item.status, 0) + 1
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"counts": self.counts(), "items": [asdict(i) for i in self.items]}


@dataclass
class _Page:
    title: str
    revid: int | None
    pageid: int | None
    url: str | None
    asked: list[TitleReport] = field(default_factory=list)


def chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def query_all(client: PoliteClient, api_url: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Run a query and its continuations; pages merged by title (imageinfo may come in parts)."""
    pages: dict[str, dict[str, Any]] = {}
    cont: dict[str, Any] = {}
    for _ in range(1000):
        data = client.api(api_url, {"action": "query", **params, **cont})
        for page in (data.get("query") or {}).get("pages") or []:
            merged = pages.setdefault(page.get("title", ""), {})
            infos = merged.get("imageinfo", []) + (page.get("imageinfo") or [])
            merged.update(page)
            if infos:
                merged["imageinfo"] = infos
        cont = data.get("continue") or {}
        if not cont:
            break
    return list(pages.values())


def follow_title(title: str, query: dict[str, Any]) -> str:
    """Apply the API's ``normalized`` and ``redirects`` maps to one requested title."""
    for key in ("normalized", "redirects"):
        hops = {m.get("from"): m.get("to") for m in query.get(key) or []}
        for _ in range(10):
            if title not in hops:
                break
            title = hops[title]
    return title


def _namespaces(query: dict[str, Any]) -> Namespaces:
    names: dict[int, set[str]] = {6: {"file", "image"}, 14: {"category"}}
    for ns in (query.get("namespaces") or {}).values():
        if ns.get("id") in names:
            for key in ("name", "canonical"):
                if ns.get(key):
                    names[ns["id"]].add(str(ns[key]).lower())
    for alias in query.get("namespacealiases") or []:
        if alias.get("id") in names and alias.get("alias"):
            names[alias["id"]].add(str(alias["alias"]).lower())
    return Namespaces(frozenset(names[6]), frozenset(names[14]))


def _resolve(
    client: PoliteClient, site: WikiSite, items: list[TitleReport]
) -> tuple[list[_Page], Namespaces]:
    pages: dict[str, _Page] = {}
    namespaces = Namespaces()
    for n, batch in enumerate(chunks(items, BATCH)):
        params: dict[str, Any] = {
            "action": "query",
            "prop": "info|pageprops",
            "inprop": "url",
            "ppprop": "disambiguation",
            "redirects": True,
            "titles": [i.title for i in batch],
        }
        if n == 0:
            params.update(meta="siteinfo", siprop="namespaces|namespacealiases")
        query = client.api(site.api_url, params).get("query") or {}
        if n == 0:
            namespaces = _namespaces(query)
        by_title = {p.get("title"): p for p in query.get("pages") or []}
        interwiki = {i.get("title") for i in query.get("interwiki") or []}
        for item in batch:
            final = follow_title(item.title, query)
            page = by_title.get(final)
            item.canonical = final
            if item.title in interwiki:
                item.status, item.message = "invalid", "an interwiki link, not a page on this wiki"
            elif page is None or page.get("invalid"):
                reason = (page or {}).get("invalidreason") or "not a valid title"
                item.status, item.message = "invalid", reason
            elif page.get("missing"):
                item.status, item.message = "missing", "no such page"
            elif page.get("ns", 0) < 0:
                item.status, item.message = "invalid", "a special page, not an article"
            elif "disambiguation" in (page.get("pageprops") or {}):
                item.status = "disambiguation"
                item.message = "a disambiguation page; ask for one of the articles it lists"
            else:
                entry = pages.setdefault(
                    final,
                    _Page(final, page.get("lastrevid"), page.get("pageid"), page.get("fullurl")),
                )
                entry.asked.append(item)
    return list(pages.values()), namespaces


def imageinfo_params(site: WikiSite, rules: ImageRules) -> dict[str, Any]:
    params: dict[str, Any] = {
        "prop": "imageinfo",
        "iiprop": "url|size|mime|extmetadata",
        "iiextmetadatafilter": EXTMETADATA,
        "iiextmetadatalanguage": site.lang,
        "redirects": True,
    }
    if rules.thumb_width:
        params["iiurlwidth"] = rules.thumb_width
    return params


def _key(file_title: str) -> str:
    """Compare file titles without their (possibly localised) namespace."""
    name = canonical_title(file_title.split(":", 1)[-1])
    return name[:1].upper() + name[1:]


def _candidates(refs: Iterable[Any], infos: list[FileInfo | None], titles: list[str]) -> list:
    """The article's own references first (with its captions), then the other files it uses."""
    by_key = {_key(t): info for t, info in zip(titles, infos, strict=True)}
    out, seen = [], set()
    for ref in refs:
        key = _key(ref.title)
        if key not in seen:
            seen.add(key)
            out.append(
                Candidate(ref.title, by_key.get(key), ref.caption, ref.alt_text, ref.section)
            )
    for title, info in zip(titles, infos, strict=True):
        if _key(title) not in seen and info is not None:
            seen.add(_key(title))
            out.append(Candidate(title, info))
    return out


def _fetch_page(
    client: PoliteClient,
    site: WikiSite,
    out: Path,
    page: _Page,
    rules: ImageRules,
    namespaces: Namespaces,
    stop: threading.Event,
) -> TitleReport:
    item = TitleReport(page.title, canonical=page.title, id=article_id(site.lang, page.title))
    folder = ArticleFolder(out, folder_name(site.lang, page.title))
    item.folder = str(folder.final)
    old = folder.meta()
    if (
        old
        and old.get("source") == "wikipedia-api"
        and old.get("revision_id") == page.revid
        and old.get("image_settings") == rules.fingerprint()
    ):
        images = folder.images()
        if all(folder.verified(e) for e in images):
            item.status, item.images = "unchanged", len(images)
            return item
    params = {
        "prop": "extracts|revisions",
        "explaintext": True,
        "exsectionformat": "wiki",
        "rvprop": "ids|timestamp|content",
        "rvslots": "main",
        "redirects": True,
        "titles": page.title,
    }
    found = query_all(client, site.api_url, params)
    data: dict[str, Any] = found[0] if found else {"missing": True}
    if data.get("missing") or not data.get("revisions"):
        item.status, item.message = "missing", "the page disappeared while fetching"
        return item
    rev = data["revisions"][0]
    wikitext = ((rev.get("slots") or {}).get("main") or {}).get("content") or ""
    conv = convert_wikitext(wikitext, namespaces)
    text = tidy_text(data.get("extract") or "") or conv.text
    if not text:
        item.status, item.message = "error", "the article has no text"
        return item
    if rules.max_images > 0:
        listed = query_all(
            client,
            site.api_url,
            {"generator": "images", "gimlimit": "max", "titles": data["title"]}
            | imageinfo_params(site, rules),
        )
        titles = [p["title"] for p in listed]
        cands = _candidates(conv.refs, [FileInfo.from_page(p) for p in listed], titles)
        got = collect_images(client, folder, cands, rules, stop)
        item.images, item.downloaded, item.skipped_images = (
            len(got.entries),
            got.downloaded,
            got.skipped,
        )
    folder.write_text(text)
    folder.remove_refs()
    meta = base_meta(
        lang=site.lang,
        title=data["title"],
        url=page.url or data.get("fullurl"),
        page_id=data.get("pageid", page.pageid),
        revision_id=rev.get("revid", page.revid),
        source="wikipedia-api",
    )
    meta.update(revision_timestamp=rev.get("timestamp"), image_settings=rules.fingerprint())
    if stop.is_set():
        raise KeyboardInterrupt
    folder.commit(meta)
    item.status = "updated" if old else "fetched"
    if item.images == 0 and rules.max_images > 0:
        item.message = "no usable images on this page"
    return item


def run_parallel(
    jobs: list[Any], work: Callable[[Any, threading.Event], None], workers: int, bar: Any
) -> None:
    stop = threading.Event()
    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="wiki")
    try:
        futures = [pool.submit(work, job, stop) for job in jobs]
        for future in as_completed(futures):
            future.result()
            bar.update()
    except BaseException:
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def fetch_titles(
    titles: Iterable[str],
    out: Path,
    *,
    site: WikiSite | None = None,
    rules: ImageRules | None = None,
    http: HttpSettings | None = None,
    progress: bool = False,
    client: PoliteClient | None = None,
) -> FetchReport:
    """Fetch each title's article text and images into ``out`` (one folder per article)."""
    from tqdm import tqdm

    site, rules, http = site or WikiSite(), rules or ImageRules(), http or HttpSettings()
    unique = list(dict.fromkeys(t.strip() for t in titles if t and t.strip()))
    items = [TitleReport(t) for t in unique]
    own = client is None
    client = client or PoliteClient(http)
    try:
        pages, namespaces = _resolve(client, site, items) if items else ([], Namespaces())

        def work(page: _Page, stop: threading.Event) -> None:
            try:
                done = _fetch_page(client, site, out, page, rules, namespaces, stop)
            except MMRetrieveError as exc:
                done = TitleReport(page.title, status="error", message=str(exc))
            for n, asked in enumerate(page.asked):  # every title that led here gets the outcome
                vars(asked).update({k: v for k, v in vars(done).items() if k != "title"})
                asked.same_as = page.asked[0].title if n else None

        with tqdm(
            total=len(pages), desc="articles", unit=" art", disable=None if progress else True
        ) as bar:
            run_parallel(pages, work, http.concurrency, bar)
    finally:
        if own:
            client.close()
    return FetchReport(items)
