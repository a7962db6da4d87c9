"""Which of an article's images to keep, and downloading them into its folder (hash-verified).

Rules are data (:class:`ImageRules`), never special cases: raster types only (SVG, audio, video
and PDF are skipped), a minimum size, file-name patterns for icons and wiki furniture (a default
list the caller may replace), an optional non-free filter, a byte cap and a per-article count cap.
"""

from __future__ import annotations

import html
import io
import re
import threading
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

from ..errors import BadInputError, MMRetrieveError
from .http import PoliteClient
from .output import ArticleFolder, canonical_title, image_file_name, sha256_bytes

RASTER_MIMES = ("image/jpeg", "image/png", "image/gif", "image/webp", "image/tiff", "image/bmp")
DEFAULT_SKIP_PATTERNS = (
    r"\bicons?\b",
    r"^(commons|wiki[a-z]*)[- ]?logo\b",
    r"^(ambox|padlock|question book|edit-clear|crystal clear|nuvola|gnome-|oojs ui|speakerlink"
    r"|portal-puzzle|red pog|disambig)",
)
EXTMETADATA = "ImageDescription|Artist|Credit|LicenseShortName|LicenseUrl|NonFree|ObjectName"
MAX_CAPTION_CHARS = 1000


@dataclass(frozen=True, slots=True)
class ImageRules:
    """What to download. ``thumb_width`` 0 means original files instead of thumbnails."""

    max_images: int = 10
    min_width: int = 100
    min_height: int = 100
    max_bytes: int = 20_000_000
    thumb_width: int = 960
    skip_patterns: tuple[str, ...] = DEFAULT_SKIP_PATTERNS
    free_only: bool = False
    _compiled: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            compiled = tuple(re.compile(p, re.IGNORECASE) for p in self.skip_patterns)
        except re.error as exc:
            raise BadInputError(f"bad --skip-pattern regular expression: {exc}") from exc
        object.__setattr__(self, "_compiled", compiled)

    def fingerprint(self) -> dict[str, Any]:
        """The settings that decide which images a folder holds (stored in meta.json)."""
        return {
            "max_images": self.max_images,
            "min_width": self.min_width,
            "min_height": self.min_height,
            "max_bytes": self.max_bytes,
            "thumb_width": self.thumb_width,
            "skip_patterns": list(self.skip_patterns),
            "free_only": self.free_only,
        }

    def reason_to_skip(self, info: FileInfo) -> str | None:
        name = canonical_title(info.title.split(":", 1)[-1])
        if (info.mime or "").lower() not in RASTER_MIMES:
            return f"not a raster image ({info.mime or 'unknown type'})"
        for pattern in self._compiled:
            if pattern.search(name):
                return f"name matches skip pattern {pattern.pattern!r}"
        if (info.width or 0) < self.min_width or (info.height or 0) < self.min_height:
            return f"smaller than {self.min_width}x{self.min_height} ({info.width}x{info.height})"
        if self.free_only and info.non_free:
            return "non-free (fair use) file"
        if not self.download_url(info):
            return "no file URL"
        if self.download_url(info) == info.url and (info.size or 0) > self.max_bytes:
            return f"{info.size} bytes is over the {self.max_bytes}-byte cap"
        return None

    def download_url(self, info: FileInfo) -> str | None:
        if self.thumb_width and info.thumb_url and (info.width or 0) > self.thumb_width:
            return info.thumb_url
        return info.url


