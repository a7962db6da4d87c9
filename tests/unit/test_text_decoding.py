"""read_text_file: every text encoding we meet in the wild decodes; binary data is refused."""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest

from mmretrieve.documents.text import decode_text, read_text_file
from mmretrieve.errors import BadInputError

SAMPLE = "Café “naïve” — Zürich, 東京.\nSecond line."


def _write(tmp_path: Path, data: bytes, name: str = "a.txt") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    "data",
    [
        SAMPLE.encode("utf-8"),
        codecs.BOM_UTF8 + SAMPLE.encode("utf-8"),
        SAMPLE.encode("utf-16"),  # native order with BOM
        codecs.BOM_UTF16_BE + SAMPLE.encode("utf-16-be"),
        codecs.BOM_UTF16_LE + SAMPLE.encode("utf-16-le"),
        SAMPLE.encode("utf-32"),
        codecs.BOM_UTF32_BE + SAMPLE.encode("utf-32-be"),
    ],
    ids=["utf8", "utf8-bom", "utf16", "utf16-be", "utf16-le", "utf32", "utf32-be"],
)
def test_unicode_encodings_decode_to_the_same_text(tmp_path: Path, data: bytes) -> None:
    assert read_text_file(_write(tmp_path, data)) == SAMPLE


def test_bomless_utf16_is_recognised(tmp_path: Path) -> None:
    text = "Plain ASCII text saved as UTF-16 by an old editor.\n" * 3
    assert read_text_file(_write(tmp_path, text.encode("utf-16-le"))) == text
    assert read_text_file(_write(tmp_path, text.encode("utf-16-be"))) == text


def test_cp1252_text_is_decoded(tmp_path: Path) -> None:
    text = "Caf\u00e9 \u201cquoted\u201d \u2013 50 \u20ac, na\u00efve"
    data = text.encode("cp1252")
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")  # the premise: this really is not UTF-8
    assert read_text_file(_write(tmp_path, data)) == text


def test_bytes_undefined_in_cp1252_fall_back_to_latin1(tmp_path: Path) -> None:
    # 0x81 has no cp1252 character; one such byte in real text must not reject the file.
    data = b"Ol\xe9 \x81 text that is mostly plain words and sentences."
    assert read_text_file(_write(tmp_path, data)) == data.decode("latin-1")


@pytest.mark.parametrize(
    "data",
    [
        bytes(range(256)) * 8,  # NUL bytes, invalid UTF-8
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00",
        b"\x01\x02\x03\x04\x05\x06\x07\x08\x0e\x0f abc \xff\xfe\x10\x11\x12",  # controls, no NUL
        b"\x00" * 64,  # valid UTF-8 but nothing a text file contains
    ],
    ids=["all-bytes", "png", "controls", "nuls"],
)
def test_binary_data_is_refused(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(BadInputError, match="binary data, not text"):
        read_text_file(_write(tmp_path, data))


def test_newlines_are_normalised(tmp_path: Path) -> None:
    data = b"one\r\ntwo\rthree\nfour\r\n"
    assert read_text_file(_write(tmp_path, data)) == "one\ntwo\nthree\nfour\n"
    assert decode_text("a\r\nb".encode("utf-16")) == "a\nb"


def test_max_bytes(tmp_path: Path) -> None:
    path = _write(tmp_path, b"x" * 100)
    assert read_text_file(path, max_bytes=100) == "x" * 100
    with pytest.raises(BadInputError, match="file too large.*over 99 bytes"):
        read_text_file(path, max_bytes=99)


def test_unreadable_paths_raise_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="cannot read .*missing.txt: No such file"):
        read_text_file(tmp_path / "missing.txt")
    with pytest.raises(BadInputError, match="cannot read .*Is a directory"):
        read_text_file(tmp_path)


def test_empty_file_is_empty_text(tmp_path: Path) -> None:
    assert read_text_file(_write(tmp_path, b"")) == ""


# Text normalisation and content hashes (documents/hashing.py) live beside decoding: both decide
# when two texts count as "the same".


def test_normalize_text() -> None:
    from mmretrieve.documents.hashing import normalize_text

    assert normalize_text("  Cafe\u0301 \t\n  au\u00a0lait \r\n") == "Caf\u00e9 au lait"


def test_content_hash_ignores_whitespace_and_keeps_parts_apart(tmp_path: Path) -> None:
    import hashlib

    from mmretrieve.documents.hashing import bytes_sha256, content_hash, file_sha256

    assert content_hash("a  b", None) == hashlib.sha256(b"a b\x1f").hexdigest()
    assert content_hash("Title", "Body text.") == content_hash(" Title ", "Body\n text.")
    assert content_hash("ab", "c") != content_hash("a", "bc")
    assert content_hash(None) == content_hash("") != content_hash("x")
    path = tmp_path / "blob"
    data = bytes(range(256)) * 5000  # > one read chunk
    path.write_bytes(data)
    assert file_sha256(path, chunk=4096) == bytes_sha256(data) == hashlib.sha256(data).hexdigest()
