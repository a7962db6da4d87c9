"""Fast queries without manual steps (encoders/prepare.py): the first query-time load of a model
with no ONNX files exports it into the export cache and times the CPU runtimes once; later loads
read the record. Tiny random models of the real architectures (not real weights)."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow
pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")
pytest.importorskip("torch")

from mmretrieve.encoders import (  # noqa: E402
    load_image_encoder,
    load_text_encoder,
    prepare,  # noqa: E402
)
from mmretrieve.encoders.resolve import resolve_model  # noqa: E402
from mmretrieve.encoders.runtime import export_dir_for  # noqa: E402


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MMRETRIEVE_ONNX_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(prepare.ENV_PREPARE, raising=False)
    return tmp_path / "cache"


def test_first_query_load_exports_and_records_the_fastest_runtime(
    tiny_text_model_dir, tiny_clip_model_dir, cache, monkeypatch
):
    messages: list[str] = []
    monkeypatch.setattr(prepare, "_stderr", messages.append)
    text = load_text_encoder(str(tiny_text_model_dir), runtime="auto", workload="query")
    clip = load_image_encoder(str(tiny_clip_model_dir), runtime="auto", workload="query")
    assert any("exporting" in m for m in messages) and any("timing" in m for m in messages)
    for model, kind, encoder in (
        (tiny_text_model_dir, "text", text),
        (tiny_clip_model_dir, "image", clip),
    ):
        resolved = resolve_model(str(model), kind)
        folder = export_dir_for(resolved.name, resolved.revision)
        assert (folder / "onnx").is_dir() and not list(folder.glob("onnx/*_int8.onnx"))
        record = json.loads((folder / prepare.RECORD).read_text())
        entry = record[prepare.machine_key()]
        timed = entry["median_ms"]
        assert "onnx fp32" in timed and all(v > 0 for v in timed.values())
        chosen = f"{entry['runtime']} {entry['precision']}"
        fit = [k for k in timed if entry["parity"][k] >= prepare.PARITY]
        assert chosen == min(fit, key=timed.__getitem__)
        assert encoder.info["runtime"] == entry["runtime"]
    assert not list(cache.glob(".*-*"))  # no export work folder left behind

    messages.clear()  # a second process (or load) reads the record: no export, no timing
    again = load_text_encoder(str(tiny_text_model_dir), runtime="auto", workload="query")
    assert messages == [] and again.info["runtime"] == text.info["runtime"]


def test_prepare_off_leaves_auto_to_what_is_there(tiny_text_model_dir, cache, monkeypatch):
    monkeypatch.setenv(prepare.ENV_PREPARE, "0")
    encoder = load_text_encoder(str(tiny_text_model_dir), runtime="auto", workload="query")
    assert encoder.info["runtime"] == "torch"  # no ONNX files and nothing exported
    assert not cache.exists() or not any(cache.iterdir())


def test_index_workload_records_the_fastest_batch_runtime(
    tiny_text_model_dir, tiny_clip_model_dir, cache, monkeypatch
):
    """Batches are timed apart from queries, PyTorch among the candidates, in their own record."""
    messages: list[str] = []
    monkeypatch.setattr(prepare, "_stderr", messages.append)
    text = load_text_encoder(str(tiny_text_model_dir), runtime="auto", workload="index")
    clip = load_image_encoder(str(tiny_clip_model_dir), runtime="auto", workload="index")
    assert any("batch (indexing)" in m for m in messages)
    for model, kind, encoder in (
        (tiny_text_model_dir, "text", text),
        (tiny_clip_model_dir, "image", clip),
    ):
        resolved = resolve_model(str(model), kind)
        folder = export_dir_for(resolved.name, resolved.revision)
        assert not (folder / prepare.RECORD).exists()  # the query record is not touched
        entry = json.loads((folder / prepare.RECORDS["index"]).read_text())[prepare.machine_key()]
        timed = entry["median_ms"]
        assert {"onnx fp32"} < set(timed) and any(k.startswith("torch ") for k in timed)
        fit = [k for k in timed if entry["parity"][k] >= prepare.PARITY]
        assert f"{entry['runtime']} {entry['precision']}" == min(fit, key=timed.__getitem__)
        assert encoder.info["runtime"] == entry["runtime"]
        assert "batches" in entry["reason"]
    messages.clear()
    again = load_text_encoder(str(tiny_text_model_dir), runtime="auto", workload="index")
    assert messages == [] and again.info["runtime"] == text.info["runtime"]
