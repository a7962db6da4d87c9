"""The pictures of the bad-input battery: one article folder full of awkward images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from .battery import (
    Corpus,
    image_vector_is,
    jpeg_bytes,
    jpeg_claiming,
    pattern,
    png_bytes,
    png_claiming,
    write,
)


def build_pictures(c: Corpus, gallery: Path) -> None:
    art = "Gallery of test pictures. Each file below is an awkward image."
    write(gallery / "article.txt", art)
    write(gallery / "meta.json", json.dumps({"id": "gallery", "title": "Gallery"}))
    gid = "gallery/"
    upright = pattern()

    write(gallery / "ok.png", png_bytes(upright))
    c.indexed("png", "image", gid + "ok.png", image_vector_is(upright, gid + "ok.png", (40, 60)))
    write(gallery / "ok.jpg", jpeg_bytes(pattern(seed=1)))
    c.indexed("jpeg", "image", gid + "ok.jpg", image_vector_is(pattern(seed=1), gid + "ok.jpg"))
    write(gallery / "png_named.jpg", png_bytes(pattern(seed=2)))
    c.indexed(
        "png with .jpg extension",
        "image",
        gid + "png_named.jpg",
        image_vector_is(pattern(seed=2), gid + "png_named.jpg"),
    )
    write(gallery / "jpeg_named.png", jpeg_bytes(pattern(seed=3)))
    c.indexed("jpeg with .png extension", "image", gid + "jpeg_named.png")

    noisy = Image.effect_noise((200, 200), 60).convert("RGB")
    cut_jpeg = jpeg_bytes(noisy)
    write(gallery / "truncated.jpg", cut_jpeg[: len(cut_jpeg) // 2])
    c.skipped("truncated jpeg", gallery / "truncated.jpg", "corrupt or truncated image", "image")
    cut_png = png_bytes(noisy)
    write(gallery / "truncated.png", cut_png[: len(cut_png) // 2])
    c.skipped("truncated png", gallery / "truncated.png", "corrupt or truncated image", "image")
    write(gallery / "empty.png", b"")
    c.skipped("zero-byte png", gallery / "empty.png", "empty file (0 bytes)", "image")
    write(gallery / "empty.jpg", b"")
    c.skipped("zero-byte jpeg", gallery / "empty.jpg", "empty file (0 bytes)", "image")

    write(gallery / "bomb.png", png_claiming(100_000, 100_000))
    c.skipped("png bomb 10^10 pixels", gallery / "bomb.png", "image too large", "image")
    write(gallery / "over_cap.png", png_claiming(9_000, 8_000))
    c.skipped(
        "png over the pixel cap",
        gallery / "over_cap.png",
        "9000x8000 (72000000 pixels, limit 64000000)",
        "image",
    )
    write(gallery / "bomb.jpg", jpeg_claiming(60_000, 60_000))
    c.skipped("jpeg bomb", gallery / "bomb.jpg", "image too large", "image")
    huge = write(gallery / "huge_bytes.png", png_bytes(pattern(seed=4)))
    with huge.open("r+b") as fh:
        fh.truncate(60_000_000)  # sparse: costs no disk
    c.skipped("file over the byte cap", huge, "60000000 bytes (limit 50000000)", "image")

    cmyk = pattern(seed=5)
    write(gallery / "cmyk.jpg", jpeg_bytes(cmyk.convert("CMYK")))
    c.indexed("cmyk jpeg", "image", gid + "cmyk.jpg", image_vector_is(cmyk, gid + "cmyk.jpg"))
    grey16 = Image.fromarray(np.asarray(pattern(seed=6).convert("L"), np.uint16) * 257)
    write(gallery / "deep16.png", png_bytes(grey16))
    c.indexed(
        "16-bit greyscale png",
        "image",
        gid + "deep16.png",
        image_vector_is(pattern(seed=6).convert("L"), gid + "deep16.png"),
    )
    pal = pattern(seed=7).quantize(16)
    pal.putpixel((0, 59), 0)
    transparent = pal.getpixel((0, 0))
    expected_pal = pal.convert("RGB")
    mask = np.asarray(pal) == transparent
    pixels = np.asarray(expected_pal).copy()
    pixels[mask] = 255
    write(gallery / "palette.png", png_bytes(pal, transparency=transparent))
    c.indexed(
        "palette with transparency",
        "image",
        gid + "palette.png",
        image_vector_is(Image.fromarray(pixels), gid + "palette.png"),
    )
    rgba = pattern(seed=8).convert("RGBA")
    alpha = np.full((60, 40), 255, np.uint8)
    alpha[:30] = 0  # transparent top half -> white
    rgba.putalpha(Image.fromarray(alpha))
    on_white = np.asarray(pattern(seed=8)).copy()
    on_white[:30] = 255
    write(gallery / "rgba.png", png_bytes(rgba))
    c.indexed(
        "rgba png",
        "image",
        gid + "rgba.png",
        image_vector_is(Image.fromarray(on_white), gid + "rgba.png"),
    )
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    stored = pattern(seed=9).transpose(Image.Transpose.ROTATE_90)  # 60 x 40 on disk
    write(gallery / "rotated.jpg", jpeg_bytes(stored, exif=exif))
    c.indexed(
        "exif-rotated jpeg",
        "image",
        gid + "rotated.jpg",
        image_vector_is(pattern(seed=9), gid + "rotated.jpg", (40, 60)),
    )
    frames = [pattern(seed=10), pattern(seed=11).transpose(Image.Transpose.FLIP_TOP_BOTTOM)]
    for ext, fmt in (("gif", "GIF"), ("webp", "WEBP")):
        frames[0].save(
            gallery / f"anim.{ext}",
            fmt,
            save_all=True,
            append_images=frames[1:],
            duration=100,
            loop=0,
            **({"lossless": True} if fmt == "WEBP" else {}),
        )
        first = frames[0] if fmt == "WEBP" else frames[0].quantize(256).convert("RGB")
        c.indexed(
            f"animated {ext}",
            "image",
            gid + f"anim.{ext}",
            image_vector_is(first, gid + f"anim.{ext}"),
        )
    frames[0].save(gallery / "pages.tiff", "TIFF", save_all=True, append_images=frames[1:])
    c.indexed(
        "multi-page tiff",
        "image",
        gid + "pages.tiff",
        image_vector_is(frames[0], gid + "pages.tiff"),
    )
    pattern(seed=12).convert("L").save(gallery / "grey.bmp")
    c.indexed("greyscale bmp", "image", gid + "grey.bmp")
    pattern(seed=13).convert("1").save(gallery / "bilevel.png")
    c.indexed("1-bit png", "image", gid + "bilevel.png")
    write(gallery / "tiny.png", png_bytes(Image.new("RGB", (1, 1), (200, 0, 0))))
    c.indexed("1x1 pixel png", "image", gid + "tiny.png")
    write(gallery / "sub" / "nested.png", png_bytes(pattern(seed=14)))
    c.indexed("image in a subfolder", "image", gid + "sub/nested.png")

    write(gallery / "drawing.svg", '<svg xmlns="http://www.w3.org/2000/svg"/>')
    c.skipped("svg", gallery / "drawing.svg", "not a raster image (svg)", "image")
    write(gallery / "doc.pdf", b"%PDF-1.4\n%%EOF\n")
    c.skipped("pdf", gallery / "doc.pdf", "not a raster image (pdf)", "image")
    write(gallery / "figure.eps", b"%!PS-Adobe-3.0 EPSF-3.0\n")
    c.skipped("eps", gallery / "figure.eps", "not a raster image (eps)", "image")
    write(gallery / "notes.docx", b"PK\x03\x04")
    c.skipped("unknown file type", gallery / "notes.docx", "unknown file type '.docx'", "file")
    write(gallery / "LICENSE", "CC BY-SA")
    c.skipped("no extension", gallery / "LICENSE", "unknown file type (no extension)", "file")
    write(gallery / "garbage.png", np.random.default_rng(0).bytes(4096))
    c.skipped(
        "random bytes as .png", gallery / "garbage.png", "not an image (unidentified", "image"
    )
    write(gallery / "page.jpg", "<html><body>Not found</body></html>")
    c.skipped("html saved as .jpg", gallery / "page.jpg", "not an image (unidentified", "image")
    write(
        gallery / ".thumbs.png", png_bytes(pattern(seed=15))
    )  # hidden: neither indexed nor reported

    (gallery / "dangling.png").symlink_to(gallery / "gone.png")
    c.skipped("dangling symlink", gallery / "dangling.png", "broken symbolic link", "image")
    (gallery / "loop_a.png").symlink_to(gallery / "loop_b.png")
    (gallery / "loop_b.png").symlink_to(gallery / "loop_a.png")
    c.skipped("symlink loop (file)", gallery / "loop_a.png", "broken symbolic link", "image")
    c.skipped(
        "symlink loop (file, other end)", gallery / "loop_b.png", "broken symbolic link", "image"
    )
    (gallery / "outside.png").symlink_to(c.base / "outside" / "secret.png")
    c.skipped(
        "symlink to an image outside the corpus",
        gallery / "outside.png",
        "symlink to a file outside the corpus",
        "image",
    )
    (gallery / "inside.png").symlink_to(gallery / "ok.png")
    c.indexed("symlink to an image inside the corpus", "image", gid + "inside.png")
    (gallery / "loopdir").symlink_to(gallery, target_is_directory=True)
    c.skipped("symlinked folder loop", gallery / "loopdir", "symlinked folder not followed", "file")

    listing = [
        json.dumps({"file": "ok.png", "caption": "a dark band over noise \U0001f987"}),
        json.dumps({"file": "listed_missing.png"}),
        "{not json",
        json.dumps({"caption": "no file"}),
    ]
    write(gallery / "images.jsonl", "\n".join(listing) + "\n")
    c.skipped(
        "listed image missing",
        gallery / "listed_missing.png",
        "image file missing (listed in images.jsonl)",
        "image",
    )
    c.skipped("bad json line in images.jsonl", f"{gallery / 'images.jsonl'}:3", "bad JSON", "image")
    c.skipped(
        "listing line without file", f"{gallery / 'images.jsonl'}:4", "missing 'file'", "image"
    )
