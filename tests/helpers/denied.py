"""Files nobody may read, for the permission-denied cases, also when the tests run as root.

``chmod 0`` stops an ordinary user, but root (CI runs as root) reads whatever the mode says. Then
the OS error is injected at the file-open boundary instead: ``open`` (``builtins.open`` and
``io.open``, which ``Path.open``/``read_bytes`` use) raises the very ``PermissionError`` the
kernel gives an unprivileged reader (EACCES) for those paths, and only for them. The code under
test runs unchanged, so the case checks the same outcome whoever runs it.
"""

from __future__ import annotations

import builtins
import errno
import io
import os
from pathlib import Path
from typing import Any

import pytest


def _readable(path: Path) -> bool:
    try:
        with open(path, "rb"):
            return True
    except PermissionError:
        return False


def deny_reading(monkeypatch: pytest.MonkeyPatch, *paths: Path) -> None:
    """Make every open of ``paths`` fail with EACCES: by mode 0, and where the OS still lets this
    process read them (root, CAP_DAC_OVERRIDE), by raising the same error at ``open``."""
    for path in paths:
        path.chmod(0)
    if not any(_readable(path) for path in paths):
        return  # the OS refuses on its own: nothing to inject
    denied = {os.path.realpath(path) for path in paths}
    real_open = builtins.open

    def open_unprivileged(file: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(file, (str, bytes, os.PathLike)):
            name = os.fsdecode(file)
            if os.path.realpath(name) in denied:
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), name)
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", open_unprivileged)
    monkeypatch.setattr(io, "open", open_unprivileged)
