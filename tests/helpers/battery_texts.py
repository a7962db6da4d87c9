"""The texts, names and listings of the bad-input battery, in the three layouts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mmretrieve import Index

from .battery import (
    MB,
    Corpus,
    jpeg_bytes,
    passages_contain,
    pattern,
    png_bytes,
    write,
)
from .battery_pictures import build_pictures


def build_folder(c: Corpus, root: Path) -> None:
    build_pictures(c, root / "Gallery")

    def article(folder: str, data: bytes | str, meta: dict[str, str] | None = None) -> Path:
        path = write(root / folder / "article.txt", data)
        if meta is not None:
            write(root / folder / "meta.json", json.dumps(meta, ensure_ascii=False))
        return path

    latin = "Café crème brûlée is a naïve dessert. Señor Müller likes it."
    article("Latin1", latin.encode("latin-1"))
    c.indexed("latin-1 text", "article", "Latin1", passages_contain("Latin1", "Café crème brûlée"))
    smart = "The \u201csmart quotes\u201d \u2013 and an em dash \u2014 came from Word."
    article("Cp1252", smart.encode("cp1252"))
    c.indexed(
        "cp1252 text", "article", "Cp1252", passages_contain("Cp1252", "\u201csmart quotes\u201d")
    )
    unicode_text = "Zürich, Kraków and Ærø: 東京 and 🦇 in UTF-16."
    article("Utf16Bom", unicode_text.encode("utf-16"))
    c.indexed("utf-16 with BOM", "article", "Utf16Bom", passages_contain("Utf16Bom", "東京 and 🦇"))
    article("Utf16BE", b"\xfe\xff" + unicode_text.encode("utf-16-be"))
    c.indexed("utf-16-be with BOM", "article", "Utf16BE", passages_contain("Utf16BE", "Kraków"))
    article("Utf16NoBom", "Plain ASCII text stored as UTF-16 without a BOM.".encode("utf-16-le"))
    c.indexed(
        "utf-16 without BOM",
        "article",
        "Utf16NoBom",
        passages_contain("Utf16NoBom", "stored as UTF-16"),
    )
    article("Utf8Bom", b"\xef\xbb\xbf" + b"A UTF-8 file with a BOM.")
    c.indexed(
        "utf-8 with BOM",
        "article",
        "Utf8Bom",
        passages_contain("Utf8Bom", "A UTF-8 file", absent=["\ufeff"]),
    )
    article("Crlf", b"First line.\r\nSecond line.\r\n\r\nNew paragraph.")
    c.indexed(
        "windows line endings",
        "article",
        "Crlf",
        passages_contain("Crlf", "Second line.", absent=["\r"]),
    )
    article("Markdown", "# Title\n\nSome *markdown* text about bats.")
    (root / "Markdown" / "article.txt").rename(root / "Markdown" / "article.md")
    c.indexed("markdown article", "article", "Markdown", passages_contain("Markdown", "bats"))
    article("Controls", "Text with a bell \x07 and a form feed \x0c inside it.")
    c.indexed(
        "a few control characters", "article", "Controls", passages_contain("Controls", "bell")
    )

    binary = article("BinaryTxt", np.random.default_rng(1).bytes(2048))
    c.skipped("binary garbage named article.txt", binary, "binary data, not text", "article")
    nul = article("NulInText", b"Mostly text\x00 with a NUL byte in it.")
    c.skipped("text with a NUL byte", nul, "binary data, not text", "article")
    c.skipped("zero-byte article", article("Empty", b""), "empty article", "article")
    c.skipped("whitespace-only article", article("Blank", " \n\t\n"), "empty article", "article")
    headings = article("HeadingsOnly", "== History ==\n\n== See also ==\n")
    c.skipped("only headings", headings, "empty article (no text to index)", "article")

    article(
        "Bat_\U0001f987",
        "Batman is a superhero; \u8759\u8760\u4fe0 in Chinese.",
        {"id": "wiki:en:Batman_\U0001f987", "title": "Batman \U0001f987 \u2014 \u8759\u8760\u4fe0"},
    )

    def title_is(article_id: str, title: str):
        def check(index: Index) -> None:
            assert index.articles([article_id])[article_id].title == title

        return check

    c.indexed(
        "emoji and CJK title",
        "article",
        "wiki:en:Batman_\U0001f987",
        title_is("wiki:en:Batman_\U0001f987", "Batman \U0001f987 \u2014 \u8759\u8760\u4fe0"),
    )
    rtl = "\u062a\u062c\u0631\u0628\u0629 \u05e2\u05d1\u05e8\u05d9\u05ea"
    article("Zoe\u0308", "Right-to-left and combining characters in a title.", {"title": rtl})
    c.indexed(
        "rtl title, combining characters in the folder name",
        "article",
        "Zoe\u0308",
        title_is("Zoe\u0308", rtl),
    )

    write(root / "BadMeta" / "article.txt", "Text.")
    write(root / "BadMeta" / "meta.json", "{not json")
    c.skipped("broken meta.json", root / "BadMeta" / "meta.json", "bad meta.json", "article")
    write(root / "NoArticle" / "x.png", png_bytes(pattern(seed=16)))
    c.skipped(
        "folder without article.txt", root / "NoArticle", "no article.txt or article.md", "article"
    )
    write(root / "loose.txt", "A file beside the article folders.")
    c.skipped("loose file at the top", root / "loose.txt", "not inside an article folder", "file")
    article("ZDup", "A second article claiming the gallery's id.", {"id": "gallery"})
    c.skipped(
        "duplicate article id in one source",
        root / "ZDup",
        "duplicate article id 'gallery'",
        "article",
    )
    (root / "LinkedFolder").symlink_to(root / "Latin1", target_is_directory=True)
    c.skipped(
        "symlinked article folder", root / "LinkedFolder", "symlinked folder not followed", "file"
    )
    (root / "OutsideText").mkdir()
    (root / "OutsideText" / "article.txt").symlink_to(c.base / "outside" / "secret.txt")
    c.skipped(
        "symlink to a text file outside the corpus",
        root / "OutsideText" / "article.txt",
        "symlink to a file outside the corpus",
        "article",
    )
    locked = article("Unreadable", "Nobody may read this.")
    c.denied.append(locked)
    c.skipped("unreadable file", locked, "Permission denied", "article")


def build_flat(c: Corpus, root: Path) -> None:
    write(root / "日本語の記事.txt", "日本語の記事です。 Unicode file names work.")
    c.indexed("cjk file name", "article", "日本語の記事")
    write(root / "Emoji \U0001f987 title.md", "An article whose file name has an emoji.")
    c.indexed("emoji file name", "article", "Emoji \U0001f987 title")
    c.skipped(
        "binary .txt (flat)",
        write(root / "Binary.txt", bytes(range(256)) * 8),
        "binary data, not text",
        "article",
    )
    c.skipped(
        "no title",
        write(root / "   .txt", "Text without a title."),
        "article file has no title",
        "article",
    )
    too_big = write(root / "TooBig.txt", "x")
    with too_big.open("r+b") as fh:
        fh.truncate(65 * MB)
    c.skipped("article over 64 MiB", too_big, "file too large", "article")
    (root / "Loop.txt").symlink_to(root / "Loop.txt")
    c.skipped(
        "self-referencing symlink",
        root / "Loop.txt",
        "Too many levels of symbolic links",
        "article",
    )
    write(root / "NoSpaces.txt", "a" * MB)
    c.indexed("one 1 MB word", "article", "NoSpaces", passages_contain("NoSpaces", "aaaa"))
    write(root / "subdir" / "inner.txt", "Not scanned.")
    c.skipped("subfolder (flat layout)", root / "subdir", "folder not scanned", "file")

    sentence = "The quick brown fox {} jumps over the lazy dog near river {}. "
    with (root / "Big.txt").open("w", encoding="utf-8") as fh:
        n = 0
        while fh.tell() < 10 * MB:
            fh.write("".join(sentence.format(n + i, n + i) for i in range(500)) + "\n\n")
            n += 500
    last = f"river {n - 1}."

    def big_is_chunked(index: Index) -> None:
        count = index.store.count("passages", {"article_id": "Big"})
        assert count > 10 * MB // (256 * 8), count  # ~5 characters per fake token
        passages_contain("Big", "river 0.", last)(index)

    c.indexed("10 MB article", "article", "Big", big_is_chunked)


def build_jsonl(c: Corpus, root: Path) -> None:
    root.mkdir(parents=True)
    corpus = root / "corpus.jsonl"
    lines = [
        json.dumps({"id": "j:ok", "title": "Ünïcödé 🦇 title", "text": "JSONL article text."}),
        json.dumps({"id": "gallery", "text": "Same id as the folder source's gallery."}),
        json.dumps({"id": "j:ok", "text": "The same id again."}),
        "{not json",
        json.dumps([1, 2]),
        None,  # not UTF-8, written below
        json.dumps({"text": "no id"}),
        json.dumps({"id": "j:notext"}),
        json.dumps({"id": "j:empty", "text": "  "}),
        json.dumps({"id": 42, "text": "A numeric id becomes a string."}),
    ]
    with corpus.open("wb") as fh:
        for line in lines:
            fh.write(
                (line.encode() if line is not None else b'{"id": "x", "text": "\xff\xfe"}') + b"\n"
            )
    where = f"{corpus}:"
    c.indexed("jsonl article, unicode title", "article", "j:ok")
    c.skipped(
        "duplicate article id across sources",
        where + "2",
        "duplicate article id 'gallery'",
        "article",
    )
    c.skipped(
        "duplicate article id in one jsonl",
        where + "3",
        f"duplicate article id 'j:ok' (first seen in {where}1)",
        "article",
    )
    c.skipped("jsonl line not json", where + "4", "bad JSON", "article")
    c.skipped(
        "jsonl line not an object", where + "5", "expected a JSON object, got list", "article"
    )
    c.skipped("jsonl line not utf-8", where + "6", "not valid UTF-8", "article")
    c.skipped("jsonl article without id", where + "7", "missing 'id'", "article")
    c.skipped("jsonl article without text", where + "8", "missing 'text'", "article")
    c.skipped("jsonl empty text", where + "9", "empty article", "article")
    c.indexed("numeric id", "article", "42")

    pics = root / "pics"
    write(pics / "ok.png", png_bytes(pattern(seed=20)))
    write(pics / "other.png", png_bytes(pattern(seed=21)))
    write(pics / "logo.svg", "<svg/>")
    write(pics / "photo.img", jpeg_bytes(pattern(seed=22)))
    (pics / "outlink.png").symlink_to(c.base / "outside" / "secret.png")
    images = [
        {"id": "j/ok", "file": "pics/ok.png", "article_id": "j:ok", "caption": "a picture"},
        {"id": "j/escape", "file": "../outside/secret.png"},
        {"id": "j/abs", "file": str(c.base / "outside" / "secret.png")},
        {"id": "j/svg", "file": "pics/logo.svg"},
        {"id": "j/missing", "file": "pics/nope.png"},
        {"id": "j/ok", "file": "pics/other.png"},
        {"id": "gallery/ok.png", "file": "pics/other.png"},
        {"id": "j/outlink", "file": "pics/outlink.png"},
        {"id": "j/wrongext", "file": "pics/photo.img", "caption": 7},
    ]
    listing = root / "images.jsonl"
    write(listing, "\n".join(json.dumps(i) for i in images) + "\n")
    at = f"{listing}:"
    c.indexed("jsonl image", "image", "j/ok")
    c.skipped("listing path with ..", at + "2", "image path must stay inside", "image")
    c.skipped("listing with an absolute path", at + "3", "image path must stay inside", "image")
    c.skipped("listed svg", pics / "logo.svg", "not a raster image (svg)", "image")
    c.skipped("listed file missing", pics / "nope.png", "image file missing", "image")
    c.skipped(
        "duplicate image id in one listing",
        at + "6",
        f"duplicate image id 'j/ok' (first seen in {at}1)",
        "image",
    )
    c.skipped(
        "duplicate image id across sources",
        pics / "other.png",
        "duplicate image id 'gallery/ok.png'",
        "image",
    )
    c.skipped(
        "listed symlink to outside the corpus",
        pics / "outlink.png",
        "symlink to a file outside the corpus",
        "image",
    )
    c.indexed("listed jpeg with an odd extension", "image", "j/wrongext")


def build_all(base: Path) -> Corpus:
    c = Corpus(base)
    write(base / "outside" / "secret.png", png_bytes(pattern(seed=99)))
    write(base / "outside" / "secret.txt", "SECRET-OUTSIDE-THE-CORPUS")
    build_folder(c, base / "folder")
    build_flat(c, base / "flat")
    build_jsonl(c, base / "jsonl")
    return c
