"""PyTorch text encoder: a transformers AutoModel plus the pooling its folder asks for.

Works with any sentence-transformers model folder (Transformer + Pooling [+ Normalize]) and with
plain transformers folders of the known models below (BGE: CLS pooling + query instruction).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmretrieve.encoders.base import TextEncoderMethods
from mmretrieve.encoders.resolve import ResolvedModel, is_random_model, resolve_model
from mmretrieve.encoders.runtime import DTYPE_NAMES, cpu_supports_bf16
from mmretrieve.errors import ModelLoadError, UsageError, require

BGE_QUERY_INSTRUCTION = "Represent this sentence for searching relevant passages: "
# On CPU, batches smaller than this keep float32 weights when bf16 is set, so single queries
# run as in fp32 (docs/BENCHMARKS.md); except with workload="index" (see ModelWeights).
LOWP_MIN_ROWS = 4


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


def _read_json(path: Path) -> dict[str, Any] | list[Any] | None:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot read {path}: {exc}") from exc


@contextmanager
def quiet_loading() -> Iterator[None]:
    """Hide transformers' per-load "Loading weights" bar; restore the caller's setting after."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def resolve_precision(precision: str | None, device: str) -> str:
    """The torch precision to run in: "auto" = fp16 on CUDA, bf16 on CPUs with native bf16
    (AVX512-BF16 / AMX), else fp32. ``None`` = fp32, the reference."""
    import torch

    wanted = (precision or "fp32").lower()
    if wanted == "auto":
        if device.startswith("cuda"):
            return "fp16"
        mkldnn = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
        if device == "cpu" and cpu_supports_bf16() and (mkldnn is None or mkldnn()):
            return "bf16"
        return "fp32"
    if wanted not in ("fp32", "bf16", "fp16"):
        raise UsageError(
            f"precision {wanted!r} is not available with the torch runtime (fp32, bf16, fp16, "
            "auto); int8 needs --runtime onnx"
        )
    if wanted == "fp16" and not device.startswith("cuda"):
        raise UsageError("fp16 needs a CUDA device; on CPU use bf16 or fp32")
    return wanted


def lowp_context(device: str, precision: str, rows: int) -> Any:
    """Autocast to ``precision`` for a batch of ``rows``; float32 (no-op) for fp32 and for
    batches under LOWP_MIN_ROWS on CPU. Weights stay float32, results are cast back."""
    import torch

    if precision == "fp32":
        return nullcontext()
    kind = "cuda" if device.startswith("cuda") else "cpu"
    if kind == "cpu" and rows < LOWP_MIN_ROWS:
        return nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=kind, dtype=dtype)


class ModelWeights:
    """The model a batch runs on and the context around it (``for_rows``).

    CPU bf16: batches of LOWP_MIN_ROWS rows or more run on bfloat16 weights cast once, not under
    autocast, which re-casts every weight on every forward (on a 2-core AMX CPU, batches of
    32-64: 4-14 % slower when the machine is quiet, 20-60 % under load; cosine to fp32 >= 0.9999).
    ``workload="index"`` casts the weights at load and keeps no float32 copy (half the memory),
    so smaller batches run bfloat16 too; "query" keeps float32 for smaller batches (single
    queries, as before) and makes the bfloat16 copy on the first larger batch.
    Otherwise (fp32; CUDA autocast) one float32 model with ``lowp_context``.
    """

    def __init__(self, model: Any, device: str, precision: str, workload: str) -> None:
        import torch

        self.device, self.precision = device, precision
        self.cast_once = precision == "bf16" and not device.startswith("cuda")
        self.fp32: Any = model
        self.bf16: Any = None
        if self.cast_once and workload == "index":
            self.fp32, self.bf16 = None, model.to(torch.bfloat16)

    def for_rows(self, rows: int) -> tuple[Any, Any]:
        """(model, context manager) for a batch of ``rows``."""
        import torch

        if self.cast_once and (rows >= LOWP_MIN_ROWS or self.fp32 is None):
            if self.bf16 is None:
                self.bf16 = copy.deepcopy(self.fp32).to(torch.bfloat16)
            return self.bf16, nullcontext()
        return self.fp32, lowp_context(self.device, self.precision, rows)


def _known(resolved: ResolvedModel, config: dict[str, Any]) -> KnownTextModel | None:
    return KNOWN_TEXT_MODELS.get(resolved.name) or KNOWN_TEXT_MODELS.get(
        str(config.get("_name_or_path", ""))
    )


def read_pooling(path: Path, known: KnownTextModel | None) -> list[str]:
    """Pooling modes from a sentence-transformers folder, else the known model's, else CLS."""
    modules = _read_json(path / "modules.json")
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
            cfg = _read_json(path / str(module.get("path", "")) / "config.json")
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
    st_config = _read_json(path / "config_sentence_transformers.json")
    if isinstance(st_config, dict):
        prompts = st_config.get("prompts")
        if isinstance(prompts, dict) and prompts.get("query"):
            return str(prompts["query"])
    return known.query_instruction if known else ""


