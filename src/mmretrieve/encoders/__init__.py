"""Encoders (DESIGN §4): protocols, and loaders that pick a backend by runtime name.

Backends live in explicit registries keyed by runtime ("torch", later "onnx"), never guessed
from a model name. Registry values are "module:attribute" strings imported on first use, so
importing this package loads no torch or transformers.
"""

from __future__ import annotations

import importlib
from typing import Any

from mmretrieve.encoders.base import ImageTextEncoder, TextEncoder, l2_normalize
from mmretrieve.encoders.resolve import ResolvedModel, resolve_model
from mmretrieve.errors import UsageError

__all__ = [
    "IMAGE_RUNTIMES",
    "TEXT_RUNTIMES",
    "ImageTextEncoder",
    "ResolvedModel",
    "TextEncoder",
    "l2_normalize",
    "load_image_encoder",
    "load_text_encoder",
    "resolve_model",
]

# runtime name -> "module:factory"; a factory takes (name_or_path, **options).
TEXT_RUNTIMES: dict[str, str] = {
    "torch": "mmretrieve.encoders.text:TorchTextEncoder",
}
IMAGE_RUNTIMES: dict[str, str] = {
    "torch": "mmretrieve.encoders.clip:TorchClipEncoder",
}


def _factory(registry: dict[str, str], runtime: str, kind: str) -> Any:
    target = registry.get(runtime)
    if target is None:
        known = ", ".join(sorted(registry))
        raise UsageError(f"unknown runtime {runtime!r} for {kind} encoders; known: {known}")
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def load_text_encoder(
    name_or_path: str,
    *,
    runtime: str = "torch",
    device: str | None = None,
    query_instruction: str | None = None,
    max_length: int | None = None,
) -> TextEncoder:
    """Load a text encoder (e.g. BAAI/bge-small-en-v1.5 or a local folder) for ``runtime``.

    ``query_instruction``: None = the model's own default, "" = none.
    ``max_length``: None = the model's own limit; longer texts are truncated.
    """
    factory = _factory(TEXT_RUNTIMES, runtime, "text")
    return factory(
        name_or_path, device=device, query_instruction=query_instruction, max_length=max_length
    )


def load_image_encoder(
    name_or_path: str, *, runtime: str = "torch", device: str | None = None
) -> ImageTextEncoder:
    """Load an image-text (CLIP) encoder, e.g. openai/clip-vit-base-patch32, for ``runtime``."""
    factory = _factory(IMAGE_RUNTIMES, runtime, "image")
    return factory(name_or_path, device=device)
