"""FAKE deterministic encoders for fast unit tests of routing, fusion and indexing.

They are not models: text vectors are hashed bags of words (shared words -> similar vectors), and
image vectors come from a tiny thumbnail of the pixels (same picture -> same vector). They satisfy
the same protocols as the real encoders and count what they encode.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np

_WORD = re.compile(r"\w+")


def _bag(text: str, dim: int, salt: str) -> np.ndarray:
    vec = np.zeros(dim, dtype=np.float32)
    for word in _WORD.findall(text.lower()):
        h = int.from_bytes(
            hashlib.blake2b((salt + word).encode(), digest_size=8).digest(), "little"
        )
        vec[h % dim] += 1.0 if (h >> 32) & 1 else -1.0
    if not vec.any():
        vec[0] = 1.0
    return vec / np.linalg.norm(vec)


class FakeTextEncoder:
    """Hashed bag-of-words 'text encoder' (FAKE)."""

    def __init__(self, dim: int = 64, query_prefix: str = "") -> None:
        self.name = "fake-text"
        self.dim = dim
        self.query_prefix = query_prefix
        self.info = {
            "name": self.name,
            "revision": "fake-1",
            "dim": dim,
            "pooling": "fake",
            "query_instruction": query_prefix,
            "max_length": 512,
            "random": False,
        }
        self.documents_encoded = 0
        self.queries_encoded = 0

    def encode_documents(self, texts: Sequence[str]) -> np.ndarray:
        self.documents_encoded += len(texts)
        return (
            np.stack([_bag(t, self.dim, "t") for t in texts])
            if texts
            else np.zeros((0, self.dim), np.float32)
        )

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        self.queries_encoded += len(texts)
        return (
            np.stack([_bag(self.query_prefix + t, self.dim, "t") for t in texts])
            if texts
            else np.zeros((0, self.dim), np.float32)
        )

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(_WORD.findall(t)) for t in texts]


class FakeClipEncoder:
    """Pixel-thumbnail 'image encoder' and bag-of-words 'text encoder' in one space (FAKE)."""

    def __init__(self, dim: int = 48) -> None:
        self.name = "fake-clip"
        self.dim = dim
        self.info = {"name": self.name, "revision": "fake-1", "dim": dim, "random": False}
        self.images_encoded = 0
        self.texts_encoded = 0

    def encode_images(self, images: Sequence[object]) -> np.ndarray:
        self.images_encoded += len(images)
        out = []
        for img in images:
            small = np.asarray(img.convert("RGB").resize((4, 4)), dtype=np.float32).reshape(-1)  # type: ignore[attr-defined]
            vec = np.resize(small - small.mean(), self.dim).astype(np.float32)
            if not vec.any():
                vec[0] = 1.0
            out.append(vec / np.linalg.norm(vec))
        return np.stack(out) if out else np.zeros((0, self.dim), np.float32)

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        self.texts_encoded += len(texts)
        return (
            np.stack([_bag(t, self.dim, "c") for t in texts])
            if texts
            else np.zeros((0, self.dim), np.float32)
        )


# Three small articles that the fake encoders tell apart (word overlap), shared by the tests.
SAMPLE_ARTICLES = {
    "Batman": "Batman is a superhero. Bruce Wayne is the secret identity of Batman. "
    "He fights crime in Gotham City with the Batmobile.",
    "Vincent van Gogh": "Vincent van Gogh was a Dutch painter. His paintings include The Starry "
    "Night and Sunflowers. He painted with bold colours.",
    "Tomato": "The tomato is a red fruit. Tomato soup and tomato sauce are common dishes.",
}
