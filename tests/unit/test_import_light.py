"""Importing mmretrieve (and its encoders registry) must not import torch or transformers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"


def _run(code: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SRC), env.get("PYTHONPATH")) if p)
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )


def test_import_does_not_load_torch_or_transformers() -> None:
    code = (
        "import mmretrieve, mmretrieve.encoders, sys\n"
        "import mmretrieve.encoders.resolve, mmretrieve.encoders.pull\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in {'torch', 'transformers'})\n"
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, heavy[:5]\n"
    )
    result = _run(code)
    assert result.returncode == 0, result.stderr


def test_missing_torch_names_the_extra() -> None:
    code = (
        "import sys\n"
        "sys.modules['torch'] = None  # as if the [torch] extra were not installed\n"
        "from mmretrieve.encoders import load_text_encoder, load_image_encoder\n"
        "from mmretrieve.errors import MissingExtraError\n"
        "for load in (load_text_encoder, load_image_encoder):\n"
        "    try:\n"
        "        load('BAAI/bge-small-en-v1.5')\n"
        "    except MissingExtraError as exc:\n"
        "        assert \"pip install 'mmretrieve[torch]'\" in str(exc), str(exc)\n"
        "    else:\n"
        "        raise AssertionError('no MissingExtraError')\n"
    )
    result = _run(code)
    assert result.returncode == 0, result.stderr
