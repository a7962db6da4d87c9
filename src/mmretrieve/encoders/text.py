"""PyTorch text encoder: a transformers AutoModel plus the pooling its folder asks for.

Works with any sentence-transformers model folder (Transformer + Pooling [+ Normalize]) and with
plain transformers folders of the known models (``model_config.py``; BGE: CLS pooling + query
instruction).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mmretrieve.encoders.base import TextEncoderMethods
from mmretrieve.encoders.model_config import (
    known_text_model,
    read_config,
    read_pooling,
    read_query_instruction,
    st_max_seq_length,
)
from mmretrieve.encoders.resolve import is_random_model, resolve_model
from mmretrieve.encoders.runtime import DTYPE_NAMES
from mmretrieve.encoders.torch_utils import (
    ModelWeights,
    quiet_loading,
    resolve_precision,
)
from mmretrieve.errors import ModelLoadError, require


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
        config = read_config(path)
        known = known_text_model(resolved, config)
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
            max_length = st_max_seq_length(path)
        if max_length is None:
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
