"""load_image / probe_image: odd modes, orientation, animation, bombs and broken files."""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from pathlib import Path

import pytest
from PIL import Image

from mmretrieve.documents.images import IMAGE_EXTENSIONS, load_image, probe_image
from mmretrieve.errors import BadInputError


def _save(img: Image.Image, path: Path, fmt: str | None = None, **params: object) -> Path:
    img.save(path, fmt, **params)
    return path


def _px(img: Image.Image, xy: tuple[int, int]) -> tuple[int, ...]:
    value = img.getpixel(xy)
    assert isinstance(value, tuple)
    return value


def _png_claiming(width: int, height: int) -> bytes:
    """A valid 1x1 PNG whose IHDR is patched (CRC fixed) to claim ``width`` x ``height``."""
    buf = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    # signature (8) | length (4) | b"IHDR" (4) | width (4) | height (4) | ... | crc
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def test_extensions_are_lowercase_raster_suffixes() -> None:
    assert {".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff"} == IMAGE_EXTENSIONS


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "WEBP", "TIFF", "BMP"])
def test_formats_load_as_rgb(tmp_path: Path, fmt: str) -> None:
    path = _save(Image.new("RGB", (40, 30), (200, 30, 30)), tmp_path / f"a.{fmt.lower()}", fmt)
    img = load_image(path)
    assert (img.mode, img.size) == ("RGB", (40, 30))
    r, g, b = _px(img, (20, 15))
    assert r > 150 and g < 80 and b < 80


def test_paths_as_str_and_bytes_work(tmp_path: Path) -> None:
    path = _save(Image.new("RGB", (8, 6), (0, 0, 255)), tmp_path / "a.png")
    assert load_image(str(path)).size == (8, 6)
    assert load_image(path.read_bytes()).getpixel((0, 0)) == (0, 0, 255)


def test_large_jpeg_is_downscaled_keeping_aspect(tmp_path: Path) -> None:
    path = _save(Image.new("RGB", (3000, 1500), (10, 120, 10)), tmp_path / "big.jpg", quality=80)
    assert load_image(path).size == (1024, 512)
    assert load_image(path, max_side=300).size == (300, 150)
    assert load_image(path, max_side=None).size == (3000, 1500)


def test_large_png_is_downscaled(tmp_path: Path) -> None:
    path = _save(Image.new("RGB", (500, 2000), (10, 120, 10)), tmp_path / "tall.png")
    assert load_image(path, max_side=400).size == (100, 400)


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    img = Image.new("RGB", (200, 100), (255, 0, 0))
    img.paste((0, 0, 255), (0, 0, 100, 100))  # left half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = _save(img, tmp_path / "rot.jpg", quality=95, exif=exif)
    out = load_image(path)
    assert out.size == (100, 200)
    top, bottom = _px(out, (50, 20)), _px(out, (50, 180))
    assert top[2] > 200 and top[0] < 60  # the blue half is now on top
    assert bottom[0] > 200 and bottom[2] < 60


def test_transparency_is_composited_on_white(tmp_path: Path) -> None:
    rgba = Image.new("RGBA", (10, 10), (0, 0, 0, 0))
    rgba.putpixel((0, 0), (255, 0, 0, 255))
    rgba.putpixel((1, 0), (255, 0, 0, 128))
    out = load_image(_save(rgba, tmp_path / "a.png"))
    assert out.mode == "RGB"
    assert _px(out, (5, 5)) == (255, 255, 255)  # fully transparent black -> white
    assert _px(out, (0, 0)) == (255, 0, 0)
    r, g, b = _px(out, (1, 0))
    assert r == 255 and 120 <= g <= 135 and g == b  # half red over white


def test_la_and_palette_transparency_become_white(tmp_path: Path) -> None:
    la = Image.new("LA", (4, 4), (0, 0))
    assert load_image(_save(la, tmp_path / "la.png")).getpixel((1, 1)) == (255, 255, 255)
    pal = Image.new("P", (4, 4), 0)
    pal.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    pal.putpixel((0, 0), 1)
    gif = _save(pal, tmp_path / "p.gif", transparency=0)
    out = load_image(gif)
    assert _px(out, (2, 2)) == (255, 255, 255)
    assert _px(out, (0, 0)) == (255, 0, 0)


def test_cmyk_jpeg_becomes_rgb(tmp_path: Path) -> None:
    path = _save(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), tmp_path / "cmyk.jpg", quality=95)
    with Image.open(path) as raw:
        assert raw.mode == "CMYK"
    out = load_image(path)
    assert out.mode == "RGB"
    r, g, b = _px(out, (8, 8))
    assert r > 200 and g < 60 and b < 60  # cyan 0, magenta+yellow full -> red


