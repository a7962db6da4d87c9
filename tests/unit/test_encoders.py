"""The real PyTorch encoder classes on tiny random models (real architectures and tokenizers),
plus the real all-MiniLM-L6-v2 checked against sentence-transformers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mmretrieve.encoders import (
    IMAGE_RUNTIMES,
    TEXT_RUNTIMES,
    ImageTextEncoder,
    TextEncoder,
    load_image_encoder,
    load_text_encoder,
)
from mmretrieve.encoders.clip import MAX_ASPECT, ClipPreprocess
from mmretrieve.encoders.model_config import (
    BGE_QUERY_INSTRUCTION,
    KNOWN_TEXT_MODELS,
    read_pooling,
    read_query_instruction,
)
from mmretrieve.errors import ModelLoadError, UsageError

INFO_KEYS = {"name", "path", "revision", "dim", "runtime", "device", "dtype", "random"}
TEXT_INFO_KEYS = INFO_KEYS | {"pooling", "query_instruction", "max_length"}
CLIP_INFO_KEYS = INFO_KEYS | {"image_size", "context_length"}
TEXTS = [
    "Batman is a superhero who appears in American comic books.",
    "x",
    "Tomatoes are the edible berries of the plant Solanum lycopersicum. " * 8,
    "Gotham City",
    "",
]
LONG_TEXT = " ".join(f"word{i % 97}" for i in range(5000))


def _images() -> list:
    from PIL import Image

    rng = np.random.default_rng(0)
    sizes = [(300, 500), (500, 300), (224, 224), (40, 60), (1000, 30), (17, 17)]
    images = [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for h, w in sizes]
    images.append(images[0].convert("L"))  # grayscale
    images.append(images[1].convert("RGBA"))
    return images


def _assert_unit_rows(x: np.ndarray, dim: int) -> None:
    assert x.dtype == np.float32 and x.ndim == 2 and x.shape[1] == dim
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)


# --- fast: registry and config reading, no model loaded ---


def test_unknown_runtime_is_a_usage_error_listing_known_ones() -> None:
    with pytest.raises(UsageError, match="known: .*torch"):
        load_text_encoder("BAAI/bge-small-en-v1.5", runtime="tensorflow")
    with pytest.raises(UsageError, match="known: .*torch"):
        load_image_encoder("openai/clip-vit-base-patch32", runtime="jax")
    assert "torch" in TEXT_RUNTIMES and "torch" in IMAGE_RUNTIMES


def _write(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")


def test_pooling_and_instruction_resolution_order(tmp_path: Path) -> None:
    bge = KNOWN_TEXT_MODELS["BAAI/bge-small-en-v1.5"]
    plain = tmp_path / "plain"
    plain.mkdir()
    assert read_pooling(plain, None) == ["cls"]
    assert read_pooling(plain, bge) == ["cls"]
    assert read_query_instruction(plain, None, bge) == BGE_QUERY_INSTRUCTION
    assert read_query_instruction(plain, None, None) == ""
    assert read_query_instruction(plain, "", bge) == ""  # explicit "" disables it

    st = tmp_path / "st"
    modules = [("", "Transformer"), ("1_Pooling", "Pooling")]
    _write(
        st / "modules.json",
        [{"path": p, "type": f"sentence_transformers.models.{k}"} for p, k in modules],
    )
    _write(st / "1_Pooling" / "config.json", {"pooling_mode_mean_tokens": True})
    _write(st / "config_sentence_transformers.json", {"prompts": {"query": "q: ", "document": ""}})
    assert read_pooling(st, bge) == ["mean"]  # the folder's own config wins
    assert read_query_instruction(st, None, bge) == "q: "
    assert read_query_instruction(st, "mine: ", bge) == "mine: "
    _write(st / "config_sentence_transformers.json", {"prompts": {"query": ""}})
    assert read_query_instruction(st, None, bge) == BGE_QUERY_INSTRUCTION

    dense = tmp_path / "dense"
    _write(
        dense / "modules.json", [{"path": "2_Dense", "type": "sentence_transformers.models.Dense"}]
    )
    with pytest.raises(ModelLoadError, match="Dense"):
        read_pooling(dense, None)


def test_clip_preprocess_reads_preprocessor_config(tmp_path: Path) -> None:
    assert ClipPreprocess.from_folder(tmp_path) == ClipPreprocess()
    config = {
        "size": {"shortest_edge": 256},
        "crop_size": {"height": 240, "width": 240},
        "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.5, 0.5, 0.5],
    }
    _write(tmp_path / "preprocessor_config.json", config)
    pre = ClipPreprocess.from_folder(tmp_path)
    assert (pre.shortest_edge, pre.crop_height, pre.crop_width) == (256, 240, 240)
    assert pre(_images()[0]).shape == (3, 240, 240)


def test_clip_preprocess_equals_transformers_image_processor() -> None:
    transformers = pytest.importorskip("transformers")
    processor_cls = getattr(transformers, "CLIPImageProcessorPil", None)
    processor = (processor_cls or transformers.CLIPImageProcessor)()
    pre = ClipPreprocess()
    for image in _images():
        expected = processor(images=image, return_tensors="np")["pixel_values"][0]
        got = pre(image)
        assert got.shape == (3, 224, 224) and got.dtype == np.float32
        if max(image.size) > MAX_ASPECT * min(image.size):
            # Extreme aspect ratios are cropped before resizing (bounded memory): nearly equal.
            assert np.abs(got - expected).mean() < 0.01
        else:
            np.testing.assert_allclose(got, expected, atol=1e-5)


# --- slow: the real encoder classes on tiny random models ---


@pytest.fixture(scope="module")
def text_encoder(tiny_text_model_dir: Path):
    return load_text_encoder(str(tiny_text_model_dir), device="cpu")


@pytest.fixture(scope="module")
def clip_encoder(tiny_clip_model_dir: Path):
    return load_image_encoder(str(tiny_clip_model_dir), device="cpu")


@pytest.mark.slow
def test_text_encoder_loads_with_info(text_encoder, tiny_text_model_dir: Path) -> None:
    assert isinstance(text_encoder, TextEncoder)
    assert text_encoder.dim == 32
    info = text_encoder.info
    assert set(info) >= TEXT_INFO_KEYS
    assert info["random"] is True and info["runtime"] == "torch" and info["device"] == "cpu"
    assert info["pooling"] == "cls" and info["max_length"] == 512 and info["dim"] == 32
    assert info["query_instruction"] == BGE_QUERY_INSTRUCTION
    assert info["path"] == str(tiny_text_model_dir.resolve())


@pytest.mark.slow
def test_text_batching_equals_one_by_one(text_encoder) -> None:
    together = text_encoder.encode_documents(TEXTS)
    _assert_unit_rows(together, text_encoder.dim)
    alone = np.stack([text_encoder.encode_documents([t])[0] for t in TEXTS])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    text_encoder.batch_size = 2
    try:
        np.testing.assert_allclose(text_encoder.encode_documents(TEXTS), alone, atol=1e-5)
    finally:
        text_encoder.batch_size = 32
    assert not np.allclose(together[0], together[3])  # distinct texts, distinct vectors


@pytest.mark.slow
def test_query_instruction(text_encoder, tiny_text_model_dir: Path) -> None:
    query = text_encoder.encode_queries(["who is batman"])
    doc = text_encoder.encode_documents([BGE_QUERY_INSTRUCTION + "who is batman"])
    np.testing.assert_allclose(query, doc, atol=1e-5)
    plain = load_text_encoder(str(tiny_text_model_dir), device="cpu", query_instruction="")
    assert plain.info["query_instruction"] == ""
    np.testing.assert_allclose(
        plain.encode_queries(["who is batman"]),
        plain.encode_documents(["who is batman"]),
        atol=1e-6,
    )


@pytest.mark.slow
def test_text_truncation_and_counting(text_encoder, tiny_text_model_dir: Path) -> None:
    _assert_unit_rows(text_encoder.encode_documents([LONG_TEXT]), text_encoder.dim)
    assert text_encoder.count_tokens(["cat " * 5000, "hello world", ""]) == [5000, 2, 0]
    short = load_text_encoder(str(tiny_text_model_dir), device="cpu", max_length=16)
    assert short.info["max_length"] == 16
    # [CLS] + 14 tokens + [SEP] = 16: everything after the 14th "cat" is dropped.
    np.testing.assert_allclose(
        short.encode_documents(["cat " * 500]), short.encode_documents(["cat " * 14]), atol=1e-6
    )


@pytest.mark.slow
def test_text_empty_input(text_encoder) -> None:
    for encode in (text_encoder.encode_documents, text_encoder.encode_queries):
        out = encode([])
        assert out.shape == (0, text_encoder.dim) and out.dtype == np.float32
    assert text_encoder.count_tokens([]) == []


@pytest.mark.slow
def test_text_encoder_matches_sentence_transformers_on_random_model(
    text_encoder, tiny_text_model_dir: Path
) -> None:
    st = pytest.importorskip("sentence_transformers")
    model = st.SentenceTransformer(str(tiny_text_model_dir), device="cpu")
    docs = model.encode(TEXTS, normalize_embeddings=True)
    np.testing.assert_allclose(text_encoder.encode_documents(TEXTS), docs, atol=1e-5)
    queries = model.encode_query(TEXTS[:2], normalize_embeddings=True)
    np.testing.assert_allclose(text_encoder.encode_queries(TEXTS[:2]), queries, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["text", "image"])
def test_cpu_bf16_weights_per_workload(kind, tiny_text_model_dir, tiny_clip_model_dir) -> None:
    """CPU bf16: "index" holds bfloat16 weights only; "query" runs batches under
    LOWP_MIN_ROWS on float32 weights and casts a bfloat16 copy once, on the first larger batch."""
    import torch

    from mmretrieve.encoders.torch_utils import LOWP_MIN_ROWS

    if kind == "text":
        load, folder = load_text_encoder, tiny_text_model_dir
        run = lambda enc, n: enc.encode_documents(TEXTS[:1] * n)  # noqa: E731
    else:
        load, folder = load_image_encoder, tiny_clip_model_dir
        run = lambda enc, n: enc.encode_images(_images()[:1] * n)  # noqa: E731
    ref = run(load(str(folder), device="cpu"), LOWP_MIN_ROWS)
    index = load(str(folder), device="cpu", precision="bf16", workload="index")
    assert index._weights.fp32 is None and index._weights.bf16.dtype == torch.bfloat16
    assert index.info["dtype"] == "bfloat16"
    for rows in (1, LOWP_MIN_ROWS):
        assert ((run(index, rows) * ref[:rows]).sum(axis=1) > 0.99).all()
    query = load(str(folder), device="cpu", precision="bf16", workload="query")
    np.testing.assert_allclose(run(query, 1), ref[:1], atol=1e-6)  # float32, as before
    assert query._weights.bf16 is None
    got = run(query, LOWP_MIN_ROWS)
    assert query._weights.bf16.dtype == torch.bfloat16
    assert query._weights.fp32.dtype == torch.float32
    assert ((got * ref).sum(axis=1) > 0.99).all()


@pytest.mark.slow
def test_clip_encoder_loads_with_info(clip_encoder) -> None:
    assert isinstance(clip_encoder, ImageTextEncoder)
    assert clip_encoder.dim == 32
    info = clip_encoder.info
    assert set(info) >= CLIP_INFO_KEYS
    assert info["random"] is True and info["context_length"] == 77 and info["image_size"] == 224


@pytest.mark.slow
def test_clip_images_of_any_size_and_mode(clip_encoder) -> None:
    images = _images()
    together = clip_encoder.encode_images(images)
    assert together.shape == (len(images), clip_encoder.dim)
    _assert_unit_rows(together, clip_encoder.dim)
    alone = np.stack([clip_encoder.encode_images([im])[0] for im in images])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    clip_encoder.batch_size = 3
    try:
        np.testing.assert_allclose(clip_encoder.encode_images(images), alone, atol=1e-5)
    finally:
        clip_encoder.batch_size = 32


@pytest.mark.slow
def test_clip_texts_batching_and_truncation(clip_encoder) -> None:
    together = clip_encoder.encode_texts(TEXTS)
    _assert_unit_rows(together, clip_encoder.dim)
    alone = np.stack([clip_encoder.encode_texts([t])[0] for t in TEXTS])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    _assert_unit_rows(clip_encoder.encode_texts([LONG_TEXT]), clip_encoder.dim)
    # <|startoftext|> + 75 tokens + <|endoftext|> = 77: the rest is dropped.
    long, first_77 = clip_encoder.encode_texts(["cat " * 200, "cat " * 75])
    np.testing.assert_allclose(long, first_77, atol=1e-6)


@pytest.mark.slow
def test_clip_empty_inputs(clip_encoder) -> None:
    for out in (clip_encoder.encode_images([]), clip_encoder.encode_texts([])):
        assert out.shape == (0, clip_encoder.dim) and out.dtype == np.float32


@pytest.mark.slow
def test_clip_matches_transformers_pipeline(clip_encoder, tiny_clip_model_dir: Path) -> None:
    import torch
    import transformers

    processor = getattr(transformers, "CLIPImageProcessorPil", transformers.CLIPImageProcessor)()
    tokenizer = transformers.CLIPTokenizerFast.from_pretrained(str(tiny_clip_model_dir))
    assert tokenizer("a photo of a cat")["input_ids"] == [49406, 320, 1125, 539, 320, 2368, 49407]
    model = transformers.CLIPModel.from_pretrained(str(tiny_clip_model_dir)).eval()
    images = _images()[:3]
    with torch.inference_mode():
        pixels = processor(images=images, return_tensors="pt")["pixel_values"]
        img = model.get_image_features(pixel_values=pixels)
        tokens = tokenizer(["a photo of a cat", "a dog"], padding=True, return_tensors="pt")
        txt = model.get_text_features(**tokens)
    img = getattr(img, "pooler_output", img)
    txt = getattr(txt, "pooler_output", txt)
    expected_img = torch.nn.functional.normalize(img, dim=-1).numpy()
    expected_txt = torch.nn.functional.normalize(txt, dim=-1).numpy()
    np.testing.assert_allclose(clip_encoder.encode_images(images), expected_img, atol=1e-5)
    got_txt = clip_encoder.encode_texts(["a photo of a cat", "a dog"])
    np.testing.assert_allclose(got_txt, expected_txt, atol=1e-5)


# --- slow + real weights: all-MiniLM-L6-v2 ---


@pytest.fixture(scope="module")
def minilm(minilm_dir: Path):
    return load_text_encoder(str(minilm_dir), device="cpu")


@pytest.mark.slow
@pytest.mark.realmodel
def test_minilm_reads_its_sentence_transformers_config(minilm) -> None:
    assert minilm.dim == 384
    assert minilm.info["pooling"] == "mean"
    assert minilm.info["query_instruction"] == ""
    assert minilm.info["max_length"] == 256
    assert minilm.info["random"] is False


@pytest.mark.slow
@pytest.mark.realmodel
def test_minilm_matches_sentence_transformers(minilm, minilm_dir: Path) -> None:
    st = pytest.importorskip("sentence_transformers")
    texts = [*TEXTS, LONG_TEXT]
    expected = st.SentenceTransformer(str(minilm_dir), device="cpu").encode(
        texts, normalize_embeddings=True
    )
    got = minilm.encode_documents(texts)
    cosines = (got * expected).sum(axis=1)
    assert np.all(cosines > 1 - 1e-4), cosines
    np.testing.assert_allclose(minilm.encode_queries(texts), got, atol=1e-6)


@pytest.mark.slow
@pytest.mark.realmodel
def test_minilm_ranks_batman_above_tomatoes(minilm) -> None:
    query = minilm.encode_queries(["Who is Bruce Wayne?"])[0]
    batman, tomatoes = minilm.encode_documents(
        [
            "Batman is the secret identity of Bruce Wayne, a billionaire from Gotham City.",
            "Tomatoes are red fruits that grow on vines in warm gardens.",
        ]
    )
    assert query @ batman > query @ tomatoes + 0.1
