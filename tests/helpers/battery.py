"""The bad-input battery's building blocks: awkward pictures, cases, checks (test-only).

Used by tests/unit/test_bad_inputs.py; docs/RELIABILITY.md lists the cases.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from fakes import FakeClipEncoder, FakeTextEncoder
from mmretrieve import Index
from mmretrieve.store.base import IMAGES

MB = 1024 * 1024


class QuickText(FakeTextEncoder):
    """The FAKE text encoder, reading only the first words of each passage (as a real model
    truncates), so the 10 MB article costs seconds, not minutes."""

    def encode_documents(self, texts: Sequence[str]) -> np.ndarray:
        return super().encode_documents([" ".join(t.split()[:24]) for t in texts])


class QuickClip(FakeClipEncoder):
    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        return super().encode_texts([" ".join(t.split()[:24]) for t in texts])


# -------------------------------------------------------------------------- pictures


def pattern(size: tuple[int, int] = (40, 60), seed: int = 0) -> Image.Image:
    """A picture whose FAKE vector is distinctive: dark top half, coloured noise below."""
    w, h = size
    rng = np.random.default_rng(seed)
    pixels = rng.integers(90, 255, (h, w, 3), dtype=np.uint8)
    pixels[: h // 2] = (10, 10, 10)
    return Image.fromarray(pixels)


def png_bytes(img: Image.Image, **params: Any) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG", **params)
    return buf.getvalue()


def jpeg_bytes(img: Image.Image, **params: Any) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=95, **params)
    return buf.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A valid 1x1 PNG whose header claims ``width`` x ``height`` (a decompression bomb)."""
    data = bytearray(png_bytes(Image.new("RGB", (1, 1))))
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def jpeg_claiming(width: int, height: int) -> bytes:
    data = bytearray(jpeg_bytes(Image.new("RGB", (8, 8))))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def fake_vector(img: Image.Image) -> np.ndarray:
    return FakeClipEncoder().encode_images([img])[0]


# -------------------------------------------------------------------------- cases


@dataclass
class Case:
    """``item`` ("article" | "image", id) when it must be indexed; else ``path``, ``reason``
    (a substring) and ``kind`` of the one report line it must produce."""

    name: str
    item: tuple[str, str] | None = None
    path: str | None = None
    reason: str | None = None
    kind: str | None = None
    check: Callable[[Index], None] | None = None


class Corpus:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.cases: list[Case] = []
        # Files no one may read: the run makes them unreadable with helpers.denied.deny_reading
        # (mode 0, and as root the PermissionError injected at the open).
        self.denied: list[Path] = []

    def indexed(self, name: str, kind: str, id_: str, check: Any = None) -> None:
        self.cases.append(Case(name, item=(kind, id_), check=check))

    def skipped(self, name: str, path: Path | str, reason: str, kind: str) -> None:
        self.cases.append(Case(name, path=str(path), reason=reason, kind=kind))


def write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8")
    else:
        path.write_bytes(data)
    return path


def image_vector_is(expected: Image.Image, image_id: str, size: tuple[int, int] | None = None):
    """A check: the indexed vector is the FAKE vector of ``expected`` (and the size is right)."""

    def check(index: Index) -> None:
        (row,) = index.store.get(IMAGES, [image_id], ("id", "sha256", "width", "height"))
        # The file's CLIP vector is stored once, with its picture (index format 4).
        (picture,) = index.store.get("pictures", [row["sha256"]], ("id", "clip_image"))
        got = np.asarray(picture["clip_image"], dtype=np.float32)
        assert float(got @ fake_vector(expected)) > 0.97, image_id
        if size is not None:
            assert (row["width"], row["height"]) == size, image_id

    return check


def passages_contain(article_id: str, *needles: str, absent: Sequence[str] = ()):
    def check(index: Index) -> None:
        found = index.article(article_id)
        assert found is not None, article_id
        text = "\n".join(p.text for p in found[1])
        for needle in needles:
            assert needle in text, (article_id, needle)
        for bad in absent:
            assert bad not in text, (article_id, bad)

    return check
