"""Decode images safely into RGB for the image encoder (bombs, truncation, odd modes:
docs/RELIABILITY.md).

Pillow is imported inside the functions so that importing this module (for the extension sets)
stays cheap.
"""

from __future__ import annotations

import contextlib
import functools
import io
import math
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from ..errors import BadInputError

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff"}
)
"""Lower-case suffixes of the raster files sources pick up."""

NON_RASTER_EXTENSIONS: dict[str, str] = {
    ".svg": "svg",
    ".svgz": "svg",
    ".pdf": "pdf",
    ".eps": "eps",
}
"""Picture formats we recognise but cannot embed, with the name used in skip reasons."""

_WHITE = (255, 255, 255)


DEFAULT_MAX_SIDE = 1024


def decode_side(width: int, height: int, shortest_edge: int | None) -> int:
    """Longest side to decode an image to for a model whose input's short side is
    ``shortest_edge``. A photo at least twice that edge is decoded just large enough (JPEG
    draft mode then skips most of its pixels); anything else gets the default. Indexing and
    queries both decode this way, so an indexed image queried with itself gives the same vector."""
    if not shortest_edge or min(width, height) < 2 * shortest_edge:
        return DEFAULT_MAX_SIDE
    side = math.ceil(shortest_edge * max(width, height) / min(width, height))
    return min(side, DEFAULT_MAX_SIDE)


def load_image(
    source: str | Path | bytes,
    *,
    max_pixels: int = 64_000_000,
    max_bytes: int | None = 50_000_000,
    max_side: int | None = DEFAULT_MAX_SIDE,
    fit_edge: int | None = None,
) -> PILImage:
    """Decode ``source`` (a path or the file's bytes) into an RGB image.

    The pixel count is checked from the header before any pixel is decoded; transparency is
    composited on white; EXIF orientation is applied; the longest side is reduced to
    ``max_side`` (``None`` keeps the full size), or with ``fit_edge`` (an image model's input
    edge) to :func:`decode_side`'s size. Raises :class:`BadInputError` with the reason.
    """
    from PIL import Image

    name, fp = _open(source, max_bytes)
    try:
        with warnings.catch_warnings():
            # Our own max_pixels check decides; PIL's warning would only be noise. (Pillow's
            # hard DecompressionBombError above twice its limit still applies, and is caught.)
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            try:
                with Image.open(fp) as img:
                    width, height = img.size
                    if width * height > max_pixels:
                        raise BadInputError(
                            f"image too large: {name} is {width}x{height} "
                            f"({width * height} pixels, limit {max_pixels})"
                        )
                    if fit_edge is not None:
                        max_side = decode_side(width, height, fit_edge)
                    if max_side is not None:
                        # JPEG decodes at 1/2, 1/4 or 1/8 scale straight away: far faster for
                        # photos. A no-op for other formats.
                        img.draft("RGB", (max_side, max_side))
                    img.load()  # force the full decode here so truncation is caught here
                    rgb = _to_rgb(img)
                    _exif_transpose(rgb)
            except BadInputError:
                raise
            except Image.DecompressionBombError as exc:
                raise BadInputError(f"image too large (decompression bomb): {name}: {exc}") from exc
            except Image.UnidentifiedImageError as exc:
                raise BadInputError(f"not an image (unidentified format): {name}") from exc
            except Exception as exc:
                # Pillow's format plugins raise many types (OSError, SyntaxError, ValueError,
                # struct.error, EOFError, ...) on malformed files; all mean "unusable file".
                raise BadInputError(f"corrupt or truncated image: {name}: {exc}") from exc
    finally:
        fp.close()
    if max_side is not None and max(rgb.size) > max_side:
        rgb.thumbnail((max_side, max_side), Image.Resampling.LANCZOS, reducing_gap=3.0)
    return rgb


# EXIF orientations that turn the picture by 90 degrees: its displayed width is its stored height.
_QUARTER_TURNS = frozenset({5, 6, 7, 8})


def probe_image(path: str | Path) -> tuple[int, int, str]:
    """``(width, height, format)`` read from the file's header only; no pixel is decoded. The
    size is the displayed one, EXIF orientation applied, as :func:`load_image` returns it."""
    from PIL import Image

    name, fp = _open(path, None)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(fp) as img:
                width, height = img.size
                if _orientation(img) in _QUARTER_TURNS:
                    width, height = height, width
                return width, height, str(img.format)
    except Image.DecompressionBombError as exc:
        raise BadInputError(f"image too large (decompression bomb): {name}: {exc}") from exc
    except Image.UnidentifiedImageError as exc:
        raise BadInputError(f"not an image (unidentified format): {name}") from exc
    except Exception as exc:
        raise BadInputError(f"corrupt image header: {name}: {exc}") from exc
    finally:
        fp.close()


