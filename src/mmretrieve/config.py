"""Settings read once at the edge (CLI options, environment) into a frozen object."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

DEFAULT_TEXT_MODEL = "BAAI/bge-small-en-v1.5"
DEFAULT_IMAGE_MODEL = "openai/clip-vit-base-patch32"
NO_MODEL = "none"

ENV_TEXT_MODEL = "MMRETRIEVE_TEXT_MODEL"
ENV_IMAGE_MODEL = "MMRETRIEVE_IMAGE_MODEL"
ENV_INDEX = "MMRETRIEVE_INDEX"
ENV_DEVICE = "MMRETRIEVE_DEVICE"
ENV_RUNTIME = "MMRETRIEVE_RUNTIME"
ENV_PRECISION = "MMRETRIEVE_PRECISION"


@dataclass(frozen=True, slots=True)
class Settings:
    """How an index is built and searched. Nothing below the edge mutates it."""

    text_model: str = DEFAULT_TEXT_MODEL
    image_model: str | None = DEFAULT_IMAGE_MODEL
    device: str | None = None  # None: CUDA when present, else CPU
    # "auto" | "torch" | "onnx", and "auto" | "fp32" | "bf16" | "fp16" | "int8": "auto" picks by
    # measurement (encoders/runtime.py, docs/BENCHMARKS.md).
    runtime: str = "auto"
    precision: str = "auto"
    chunk_tokens: int = 256
    chunk_overlap: int = 32
    text_batch_size: int = 32
    image_batch_size: int = 16
    write_batch_size: int = 512
    max_image_pixels: int = 64_000_000
    max_image_bytes: int = 50_000_000
    image_min_side: int = 32
    query_instruction: str | None = None  # None: the model's own default
    # Also embed every passage with CLIP's text tower (the image->passage:clip_text route). A
    # third of the encoder time when indexing; None: the index's own choice (off for a new one).
    clip_text_view: bool | None = None

    def with_(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]


def _image_model_from(value: str | None) -> str | None:
    if value is None:
        return None
    return None if value.strip().lower() in {NO_MODEL, ""} else value


def settings_from_env(**overrides: object) -> Settings:
    """Defaults, then environment variables, then explicit ``overrides`` (``None`` = not given)."""
    base = Settings(
        text_model=os.environ.get(ENV_TEXT_MODEL, DEFAULT_TEXT_MODEL),
        image_model=_image_model_from(os.environ.get(ENV_IMAGE_MODEL, DEFAULT_IMAGE_MODEL)),
        device=os.environ.get(ENV_DEVICE) or None,
        runtime=os.environ.get(ENV_RUNTIME) or "auto",
        precision=os.environ.get(ENV_PRECISION) or "auto",
    )
    given = {k: v for k, v in overrides.items() if v is not None}
    if "image_model" in given:
        given["image_model"] = _image_model_from(str(given["image_model"]))
    return base.with_(**given)
