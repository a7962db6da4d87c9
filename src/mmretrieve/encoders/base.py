"""Encoder protocols. Vectors are float32, L2-normalised: inner product = cosine."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from ..types import valid_unicode

if TYPE_CHECKING:
    from pathlib import Path

    from PIL.Image import Image as PILImage


@runtime_checkable
class TextEncoder(Protocol):
    """Embeds passages and queries in one space. Queries may get an instruction prefix."""

    name: str
    dim: int
    info: dict[str, object]  # what the manifest records: name, revision, pooling, random, ...

    def encode_documents(self, texts: Sequence[str]) -> np.ndarray: ...

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray: ...

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens each text takes, without special tokens (used to size passages)."""
        ...


@runtime_checkable
class ImageTextEncoder(Protocol):
    """Embeds images and short texts in one shared space (CLIP). Long text is truncated."""

    name: str
    dim: int
    info: dict[str, object]

    def encode_images(self, images: Sequence[PILImage]) -> np.ndarray: ...

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray: ...


def input_edge(encoder: object) -> int | None:
    """The short side of the image model's input (224 for ViT-B/32), when the encoder says: how
    small a photo may be decoded (``documents.images.decode_side``)."""
    edge = getattr(getattr(encoder, "preprocess", None), "shortest_edge", None)
    return int(edge) if edge else None


def decode_image(
    source: str | Path | bytes | PILImage,
    encoder: object,
    *,
    max_pixels: int,
    max_bytes: int | None,
) -> PILImage:
    """The one way an image reaches an image model, query or document: a decoded PIL image
    passes as RGB; a path or the file's bytes is checked against ``max_pixels`` and
    ``max_bytes`` and decoded at the size the indexer decodes at (the model's input edge), so an
    indexed photo queried with itself gives the same vector and a large JPEG decodes in draft
    mode. Raises :class:`~mmretrieve.errors.BadInputError` with the reason."""
    from PIL import Image as PILImageModule

    from ..documents.images import load_image

    if isinstance(source, PILImageModule.Image):
        return source.convert("RGB")
    return load_image(
        source,
        max_pixels=max_pixels,
        max_bytes=max_bytes,
        fit_edge=input_edge(encoder),
    )


def l2_normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


class TextEncoderMethods:
    """The protocol's methods, derived from a backend's ``_encode`` (batching, pooling,
    normalising), its ``query_instruction`` and its ``_counter`` (a tokenizers.Tokenizer with
    truncation and padding off)."""

    query_instruction: str
    _counter: Any

    def _encode(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError

    def encode_documents(self, texts: Sequence[str]) -> np.ndarray:
        """Embed passages as they are (lone surrogates as U+FFFD)."""
        return self._encode([valid_unicode(t) for t in texts])

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Embed queries, prefixed with the model's query instruction (if any)."""
        return self._encode([self.query_instruction + valid_unicode(t) for t in texts])

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens each text takes, without special tokens and without truncation."""
        if not texts:
            return []
        encodings = self._counter.encode_batch(
            [valid_unicode(t) for t in texts], add_special_tokens=False
        )
        return [len(e.ids) for e in encodings]
