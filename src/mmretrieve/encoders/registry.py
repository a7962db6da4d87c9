"""The backends by runtime name, and loading one whose runtime and precision are already chosen.

Backends live in explicit registries keyed by runtime ("torch", "onnx", "openvino"), never
guessed from a model name. Registry values are "module:attribute" strings imported on first use,
so importing this module loads no torch, transformers or onnxruntime. Choosing a runtime for
"auto" is the package's ``load_*_encoder`` (``encoders/__init__.py``); ``prepare.py`` loads each
candidate through here.
"""

from __future__ import annotations

import importlib
from typing import Any

from mmretrieve.encoders.base import ImageTextEncoder, TextEncoder
from mmretrieve.errors import UsageError

# runtime name -> "module:factory"; a factory takes (name_or_path, **options), options
# including device, precision and workload.
TEXT_RUNTIMES: dict[str, str] = {
    "torch": "mmretrieve.encoders.text:TorchTextEncoder",
    "onnx": "mmretrieve.encoders.onnx:OnnxTextEncoder",
    "openvino": "mmretrieve.encoders.openvino:OpenVinoTextEncoder",
}
IMAGE_RUNTIMES: dict[str, str] = {
    "torch": "mmretrieve.encoders.clip:TorchClipEncoder",
    "onnx": "mmretrieve.encoders.onnx:OnnxClipEncoder",
    "openvino": "mmretrieve.encoders.openvino:OpenVinoClipEncoder",
}


def factory(registry: dict[str, str], runtime: str, kind: str) -> Any:
    """The class ``registry`` names for ``runtime``; an unknown runtime is a usage error."""
    target = registry.get(runtime)
    if target is None:
        known = ", ".join(sorted(registry))
        raise UsageError(f"unknown runtime {runtime!r} for {kind} encoders; known: {known}")
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def build_text_encoder(
    name_or_path: str,
    *,
    runtime: str,
    device: str | None = None,
    query_instruction: str | None = None,
    max_length: int | None = None,
    precision: str | None = None,
    workload: str = "index",
) -> TextEncoder:
    """The text encoder of backend ``runtime`` (no "auto"); options as for
    ``encoders.load_text_encoder``."""
    make = factory(TEXT_RUNTIMES, runtime, "text")
    extra = {"precision": precision} if precision is not None else {}
    return make(
        name_or_path,
        device=device,
        query_instruction=query_instruction,
        max_length=max_length,
        workload=workload,
        **extra,
    )


def build_image_encoder(
    name_or_path: str,
    *,
    runtime: str,
    device: str | None = None,
    precision: str | None = None,
    workload: str = "index",
) -> ImageTextEncoder:
    """The image-text encoder of backend ``runtime`` (no "auto"); options as for
    ``encoders.load_image_encoder``."""
    make = factory(IMAGE_RUNTIMES, runtime, "image")
    extra = {"precision": precision} if precision is not None else {}
    return make(name_or_path, device=device, workload=workload, **extra)
