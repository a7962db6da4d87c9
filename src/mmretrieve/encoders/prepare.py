"""What ``runtime="auto"`` does on a CPU: measure once, then read the record.

The first time a model is loaded on a machine for a workload ("query": one at a time, "index":
batches):

1. when neither the model folder nor the export cache holds ONNX files for it, and torch and onnx
   are installed, the model is exported into the export cache (fp32; what
   `mmretrieve models export --no-int8` writes), under a file lock, into a temporary folder that
   is renamed into place, so a killed export leaves nothing half-written;
2. each CPU runtime that can run the model is timed on the workload's probe (one query of each
   kind the model answers; or a batch of passages, of photos and of titles), and the fastest
   whose vectors stay within cosine ``PARITY`` of ONNX Runtime fp32 is recorded in the export
   cache (``query_runtime.json`` / ``index_runtime.json``), keyed by the CPU, so the next process
   reads it. Queries choose among ONNX Runtime fp32 and OpenVINO (fp32, and bf16 where the CPU
   has native bf16); batches also among PyTorch (bf16 where the CPU has it, else fp32).

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
RECORDS = {"query": RECORD, "index": "index_runtime.json"}
PARITY = 0.99  # least cosine to ONNX Runtime fp32 for a runtime to be chosen
RUNS = {"query": 15, "index": 3}  # timed calls per runtime, after WARMUP
WARMUP = {"query": 3, "index": 1}
PROBE_TEXT = "who painted the ceiling of the sistine chapel in rome"
# The index probe: passages as long as a chunk, photos and titles, in batches of this size.
PROBE_BATCH = 16
PROBE_PARAGRAPH = (
    "the painter finished the ceiling of the chapel after four years of work on a scaffold "
    "while the river flooded the lower town and the council met in the old hall to discuss "
    "bridges taxes harvests the war in the north and the price of bread"
)

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
    return prepared_choice(name_or_path, kind, "query", log)


def prepared_choice(
    name_or_path: str, kind: str, workload: str, log: Log | None = None
) -> Choice | None:
    """The runtime and precision for ``workload`` ("query" or "index") of this model on this
    machine, preparing once when needed; None leaves the choice to ``runtime.choose``."""
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
    record_path = export_dir_for(resolved.name, resolved.revision) / RECORDS[workload]
    key = machine_key()
    found = _recorded(record_path, key)
    if found is not None:
        return found
    with _locked(record_path.parent):
        found = _recorded(record_path, key)  # another process may have measured meanwhile
        if found is not None:
            return found
        what = "query" if workload == "query" else "batch (indexing)"
        log(f"timing the {what} runtimes for {resolved.name} on this CPU (once)")
        result = measure(name_or_path, kind, workload)
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


def candidates(workload: str = "query") -> list[tuple[str, str]]:
    """ONNX Runtime fp32 first: the others are checked against it."""
    found = [("onnx", "fp32")]
    if workload == "index" and has_module("torch") and has_module("transformers"):
        found.append(("torch", "bf16" if cpu_supports_bf16() else "fp32"))
    if has_module("openvino"):
        found.append(("openvino", "fp32"))
        if cpu_supports_bf16():
            found.append(("openvino", "bf16"))
    return found


def _probe_inputs(workload: str) -> tuple[list[str], list[Any], list[str]]:
    """Texts for the text model, pictures and short texts for CLIP: one query of each kind, or
    a batch of chunk-long passages, photos and titles."""
    from PIL import Image

    rng = np.random.default_rng(0)
    if workload == "query":
        picture = Image.fromarray(rng.integers(0, 255, (224, 224, 3), dtype=np.uint8))
        return [PROBE_TEXT], [picture], [PROBE_TEXT]
    words = np.asarray(PROBE_PARAGRAPH.split())
    passages = [" ".join(rng.choice(words, 220)) for _ in range(PROBE_BATCH)]
    titles = [" ".join(rng.choice(words, 3)) for _ in range(PROBE_BATCH)]
    pictures = [
        Image.fromarray(rng.integers(0, 255, (224, 224, 3), dtype=np.uint8))
        for _ in range(PROBE_BATCH)
    ]
    return passages, pictures, titles


def measure(path: str, kind: str, workload: str = "query") -> dict[str, Any] | None:
    """Median milliseconds of the workload's probe per runtime, parity with ONNX Runtime fp32,
    and the choice: the fastest runtime within parity."""
    from mmretrieve.encoders.registry import build_image_encoder, build_text_encoder

    texts, pictures, short = _probe_inputs(workload)

    def probe(encoder: Any) -> Callable[[], list[np.ndarray]]:
        """The vectors of the probe's calls."""
        if kind == "text":
            if workload == "query":
                return lambda: [encoder.encode_queries(texts)]
            return lambda: [encoder.encode_documents(texts)]
        return lambda: [encoder.encode_images(pictures), encoder.encode_texts(short)]

    timings: dict[str, float] = {}
    parity: dict[str, float] = {}
    reference: list[np.ndarray] | None = None
    for runtime, precision in candidates(workload):
        label = f"{runtime} {precision}"
        try:
            build = build_text_encoder if kind == "text" else build_image_encoder
            encoder = build(path, runtime=runtime, precision=precision, workload=workload)
            call = probe(encoder)
            out = call()
        except Exception:  # an engine that cannot run these files is not a candidate
            continue
        if reference is None:
            if runtime != "onnx":  # nothing to check the others against
                return None
            reference = out
        parity[label] = min(
            float(np.min(np.sum(a * b, axis=1))) for a, b in zip(out, reference, strict=True)
        )
        for _ in range(WARMUP[workload]):
            call()
        times = []
        for _ in range(RUNS[workload]):
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
        "reason": f"fastest for {'one query' if workload == 'query' else 'batches'} on this CPU "
        f"({timings[best]} ms; measured once)",
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
            # Timings already recorded for this revision survive the new files.
            keep = {name: _read(target / name) for name in RECORDS.values()}
            if target.exists():
                shutil.rmtree(target)
            os.replace(work, target)
            for name, record in keep.items():
                if record:
                    _write(target / name, record)
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
