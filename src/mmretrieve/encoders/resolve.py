"""Find a model's folder: a local directory as is, else the Hugging Face cache, offline.

Nothing here downloads (see ``pull.py``) and nothing imports torch.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from mmretrieve.errors import ModelLoadError, ModelNotFoundError

# Files whose bytes change when the weights change; their sizes go into a folder's fingerprint.
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".onnx", ".pt", ".pth", ".h5", ".msgpack")

_ROLE_FLAGS = {"text": "--text-model", "image": "--image-model"}


@dataclass(frozen=True, slots=True)
class ResolvedModel:
    """Where a model lives. ``revision`` identifies the exact files (recorded in manifests)."""

    name: str  # what the caller asked for (repo id or the folder path as given)
    path: Path  # folder holding config.json
    revision: str  # Hub commit hash, or a short sha256 fingerprint of a local folder
    from_cache: bool  # True when found in the Hugging Face cache


def hf_cache_dir() -> Path | None:
    """The hub cache the user asked for through the environment, read at call time.

    ``huggingface_hub`` reads these variables once at import; reading them here keeps a change
    made later in the process (tests, a CLI flag that sets HF_HOME) effective.
    """
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        value = os.environ.get(var)
        if value:
            return Path(value).expanduser()
    home = os.environ.get("HF_HOME")
    if home:
        return Path(home).expanduser() / "hub"
    return None  # huggingface_hub's own default (~/.cache/huggingface/hub)


def folder_fingerprint(path: Path) -> str:
    """Short sha256 of config.json bytes plus the sorted (file name, size) of weight files."""
    digest = hashlib.sha256((path / "config.json").read_bytes())
    weights = sorted(
        (p.relative_to(path).as_posix(), p.stat().st_size)
        for p in path.rglob("*")
        if p.is_file() and p.suffix in WEIGHT_SUFFIXES
    )
    digest.update(json.dumps(weights).encode("utf-8"))
    return digest.hexdigest()[:12]


def is_random_model(path: Path) -> bool:
    """True when config.json marks the weights as random (written by tools/random_models.py)."""
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and config.get("mmretrieve_random_weights") is True


def _check_folder(path: Path, name: str, role: str, *, cached: bool = False) -> None:
    if (path / "config.json").is_file():
        return
    if cached:
        raise ModelLoadError(
            f"{role} model '{name}' is in the Hugging Face cache ({path}) but has no "
            "config.json (an incomplete download?). Run `mmretrieve models pull "
            f"{name}` again on a machine with internet."
        )
    raise ModelLoadError(
        f"{role} model folder '{name}' has no config.json, so it is not a Hugging Face "
        "model folder. Pass the folder that contains config.json (and the tokenizer and "
        "weight files)."
    )


def _not_found(name: str, role: str) -> ModelNotFoundError:
    flag = _ROLE_FLAGS.get(role, f"--{role}-model")
    return ModelNotFoundError(
        f"{role} model '{name}' is not a local folder and is not in the Hugging Face cache "
        f"(offline). On a machine with internet run `mmretrieve models pull {name}`, copy the "
        f"cache (HF_HOME) here, or pass a local folder with {flag} PATH."
    )


def resolve_model(name_or_path: str, role: str) -> ResolvedModel:
    """Resolve ``name_or_path`` for ``role`` ("text" or "image") without touching the network.

    Raises :class:`ModelNotFoundError` when it is neither a folder nor cached, and
    :class:`ModelLoadError` when the folder found has no config.json.
    """
    local = Path(name_or_path).expanduser()
    if local.is_dir():
        _check_folder(local, name_or_path, role)
        return ResolvedModel(name_or_path, local.resolve(), folder_fingerprint(local), False)
    if local.exists():  # a file, not a folder
        raise ModelLoadError(
            f"{role} model '{name_or_path}' is a file; pass the model folder instead."
        )

    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    try:
        snapshot = Path(
            snapshot_download(name_or_path, local_files_only=True, cache_dir=hf_cache_dir())
        )
    except (LocalEntryNotFoundError, HFValidationError, FileNotFoundError, ValueError) as exc:
        raise _not_found(name_or_path, role) from exc
    _check_folder(snapshot, name_or_path, role, cached=True)
    return ResolvedModel(name_or_path, snapshot, snapshot.name, True)
