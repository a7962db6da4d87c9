"""Encoder protocols (DESIGN §4). Vectors are float32, L2-normalised: inner product = cosine."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
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


def l2_normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norms, 1e-12)
