"""Download models into the Hugging Face cache (the only place mmretrieve touches the network).

Only the files the encoders load are fetched: configs, tokenizer files and safetensors weights
(PyTorch ``.bin`` only when a repository has no safetensors), not the duplicate ONNX, TF,
Flax or OpenVINO copies many repositories carry.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from mmretrieve.encoders.resolve import hf_cache_dir
from mmretrieve.errors import ModelNotFoundError

ALLOW_PATTERNS = [
    "*.json",
    "*.txt",
    "*.model",  # sentencepiece tokenizers
    "*.safetensors",
    "1_Pooling/*",
]
IGNORE_PATTERNS = [
    "onnx/*",
    "openvino/*",
    "coreml/*",
    "*.onnx",
    "*.h5",
    "*.msgpack",
    "*.ot",
    "*.tflite",
]


def _patterns_for(repo_id: str) -> list[str]:
    """ALLOW_PATTERNS, plus ``*.bin`` when the repository has no top-level safetensors."""
    from huggingface_hub import HfApi

    files = HfApi().list_repo_files(repo_id)
    if any(f.endswith(".safetensors") and "/" not in f for f in files):
        return list(ALLOW_PATTERNS)
    return [*ALLOW_PATTERNS, "*.bin"]


def pull_one(name: str) -> Path:
    """Download one repository into the cache and return its snapshot folder."""
    from huggingface_hub import snapshot_download

    cache_dir = hf_cache_dir()
    try:
        patterns = _patterns_for(name)
        path = snapshot_download(
            name,
            cache_dir=cache_dir,
            allow_patterns=patterns,
            ignore_patterns=IGNORE_PATTERNS,
        )
    except Exception as exc:  # network, offline mode, unknown or gated repository, disk
        raise ModelNotFoundError(
            f"could not download model '{name}' from the Hugging Face Hub: "
            f"{type(exc).__name__}: {str(exc).rstrip('.')}. Check the name, the network "
            "connection and HF_HUB_OFFLINE (it must not be 1). On a machine without internet, "
            "copy the Hugging Face cache (HF_HOME) from a connected machine or pass a local "
            "model folder."
        ) from exc
    return Path(path)


def pull_models(names: Sequence[str], progress: bool = True) -> list[Path]:
    """Download each model in ``names`` to the Hugging Face cache; return the snapshot folders.

    A name that is an existing local folder is returned as is.
    """
    from huggingface_hub.utils import (
        are_progress_bars_disabled,
        disable_progress_bars,
        enable_progress_bars,
    )

    was_disabled = are_progress_bars_disabled()
    if not progress:
        disable_progress_bars()
    try:
        return [Path(n) if Path(n).is_dir() else pull_one(n) for n in names]
    finally:
        if not progress and not was_disabled:
            enable_progress_bars()
