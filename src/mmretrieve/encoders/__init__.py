"""Encoders: protocols, and loaders that pick a backend by runtime name.

Backends live in explicit registries keyed by runtime ("torch", "onnx", "openvino";
``registry.py``), never guessed from a model name. Registry values are "module:attribute"
strings imported on first use, so importing this package loads no torch, transformers or
onnxruntime. ``runtime="auto"`` is resolved by ``prepare.py`` on a CPU (measured once per model
and workload), else by ``runtime.choose`` (what is installed, which ONNX files exist, the device
and the workload).
"""

from __future__ import annotations

from mmretrieve.encoders.base import ImageTextEncoder, TextEncoder, decode_image, l2_normalize
from mmretrieve.encoders.registry import (
    IMAGE_RUNTIMES,
    TEXT_RUNTIMES,
    build_image_encoder,
    build_text_encoder,
)
from mmretrieve.encoders.resolve import ResolvedModel, resolve_model
from mmretrieve.encoders.runtime import Choice, choose, onnx_folder

__all__ = [
    "IMAGE_RUNTIMES",
    "TEXT_RUNTIMES",
    "ImageTextEncoder",
    "ResolvedModel",
    "TextEncoder",
    "choose_runtime",
    "decode_image",
    "l2_normalize",
    "load_image_encoder",
    "load_text_encoder",
    "resolve_model",
]


def choose_runtime(
    name_or_path: str,
    kind: str,
    runtime: str = "auto",
    precision: str | None = None,
    *,
    workload: str = "index",
    device: str | None = None,
) -> Choice:
    """The runtime and precision ``load_*_encoder`` will use for this model ("text"/"image")."""
    if runtime != "auto" and (precision or "auto") != "auto":
        return choose(kind, runtime, precision or "auto", workload=workload, device=device)
    try:
        resolved = resolve_model(name_or_path, kind)
    except Exception:  # let the loader raise its own clear error later
        return choose(
            kind,
            runtime,
            precision or "auto",
            workload=workload,
            device=device,
            onnx_ready=False,
            int8_ready=False,
        )

    def ready(p: str) -> bool:
        return onnx_folder(resolved.path, resolved.name, resolved.revision, kind, p) is not None

    return choose(
        kind,
        runtime,
        precision or "auto",
        workload=workload,
        device=device,
        onnx_ready=ready("fp32"),
        int8_ready=ready("int8"),
    )


def _resolve_runtime(
    name: str, kind: str, runtime: str, precision: str | None, workload: str, device: str | None
) -> tuple[str, str | None]:
    if runtime == "auto" and (precision or "auto") == "auto":
        from mmretrieve.encoders.prepare import gpu_present, prepared_choice

        if device == "cpu" or (device is None and not gpu_present()):
            prepared = prepared_choice(name, kind, workload)
            if prepared is not None:
                return prepared.runtime, prepared.precision
    if runtime == "auto":
        choice = choose_runtime(name, kind, runtime, precision, workload=workload, device=device)
        return choice.runtime, choice.precision
    return runtime, precision


def load_text_encoder(
    name_or_path: str,
    *,
    runtime: str = "torch",
    device: str | None = None,
    query_instruction: str | None = None,
    max_length: int | None = None,
    precision: str | None = None,
    workload: str = "index",
) -> TextEncoder:
    """Load a text encoder (e.g. BAAI/bge-small-en-v1.5 or a local folder) for ``runtime``
    ("torch", "onnx" or "auto").

    ``query_instruction``: None = the model's own default, "" = none.
    ``max_length``: None = the model's own limit; longer texts are truncated.
    ``precision``: None = fp32 (the reference); "auto", "bf16", "fp16" (CUDA), "int8" (onnx).
    ``workload``: what "auto" optimises for, and which weights torch bf16 keeps on CPU:
    "index" (batches) or "query" (one at a time).
    """
    runtime, precision = _resolve_runtime(
        name_or_path, "text", runtime, precision, workload, device
    )
    return build_text_encoder(
        name_or_path,
        runtime=runtime,
        device=device,
        query_instruction=query_instruction,
        max_length=max_length,
        precision=precision,
        workload=workload,
    )


def load_image_encoder(
    name_or_path: str,
    *,
    runtime: str = "torch",
    device: str | None = None,
    precision: str | None = None,
    workload: str = "index",
) -> ImageTextEncoder:
    """Load an image-text (CLIP) encoder, e.g. openai/clip-vit-base-patch32, for ``runtime``
    (options as for :func:`load_text_encoder`)."""
    runtime, precision = _resolve_runtime(
        name_or_path, "image", runtime, precision, workload, device
    )
    return build_image_encoder(
        name_or_path, runtime=runtime, device=device, precision=precision, workload=workload
    )
