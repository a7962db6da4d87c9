"""A thread's alternate signal stack that stays valid for the life of the process.

OpenVINO (2026.4, CPU plugin) gives a thread a new alternate signal stack when it compiles or
runs a model and puts back the one it found when the model is released. Released out of order,
as ``runtime="auto"`` does when it times candidate runtimes and drops the losers, the stack put
back can be one that was already freed. Python runs its signal handlers on the alternate stack
(CPython installs them with ``SA_ONSTACK``), so the next Ctrl-C or SIGTERM then killed the process
with SIGSEGV instead of stopping it cleanly (tests/unit/test_signal_stack.py).

:func:`own_signal_stack` gives the calling thread an alternate stack of our own, allocated once
per thread and never freed. Linux only; elsewhere, or when the C library cannot be reached, it
does nothing.
"""

from __future__ import annotations

import ctypes
import sys
import threading

SIZE = 64 * 1024  # well above the largest signal frame (AMX state included, about 12 KiB)

_stacks: dict[int, ctypes.Array[ctypes.c_char]] = {}  # thread id -> its stack, kept for good
_lock = threading.Lock()


class _Stack(ctypes.Structure):
    _fields_ = [
        ("ss_sp", ctypes.c_void_p),
        ("ss_flags", ctypes.c_int),
        ("ss_size", ctypes.c_size_t),
    ]


def own_signal_stack() -> bool:
    """Point this thread's alternate signal stack at memory that lives as long as the process;
    True when it did."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return False
    with _lock:
        buffer = _stacks.get(threading.get_ident())
        if buffer is None:
            buffer = _stacks[threading.get_ident()] = ctypes.create_string_buffer(SIZE)
    stack = _Stack(ctypes.cast(buffer, ctypes.c_void_p), 0, SIZE)
    # Fails (EPERM) only while a handler runs on the current stack: then it is left as it is.
    return bool(libc.sigaltstack(ctypes.byref(stack), None) == 0)
