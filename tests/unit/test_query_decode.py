"""A photo queried with itself scores 1.0 on image->image: queries decode at the indexer's size.

Uses a tiny randomly initialised CLIPModel (real architecture, RANDOM weights) and a fake text
encoder: only the image path is under test."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from fakes import FakeTextEncoder
from mmretrieve import Index
from mmretrieve.documents.images import load_image
from mmretrieve.encoders import load_image_encoder
from mmretrieve.encoders.base import input_edge


def _photo(path: Path, size: tuple[int, int], seed: int) -> Path:
    """A smooth photo-like JPEG (gradients plus noise), large enough for draft decoding."""
    rng = np.random.default_rng(seed)
    w, h = size
    x, y = np.meshgrid(np.linspace(0, 1, w), np.linspace(0, 1, h))
    base = np.stack([x, y, (x + y) / 2], axis=-1) * 200
    pixels = np.clip(base + rng.normal(0, 25, (h, w, 3)), 0, 255).astype(np.uint8)
    PILImage.fromarray(pixels).save(path, quality=90)
    return path


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory, tiny_clip_model_dir: Path):
    base = tmp_path_factory.mktemp("decode")
    corpus = base / "corpus"
    corpus.mkdir()
    (corpus / "Gradients.txt").write_text("Gradients are smooth colour ramps.", encoding="utf-8")
    big = _photo(corpus / "big.jpg", (1000, 700), 1)  # decoded in draft mode by the indexer
    small = _photo(corpus / "small.jpg", (300, 200), 2)  # too small for draft: decoded whole
    encoder = load_image_encoder(str(tiny_clip_model_dir), runtime="torch", precision="fp32")
    index = Index.open(base / "idx", text_encoder=FakeTextEncoder(), image_encoder=encoder)
    assert index.add(corpus).skipped == []
    yield index, big, small, encoder
    index.close()


@pytest.mark.parametrize("which", ["big", "small"])
def test_a_photo_queried_by_path_or_bytes_matches_itself_exactly(indexed, which) -> None:
    index, big, small, _ = indexed
    path = big if which == "big" else small
    for query in (path, path.read_bytes()):
        hit = index.search(image=query, k=1).hits[0]
        assert hit.kind == "image" and hit.id.endswith(path.name)
        assert hit.route_scores["image->image"] == pytest.approx(1.0, abs=1e-6)


def test_queries_decode_a_large_jpeg_in_draft_mode(indexed) -> None:
    _, big, _, encoder = indexed
    edge = input_edge(encoder)
    assert edge == encoder.preprocess.shortest_edge
    fitted = load_image(io.BytesIO(big.read_bytes()).getvalue(), fit_edge=edge)
    assert min(fitted.size) == edge and max(fitted.size) < 1000 // 2 + 1
    assert load_image(big).size == (1000, 700)  # without the hint: the default size
