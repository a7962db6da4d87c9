"""A released OpenVINO model must not leave the thread's alternate signal stack pointing at freed
memory: Python runs its signal handlers (Ctrl-C, SIGTERM) on that stack, and a dangling one turns
the Ctrl-C of an indexing run into a SIGSEGV (it did, after `auto` timed the runtimes and dropped
the OpenVINO candidates). Runs a tiny random BERT exported to ONNX, in a fresh process."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="Linux signal stacks")

SCRIPT = """
import ctypes, gc, os, signal, sys
from mmretrieve.encoders import load_image_encoder, load_text_encoder

class Stack(ctypes.Structure):
    _fields_ = [("sp", ctypes.c_void_p), ("flags", ctypes.c_int), ("size", ctypes.c_size_t)]

def mapped(address):
    for line in open("/proc/self/maps"):
        low, high = (int(x, 16) for x in line.split()[0].split("-"))
        if low <= address < high:
            return True
    return False

libc = ctypes.CDLL(None)
# What `auto` does on a first run: time candidates of each model, keep one, drop the others.
kept = load_text_encoder(sys.argv[1], runtime="openvino")
candidate = load_text_encoder(sys.argv[1], runtime="openvino", precision="bf16")
candidate.encode_documents(["a passage"] * 4)
del candidate
gc.collect()
candidate = load_image_encoder(sys.argv[2], runtime="openvino")
candidate.encode_texts(["a photo"])
del candidate
gc.collect()
kept.encode_documents(["a passage"] * 4)
now = Stack()
libc.sigaltstack(None, ctypes.byref(now))
state = "off" if now.flags & 2 else ("mapped" if mapped(now.sp) else "DANGLING")
print("altstack", state, flush=True)
# Python's own handler, as in a terminal (a background job inherits SIGINT ignored); CPython
# installs it with SA_ONSTACK: it runs on the alternate stack.
signal.signal(signal.SIGINT, signal.default_int_handler)
try:
    os.kill(os.getpid(), signal.SIGINT)
except KeyboardInterrupt:
    print("interrupted cleanly", flush=True)
"""


def test_openvino_released_leaves_a_usable_signal_stack(
    tiny_text_model_dir: Path, tiny_clip_model_dir: Path, tmp_path: Path
) -> None:
    from mmretrieve.encoders.onnx_export import export_model

    text = export_model(str(tiny_text_model_dir), tmp_path / "text", int8=False)
    clip = export_model(str(tiny_clip_model_dir), tmp_path / "clip", int8=False)
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(text), str(clip)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode != -signal.SIGSEGV, done.stderr[-2000:]
    assert "altstack DANGLING" not in done.stdout
    assert "interrupted cleanly" in done.stdout, (done.returncode, done.stdout, done.stderr[-2000:])
