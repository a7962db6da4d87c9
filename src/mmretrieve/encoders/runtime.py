"""Which runtime and precision an encoder runs in: names, hardware checks, ONNX file lookup and
the fixed "auto" rule. Imports neither torch nor onnxruntime (it only asks whether they are
installed).

On a CPU, "auto" is first decided by measurement: ``encoders/prepare.py`` times the runtimes on
this machine once per model and workload (queries one at a time, batches for indexing) and
records the fastest within parity. The rule below decides when that is off
(``MMRETRIEVE_PREPARE=0``) or cannot run (docs/BENCHMARKS.md, "What auto picks"):
- no torch installed -> ONNX Runtime; no onnxruntime or no ONNX files -> PyTorch;
- a CUDA device -> PyTorch in fp16;
- batch work (indexing) on CPU -> PyTorch in bf16 (weights cast once) where the CPU has native bf16
  (AVX512-BF16 or AMX); without it ONNX Runtime fp32, which measured 2-3x PyTorch fp32 on
  batches; single queries on CPU -> ONNX Runtime;
- precision: never int8 by itself. int8 is faster but its worst vectors fall below the parity bar
  (cosine 0.99 against fp32) on the real all-MiniLM-L6-v2 (ONNX Runtime dynamic int8, and NNCF's
  static int8 for OpenVINO); ask for it with precision="int8".
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from mmretrieve.errors import UsageError

RUNTIMES = ("auto", "torch", "onnx", "openvino")
PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8")
DTYPE_NAMES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16", "int8": "int8"}
WORKLOADS = ("index", "query")
ENV_ONNX_CACHE = "MMRETRIEVE_ONNX_CACHE"
EXPORT_INFO = "mmretrieve_export.json"

# ONNX file names, relative to a model folder, in the order they are looked for. These are the
# Hugging Face conventions (optimum, transformers.js), so repositories that ship ONNX load as is.
_SUFFIX = {"fp32": ("",), "int8": ("_int8", "_quantized")}
_STEMS = {"text": ("model",), "clip_vision": ("vision_model",), "clip_text": ("text_model",)}


def has_module(name: str) -> bool:
    """True when ``name`` is importable (without importing it)."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU feature flags Linux reports (empty elsewhere)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    match = re.search(r"^flags\s*:\s*(.*)$", text, re.MULTILINE)
    return frozenset(match.group(1).split()) if match else frozenset()


def cpu_supports_bf16() -> bool:
    """Native bf16 math (AVX512-BF16 or AMX-BF16): where bf16 autocast is faster than fp32."""
    return bool({"avx512_bf16", "amx_bf16"} & cpu_flags())


def check_names(runtime: str, precision: str) -> None:
    if runtime not in RUNTIMES:
        raise UsageError(f"unknown runtime {runtime!r}; known: {', '.join(RUNTIMES)}")
    if precision not in PRECISIONS:
        raise UsageError(f"unknown precision {precision!r}; known: {', '.join(PRECISIONS)}")


def onnx_cache_dir() -> Path:
    """Where `mmretrieve models export NAME` writes when no --out is given."""
    value = os.environ.get(ENV_ONNX_CACHE)
    if value:
        return Path(value).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "mmretrieve" / "onnx"


def export_dir_for(name: str, revision: str) -> Path:
    """The export cache folder of one model revision (a local folder is named by its last
    component: the revision, a fingerprint of its files, tells folders apart)."""
    local = Path(name).expanduser()
    base = local.resolve().name if local.is_dir() else name.strip("/")
    slug = re.sub(r"[^A-Za-z0-9._-]+", "--", base).strip("-")[-80:] or "model"
    return onnx_cache_dir() / f"{slug}-{revision[:12]}"


def onnx_file(folder: Path, part: str, precision: str) -> Path | None:
    """The ONNX file for ``part`` ("text", "clip_vision", "clip_text") in ``folder``, or None."""
    for stem in _STEMS[part]:
        for suffix in _SUFFIX["int8" if precision == "int8" else "fp32"]:
            for sub in ("onnx", ""):
                candidate = folder / sub / f"{stem}{suffix}.onnx"
                if candidate.is_file():
                    return candidate
    return None


def _parts(kind: str) -> tuple[str, ...]:
    return ("text",) if kind == "text" else ("clip_vision", "clip_text")


def onnx_folder(
    model_path: Path, name: str, revision: str, kind: str, precision: str
) -> Path | None:
    """The folder holding ONNX files for this model: its own folder when it ships them, else the
    export cache for its revision."""
    for folder in (model_path, export_dir_for(name, revision)):
        if all(onnx_file(folder, part, precision) for part in _parts(kind)):
            return folder
    return None


def read_export_info(folder: Path) -> dict[str, object]:
    try:
        data = json.loads((folder / EXPORT_INFO).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


@dataclass(frozen=True, slots=True)
class Choice:
    """A runtime and precision, and why they were chosen (shown by `mmretrieve info`)."""

    runtime: str
    precision: str
    reason: str


def choose(
    kind: str,
    runtime: str = "auto",
    precision: str = "auto",
    *,
    workload: str = "index",
    device: str | None = None,
    onnx_ready: bool | None = None,
    int8_ready: bool | None = None,
) -> Choice:
    """Resolve "auto" runtime/precision for one encoder ``kind`` ("text" or "image").

    ``onnx_ready`` / ``int8_ready``: whether ONNX fp32 / int8 files exist for the model (None:
    assume they do). Explicit choices pass through; only "auto" parts are decided here.
    """
    check_names(runtime, precision)
    if workload not in WORKLOADS:
        raise UsageError(f"unknown workload {workload!r}; known: {', '.join(WORKLOADS)}")
    torch_ok = has_module("torch") and has_module("transformers")
    ort_ok = has_module("onnxruntime")
    files_ok = (int8_ready if precision == "int8" else onnx_ready) is not False
    cuda = bool(device and device.startswith("cuda"))
    if runtime == "auto":
        if precision == "int8":
            runtime, why = "onnx", "int8 runs on ONNX Runtime"
        elif precision in ("bf16", "fp16"):
            runtime, why = "torch", f"{precision} runs on PyTorch"
        elif not torch_ok and ort_ok:
            runtime, why = "onnx", "torch is not installed"
        elif not torch_ok or not ort_ok or not files_ok:
            missing = "onnxruntime is not installed" if not ort_ok else "no ONNX files"
            runtime, why = "torch", missing if torch_ok else "neither runtime is usable"
        elif cuda:
            runtime, why = "torch", "CUDA device"
        elif workload == "index" and cpu_supports_bf16():
            runtime, why = "torch", "batch work on a CPU with native bf16"
        elif workload == "index":
            runtime, why = "onnx", "batch work on a CPU without bf16: ONNX Runtime fp32 is faster"
        else:
            runtime, why = "onnx", "single queries on CPU: ONNX Runtime is fastest"
    else:
        why = "asked for"
    if precision == "auto" and runtime == "onnx":
        precision = "fp32"
    # torch keeps "auto": the encoder resolves it against the device it actually runs on.
    return Choice(runtime, precision, why)