def test_16bit_greyscale_is_scaled_not_clipped(tmp_path: Path) -> None:
    img = Image.new("I;16", (4, 1))
    for x, value in enumerate((0, 16384, 32768, 65535)):
        img.putpixel((x, 0), value)
    path = _save(img, tmp_path / "deep.png")
    with Image.open(path) as raw:
        assert raw.mode in ("I;16", "I")
    out = load_image(path)
    grey = [_px(out, (x, 0))[0] for x in range(4)]
    assert grey[0] == 0 and 60 <= grey[1] <= 68 and 124 <= grey[2] <= 132 and grey[3] == 255


def test_grey_l_becomes_rgb(tmp_path: Path) -> None:
    out = load_image(_save(Image.new("L", (3, 3), 77), tmp_path / "l.png"))
    assert _px(out, (1, 1)) == (77, 77, 77)


@pytest.mark.parametrize("fmt", ["GIF", "WEBP"])
def test_animated_images_give_their_first_frame(tmp_path: Path, fmt: str) -> None:
    frames = [Image.new("RGB", (20, 20), c) for c in ((255, 0, 0), (0, 0, 255), (0, 255, 0))]
    path = tmp_path / f"anim.{fmt.lower()}"
    frames[0].save(path, fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)
    with Image.open(path) as raw:
        assert getattr(raw, "n_frames", 1) == 3
    r, g, b = _px(load_image(path), (10, 10))
    assert r > 200 and g < 50 and b < 50


def test_pixel_limit_is_checked_from_the_header(tmp_path: Path) -> None:
    path = _save(Image.new("RGB", (20, 20)), tmp_path / "a.png")
    with pytest.raises(BadInputError, match=r"image too large: .*20x20 \(400 pixels, limit 399\)"):
        load_image(path, max_pixels=399)
    assert load_image(path, max_pixels=400).size == (20, 20)


def test_decompression_bomb_is_refused_without_touching_pil_limits(tmp_path: Path) -> None:
    before = Image.MAX_IMAGE_PIXELS
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_claiming(100_000, 100_000))
    with pytest.raises(BadInputError, match="image too large"):
        load_image(path)
    with pytest.raises(BadInputError, match="image too large"):
        load_image(path.read_bytes(), max_pixels=10**12)  # PIL's own hard limit still holds
    with pytest.raises(BadInputError, match="decompression bomb"):
        probe_image(path)
    assert before == Image.MAX_IMAGE_PIXELS


def test_bomb_in_pil_warning_range_raises_our_error_and_no_warning(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    path.write_bytes(_png_claiming(10_000, 10_000))  # 100 MP: PIL only warns at this size
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(BadInputError, match=r"10000x10000 \(100000000 pixels"):
            load_image(path)
        assert probe_image(path) == (10_000, 10_000, "PNG")


def test_truncated_image_is_reported(tmp_path: Path) -> None:
    full = _save(Image.effect_noise((300, 300), 60).convert("RGB"), tmp_path / "f.jpg")
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(BadInputError, match="corrupt or truncated image"):
        load_image(cut)
    # The header is intact, so probing (which decodes nothing) still works.
    assert probe_image(cut) == (300, 300, "JPEG")


def test_broken_inputs_get_clear_reasons(tmp_path: Path) -> None:
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(BadInputError, match="empty file"):
        load_image(empty)
    with pytest.raises(BadInputError, match="empty image data"):
        load_image(b"")
    text = tmp_path / "notes.png"
    text.write_text("just some text, not a picture")
    with pytest.raises(BadInputError, match="not an image"):
        load_image(text)
    with pytest.raises(BadInputError, match="not an image"):
        probe_image(text)
    with pytest.raises(BadInputError, match="cannot read .*No such file"):
        load_image(tmp_path / "missing.jpg")


def test_max_bytes(tmp_path: Path) -> None:
    path = _save(Image.new("RGB", (30, 30)), tmp_path / "a.bmp")  # BMP: size is predictable
    size = path.stat().st_size
    assert load_image(path, max_bytes=size).size == (30, 30)
    with pytest.raises(BadInputError, match=f"{size} bytes \\(limit {size - 1}\\)"):
        load_image(path, max_bytes=size - 1)
    with pytest.raises(BadInputError, match="limit 10"):
        load_image(path.read_bytes(), max_bytes=10)


def test_probe_reads_header(tmp_path: Path) -> None:
    path = _save(Image.new("RGB", (123, 45)), tmp_path / "a.webp", "WEBP")
    assert probe_image(path) == (123, 45, "WEBP")
    assert probe_image(str(path)) == (123, 45, "WEBP")


def test_jpeg_is_decoded_at_reduced_scale(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import JpegImagePlugin

    requested: list[tuple[str | None, tuple[int, int]]] = []
    original = JpegImagePlugin.JpegImageFile.draft

    def spy(self, mode, size):
        requested.append((mode, size))
        return original(self, mode, size)

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    path = _save(Image.new("RGB", (2400, 1600), (1, 2, 3)), tmp_path / "big.jpg")
    assert load_image(path, max_side=500).size == (500, 333)
    assert requested == [("RGB", (500, 500))]
    requested.clear()
    assert load_image(path, max_side=None).size == (2400, 1600)
    assert requested == []
