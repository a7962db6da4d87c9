"""Runtime and precision selection ("auto"), ONNX file lookup, the torch precision rules, the
decode size of the ingestion pipeline, and the ANN switch of the Lance store. No model is loaded
except where marked slow."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mmretrieve.documents.images import decode_side
from mmretrieve.encoders import load_image_encoder, load_text_encoder, runtime
from mmretrieve.encoders.runtime import (
    choose,
    export_dir_for,
    onnx_file,
    onnx_folder,
)
from mmretrieve.errors import ModelNotFoundError, UsageError


@pytest.fixture
def machine(monkeypatch: pytest.MonkeyPatch):
    """Pretend which runtimes are installed and whether the CPU has native bf16."""

    def set_(torch: bool = True, ort: bool = True, bf16: bool = True) -> None:
        present = {"torch": torch, "transformers": torch, "onnxruntime": ort}
        monkeypatch.setattr(runtime, "has_module", lambda name: present.get(name, True))
        monkeypatch.setattr(runtime, "cpu_supports_bf16", lambda: bf16)

    return set_


def test_explicit_choices_pass_through(machine) -> None:
    machine(torch=True, ort=True, bf16=False)
    assert choose("text", "torch", "fp32").runtime == "torch"
    c = choose("image", "onnx", "fp32", workload="query")
    assert (c.runtime, c.precision, c.reason) == ("onnx", "fp32", "asked for")


def test_auto_follows_the_measurements(machine) -> None:
    machine(torch=True, ort=True, bf16=True)
    index, query = choose("text", workload="index"), choose("text", workload="query")
    assert (index.runtime, index.precision) == ("torch", "auto")  # torch resolves bf16 itself
    assert "native bf16" in index.reason
    assert (query.runtime, query.precision) == ("onnx", "fp32")  # never int8 unasked
    assert choose("image", workload="query", device="cuda").runtime == "torch"
    machine(torch=True, ort=True, bf16=False)  # no native bf16: ONNX fp32 wins batches too
    assert (choose("image", workload="index").runtime, choose("image").precision) == (
        "onnx",
        "fp32",
    )
    assert choose("image", workload="index", onnx_ready=False).runtime == "torch"
    # a precision only one runtime has decides the runtime
    assert choose("text", precision="int8", workload="index").runtime == "onnx"
    assert choose("text", precision="bf16", workload="query").runtime == "torch"
    assert choose("text", precision="int8", onnx_ready=True, int8_ready=False).runtime == "onnx"


def test_auto_falls_back_to_what_is_there(machine) -> None:
    machine(torch=False, ort=True)
    assert choose("text", workload="index").runtime == "onnx"
    machine(torch=True, ort=False)
    c = choose("text", workload="query")
    assert c.runtime == "torch" and "onnxruntime" in c.reason
    machine(torch=True, ort=True)
    assert choose("text", workload="query", onnx_ready=False, int8_ready=False).runtime == "torch"


def test_bad_names_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="known: auto, torch, onnx"):
        choose("text", "tensorrt")
    with pytest.raises(UsageError, match="precision"):
        choose("text", "torch", "int4")
    with pytest.raises(UsageError, match="workload"):
        choose("text", workload="training")


def test_torch_precision_rules() -> None:
    pytest.importorskip("torch")
    from mmretrieve.encoders.torch_utils import resolve_precision

    assert resolve_precision(None, "cpu") == "fp32"  # the reference stays the default
    assert resolve_precision("auto", "cuda:0") == "fp16"
    assert resolve_precision("auto", "cpu") in {"bf16", "fp32"}
    with pytest.raises(UsageError, match="int8 needs --runtime onnx"):
        resolve_precision("int8", "cpu")
    with pytest.raises(UsageError, match="CUDA"):
        resolve_precision("fp16", "cpu")


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"onnx")
    return path


def test_onnx_files_follow_hugging_face_names(tmp_path: Path) -> None:
    assert onnx_file(tmp_path, "text", "fp32") is None
    root = _touch(tmp_path / "model.onnx")
    assert onnx_file(tmp_path, "text", "fp32") == root
    sub = _touch(tmp_path / "onnx" / "model.onnx")
    assert onnx_file(tmp_path, "text", "fp32") == sub  # onnx/ first
    assert onnx_file(tmp_path, "text", "int8") is None
    quantized = _touch(tmp_path / "onnx" / "model_quantized.onnx")  # transformers.js name
    assert onnx_file(tmp_path, "text", "int8") == quantized
    ours = _touch(tmp_path / "onnx" / "model_int8.onnx")
    assert onnx_file(tmp_path, "text", "int8") == ours
    _touch(tmp_path / "onnx" / "vision_model.onnx")
    assert onnx_folder(tmp_path, "m", "r", "image", "fp32") is None  # text tower missing
    _touch(tmp_path / "onnx" / "text_model.onnx")
    assert onnx_folder(tmp_path, "m", "r", "image", "fp32") == tmp_path


def test_export_cache_is_keyed_by_name_and_revision(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MMRETRIEVE_ONNX_CACHE", str(tmp_path))
    folder = export_dir_for("BAAI/bge-small-en-v1.5", "5c38ec7c405ec4b44b94cc5a9bb96e735b38267a")
    assert folder == tmp_path / "BAAI--bge-small-en-v1.5-5c38ec7c405e"
    model = tmp_path / "model"
    model.mkdir()
    assert onnx_folder(model, "BAAI/bge-small-en-v1.5", "5c38ec7c405e", "text", "fp32") is None
    _touch(folder / "onnx" / "model.onnx")
    assert onnx_folder(model, "BAAI/bge-small-en-v1.5", "5c38ec7c405e", "text", "fp32") == folder


def test_onnx_runtime_without_files_says_how_to_export(tmp_path, monkeypatch) -> None:
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("MMRETRIEVE_ONNX_CACHE", str(tmp_path / "cache"))
    model = tmp_path / "plain"
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "bert", "hidden_size": 8}')
    with pytest.raises(ModelNotFoundError, match="mmretrieve models export"):
        load_text_encoder(str(model), runtime="onnx")
    with pytest.raises(ModelNotFoundError, match="--image-model"):
        load_image_encoder(str(model), runtime="onnx", precision="fp32")
    with pytest.raises(UsageError, match="CPU only"):
        load_text_encoder(str(model), runtime="onnx", device="cuda")


def test_decode_side_keeps_the_model_input_edge() -> None:
    assert decode_side(1000, 700, None) == 1024  # no hint: the old default
    side = decode_side(1000, 700, 224)
    assert side == 320  # longest side, so that the shortest becomes 224
    assert decode_side(700, 1000, 224) == 320
    assert decode_side(300, 500, 224) == 1024  # draft cannot halve it: decoded as queries are
    assert decode_side(4000, 500, 224) == 1024  # too wide for draft mode to help
    assert decode_side(4000, 3000, 224) == 299


def test_lance_builds_ann_index_past_the_threshold(tmp_path: Path) -> None:
    from mmretrieve.store import table_schemas
    from mmretrieve.store.lance import LanceStore

    store = LanceStore(tmp_path / "db")
    store.ensure_tables(table_schemas(32, None, clip_text_view=False))
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((600, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    rows = [
        {
            "id": f"p{i}",
            "article_id": f"a{i % 7}",
            "text": f"passage {i}",
            "position": 0,
            "section": "",
            "content_hash": "h",
            "bge": vectors[i],
        }
        for i in range(600)
    ]
    store.upsert("passages", rows)
    store.optimize()
    assert store._vector_indexes("passages") == set()  # below the threshold: exact search
    exact = [h.id for h in store.search("passages", "bge", vectors[3], 10)]
    store.ann_min_rows = 500
    store.optimize()
    assert store._vector_indexes("passages") == {"bge"}
    approx = [h.id for h in store.search("passages", "bge", vectors[3], 10)]
    assert approx[0] == "p3" and len(set(approx) & set(exact)) >= 8
    filtered = store.search("passages", "bge", vectors[3], 5, filter={"article_id": "a3"})
    assert filtered[0].id == "p3" and all(h.row["article_id"] == "a3" for h in filtered)
