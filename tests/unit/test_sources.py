"""open_source and the three layouts: what is yielded, in what order, and what is skipped why."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import pytest
from PIL import Image as PILImage

from helpers.denied import deny_reading
from mmretrieve.errors import UsageError
from mmretrieve.sources import open_source
from mmretrieve.types import Article, Image, Skipped


def _png(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    PILImage.new("RGB", (4, 4), (9, 9, 9)).save(path, "PNG")
    return path


def _jsonl(path: Path, rows: list[object]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _split(items: Sequence[object]) -> tuple[list[Article], list[Image], list[Skipped]]:
    arts = [i for i in items if isinstance(i, Article)]
    imgs = [i for i in items if isinstance(i, Image)]
    skips = [i for i in items if isinstance(i, Skipped)]
    assert len(arts) + len(imgs) + len(skips) == len(items)
    return arts, imgs, skips


def _reasons(skips: list[Skipped], root: Path) -> dict[str, str]:
    return {
        os.path.relpath(s.path, root) if s.path.startswith("/") else s.path: s.reason for s in skips
    }


# ---------------------------------------------------------------- real data


def test_wiki_tutorial_corpus(wiki_tutorial_dir: Path) -> None:
    source = open_source(wiki_tutorial_dir)
    assert source.layout == "jsonl"
    arts, imgs, skips = _split(list(source.items()))
    assert (len(arts), len(imgs), skips) == (15, 108, [])
    assert sum(1 for i in imgs if i.article_id) == 83
    assert {i.article_id for i in imgs if i.article_id} <= {a.id for a in arts}
    assert all(Path(i.uri).is_absolute() and Path(i.uri).is_file() for i in imgs)
    assert all(i.width is None and i.sha256 is None for i in imgs)  # the indexer decodes


# ---------------------------------------------------------------- detection


def test_layout_detection(tmp_path: Path) -> None:
    jsonl_dir = tmp_path / "j"
    _jsonl(jsonl_dir / "corpus.jsonl", [{"id": "1", "text": "x"}])
    folder = tmp_path / "f"
    (folder / "Batman").mkdir(parents=True)
    (folder / "Batman" / "article.md").write_text("Text.")
    (folder / "notes").mkdir()  # an ordinary subfolder does not prevent "folder"
    flat = tmp_path / "plain"
    flat.mkdir()
    (flat / "Batman.txt").write_text("Text.")
    (flat / "sub").mkdir()
    assert open_source(jsonl_dir).layout == "jsonl"
    assert open_source(jsonl_dir / "corpus.jsonl").layout == "jsonl"
    assert open_source(str(folder)).layout == "folder"
    assert open_source(flat).layout == "flat"
    assert open_source(flat, layout="folder").layout == "folder"
    assert open_source(tmp_path / "f").root == folder.resolve()


def test_usage_errors(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(UsageError, match="no such file or folder: .*nope"):
        open_source(tmp_path / "nope")
    with pytest.raises(UsageError, match="unknown layout 'csv'"):
        open_source(tmp_path, layout="csv")
    with pytest.raises(UsageError, match="is a file"):
        open_source(tmp_path / "a.txt")
    with pytest.raises(UsageError, match="neither corpus.jsonl nor images.jsonl"):
        open_source(tmp_path, layout="jsonl")
    with pytest.raises(UsageError, match="needs a folder"):
        open_source(tmp_path / "a.txt", layout="flat")


# ---------------------------------------------------------------- jsonl


def test_jsonl_articles_and_bad_lines(tmp_path: Path) -> None:
    corpus = _jsonl(
        tmp_path / "corpus.jsonl",
        [
            {
                "id": "a1",
                "title": "Alpha",
                "text": "Alpha text.\r\nMore.",
                "url": "u",
                "license": "L",
            },
            {"title": "no id", "text": "x"},
            {"id": "a3", "title": "no text"},
            {"id": "a4", "text": "   \n "},
            ["not", "an", "object"],
            {"id": "a1", "text": "duplicate id"},
            {"id": 7, "text": "numeric ids are fine"},
        ],
    )
    with corpus.open("ab") as f:
        f.write(b'{"id": "bad json", \n')
        f.write(b'{"id": "latin1", "text": "caf\xe9"}\n')
        f.write(b"\n")  # blank lines are not reported
        f.write(b'{"id": "last", "text": "Still read after the bad lines."}\n')
    arts, imgs, skips = _split(list(open_source(corpus).items()))
    assert arts == [
        Article("a1", "Alpha", "Alpha text.\nMore.", "u", "L", f"{corpus}:1"),
        Article("7", "7", "numeric ids are fine", None, None, f"{corpus}:7"),
        Article("last", "last", "Still read after the bad lines.", None, None, f"{corpus}:11"),
    ]
    assert imgs == []
    assert [(s.path, s.reason, s.kind) for s in skips] == [
        (f"{corpus}:2", "missing 'id'", "article"),
        (f"{corpus}:3", "missing 'text'", "article"),
        (f"{corpus}:4", "empty article", "article"),
        (f"{corpus}:5", "expected a JSON object, got list", "article"),
        (f"{corpus}:6", f"duplicate article id 'a1' (first seen in {corpus}:1)", "article"),
        (
            f"{corpus}:8",
            "bad JSON: Expecting property name enclosed in double quotes (column 21)",
            "article",
        ),
        (f"{corpus}:9", "not valid UTF-8 (invalid continuation byte at byte offset 29)", "article"),
    ]


def test_jsonl_images(tmp_path: Path) -> None:
    _jsonl(tmp_path / "corpus.jsonl", [{"id": "a", "title": "A", "text": "Text."}])
    _png(tmp_path / "images" / "one.png")
    (tmp_path / "images" / "two.img").write_bytes((tmp_path / "images" / "one.png").read_bytes())
    (tmp_path / "images" / "logo.svg").write_text("<svg/>")
    _jsonl(
        tmp_path / "images.jsonl",
        [
            {
                "id": "i1",
                "file": "images/one.png",
                "article_id": "a",
                "caption": "Cap",
                "alt_text": "Alt",
                "license": "CC0",
                "width": 4,
                "height": 4,
            },
            {"id": "i2", "file": "images/two.img", "article_id": "not-in-corpus"},
            {"id": "i3", "file": "images/gone.jpg"},
            {"id": "i4", "file": "images/logo.svg"},
            {"id": "i5", "file": "../outside.png"},
            {"id": "i6"},
            {"id": "i1", "file": "images/one.png"},
            {"file": "images/one.png"},
        ],
    )
    source = open_source(tmp_path)
    assert source.root == tmp_path.resolve()
    items = list(source.items())
    assert isinstance(items[0], Article)  # articles first, then the image listing
    _, imgs, skips = _split(items)
    one = str((tmp_path / "images" / "one.png").resolve())
    assert imgs == [
        Image("i1", "a", one, "Cap", "Alt", None, None, None, "CC0"),
        Image("i2", "not-in-corpus", str((tmp_path / "images" / "two.img").resolve())),
        Image("images/one.png", None, one),  # no id: the file path is the id
    ]
    listing = tmp_path.resolve() / "images.jsonl"
    assert _reasons(skips, tmp_path.resolve()) == {
        "images/gone.jpg": "image file missing",
        "images/logo.svg": "not a raster image (svg)",
        "images.jsonl:5": f"image path must stay inside {tmp_path.resolve()}: '../outside.png'",
        "images.jsonl:6": "missing 'file'",
        "images.jsonl:7": f"duplicate image id 'i1' (first seen in {listing}:1)",
    }


def test_jsonl_file_path_does_not_imply_images_unless_corpus(tmp_path: Path) -> None:
    _jsonl(tmp_path / "articles.jsonl", [{"id": "a", "text": "Text."}])
    _jsonl(tmp_path / "corpus.jsonl", [{"id": "b", "text": "Text."}])
    _png(tmp_path / "p.png")
    _jsonl(tmp_path / "images.jsonl", [{"id": "i", "file": "p.png"}])
    assert [i.id for i in open_source(tmp_path / "articles.jsonl").items()] == ["a"]  # type: ignore[union-attr]
    assert [i.id for i in open_source(tmp_path / "corpus.jsonl").items()] == ["b", "i"]  # type: ignore[union-attr]
    images_only = tmp_path / "only"
    _png(images_only / "p.png")
    _jsonl(images_only / "images.jsonl", [{"id": "i", "file": "p.png"}])
    assert [i.id for i in open_source(images_only, layout="jsonl").items()] == ["i"]  # type: ignore[union-attr]


# ---------------------------------------------------------------- folder


def _wiki_folder(root: Path) -> Path:
    """Two article folders the way the Wikipedia fetcher writes them, plus odd cases."""
    bat = root / "Batman"
    bat.mkdir(parents=True)
    (bat / "article.txt").write_text("Batman is a superhero.\n== History ==\nCreated in 1939.")
    (bat / "meta.json").write_text(
        json.dumps(
            {
                "id": "wiki:en:Batman",
                "title": "Batman",
                "url": "https://x/Batman",
                "license": "CC BY-SA 4.0",
                "revision": 123,
            }
        )
    )
    _png(bat / "cowl.png")
    _png(bat / "sub" / "car.JPG")
    (bat / "diagram.svg").write_text("<svg/>")
    (bat / "notes.xyz").write_text("?")
    (bat / ".DS_Store").write_text("x")
    (bat / "image_refs.jsonl").write_text("{}\n")  # a metadata sidecar: not reported
    _jsonl(
        bat / "images.jsonl",
        [
            {
                "file": "cowl.png",
                "caption": "The cowl",
                "alt_text": "A mask",
                "license": "CC0",
                "artist": "someone",
            },
            {"file": "missing.png", "caption": "gone"},
        ],
    )
    robin = root / "Robin"
    robin.mkdir()
    (robin / "article.md").write_text("# Robin\nRobin is a sidekick.")
    _png(robin / "r.gif")
    return root


def test_folder_layout(tmp_path: Path) -> None:
    root = _wiki_folder(tmp_path / "wiki").resolve()
    items = list(open_source(root).items())
    arts, imgs, skips = _split(items)
    assert arts == [
        Article(
            "wiki:en:Batman",
            "Batman",
            "Batman is a superhero.\n== History ==\nCreated in 1939.",
            "https://x/Batman",
            "CC BY-SA 4.0",
            str(root / "Batman" / "article.txt"),
            meta={"revision": "123"},  # meta.json's other fields, as strings
        ),
        Article(
            "Robin",
            "Robin",
            "# Robin\nRobin is a sidekick.",
            None,
            None,
            str(root / "Robin" / "article.md"),
        ),
    ]
    assert imgs == [
        Image(
            "wiki:en:Batman/cowl.png",
            "wiki:en:Batman",
            str(root / "Batman" / "cowl.png"),
            "The cowl",
            "A mask",
            license="CC0",
        ),
        Image("wiki:en:Batman/sub/car.JPG", "wiki:en:Batman", str(root / "Batman/sub/car.JPG")),
        Image("Robin/r.gif", "Robin", str(root / "Robin" / "r.gif")),
    ]
    assert _reasons(skips, root) == {
        "Batman/diagram.svg": "not a raster image (svg)",
        "Batman/notes.xyz": "unknown file type '.xyz'",
        "Batman/missing.png": "image file missing (listed in images.jsonl)",
    }
    # Each article comes before its own images; the order is stable.
    assert [type(i).__name__ for i in items][:2] == ["Article", "Image"]
    assert items == list(open_source(root).items())


def test_folder_problems(tmp_path: Path) -> None:
    root = _wiki_folder(tmp_path / "wiki").resolve()
    (root / "Empty").mkdir()
    (root / "Empty" / "article.txt").write_text("  \n")
    _png(root / "Empty" / "still.png")
    (root / "Copy").mkdir()
    (root / "Copy" / "article.txt").write_text("Another Batman.")
    (root / "Copy" / "meta.json").write_text('{"id": "wiki:en:Batman"}')
    _png(root / "Copy" / "cowl.png")
    (root / "Broken").mkdir()
    (root / "Broken" / "article.txt").write_text("Text.")
    (root / "Broken" / "meta.json").write_text("{not json")
    (root / "Binary").mkdir()
    (root / "Binary" / "article.txt").write_bytes(bytes(range(256)))
    (root / "NoText").mkdir()
    _png(root / "NoText" / "x.png")
    (root / "README.md").write_text("loose file")
    (root / ".git").mkdir()
    (root / "Robin" / "loop").symlink_to(root / "Robin", target_is_directory=True)
    (root / "Linked").symlink_to(root / "Robin", target_is_directory=True)
    arts, imgs, skips = _split(list(open_source(root).items()))
    assert [a.id for a in arts] == ["wiki:en:Batman", "Robin"]
    assert "Empty/still.png" in [i.id for i in imgs]  # the indexer decides about orphans
    assert not any(i.id.startswith("wiki:en:Batman/") and "Copy" in i.uri for i in imgs)
    reasons = _reasons(skips, root)
    assert reasons["Empty/article.txt"] == "empty article"
    assert reasons["Copy"] == (
        f"duplicate article id 'wiki:en:Batman' (first seen in {root / 'Batman'})"
    )
    assert reasons["Broken/meta.json"].startswith("bad meta.json: Expecting property name")
    assert reasons["Binary/article.txt"] == f"binary data, not text: {root / 'Binary/article.txt'}"
    assert reasons["NoText"] == "no article.txt or article.md in this folder"
    assert reasons["README.md"] == "not inside an article folder"
    assert reasons["Robin/loop"] == "symlinked folder not followed"
    assert reasons["Linked"] == "symlinked folder not followed"
    assert not any(".git" in s.path or "DS_Store" in s.path for s in skips)


# ---------------------------------------------------------------- flat


def test_flat_layout(tmp_path: Path) -> None:
    root = tmp_path.resolve()
    (root / "Batman.txt").write_text("Batman text.")
    (root / "Batman.md").write_text("Read first: sorted, .md comes before .txt.")
    (root / "The Matrix.md").write_bytes("Neo\u2019s story \u2013 caf\u00e9".encode("cp1252"))
    (root / "Blank.txt").write_text("\n\n")
    (root / "Dangling.txt").symlink_to(root / "nowhere.txt")
    _png(root / "a.png")
    _png(root / "b.jpeg")
    _png(root / "c.webp")
    _png(root / "pics" / "d.png")
    _png(root / "unscanned" / "e.png")
    (root / "doc.pdf").write_bytes(b"%PDF-1.4")
    (root / "data.csv").write_text("1,2")
    (root / "meta.json").write_text("{}")
    (root / ".hidden.png").write_text("x")
    _jsonl(
        root / "images.jsonl",
        [
            {"file": "a.png", "title": "Batman", "caption": "Cap", "alt_text": "Alt"},
            {"file": "b.jpeg", "article_id": "The Matrix", "id": "matrix-poster"},
            {"file": "pics/d.png", "article_id": "Batman"},
            {"file": "gone.png"},
            {"caption": "no file"},
        ],
    )
    source = open_source(root)
    assert source.layout == "flat"
    arts, imgs, skips = _split(list(source.items()))
    # Sorted by name, Batman.md comes before Batman.txt, so the .md file wins the id.
    assert arts == [
        Article(
            "Batman",
            "Batman",
            "Read first: sorted, .md comes before .txt.",
            source=str(root / "Batman.md"),
        ),
        Article(
            "The Matrix",
            "The Matrix",
            "Neo\u2019s story \u2013 caf\u00e9",
            source=str(root / "The Matrix.md"),
        ),
    ]
    assert imgs == [
        Image("a.png", "Batman", str(root / "a.png"), "Cap", "Alt"),
        Image("matrix-poster", "The Matrix", str(root / "b.jpeg")),
        Image("c.webp", None, str(root / "c.webp")),
        Image("pics/d.png", "Batman", str(root / "pics" / "d.png")),
    ]
    assert _reasons(skips, root) == {
        "images.jsonl:5": "missing 'file'",
        "Batman.txt": f"duplicate article id 'Batman' (first seen in {root / 'Batman.md'})",
        "Blank.txt": "empty article",
        "Dangling.txt": f"cannot read {root / 'Dangling.txt'}: No such file or directory",
        "data.csv": "unknown file type '.csv'",
        "doc.pdf": "not a raster image (pdf)",
        "gone.png": "image file missing",
        "unscanned": "folder not scanned (the flat layout reads files directly in the folder, "
        "and files named in images.jsonl)",
    }


def test_unreadable_article_is_skipped_with_the_os_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "Secret.txt"
    path.write_text("hidden")
    deny_reading(monkeypatch, path)  # as root too: the OS error is injected at the open
    (_, _, skips) = _split(list(open_source(tmp_path).items()))
    assert skips == [
        Skipped(str(path.resolve()), f"cannot read {path.resolve()}: Permission denied", "article")
    ]


def test_items_stream_lazily(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.jsonl"
    with corpus.open("w", encoding="utf-8") as f:
        for i in range(2000):
            f.write(json.dumps({"id": f"a{i}", "text": f"Article {i}."}) + "\n")
    items = open_source(tmp_path).items()
    first = next(iter(items))
    assert isinstance(first, Article) and first.id == "a0"
