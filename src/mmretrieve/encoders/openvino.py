"""OpenVINO encoders (CPU): the ONNX encoders' files, tokenization and pooling (``onnx_graph.py``),
run by OpenVINO.

OpenVINO reads the exported ONNX files directly and, on a CPU with native bf16 (AVX512-BF16 or
AMX), runs them in bf16. For one query at a time it measured fastest of the CPU runtimes here
(docs/BENCHMARKS.md, "Query encoders"); ``encoders/prepare.py`` picks it by measuring it against
ONNX Runtime on the machine at hand, and checks its vectors against fp32 first.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np

from mmretrieve.encoders.onnx_graph import OnnxGraphClipEncoder, OnnxGraphTextEncoder
from mmretrieve.encoders.runtime import DTYPE_NAMES, cpu_supports_bf16, onnx_cache_dir
from mmretrieve.encoders.signal_stack import own_signal_stack
from mmretrieve.errors import ModelLoadError, UsageError, require

ENV_THREADS = "MMRETRIEVE_OPENVINO_THREADS"
_HINTS = {"fp32": "f32", "bf16": "bf16"}


def openvino_precision(precision: str | None) -> str:
    """fp32 or bf16 (auto: bf16 where the CPU has it natively)."""
    wanted = (precision or "auto").lower()
    if wanted == "auto":
        return "bf16" if cpu_supports_bf16() else "fp32"
    if wanted not in _HINTS:
        raise UsageError(
            f"precision {wanted!r} is not available with the openvino runtime (fp32, bf16)"
        )
    return wanted


class _Input:
    def __init__(self, name: str) -> None:
        self.name = name


_numpy_ready = threading.Lock()
_numpy_done = False


def _prepare_numpy_bridge(ov: Any) -> None:
    """Make OpenVINO's Python binding look up NumPy's C API once, here, in one thread. Its first
    lookup runs under a once-flag that deadlocks when two threads reach it together (seen with
    the bge and CLIP-text batchers' first queries: both threads stuck in pybind11's
    gil_safe_call_once_and_store<npy_api>, the process hung)."""
    global _numpy_done
    with _numpy_ready:
        if not _numpy_done:
            np.asarray(ov.Tensor(np.zeros(1, dtype=np.float32)).data)
            _numpy_done = True


def ir_for(core: Any, onnx_path: Path) -> Path | None:
    """The ONNX file as OpenVINO IR with fp16 weights, made once into the export cache; None
    when it cannot be made there. For bf16 inference: the weights end up in bf16 either way, and
    compiling from this IR instead of the ONNX file took 0.5 s instead of 1.7 and left CLIP
    ViT-B/32 holding 674 MiB instead of 1,282 (the ONNX path keeps the fp32 weights too).

    The IR is keyed by the ONNX file (path, size, modification time) and the OpenVINO version,
    and never written into a model's own folder (whose files make its revision). It is written
    into a temporary folder that is renamed into place, so a reader sees a whole IR or none."""
    ov = require("openvino", "openvino")
    try:
        stat = onnx_path.stat()
        key = f"{onnx_path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{ov.__version__}"
        folder = onnx_cache_dir() / "openvino-ir" / hashlib.sha256(key.encode()).hexdigest()[:16]
        target = folder / "model.xml"
        if target.is_file():
            return target
        folder.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".ir-", dir=folder.parent))
    except OSError:  # no cache to write into: compile the ONNX file itself
        return None
    try:
        ov.save_model(core.read_model(str(onnx_path)), work / "model.xml", compress_to_fp16=True)
        with contextlib.suppress(OSError):  # another process put its IR there first: use that
            os.replace(work, folder)
    except Exception:  # disk full, an operator the IR writer refuses: use the ONNX file
        return None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target if target.is_file() else None


class OpenVinoSession:
    """A compiled OpenVINO model with the two methods the ONNX encoders call on a session.
    Each thread gets its own infer request, so concurrent calls do not share state."""

    def __init__(
        self, path: Path, precision: str, threads: int | None, batches: bool = False
    ) -> None:
        """``batches``: tuned for batch work (indexing): OpenVINO's throughput streams, each
        call's rows split across them (MiniLM passages, 2 cores: 57.9/s against 50.7)."""
        ov = require("openvino", "openvino")
        _prepare_numpy_bridge(ov)
        config: dict[str, Any] = {
            "INFERENCE_PRECISION_HINT": _HINTS[precision],
            "PERFORMANCE_HINT": "THROUGHPUT" if batches else "LATENCY",
            # Pinned, every compiled model's threads sit on the same cores: bge and CLIP text
            # side by side took 19 ms, as long as in turn; unpinned, 11 (2-core AMD, bf16).
            "ENABLE_CPU_PINNING": False,
        }
        threads = int(os.environ.get(ENV_THREADS, "0") or 0) or threads
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        core = ov.Core()
        source = ir_for(core, path) if precision == "bf16" else None
        compiled: Any = None
        if source is not None:
            with contextlib.suppress(Exception):  # an IR it cannot read: the ONNX file still can
                compiled = core.compile_model(str(source), "CPU", config)
        if compiled is None:
            try:
                compiled = core.compile_model(str(path), "CPU", config)
            except Exception as exc:  # corrupt file, unsupported operator
                raise ModelLoadError(f"OpenVINO cannot load {path}: {exc}") from exc
        self._model = compiled
        self._inputs = [_Input(i.get_any_name()) for i in self._model.inputs]
        self._local = threading.local()
        self._streams = 1
        if batches:
            with contextlib.suppress(Exception):
                self._streams = max(
                    1, int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
                )
        own_signal_stack()

    def __del__(self) -> None:
        # Release the model here, then replace the signal stack OpenVINO may have put back
        # already freed (signal_stack.py).
        self.__dict__.pop("_local", None)
        self.__dict__.pop("_model", None)
        own_signal_stack()

    def get_inputs(self) -> list[_Input]:
        return self._inputs

    def run(self, _outputs: Any, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        requests = getattr(self._local, "requests", None)
        if requests is None:
            requests = self._local.requests = [
                self._model.create_infer_request() for _ in range(self._streams)
            ]
            own_signal_stack()  # a request may give this thread a stack of its own
        rows = len(next(iter(feeds.values())))
        parts = min(len(requests), rows)
        if parts <= 1:
            result = requests[0].infer(feeds)
            return [np.array(result[output]) for output in self._model.outputs]
        # Rows split across the streams, run at once, put back in order.
        bounds = np.linspace(0, rows, parts + 1).astype(int)
        started = []
        try:
            for request, start, stop in zip(requests, bounds[:-1], bounds[1:], strict=False):
                request.start_async({name: value[start:stop] for name, value in feeds.items()})
                started.append(request)
        finally:
            # Every started request is waited for, even when Ctrl-C lands in between: none is
            # left running on buffers Python may free.
            for request in started:
                request.wait()
        return [
            np.concatenate([np.array(r.get_tensor(output).data) for r in requests[:parts]])
            for output in self._model.outputs
        ]


def _fp32_files(precision: str | None) -> str:
    openvino_precision(precision)  # an unknown precision is a usage error here already
    return "fp32"


class _OpenVinoMixin:
    runtime = "openvino"
    _ov_precision = "fp32"
    info: dict[str, object]

    _ov_batches = False  # tuned for batch work (workload "index")

    def file_precision(self, precision: str | None) -> str:
        return _fp32_files(precision)

    def open_session(self, path: Path, threads: int | None) -> OpenVinoSession:
        return OpenVinoSession(path, self._ov_precision, threads, self._ov_batches)

    def _mark(self) -> None:
        self.precision = self._ov_precision
        self.info["runtime"] = self.runtime
        self.info["dtype"] = DTYPE_NAMES[self._ov_precision]


class OpenVinoTextEncoder(_OpenVinoMixin, OnnxGraphTextEncoder):
    """A BGE / sentence-transformers text model on OpenVINO (fp32 or bf16), L2-normalised."""

    def __init__(self, name_or_path: str, *, precision: str | None = None, **options: Any):
        self._ov_precision = openvino_precision(precision)
        self._ov_batches = options.get("workload") == "index"
        super().__init__(name_or_path, precision=precision, **options)
        self._mark()


class OpenVinoClipEncoder(_OpenVinoMixin, OnnxGraphClipEncoder):
    """CLIP's image and text towers on OpenVINO (fp32 or bf16), L2-normalised."""

    def __init__(self, name_or_path: str, *, precision: str | None = None, **options: Any):
        self._ov_precision = openvino_precision(precision)
        self._ov_batches = options.get("workload") == "index"
        super().__init__(name_or_path, precision=precision, **options)
        self._mark()
