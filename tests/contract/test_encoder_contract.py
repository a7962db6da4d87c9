"""One contract every encoder passes, text and image-text: PyTorch, ONNX Runtime and OpenVINO on
tiny RANDOM models of the real architectures (BertModel with the real bge tokenizer, CLIPModel
with the real CLIP vocabulary; tests/conftest.py), and the FAKE encoders the unit tests use
(tests/fakes.py). Add a backend to TEXT_BACKENDS / IMAGE_BACKENDS.

Every runtime is installed here and in CI: a missing one fails this suite, it never skips. All
real encoders run in fp32 on the CPU.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fakes import FakeClipEncoder, FakeTextEncoder
from mmretrieve.encoders import IMAGE_RUNTIMES, TEXT_RUNTIMES, ImageTextEncoder, TextEncoder
from mmretrieve.encoders.base import input_edge
from mmretrieve.encoders.model_config import BGE_QUERY_INSTRUCTION
from mmretrieve.encoders.registry import build_image_encoder, build_text_encoder
from mmretrieve.encoders.runtime import has_module
from mmretrieve.store.manifest import model_entry

pytestmark = pytest.mark.slow

# What the manifest records of a model (store/manifest.py ``model_entry``), which every text
# encoder sets; an image-text encoder sets the first four (``model_entry`` leaves the text-only
# ones None). Real backends also say where they run (api.py records runtime, dtype, device).
MANIFEST_IMAGE_KEYS = {"name", "revision", "dim", "random"}
MANIFEST_TEXT_KEYS = MANIFEST_IMAGE_KEYS | {"pooling", "query_instruction", "max_length"}
RUNTIME_KEYS = {"path", "runtime", "device", "dtype"}
# The Python package each real runtime needs; missing is a failure, not a skip.
RUNTIME_MODULES = {
    "torch": ("torch", "transformers"),
    "onnx": ("onnxruntime",),
    "openvino": ("openvino",),
}
# The tiny RANDOM text model's folder asks for bge's query instruction; the FAKE is given it.
INSTRUCTION = BGE_QUERY_INSTRUCTION
TEXTS = [
    "Batman is a superhero who appears in American comic books.",
    "x",
    "Tomatoes are the edible berries of the plant Solanum lycopersicum. " * 12,
    "Gotham City",
    "",
    "Zürich — 東京 — emoji 🦇 and a lone surrogate \ud800 too",
]
MIN_COSINE = 0.999


def _pictures() -> list[Any]:
    from PIL import Image

    rng = np.random.default_rng(0)
    sizes = [(224, 224), (300, 500), (500, 300), (40, 60), (1000, 30), (17, 17)]
    pictures = [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for h, w in sizes]
    return [*pictures, pictures[1].convert("L"), pictures[2].convert("RGBA")]


@dataclass(frozen=True)
class Backend:
    """How to make one encoder: ``runtime`` None for a FAKE encoder."""

    id: str
    runtime: str | None

    @property
    def real(self) -> bool:
        return self.runtime is not None


TEXT_BACKENDS = [
    Backend("torch-random-bert", "torch"),
    Backend("onnx-random-bert", "onnx"),
    Backend("openvino-random-bert", "openvino"),
    Backend("fake-hashed-words", None),
]
IMAGE_BACKENDS = [
    Backend("torch-random-clip", "torch"),
    Backend("onnx-random-clip", "onnx"),
    Backend("openvino-random-clip", "openvino"),
    Backend("fake-pixel-thumbnail", None),
]


def _require(runtime: str) -> None:
    missing = [m for m in RUNTIME_MODULES[runtime] if not has_module(m)]
    assert not missing, f"{runtime}: {missing} not installed; the contract runs on every runtime"


def _onnx_export(src: Path, out: Path) -> Path:
    from mmretrieve.encoders.onnx_export import export_model

    _require("onnx")
    return export_model(str(src), out, int8=False)


@pytest.fixture(scope="module")
def tiny_text_onnx(tiny_text_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny RANDOM BertModel exported to ONNX (fp32)."""
    return _onnx_export(tiny_text_model_dir, tmp_path_factory.mktemp("contract-bert-onnx"))