class TorchTextEncoder(TextEncoderMethods):
    """Encodes passages and queries with PyTorch; vectors are float32 and L2-normalised.
    ``workload`` ("index" or "query"): which weights bf16 keeps on CPU (``ModelWeights``)."""

    runtime = "torch"

    def __init__(
        self,
        name_or_path: str,
        *,
        device: str | None = None,
        query_instruction: str | None = None,
        max_length: int | None = None,
        batch_size: int = 32,
        precision: str | None = None,
        workload: str = "query",
    ) -> None:
        torch = require("torch", "torch")
        transformers = require("transformers", "torch")
        from tokenizers import Tokenizer

        resolved = resolve_model(name_or_path, "text")
        path = resolved.path
        config = _read_json(path / "config.json")
        if not isinstance(config, dict):
            raise ModelLoadError(f"{path / 'config.json'} is not a JSON object.")
        known = _known(resolved, config)
        self.pooling = read_pooling(path, known)
        self.query_instruction = read_query_instruction(path, query_instruction, known)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.precision = resolve_precision(precision, self.device)
        try:
            with quiet_loading():
                self._tokenizer = transformers.AutoTokenizer.from_pretrained(str(path))
                model = transformers.AutoModel.from_pretrained(str(path), dtype=torch.float32)
        except Exception as exc:  # many failure types: missing files, bad weights, bad config
            raise ModelLoadError(
                f"cannot load text model '{name_or_path}' from {path}: {exc}"
            ) from exc
        if not getattr(self._tokenizer, "is_fast", False):
            raise ModelLoadError(f"text model '{name_or_path}' has no fast tokenizer.")
        self._weights = ModelWeights(
            model.to(self.device).eval(), self.device, self.precision, workload
        )
        # A private copy of the Rust tokenizer, with no truncation or padding, for counting.
        self._counter = Tokenizer.from_str(self._tokenizer.backend_tokenizer.to_str())
        self._counter.no_truncation()
        self._counter.no_padding()

        positions = int(getattr(model.config, "max_position_embeddings", 512) or 512)
        if max_length is None:
            st = _read_json(path / "sentence_bert_config.json")
            if isinstance(st, dict) and st.get("max_seq_length"):
                max_length = int(st["max_seq_length"])
            else:
                max_length = min(int(self._tokenizer.model_max_length), positions, 512)
        self.max_length = max(2, min(int(max_length), positions))
        self.batch_size = batch_size
        self.name = resolved.name
        hidden = int(model.config.hidden_size)
        self.dim = hidden * len(self.pooling)
        self.info: dict[str, object] = {
            "name": resolved.name,
            "path": str(path),
            "revision": resolved.revision,
            "dim": self.dim,
            "pooling": "+".join(self.pooling),
            "query_instruction": self.query_instruction,
            "max_length": self.max_length,
            "runtime": self.runtime,
            "device": self.device,
            "dtype": DTYPE_NAMES[self.precision],
            "random": is_random_model(path),
        }

    def __repr__(self) -> str:
        return f"TorchTextEncoder({self.name!r}, dim={self.dim}, device={self.device!r})"

    def _encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        # Longest first, so each batch holds texts of similar length (less padding).
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        size = max(1, int(self.batch_size))
        for start in range(0, len(order), size):
            idx = order[start : start + size]
            out[idx] = self._encode_batch([texts[i] for i in idx])
        return out

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        import torch

        batch = self._tokenizer(
            texts,
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )
        batch = {k: v.to(self.device) for k, v in batch.items()}
        model, lowp = self._weights.for_rows(len(texts))
        with torch.inference_mode(), lowp:
            hidden = model(**batch).last_hidden_state
            pooled = _pool(hidden, batch["attention_mask"], self.pooling)
            pooled = torch.nn.functional.normalize(pooled.float(), p=2, dim=-1)
        return pooled.cpu().numpy().astype(np.float32, copy=False)


def _pool(hidden: Any, mask: Any, modes: list[str]) -> Any:
    """sentence-transformers pooling over ``hidden`` [n, t, d] with ``mask`` [n, t]."""
    import torch

    hidden = hidden.float()  # pool in float32 whatever precision the model ran in
    m = mask.unsqueeze(-1).to(hidden.dtype)
    lengths = m.sum(dim=1).clamp(min=1e-9)
    parts = []
    for mode in modes:
        if mode == "cls":
            parts.append(hidden[:, 0])
        elif mode == "mean":
            parts.append((hidden * m).sum(dim=1) / lengths)
        elif mode == "mean_sqrt_len":
            parts.append((hidden * m).sum(dim=1) / torch.sqrt(lengths))
        elif mode == "max":
            parts.append(hidden.masked_fill(m == 0, torch.finfo(hidden.dtype).min).max(dim=1)[0])
        elif mode == "lasttoken":  # right padding: the last position the mask keeps
            last = mask.sum(dim=1).long() - 1
            parts.append(hidden[torch.arange(hidden.shape[0], device=hidden.device), last])
        else:  # pragma: no cover - read_pooling only yields the modes above
            raise ModelLoadError(f"unknown pooling mode {mode!r}")
    return torch.cat(parts, dim=-1)