def _open(source: str | Path | bytes, max_bytes: int | None) -> tuple[str, BinaryIO]:
    """A readable binary stream for ``source`` after the size checks, and a name for messages."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if not data:
            raise BadInputError("empty image data (0 bytes)")
        if max_bytes is not None and len(data) > max_bytes:
            raise BadInputError(f"image too large: {len(data)} bytes (limit {max_bytes})")
        return "<bytes>", io.BytesIO(data)
    name = os.fspath(source)
    try:
        size = os.stat(name).st_size
        if size == 0:
            raise BadInputError(f"empty file (0 bytes): {name}")
        if max_bytes is not None and size > max_bytes:
            raise BadInputError(f"image too large: {name} is {size} bytes (limit {max_bytes})")
        return name, open(name, "rb")  # noqa: SIM115 - closed by the caller's finally
    except OSError as exc:
        raise BadInputError(f"cannot read {name}: {exc.strerror or exc}") from exc


def _orientation(img: PILImage) -> int:
    """The EXIF orientation tag (1 = as stored) of an opened image; 1 when absent or broken."""
    try:
        value = img.getexif().get(0x0112, 1)
        return int(value) if isinstance(value, int) else 1
    except Exception:  # a broken EXIF block: treat the picture as stored
        return 1


def _exif_transpose(img: PILImage) -> None:
    """Rotate/flip ``img`` in place as its EXIF orientation tag says."""
    from PIL import ImageOps

    # A broken EXIF block should not cost us an otherwise good picture.
    with contextlib.suppress(Exception):
        ImageOps.exif_transpose(img, in_place=True)


def _to_rgb(img: PILImage) -> PILImage:
    """An RGB copy of ``img``: alpha composited on white, 16/32-bit and float scaled to 8 bits."""
    from PIL import Image

    mode = img.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        img = _scale_to_8bit(img)
        mode = img.mode
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        mode in ("P", "L", "RGB") and "transparency" in img.info
    )
    if has_alpha:
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, _WHITE + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    # convert() always returns a new image, so the caller may close the file behind ``img``.
    return img.convert("RGB")


def _scale_to_8bit(img: PILImage) -> PILImage:
    """Map high-bit-depth greyscale to 'L' (Pillow's own conversion clips everything > 255)."""
    img = img.convert("F")
    extrema = img.getextrema()  # one band: (low, high)
    low, high = float(extrema[0]), float(extrema[1])  # type: ignore[arg-type]
    if high <= 255 and low >= 0:
        scale, offset = 1.0, 0.0  # already 8-bit data stored wide
    elif low >= 0 and high <= 65535:
        scale, offset = 255.0 / 65535.0, 0.0  # the usual 16-bit range
    else:
        span = (high - low) or 1.0
        scale, offset = 255.0 / span, -low * 255.0 / span
    return img.point(lambda v: v * scale + offset).convert("L")


# A perceptual hash (pHash): the signs of the 63 lowest non-constant 2-D DCT frequencies of the
# picture's 32 x 32 grey thumbnail, against their median. Resizing and re-encoding move a few of
# its bits, another photo about half of them (measured: docs/QUALITY.md, "One picture, one hit").
_PHASH_SIDE = 32
_PHASH_KEEP = 8


@functools.cache
def _dct_matrix() -> Any:
    import numpy as np

    n = _PHASH_SIDE
    k = np.arange(n)
    m = np.sqrt(2.0 / n) * np.cos(np.pi * (2 * k[None, :] + 1) * k[:, None] / (2 * n))
    m[0] /= np.sqrt(2.0)
    return m[:_PHASH_KEEP]


def perceptual_hash(picture: PILImage) -> int:
    """The picture's 64-bit pHash as a signed integer (what a store's int64 column holds); the
    top bit is always 0. Compare two with :func:`hash_distance`."""
    import numpy as np
    from PIL import Image as PILImageModule

    grey = picture.convert("L").resize(
        (_PHASH_SIDE, _PHASH_SIDE), PILImageModule.Resampling.LANCZOS
    )
    dct = _dct_matrix()
    low = (dct @ np.asarray(grey, dtype=np.float64) @ dct.T).ravel()[1:]  # no DC term
    bits = low > np.median(low)
    value = 0
    for bit in bits:
        value = (value << 1) | int(bit)
    return value


def hash_distance(a: int, b: int) -> int:
    """How many bits two perceptual hashes differ in (0-63)."""
    return (a ^ b).bit_count()
