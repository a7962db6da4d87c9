"""ONNX Runtime encoders (CPU, fp32 or int8): the same vectors as the PyTorch ones, no torch.

Tokenization uses the ``tokenizers`` library and ``tokenizer.json``; images go through the shared
numpy/PIL ``ClipPreprocess``; pooling is numpy (all in ``onnx_graph.py``, shared with OpenVINO).
The ONNX files come from the model folder when it ships them (Hugging Face layout) or from
``mmretrieve models export`` (see ``onnx_export.py``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from mmretrieve.encoders.onnx_graph import (
    OnnxGraphClipEncoder,
    OnnxGraphTextEncoder,
    onnx_file_precision,
)
from mmretrieve.errors import ModelLoadError, require

ENV_THREADS = "MMRETRIEVE_ONNX_THREADS"
ENV_SPIN = "MMRETRIEVE_ONNX_SPIN"  # "1": let idle ONNX Runtime threads spin (bench comparisons)


def _session(path: Path, threads: int | None) -> Any:
    ort = require("onnxruntime", "onnx")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    threads = int(os.environ.get(ENV_THREADS, "0") or 0) or threads
    if threads:
        options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    if os.environ.get(ENV_SPIN, "0") != "1":
        # Idle ORT threads otherwise spin for a while after each run, taking the cores from
        # the store's threads and the next session (several sessions share a small CPU).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # corrupt file, unsupported opset or operator
        raise ModelLoadError(f"ONNX Runtime cannot load {path}: {exc}") from exc


class _OnnxRuntime:
    """The files in the precision asked for (fp32, int8), opened by ONNX Runtime."""

    runtime = "onnx"

    def file_precision(self, precision: str | None) -> str:
        return onnx_file_precision(precision)

    def open_session(self, path: Path, threads: int | None) -> Any:
        return _session(path, threads)


class OnnxTextEncoder(_OnnxRuntime, OnnxGraphTextEncoder):
    """A BGE / sentence-transformers text model on ONNX Runtime; float32, L2-normalised."""


class OnnxClipEncoder(_OnnxRuntime, OnnxGraphClipEncoder):
    """CLIP's image and text towers on ONNX Runtime; float32, L2-normalised."""