class _TextOnly(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def html_to_text(value: Any) -> str | None:
    """extmetadata values are HTML fragments; keep their text, one line."""
    if not isinstance(value, str) or not value.strip():
        return None
    parser = _TextOnly()
    parser.feed(value)
    parser.close()
    text = " ".join(html.unescape("".join(parser.parts)).split())
    return text[:MAX_CAPTION_CHARS] or None


@dataclass(frozen=True, slots=True)
class FileInfo:
    """One file as ``prop=imageinfo`` describes it."""

    title: str
    url: str | None
    mime: str | None
    width: int | None
    height: int | None
    size: int | None = None
    thumb_url: str | None = None
    description_url: str | None = None
    description: str | None = None
    artist: str | None = None
    credit: str | None = None
    license: str | None = None
    license_url: str | None = None
    non_free: bool = False

    @classmethod
    def from_page(cls, page: dict[str, Any]) -> FileInfo | None:
        """None for files that do not exist (a page ``missing`` without ``known``)."""
        infos = page.get("imageinfo") or []
        if not infos:
            return None
        info = infos[0]
        meta = info.get("extmetadata") or {}

        def field_(name: str) -> str | None:
            return html_to_text((meta.get(name) or {}).get("value"))

        return cls(
            title=page["title"],
            url=info.get("url"),
            mime=info.get("mime"),
            width=info.get("width"),
            height=info.get("height"),
            size=info.get("size"),
            thumb_url=info.get("thumburl"),
            description_url=info.get("descriptionurl"),
            description=field_("ImageDescription") or field_("ObjectName"),
            artist=field_("Artist"),
            credit=field_("Credit"),
            license=field_("LicenseShortName"),
            license_url=field_("LicenseUrl"),
            non_free=(field_("NonFree") or "").lower() in ("true", "1", "yes"),
        )


@dataclass(frozen=True, slots=True)
class Candidate:
    """An image an article shows: the ref title, the article's caption/alt, and the API's info."""

    title: str
    info: FileInfo | None
    caption: str | None = None
    alt_text: str | None = None
    section: str | None = None  # the article section it is placed in (None: the lead)


@dataclass
class ImageOutcome:
    entries: list[dict[str, Any]] = field(default_factory=list)
    downloaded: int = 0
    reused: int = 0
    skipped: list[dict[str, str]] = field(default_factory=list)


def _accept(content_type: str) -> bool:
    return content_type.startswith("image/") and not any(
        bad in content_type for bad in ("svg", "djvu", "icon")
    )


def decoded_size(data: bytes) -> tuple[int, int]:
    """Decode fully (catches truncation); BadInputError when Pillow cannot."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            return img.size
    except Exception as exc:  # noqa: BLE001 - any decoder failure means an unusable file
        raise BadInputError(f"not a decodable image ({type(exc).__name__}: {exc})") from exc


def collect_images(
    client: PoliteClient,
    folder: ArticleFolder,
    candidates: list[Candidate],
    rules: ImageRules,
    stop: threading.Event | None = None,
) -> ImageOutcome:
    """Download up to ``rules.max_images`` images, reusing files whose sha256 still matches.

    ``images.jsonl`` is rewritten after every image, so a run killed half-way keeps what it got.
    Files listed before but not chosen now are deleted at the end.
    """
    old = folder.images()
    pending = {e.get("title"): e for e in old if e.get("title")}
    out = ImageOutcome()
    for cand in candidates:
        if len(out.entries) >= rules.max_images or (stop is not None and stop.is_set()):
            break
        info = cand.info
        if info is None:
            out.skipped.append({"title": cand.title, "reason": "file does not exist"})
            continue
        reason = rules.reason_to_skip(info)
        if reason:
            out.skipped.append({"title": info.title, "reason": reason})
            continue
        caption = cand.caption or info.description
        labels = {
            "caption": caption,
            "caption_source": "article" if cand.caption else "file description",
            "alt_text": cand.alt_text,
            "section": cand.section,
        }
        previous = pending.pop(info.title, None)
        if previous is not None and folder.verified(previous):
            out.entries.append({**previous, **labels})
            out.reused += 1
        else:
            try:
                entry = _download(client, folder, info, rules)
            except MMRetrieveError as exc:  # BadInputError included: cap, type, truncation
                out.skipped.append({"title": info.title, "reason": str(exc)})
                continue
            out.entries.append({**entry, **labels})
            out.downloaded += 1
        folder.write_images(out.entries + list(pending.values()))
    folder.write_images(out.entries)
    folder.prune_images(out.entries, old)
    return out


def _download(
    client: PoliteClient, folder: ArticleFolder, info: FileInfo, rules: ImageRules
) -> dict[str, Any]:
    url = rules.download_url(info)
    assert url is not None
    got = client.download(url, max_bytes=rules.max_bytes, accept=_accept)
    width, height = decoded_size(got.data)
    name = image_file_name(info.title, got.content_type)
    folder.write_image(name, got.data)
    return {
        "file": name,
        "title": info.title,
        "description": info.description,
        "artist": info.artist,
        "credit": info.credit,
        "license": info.license,
        "license_url": info.license_url,
        "non_free": info.non_free,
        "source_url": got.url,
        "original_url": info.url,
        "description_url": info.description_url,
        "width": width,
        "height": height,
        "mime": got.content_type,
        "bytes": len(got.data),
        "sha256": sha256_bytes(got.data),
    }
