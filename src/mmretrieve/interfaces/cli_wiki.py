"""``mmretrieve wiki ...``: fetch Wikipedia articles with images, or convert a dump (thin CLI)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from ..errors import MMRetrieveError, UsageError
from .cli_common import friendly, json_option, progress_option

F = TypeVar("F", bound=Callable[..., Any])
ENV_CONTACT = "MMRETRIEVE_WIKI_CONTACT"


def _options(*decorators: Callable[[F], F]) -> Callable[[F], F]:
    def apply(func: F) -> F:
        for decorator in reversed(decorators):
            func = decorator(func)
        return func

    return apply


_site_options = _options(
    click.option("--lang", default="en", show_default=True, help="Wikipedia language code."),
    click.option(
        "--base-url",
        default=None,
        metavar="URL",
        help="MediaWiki site root (the API is URL/w/api.php). Default: https://LANG.wikipedia.org.",
    ),
)
_http_options = _options(
    click.option(
        "--contact",
        envvar=ENV_CONTACT,
        default=None,
        help=f"Your e-mail or URL, put in the User-Agent as Wikimedia asks (env {ENV_CONTACT}).",
    ),
    click.option("--user-agent", default=None, help="Replace the whole User-Agent header."),
    click.option(
        "--concurrency",
        type=click.IntRange(1, 8),
        default=3,
        show_default=True,
        help="Requests in flight at once (Wikimedia asks for a few at most).",
    ),
    click.option(
        "--timeout", type=float, default=30.0, show_default=True, help="Seconds per request."
    ),
    click.option(
        "--retries",
        type=click.IntRange(0, 20),
        default=5,
        show_default=True,
        help="Retries on 429/5xx, timeouts and dropped connections.",
    ),
    click.option(
        "--backoff",
        type=float,
        default=1.0,
        show_default=True,
        help="First retry wait in seconds; doubles each retry (Retry-After wins when sent).",
    ),
)
_image_options = _options(
    click.option(
        "--max-images",
        type=click.IntRange(0),
        default=10,
        show_default=True,
        help="Images kept per article (0: text only).",
    ),
    click.option(
        "--image-width",
        type=click.IntRange(0),
        default=960,
        show_default=True,
        help="Download thumbnails this wide; 0 downloads original files. Wikimedia serves "
        "standard widths: 250, 330, 500, 960, 1280, 1920.",
    ),
    click.option(
        "--min-width",
        type=click.IntRange(0),
        default=100,
        show_default=True,
        help="Skip images narrower than this (icons, bullets).",
    ),
    click.option(
        "--min-height",
        type=click.IntRange(0),
        default=100,
        show_default=True,
        help="Skip images shorter than this.",
    ),
    click.option(
        "--max-image-bytes",
        type=click.IntRange(1),
        default=20_000_000,
        show_default=True,
        help="Abort and skip any single image larger than this.",
    ),
    click.option(
        "--skip-pattern",
        multiple=True,
        metavar="REGEX",
        help="Skip files whose name matches (case-insensitive, repeatable); added to the defaults.",
    ),
    click.option(
        "--no-default-skips",
        is_flag=True,
        help="Drop the default icon/wiki-furniture name patterns.",
    ),
    click.option("--free-only", is_flag=True, help="Skip files marked non-free (fair use)."),
)
_output_options = _options(
    json_option,
    progress_option,
)


def _rules(kw: dict[str, Any]) -> Any:
    from ..wiki.images import DEFAULT_SKIP_PATTERNS, ImageRules

    base = () if kw.pop("no_default_skips") else DEFAULT_SKIP_PATTERNS
    return ImageRules(
        max_images=kw.pop("max_images"),
        min_width=kw.pop("min_width"),
        min_height=kw.pop("min_height"),
        max_bytes=kw.pop("max_image_bytes"),
        thumb_width=kw.pop("image_width"),
        skip_patterns=tuple(base) + tuple(kw.pop("skip_pattern")),
        free_only=kw.pop("free_only"),
    )


def _http(kw: dict[str, Any]) -> Any:
    from ..wiki.http import HttpSettings

    return HttpSettings(
        user_agent=kw.pop("user_agent"),
        contact=kw.pop("contact"),
        concurrency=kw.pop("concurrency"),
        timeout=kw.pop("timeout"),
        retries=kw.pop("retries"),
        backoff=kw.pop("backoff"),
    )


def _contact_hint(http: Any) -> None:
    if not http.contact and not http.user_agent:
        click.echo(
            f"note: set --contact or {ENV_CONTACT} to your e-mail so Wikimedia can reach you "
            "(User-Agent policy).",
            err=True,
        )


def _print_report(report: Any, out: Path, as_json: bool, what: str) -> None:
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
        return
    for item in report.items:
        line = f"{item.status:<15} {item.title}"
        if item.canonical and item.canonical != item.title:
            line += f" -> {item.canonical}"
        if item.same_as:
            click.echo(f"{line}  (same article as {item.same_as!r})")
            continue
        if item.ok:
            line += f"  [{item.images} images"
            line += f", {item.downloaded} downloaded" if item.downloaded else ""
            line += f", {len(item.skipped_images)} skipped" if item.skipped_images else ""
            line += "]"
        if item.message:
            line += f"  ({item.message})"
        click.echo(line)
        for skip in item.skipped_images:
            if not skip["reason"].startswith(("not a raster", "name matches", "smaller than")):
                click.echo(f"{'':<15}   skipped {skip['title']}: {skip['reason']}")
    counts = ", ".join(f"{n} {status}" for status, n in sorted(report.counts().items()))
    click.echo(f"{what}: {counts or 'nothing to do'} -> {out}")


@click.group(name="wiki")
def wiki() -> None:
    """Download Wikipedia articles with their images and captions, ready to index.

    \b
    Example:
      mmretrieve wiki fetch "Batman" "Vincent van Gogh" --out ./wiki
      mmretrieve index ./wiki --index ./idx
    """


@wiki.command("fetch")
@click.argument("titles", nargs=-1)
@click.option(
    "--titles-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="File with one title per line (blank lines and lines starting with # ignored).",
)
@click.option(
    "--out",
    "-o",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Output folder: one sub-folder per article.",
)
@_site_options
@_image_options
@_http_options
@_output_options
@friendly
def fetch_cmd(titles: tuple[str, ...], titles_file: Path | None, out: Path, **kw: Any) -> None:
    """Fetch articles by title, with their images, captions and licences.

    Redirects are followed; missing and disambiguation pages are reported per title. Re-running
    only downloads what changed; an interrupted run resumes. Exits non-zero only when nothing
    could be fetched.

    \b
    Examples:
      mmretrieve wiki fetch "Batman" "Vincent van Gogh" "San Francisco" --out ./wiki
      mmretrieve wiki fetch --titles-file titles.txt --out ./wiki --max-images 20 --lang en
    """
    from ..wiki.api import WikiSite, fetch_titles

    wanted = list(titles)
    if titles_file is not None:
        try:
            lines = titles_file.read_text(encoding="utf-8-sig").splitlines()
        except UnicodeDecodeError as exc:
            raise UsageError(f"{titles_file} is not UTF-8 text") from exc
        wanted += [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    if not wanted:
        raise UsageError("give titles as arguments or with --titles-file")
    as_json, progress = kw.pop("as_json"), kw.pop("progress")
    site = WikiSite(kw.pop("lang"), kw.pop("base_url"))
    rules, http = _rules(kw), _http(kw)
    _contact_hint(http)
    report = fetch_titles(wanted, out, site=site, rules=rules, http=http, progress=progress)
    _print_report(report, out, as_json, "fetch")
    if report.ok == 0:
        raise MMRetrieveError("nothing could be fetched (see the report above)")


@wiki.command("fetch-images")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@_site_options
@_image_options
@_http_options
@_output_options
@friendly
def fetch_images_cmd(folder: Path, **kw: Any) -> None:
    """Download the images a dump recorded in image_refs.jsonl, with their captions.

    Each article's referenced files are looked up through the API (50 per request), filtered by
    the image rules, downloaded and added to images.jsonl. Safe to re-run.

    \b
    Example:
      mmretrieve wiki dump enwiki-latest-pages-articles1.xml.bz2 --out ./wiki --limit 1000
      mmretrieve wiki fetch-images ./wiki --max-images 5
    """
    from ..wiki.api import WikiSite
    from ..wiki.refs import fetch_images

    as_json, progress = kw.pop("as_json"), kw.pop("progress")
    site = WikiSite(kw.pop("lang"), kw.pop("base_url"))
    rules, http = _rules(kw), _http(kw)
    _contact_hint(http)
    report = fetch_images(folder, site=site, rules=rules, http=http, progress=progress)
    _print_report(report, folder, as_json, "fetch-images")
    if report.items and report.ok == 0:
        raise MMRetrieveError("no article's images could be fetched (see the report above)")


@wiki.command("dump")
@click.argument("dump_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--out",
    "-o",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Output folder: one sub-folder per article.",
)
@click.option(
    "--limit",
    type=click.IntRange(1),
    default=None,
    help="Stop after this many articles (unchanged ones count).",
)
@click.option("--lang", default=None, help="Language code; default: read from the dump.")
@click.option(
    "--workers",
    type=click.IntRange(1),
    default=None,
    help="Processes converting wikitext. Default: CPU cores minus one (1 to 4).",
)
@_output_options
@friendly
def dump_cmd(
    dump_file: Path,
    out: Path,
    limit: int | None,
    lang: str | None,
    workers: int | None,
    as_json: bool,
    progress: bool,
) -> None:
    """Convert a pages-articles XML dump (.xml.bz2, .xml.gz or .xml) into article folders.

    Streams the file (flat memory), skips redirects, non-article namespaces and disambiguation
    pages, and records each article's images with their captions in image_refs.jsonl; download
    them with `wiki fetch-images`. Re-running skips articles whose revision is unchanged.

    \b
    Example:
      mmretrieve wiki dump enwiki-latest-pages-articles1.xml.bz2 --out ./wiki --limit 10000
    """
    from ..wiki.dump import ingest_dump

    if workers is None:
        workers = max(1, min(4, (os.cpu_count() or 1) - 1))  # a core stays for reading/writing
    report = ingest_dump(dump_file, out, lang=lang, limit=limit, workers=workers, progress=progress)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
        return
    skipped = ", ".join(f"{n} {why}" for why, n in sorted(report.skipped.items())) or "none"
    click.echo(
        f"dump: {report.written} articles written, {report.unchanged} unchanged, skipped: "
        f"{skipped}; {report.scanned} pages in {report.seconds:.1f}s "
        f"({report.pages_per_s:.0f} pages/s) -> {out}"
    )
