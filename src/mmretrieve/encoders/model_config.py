"""What a text model's folder says about itself, read without torch: its JSON files, how it pools,
which query instruction it takes, and the defaults of known models whose folder does not say.

Shared by every text backend (PyTorch, ONNX Runtime, OpenVINO), so they read a folder alike.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmretrieve.encoders.resolve import ResolvedModel
from mmretrieve.errors import ModelLoadError

BGE_QUERY_INSTRUCTION = "Represent this sentence for searching relevant passages: "


@dataclass(frozen=True, slots=True)
class KnownTextModel:
    """Defaults for a model whose folder does not say how to pool or prompt."""

    pooling: str
    query_instruction: str = ""


# Keyed by Hub repo id; looked up by the name asked for, else by config.json "_name_or_path".
KNOWN_TEXT_MODELS: dict[str, KnownTextModel] = {
    "BAAI/bge-small-en-v1.5": KnownTextModel("cls", BGE_QUERY_INSTRUCTION),
    "BAAI/bge-base-en-v1.5": KnownTextModel("cls", BGE_QUERY_INSTRUCTION),
    "BAAI/bge-large-en-v1.5": KnownTextModel("cls", BGE_QUERY_INSTRUCTION),
}

# sentence-transformers Pooling flags, in the order it concatenates them.
_POOLING_FLAGS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len",
    "pooling_mode_lasttoken": "lasttoken",
}
_ST_MODULES_OK = ("Transformer", "Pooling", "Normalize")


def read_json(path: Path) -> dict[str, Any] | list[Any] | None:
    """The JSON in ``path``; None when there is no such file. An unreadable one is a
    :class:`ModelLoadError`."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot read {path}: {exc}") from exc


def read_config(path: Path) -> dict[str, Any]:
    """The folder's config.json, which must be a JSON object."""
    config = read_json(path / "config.json")
    if not isinstance(config, dict):
        raise ModelLoadError(f"{path / 'config.json'} is not a JSON object.")
    return config


def known_text_model(resolved: ResolvedModel, config: dict[str, Any]) -> KnownTextModel | None:
    """The known model's defaults, by the name asked for, else by config.json "_name_or_path"."""
    return KNOWN_TEXT_MODELS.get(resolved.name) or KNOWN_TEXT_MODELS.get(
        str(config.get("_name_or_path", ""))
    )


def read_pooling(path: Path, known: KnownTextModel | None) -> list[str]:
    """Pooling modes from a sentence-transformers folder, else the known model's, else CLS."""
    modules = read_json(path / "modules.json")
    if not isinstance(modules, list):
        return [known.pooling] if known else ["cls"]
    pooling_cfg: dict[str, Any] | None = None
    for module in modules:
        kind = str(module.get("type", "")).rsplit(".", 1)[-1]
        if kind not in _ST_MODULES_OK:
            raise ModelLoadError(
                f"model folder {path} has a sentence-transformers module of type {kind!r} "
                f"({module.get('path')}); only {', '.join(_ST_MODULES_OK)} are supported."
            )
        if kind == "Pooling":
            cfg = read_json(path / str(module.get("path", "")) / "config.json")
            pooling_cfg = cfg if isinstance(cfg, dict) else None
    if pooling_cfg is None:
        return [known.pooling] if known else ["cls"]
    if pooling_cfg.get("pooling_mode_weightedmean_tokens"):
        raise ModelLoadError(f"model folder {path}: weighted-mean pooling is not supported.")
    modes = [mode for flag, mode in _POOLING_FLAGS.items() if pooling_cfg.get(flag)]
    if not modes:
        raise ModelLoadError(f"model folder {path}: its Pooling config enables no pooling mode.")
    return modes


def read_query_instruction(path: Path, explicit: str | None, known: KnownTextModel | None) -> str:
    """Explicit argument > config_sentence_transformers.json prompts["query"] > known > ""."""
    if explicit is not None:
        return explicit
    st_config = read_json(path / "config_sentence_transformers.json")
    if isinstance(st_config, dict):
        prompts = st_config.get("prompts")
        if isinstance(prompts, dict) and prompts.get("query"):
            return str(prompts["query"])
    return known.query_instruction if known else ""


def st_max_seq_length(path: Path) -> int | None:
    """sentence_bert_config.json's max_seq_length, when the folder has one."""
    st = read_json(path / "sentence_bert_config.json")
    if isinstance(st, dict) and st.get("max_seq_length"):
        return int(st["max_seq_length"])
    return None
