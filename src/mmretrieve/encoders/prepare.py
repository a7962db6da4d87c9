"""Fast single queries without manual steps: what ``runtime="auto"`` does for the query workload.

The first time a model is loaded for queries on a machine:

1. when neither the model folder nor the export cache holds ONNX files for it, and torch and onnx
   are installed, the model is exported into the export cache (fp32; what
   `mmretrieve models export --no-int8` writes), under a file lock, into a temporary folder that
   is renamed into place, so a killed export leaves nothing half-written;
2. each CPU runtime that can run those files (ONNX Runtime fp32; OpenVINO fp32, and bf16 where
   the CPU has native bf16) is timed on one query of each kind the model answers, and the
   fastest whose vectors stay within cosine ``PARITY`` of ONNX Runtime fp32 is recorded in
   ``query_runtime.json`` in the export cache, keyed by the CPU, so the next process reads it.

Loads after that read the record (no measurement). ``MMRETRIEVE_PREPARE=0`` turns both steps off:
"auto" then picks from what is there, as ``runtime.choose`` says. Any failure here (no torch to
export with, an engine that cannot load the files) leaves the choice to ``runtime.choose``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from mmretrieve.encoders.resolve import ResolvedModel, resolve_model
from mmretrieve.encoders.runtime import (
    Choice,
    cpu_flags,
    cpu_supports_bf16,
    export_dir_for,
    has_module,
    onnx_folder,
)

ENV_PREPARE = "MMRETRIEVE_PREPARE"
RECORD = "query_runtime.json"
PARITY = 0.99  # least cosine to ONNX Runtime fp32 for a runtime to be chosen
RUNS, WARMUP = 15, 3
PROBE_TEXT = "who painted the ceiling of the sistine chapel in rome"

Log = Callable[[str], None]


def _stderr(message: str) -> None:
    print(f"mmretrieve: {message}", file=sys.stderr, flush=True)


def enabled() -> bool:
    return os.environ.get(ENV_PREPARE, "1").strip() != "0"


def gpu_present() -> bool:
    """An NVIDIA driver is loaded (without importing torch): device None then means CUDA, where
    ``runtime.choose`` picks PyTorch fp16."""
    return Path("/proc/driver/nvidia/version").exists()


def machine_key() -> str:
    """The CPU this record holds for: its model name, core count and feature flags."""
    name = ""
    with contextlib.suppress(OSError):
        for line in (
            Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines()
        ):
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    flags = hashlib.sha256(" ".join(sorted(cpu_flags())).encode()).hexdigest()[:12]
    return f"{name or 'cpu'}|{os.cpu_count()}|{flags}"


def query_choice(name_or_path: str, kind: str, log: Log | None = None) -> Choice | None:
    """The runtime and precision for single queries of this model on this machine, preparing
    (exporting, measuring) once when needed; None leaves the choice to ``runtime.choose``.
    ``log``: where the one-line notices go (default stderr)."""
    log = log or _stderr
    if not enabled() or not has_module("onnxruntime"):
        return None
    try:
        resolved = resolve_model(name_or_path, kind)
    except Exception:  # the loader raises its own clear error
        return None
    folder = onnx_folder(resolved.path, resolved.name, resolved.revision, kind, "fp32")
    if folder is None:
        folder = _export(resolved, kind, log)
        if folder is None:
            return None
    record_path = export_dir_for(resolved.name, resolved.revision) / RECORD
    key = machine_key()
    found = _recorded(record_path, key)
    if found is not None:
        return found
    with _locked(record_path.parent):
        found = _recorded(record_path, key)  # another process may have measured meanwhile
        if found is not None:
            return found
        log(f"timing the query runtimes for {resolved.name} on this CPU (once)")
        result = measure(name_or_path, kind)
        if result is None:
            return None
        record = _read(record_path)
        record[key] = result
        _write(record_path, record)
    return Choice(result["runtime"], result["precision"], result["reason"])


def _recorded(record_path: Path, key: str) -> Choice | None:
    found = _read(record_path).get(key)
    if isinstance(found, dict) and found.get("runtime"):
        return Choice(str(found["runtime"]), str(found["precision"]), str(found.get("reason", "")))
    return None


def candidates() -> list[tuple[str, str]]:
    found = [("onnx", "fp32")]
    if has_module("openvino"):
        found.append(("openvino", "fp32"))
        if cpu_supports_bf16():
            found.append(("openvino", "bf16"))
    return found


def measure(path: str, kind: str) -> dict[str, Any] | None:
    """Median milliseconds of one query per runtime, parity with ONNX Runtime fp32, and the
    choice: the fastest runtime within parity."""
    from PIL import Image

    from mmretrieve.encoders import load_image_encoder, load_text_encoder

    rng = np.random.default_rng(0)
    picture = Image.fromarray(rng.integers(0, 255, (224, 224, 3), dtype=np.uint8))

    def probe(encoder: Any) -> Callable[[], list[np.ndarray]]:
        """One query of each kind the model answers: their vectors."""
        if kind == "text":
            return lambda: [encoder.encode_queries([PROBE_TEXT])]
        return lambda: [encoder.encode_images([picture]), encoder.encode_texts([PROBE_TEXT])]

    timings: dict[str, float] = {}
    parity: dict[str, float] = {}
    reference: list[np.ndarray] | None = None
    for runtime, precision in candidates():
        label = f"{runtime} {precision}"
        try:
            loader = load_text_encoder if kind == "text" else load_image_encoder
            encoder = loader(path, runtime=runtime, precision=precision, workload="query")
            call = probe(encoder)
            out = call()
        except Exception:  # an engine that cannot run these files is not a candidate
            continue
        if reference is None:
            reference = out
        parity[label] = min(float(np.sum(a * b)) for a, b in zip(out, reference, strict=True))
        for _ in range(WARMUP):
            call()
        times = []
        for _ in range(RUNS):
            start = time.perf_counter()
            call()
            times.append((time.perf_counter() - start) * 1000)
        timings[label] = round(statistics.median(times), 2)
    fit = [label for label in timings if parity[label] >= PARITY]
    if not fit:
        return None
    best = min(fit, key=lambda label: timings[label])
    runtime, precision = best.split()
    return {
        "runtime": runtime,
        "precision": precision,
        "reason": f"fastest for one query on this CPU ({timings[best]} ms; measured once)",
        "median_ms": timings,
        "parity": {k: round(v, 5) for k, v in parity.items()},
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _export(resolved: ResolvedModel, kind: str, log: Log) -> Path | None:
    """Export into the cache (fp32 only), atomically; None when it cannot be done here."""
    if not (has_module("torch") and has_module("transformers") and has_module("onnx")):
        return None
    from mmretrieve.encoders.onnx_export import export_model

    target = export_dir_for(resolved.name, resolved.revision)
    with _locked(target.parent):
        found = onnx_folder(resolved.path, resolved.name, resolved.revision, kind, "fp32")
        if found is not None:  # another process exported it while this one waited
            return found
        log(f"exporting {resolved.name} to ONNX for fast queries (once; into {target})")
        target.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
        try:
            export_model(str(resolved.path), work, kind=kind, int8=False)
            keep = _read(target / RECORD)  # timings already recorded for this revision
            if target.exists():
                shutil.rmtree(target)
            os.replace(work, target)
            if keep:
                _write(target / RECORD, keep)
        except Exception as exc:
            log(f"could not export {resolved.name} ({exc}); queries use PyTorch")
            shutil.rmtree(work, ignore_errors=True)
            return None
    return onnx_folder(resolved.path, resolved.name, resolved.revision, kind, "fp32")


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """An exclusive lock on ``folder``/.lock between processes (POSIX); a no-op elsewhere."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(folder / ".lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)