@pytest.fixture(scope="module")
def tiny_clip_onnx(tiny_clip_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny RANDOM CLIPModel exported to ONNX (fp32)."""
    return _onnx_export(tiny_clip_model_dir, tmp_path_factory.mktemp("contract-clip-onnx"))


def _folder(request: pytest.FixtureRequest, backend: Backend, kind: str) -> str:
    """The model folder a real backend loads: the PyTorch weights, or their ONNX export."""
    assert backend.runtime is not None
    _require(backend.runtime)
    if backend.runtime == "torch":
        return str(request.getfixturevalue(f"tiny_{kind}_model_dir"))
    return str(request.getfixturevalue(f"tiny_{kind}_onnx"))


@dataclass
class TextCase:
    backend: Backend
    encoder: TextEncoder  # with the model's own query instruction
    make: Callable[[str], TextEncoder]  # with the query instruction given


@dataclass
class ImageCase:
    backend: Backend
    encoder: ImageTextEncoder


@pytest.fixture(scope="module", params=TEXT_BACKENDS, ids=lambda b: b.id)
def text_case(request: pytest.FixtureRequest) -> TextCase:
    backend: Backend = request.param
    if not backend.real:

        def fake(instruction: str) -> TextEncoder:
            return FakeTextEncoder(query_prefix=instruction)

        return TextCase(backend, fake(INSTRUCTION), fake)
    folder = _folder(request, backend, "text")

    def make(instruction: str | None) -> TextEncoder:
        return build_text_encoder(
            folder,
            runtime=str(backend.runtime),
            device="cpu",
            precision="fp32",
            query_instruction=instruction,
        )

    return TextCase(backend, make(None), make)


@pytest.fixture(scope="module", params=IMAGE_BACKENDS, ids=lambda b: b.id)
def image_case(request: pytest.FixtureRequest) -> ImageCase:
    backend: Backend = request.param
    if not backend.real:
        return ImageCase(backend, FakeClipEncoder())
    folder = _folder(request, backend, "clip")
    encoder = build_image_encoder(
        folder, runtime=str(backend.runtime), device="cpu", precision="fp32"
    )
    return ImageCase(backend, encoder)


def assert_unit_rows(x: np.ndarray, rows: int, dim: int) -> None:
    """float32 [rows, dim], finite, every row of length 1."""
    assert isinstance(x, np.ndarray) and x.dtype == np.float32, type(x)
    assert x.shape == (rows, dim), x.shape
    assert np.isfinite(x).all()
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)


def assert_same_rows(batched: np.ndarray, single: np.ndarray, what: str) -> None:
    """Row by row, cosine >= MIN_COSINE (unit rows: the inner product)."""
    assert batched.shape == single.shape, what
    cosine = (batched * single).sum(axis=1)
    assert cosine.min() >= MIN_COSINE, f"{what}: cosines {cosine.round(5)}"


def _one_by_one(encode: Callable[[Any], np.ndarray], items: list[Any]) -> np.ndarray:
    return np.concatenate([encode([item]) for item in items])


def assert_manifest_info(encoder: Any, backend: Backend, keys: set[str]) -> None:
    info = encoder.info
    assert isinstance(info, dict)
    missing = keys - set(info)
    assert not missing, f"info lacks {sorted(missing)}"
    assert info["name"] == encoder.name and isinstance(encoder.name, str) and encoder.name
    assert info["dim"] == encoder.dim and isinstance(encoder.dim, int) and encoder.dim > 0
    assert isinstance(info["revision"], str) and info["revision"]
    assert info["random"] is backend.real  # the tiny models are random, the fakes are not
    if backend.real:
        missing = RUNTIME_KEYS - set(info)
        assert not missing, f"info lacks {sorted(missing)}"
        assert (info["runtime"], info["device"], info["dtype"]) == (
            backend.runtime,
            "cpu",
            "float32",
        )
        assert Path(str(info["path"])).exists()


def test_every_registered_runtime_is_under_contract() -> None:
    assert {b.runtime for b in TEXT_BACKENDS if b.real} == set(TEXT_RUNTIMES)
    assert {b.runtime for b in IMAGE_BACKENDS if b.real} == set(IMAGE_RUNTIMES)
    assert set(RUNTIME_MODULES) == set(TEXT_RUNTIMES) | set(IMAGE_RUNTIMES)
    assert set(model_entry({})) == MANIFEST_TEXT_KEYS  # the keys the manifest records


# --------------------------------------------------------------------------- text encoders


def test_text_encoder_meets_the_protocol(text_case: TextCase) -> None:
    assert isinstance(text_case.encoder, TextEncoder)


@pytest.mark.parametrize("method", ["encode_documents", "encode_queries"])
def test_text_rows_are_float32_unit_length(text_case: TextCase, method: str) -> None:
    encoder = text_case.encoder
    assert_unit_rows(getattr(encoder, method)(TEXTS), len(TEXTS), encoder.dim)


@pytest.mark.parametrize("method", ["encode_documents", "encode_queries"])
def test_text_batch_equals_one_by_one(text_case: TextCase, method: str) -> None:
    encode = getattr(text_case.encoder, method)
    assert_same_rows(encode(TEXTS), _one_by_one(encode, TEXTS), f"{text_case.backend.id} {method}")


@pytest.mark.parametrize("method", ["encode_documents", "encode_queries"])
def test_text_empty_input_gives_no_rows(text_case: TextCase, method: str) -> None:
    encoder = text_case.encoder
    got = getattr(encoder, method)([])
    assert isinstance(got, np.ndarray) and got.shape == (0, encoder.dim)
    assert got.dtype == np.float32


def test_text_info_has_what_the_manifest_records(text_case: TextCase) -> None:
    encoder = text_case.encoder
    assert_manifest_info(encoder, text_case.backend, MANIFEST_TEXT_KEYS)
    assert None not in model_entry(encoder.info).values()
    assert encoder.info["query_instruction"] == INSTRUCTION
    assert isinstance(encoder.info["max_length"], int) and encoder.info["max_length"] > 1


def test_text_queries_carry_the_query_instruction(text_case: TextCase) -> None:
    encoder, texts = text_case.encoder, TEXTS[:4]
    instruction = str(encoder.info["query_instruction"])
    assert instruction
    queries, documents = encoder.encode_queries(texts), encoder.encode_documents(texts)
    # Every row differs. The tiny RANDOM bert barely looks past its CLS token (rows differ by
    # 1e-4 and more); the same input gives the same row to 1e-7.
    assert np.abs(queries - documents).max(axis=1).min() > 1e-5
    assert_same_rows(
        queries, encoder.encode_documents([instruction + t for t in texts]), "instruction + text"
    )


def test_text_without_query_instruction_queries_equal_documents(text_case: TextCase) -> None:
    encoder = text_case.make("")
    assert encoder.info["query_instruction"] == ""
    np.testing.assert_allclose(
        encoder.encode_queries(TEXTS), encoder.encode_documents(TEXTS), atol=1e-6
    )


# --------------------------------------------------------------------- image-text encoders


def test_image_encoder_meets_the_protocol(image_case: ImageCase) -> None:
    assert isinstance(image_case.encoder, ImageTextEncoder)


def test_images_and_texts_are_unit_rows_of_one_dim(image_case: ImageCase) -> None:
    encoder, pictures = image_case.encoder, _pictures()
    assert_unit_rows(encoder.encode_images(pictures), len(pictures), encoder.dim)
    assert_unit_rows(encoder.encode_texts(TEXTS), len(TEXTS), encoder.dim)


def test_image_batch_equals_one_by_one(image_case: ImageCase) -> None:
    encoder, pictures = image_case.encoder, _pictures()
    what = image_case.backend.id
    batched = encoder.encode_images(pictures)
    assert_same_rows(batched, _one_by_one(encoder.encode_images, pictures), f"{what} images")
    texts = encoder.encode_texts(TEXTS)
    assert_same_rows(texts, _one_by_one(encoder.encode_texts, TEXTS), f"{what} texts")


@pytest.mark.parametrize("method", ["encode_images", "encode_texts"])
def test_image_empty_input_gives_no_rows(image_case: ImageCase, method: str) -> None:
    encoder = image_case.encoder
    got = getattr(encoder, method)([])
    assert isinstance(got, np.ndarray) and got.shape == (0, encoder.dim)
    assert got.dtype == np.float32


def test_image_info_has_what_the_manifest_records(image_case: ImageCase) -> None:
    assert_manifest_info(image_case.encoder, image_case.backend, MANIFEST_IMAGE_KEYS)
    entry = model_entry(image_case.encoder.info)
    assert all(entry[key] is not None for key in MANIFEST_IMAGE_KEYS)


def test_input_edge_is_the_models_input_side(image_case: ImageCase) -> None:
    """Real backends say how small a photo may be decoded; a FAKE has no model input."""
    edge = input_edge(image_case.encoder)
    if image_case.backend.real:
        assert isinstance(edge, int) and edge > 0
        assert edge == image_case.encoder.preprocess.shortest_edge
    else:
        assert edge is None
