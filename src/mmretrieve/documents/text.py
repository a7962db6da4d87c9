"""Decode text files whatever their encoding, and refuse binary data (docs/RELIABILITY.md)."""

from __future__ import annotations

import codecs
import re
from pathlib import Path

from ..errors import BadInputError
from ..types import valid_unicode

__all__ = ["read_text_file", "valid_unicode"]

# Longest BOMs first: the UTF-32-LE BOM starts with the UTF-16-LE one.
_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# C0 controls other than tab/newline/vertical tab/form feed/carriage return, DEL and C1 controls.
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]")
_SAMPLE_CHARS = 1 << 20  # the control-character ratio is judged on the first MiB of text
_MAX_CONTROL_RATIO = 0.05


def read_text_file(path: str | Path, max_bytes: int | None = None) -> str:
    """Read a text file as ``str`` with ``\\n`` newlines, or raise :class:`BadInputError`.

    UTF-8 (BOM stripped) and BOM-marked UTF-16/32 are decoded as such; other bytes that are not
    UTF-8 are read as cp1252 (latin-1 where cp1252 has holes) when they look like text.
    """
    try:
        with open(path, "rb") as f:
            data = f.read() if max_bytes is None else f.read(max_bytes + 1)
    except OSError as exc:
        raise BadInputError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if max_bytes is not None and len(data) > max_bytes:
        raise BadInputError(f"file too large: {path} is over {max_bytes} bytes")
    return decode_text(data, name=str(path))


def decode_text(data: bytes, name: str = "text") -> str:
    """Decode ``data`` like :func:`read_text_file` does; ``name`` is used in error messages."""
    text = _decode(data, name)
    if not _looks_like_text(text):
        raise BadInputError(f"binary data, not text: {name}")
    # "\r\n" first, so a Windows line ending becomes one newline, not two.
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _decode(data: bytes, name: str) -> str:
    for bom, codec in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(codec)
            except UnicodeDecodeError as exc:
                raise BadInputError(
                    f"invalid {codec.upper()} text in {name}: {exc.reason}"
                ) from exc
    utf16 = _bomless_utf16(data)
    if utf16 is not None:
        try:
            return data.decode(utf16)
        except UnicodeDecodeError:
            pass  # not UTF-16 after all; the checks below decide
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    if b"\x00" in data:
        raise BadInputError(f"binary data, not text: {name}")
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:  # cp1252 leaves 0x81, 0x8D, 0x8F, 0x90, 0x9D undefined
        return data.decode("latin-1")


def _bomless_utf16(data: bytes) -> str | None:
    """'utf-16-le'/'utf-16-be' when ``data`` looks like mostly-ASCII UTF-16 without a BOM."""
    sample = data[:4096]
    if len(sample) < 4 or len(data) % 2:
        return None
    even_nul = sample[0::2].count(0) / (len(sample) // 2)
    odd_nul = sample[1::2].count(0) / (len(sample) // 2)
    # ASCII text in UTF-16 has a NUL in every other byte; real text never has NULs at all.
    if odd_nul > 0.4 and even_nul < 0.01:
        return "utf-16-le"
    if even_nul > 0.4 and odd_nul < 0.01:
        return "utf-16-be"
    return None


def _looks_like_text(text: str) -> bool:
    if "\x00" in text:
        return False
    sample = text[:_SAMPLE_CHARS]
    if not sample:
        return True
    controls = len(_CONTROL.findall(sample))
    return controls / len(sample) < _MAX_CONTROL_RATIO
