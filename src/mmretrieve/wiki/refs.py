"""``wiki fetch-images``: download the images a dump recorded in each folder's image_refs.jsonl.

Files are looked up with ``titles=File:A|File:B...&prop=imageinfo`` (50 per request, a few article
folders at a time), filtered by the same :class:`ImageRules` as ``wiki fetch``, downloaded with the
captions the article gave them, and listed in ``images.jsonl``. A folder is done when its meta.json
records the rules and the hash of its refs file; re-runs skip it without asking the server.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from ..errors import MMRetrieveError
from ..sources.folder import REFS_FILE
from .api import (
    BATCH,
    FetchReport,
    TitleReport,
    WikiSite,
    chunks,
    follow_title,
    imageinfo_params,
    run_parallel,
)
from .http import HttpSettings, PoliteClient
from .images import Candidate, FileInfo, ImageRules, collect_images
from .output import ArticleFolder, sha256_bytes
from .text import ImageRef


@dataclass
class _Job:
    folder: ArticleFolder
    item: TitleReport
    refs: list[ImageRef]
    digest: str
    site: WikiSite


def _pending(root: Path, site: WikiSite | None, rules: ImageRules) -> tuple[list, list[_Job]]:
    """Report items for every folder with image refs, and the jobs for those not done yet."""
    items: list[TitleReport] = []
    jobs: list[_Job] = []
    for path in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        folder = ArticleFolder(root, path.name)
        meta = folder.meta()
        if meta is None or not (path / REFS_FILE).exists():
            continue
        item = TitleReport(str(meta.get("title") or path.name), folder=str(path), id=meta.get("id"))
        items.append(item)
        digest = sha256_bytes((path / REFS_FILE).read_bytes())
        images = folder.images()
        if (
            meta.get("image_settings") == rules.fingerprint()
            and meta.get("image_refs_sha256") == digest
            and all(folder.verified(e) for e in images)
        ):
            item.status, item.images = "unchanged", len(images)
            continue
        refs = [
            ImageRef(r["title"], r.get("caption"), r.get("alt_text"), r.get("section"))
            for r in folder.refs()
        ]
        lang = str(meta.get("lang") or (site.lang if site else "en"))
        jobs.append(
            _Job(folder, item, refs, digest, WikiSite(lang, site.base_url if site else None))
        )
    return items, jobs


def _file_infos(
    client: PoliteClient, jobs: list[_Job], rules: ImageRules
) -> dict[tuple[str, str], FileInfo | None]:
    """``imageinfo`` for every file the jobs reference, 50 titles per request."""
    wanted: dict[str, tuple[WikiSite, dict[str, None]]] = {}
    for job in jobs:
        titles = wanted.setdefault(job.site.api_url, (job.site, {}))[1]
        titles.update(dict.fromkeys(r.title for r in job.refs))
    infos: dict[tuple[str, str], FileInfo | None] = {}
    for api, (site, titles) in wanted.items():
        for batch in chunks(list(titles), BATCH):
            params = {"action": "query", "titles": batch, **imageinfo_params(site, rules)}
            query = client.api(api, params).get("query") or {}
            pages = {p.get("title"): p for p in query.get("pages") or []}
            for title in batch:
                page = pages.get(follow_title(title, query))
                infos[(api, title)] = FileInfo.from_page(page) if page else None
    return infos


def fetch_images(
    root: Path,
    *,
    site: WikiSite | None = None,
    rules: ImageRules | None = None,
    http: HttpSettings | None = None,
    progress: bool = False,
    client: PoliteClient | None = None,
) -> FetchReport:
    """Download the images recorded in each folder's ``image_refs.jsonl`` (from a dump)."""
    from tqdm import tqdm

    rules, http = rules or ImageRules(), http or HttpSettings()
    if not root.is_dir():
        raise MMRetrieveError(f"{root} is not a folder")
    items, jobs = _pending(root, site, rules)
    own = client is None
    client = client or PoliteClient(http)
    infos: dict[tuple[str, str], FileInfo | None] = {}

    def work(job: _Job, stop: threading.Event) -> None:
        item = job.item
        cands = [
            Candidate(
                r.title, infos.get((job.site.api_url, r.title)), r.caption, r.alt_text, r.section
            )
            for r in job.refs
        ]
        try:
            got = collect_images(client, job.folder, cands, rules, stop)
        except MMRetrieveError as exc:
            item.status, item.message = "error", str(exc)
            return
        if stop.is_set():
            raise KeyboardInterrupt
        job.folder.update_meta(
            {"image_settings": rules.fingerprint(), "image_refs_sha256": job.digest}
        )
        item.status, item.images, item.downloaded = "fetched", len(got.entries), got.downloaded
        item.skipped_images = got.skipped
        item.message = None if got.entries else "no usable images"

    try:
        with tqdm(
            total=len(jobs), desc="articles", unit=" art", disable=None if progress else True
        ) as bar:
            for chunk in chunks(jobs, 20):  # look files up in bulk, a few articles at a time
                infos.update(_file_infos(client, chunk, rules))
                run_parallel(chunk, work, http.concurrency, bar)
    finally:
        if own:
            client.close()
    return FetchReport(items)
