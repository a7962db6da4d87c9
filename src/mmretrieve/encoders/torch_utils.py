"""PyTorch helpers shared by the torch backends (text.py, clip.py) and the ONNX export: quiet
model loading, the precision a device runs in, the weights a batch runs on, CLIP's features.

torch and transformers are imported inside the functions, so importing this module loads
neither.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

from mmretrieve.encoders.runtime import cpu_supports_bf16
from mmretrieve.errors import ModelLoadError, UsageError

# On CPU, batches smaller than this keep float32 weights when bf16 is set, so single queries
# run as in fp32 (docs/BENCHMARKS.md); except with workload="index" (see ModelWeights).
LOWP_MIN_ROWS = 4


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


def clip_features(output: Any) -> Any:
    """CLIP's projected vectors from ``get_image_features`` / ``get_text_features``:
    transformers 5 returns a model output (projected vector in pooler_output); 4 a tensor."""
    import torch

    if isinstance(output, torch.Tensor):
        return output
    pooled = getattr(output, "pooler_output", None)
    if pooled is None:
        pooled = output[1] if isinstance(output, tuple) else None
    if pooled is None:  # pragma: no cover - defensive
        raise ModelLoadError("CLIP model returned no pooled features")
    return pooled
