"""Perceptual hashes and the grouping of a search's images into pictures (real Pillow images;
rows as a store returns them)."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

import pytest
from PIL import Image as PILImage

from helpers.scenes import scene
from mmretrieve.documents.images import hash_distance, load_image, perceptual_hash
from mmretrieve.retrieval.pictures import NEAR_BITS, group_pictures, picture_of


def encoded(img: PILImage.Image, scale: float = 1.0, fmt: str = "JPEG", **kw: Any) -> bytes:
    size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    out = io.BytesIO()
    img.resize(size, PILImage.Resampling.BICUBIC).save(out, fmt, **kw)
    return out.getvalue()


def phash_of(data: bytes) -> int:
    return perceptual_hash(load_image(data, fit_edge=224))


def test_phash_fits_a_signed_int64_column():
    for seed in range(5):
        value = phash_of(encoded(scene(seed), fmt="PNG"))
        assert 0 <= value < 2**63


@pytest.mark.parametrize(
    ("scale", "fmt", "options"),
    [(0.7, "JPEG", {"quality": 55}), (0.3, "JPEG", {"quality": 70}), (1.5, "JPEG", {"quality": 90}),
     (1.0, "WEBP", {"quality": 75}), (0.5, "PNG", {})],
)  # fmt: skip
def test_resized_and_reencoded_copies_stay_within_near_bits(scale, fmt, options):
    for seed in range(4):
        original = phash_of(encoded(scene(seed), fmt="PNG"))
        copy = phash_of(encoded(scene(seed), scale, fmt, **options))
        assert hash_distance(original, copy) <= NEAR_BITS - 2


def test_different_pictures_are_far_apart():
    hashes = [phash_of(encoded(scene(seed), fmt="PNG")) for seed in range(12)]
    distances = [hash_distance(a, b) for i, a in enumerate(hashes) for b in hashes[i + 1 :]]
    assert min(distances) > 2 * NEAR_BITS


@dataclass
class Item:
    kind: str
    row: dict[str, Any] = field(default_factory=dict)


def image(sha: str, phash: int | None, width: int = 300, height: int = 200) -> Item:
    return Item("image", {"sha256": sha, "phash": phash, "width": width, "height": height})


def test_grouping_by_file_hash_and_perceptual_hash():
    items = [
        image("a", 0b1010_0000),
        Item("passage"),
        image("b", 0b1010_0111),  # 3 bits from the first: a resized copy
        image("a", None),  # the first's file (an older index row without a pHash)
        image("c", 0b1010_0000, 300, 300),  # the first's hash but square: another picture
        image("d", 0b1010_0000 ^ (((1 << (NEAR_BITS + 1)) - 1) << 8)),  # NEAR_BITS + 1 bits away
        image("e", 0b1010_0111, 600, 400),  # the second's hash and shape at another size
    ]
    assert group_pictures(items) == [[0, 2, 3, 6], [4], [5]]


def test_rows_without_perceptual_hashes_group_by_file_only():
    items = [image("a", None), image("b", None), image("a", None)]
    assert group_pictures(items) == [[0, 2], [1]]
    picture = picture_of([items[0].row, items[2].row])
    assert picture.digests == ("a",) and picture.phashes == ()
