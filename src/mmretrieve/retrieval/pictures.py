"""One picture, one hit: the copies of a picture among a search's images, and the articles that
use it.

Two image rows show the same picture when their files are identical (same sha256), or when their
perceptual hashes (documents/images.py) differ in at most ``NEAR_BITS`` bits and their shapes
agree (``NEAR_ASPECT``). Measured on the 426 photos and figures of mixed_dev, coco_mini and
wiki_tutorial (docs/QUALITY.md, "One picture, one hit"): resized (30 % to 150 %) and re-encoded
(JPEG quality 40 to 90, PNG, WebP) copies differ in at most 4 bits and 0.011 in log aspect ratio;
two different pictures in at least 12 bits (and that pair in shape), most in 20 or more. A crop
moves the hash as far as another photo does (median 12 bits for a 10 % crop), so crops stay
apart.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..documents.images import hash_distance
from ..store.base import IMAGES, Filter, Store

NEAR_BITS = 6
NEAR_ASPECT = 0.03  # |log(width / height)| apart, at most


class _Item(Protocol):
    kind: str
    row: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Picture:
    """What is known of one picture: its copies' file hashes and perceptual hashes, its shape."""

    digests: tuple[str, ...]
    phashes: tuple[int, ...]
    aspect: float | None


def _aspect(row: Mapping[str, Any]) -> float | None:
    width, height = row.get("width"), row.get("height")
    if not width or not height:
        return None
    return math.log(float(width) / float(height))


def _same_shape(a: float | None, b: float | None) -> bool:
    return a is None or b is None or abs(a - b) <= NEAR_ASPECT


def group_pictures(items: Sequence[_Item]) -> list[list[int]]:
    """Positions in ``items`` of the image rows, grouped by the picture they show: each group in
    the order of ``items``, the groups in the order of their first copy. Passages are left out."""
    groups: list[list[int]] = []
    by_digest: dict[str, int] = {}
    hashed: list[tuple[int, float | None, int]] = []  # (pHash, aspect, group) of each copy
    for pos, item in enumerate(items):
        if item.kind != "image":
            continue
        row = item.row
        digest = str(row.get("sha256") or "")
        phash = row.get("phash")
        aspect = _aspect(row)
        group = by_digest.get(digest) if digest else None
        if group is None and phash is not None:
            for other, other_aspect, g in hashed:
                if hash_distance(other, phash) <= NEAR_BITS and _same_shape(aspect, other_aspect):
                    group = g
                    break
        if group is None:
            group = len(groups)
            groups.append([])
        groups[group].append(pos)
        if digest:
            by_digest.setdefault(digest, group)
        if phash is not None:
            hashed.append((int(phash), aspect, group))
    return groups


def picture_of(rows: Sequence[Mapping[str, Any]]) -> Picture:
    """The picture the rows (copies of it) show."""
    digests = tuple(dict.fromkeys(str(r["sha256"]) for r in rows if r.get("sha256")))
    phashes = tuple(dict.fromkeys(int(r["phash"]) for r in rows if r.get("phash") is not None))
    aspects = [a for a in (_aspect(r) for r in rows) if a is not None]
    return Picture(digests, phashes, aspects[0] if aspects else None)


def articles_by_picture(store: Store, pictures: Sequence[Picture]) -> list[list[str]]:
    """For each picture, the ids (sorted) of the articles whose images are one of its files, or
    (where the index has perceptual hashes) a copy with exactly one of its hashes and its shape.
    A copy whose hash differs in a few bits is known only when a search finds it."""
    digests = sorted({d for p in pictures for d in p.digests})
    phashes = sorted({h for p in pictures for h in p.phashes})
    by_digest: dict[str, set[str]] = {}
    by_phash: dict[int, list[tuple[float | None, str]]] = {}
    if digests:
        for row in store.scan(IMAGES, ["sha256", "article_id"], {"sha256": digests}):
            if row.get("article_id"):
                by_digest.setdefault(str(row["sha256"]), set()).add(str(row["article_id"]))
    if phashes:
        fields = ["phash", "article_id", "width", "height"]
        for row in store.scan(IMAGES, fields, {"phash": phashes}):
            if row.get("article_id"):
                entry = (_aspect(row), str(row["article_id"]))
                by_phash.setdefault(int(row["phash"]), []).append(entry)
    out = []
    for picture in pictures:
        ids: set[str] = set()
        for digest in picture.digests:
            ids |= by_digest.get(digest, set())
        for phash in picture.phashes:
            ids |= {a for shape, a in by_phash.get(phash, ()) if _same_shape(shape, picture.aspect)}
        out.append(sorted(ids))
    return out


def pictures_used_by(store: Store, image_filter: Filter) -> Filter:
    """Index format 4: a filter on ``pictures`` keeping those with a use ``image_filter`` keeps."""
    rows = store.scan(IMAGES, ["sha256"], image_filter)
    return {"id": sorted({str(r["sha256"]) for r in rows if r.get("sha256")})}
