"""Shared fixtures: paths to ../shared, tiny random models of the real architectures, fakes."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

import skip_guard  # tests/skip_guard.py: MMRETRIEVE_ALLOWED_SKIPS

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MMRETRIEVE_SHARED", REPO.parent / "shared"))
sys.path.insert(0, str(REPO))  # tools/ and tests/ helpers

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Query-time preparation (encoders/prepare.py: ONNX export, the runtime timing) writes into the
# export cache: one of this run's own, not the user's (subprocesses inherit it).
if "MMRETRIEVE_ONNX_CACHE" not in os.environ:
    import atexit
    import shutil
    import tempfile

    _cache = tempfile.mkdtemp(prefix="mmretrieve-test-onnx-")
    os.environ["MMRETRIEVE_ONNX_CACHE"] = _cache
    atexit.register(shutil.rmtree, _cache, True)


# What the tests read from the shared folder. In CI (CI=true) or with MMRETRIEVE_REQUIRE_SHARED=1
# a missing one stops the run at once: a skip would let a green run hide ~55 tests.
SHARED_NEEDS = (
    "models/all-MiniLM-L6-v2",
    "models/bge-small-en-v1.5-tokenizer",
    "models/clip-vit-b-32-tokenizer/bpe_simple_vocab_16e6.txt.gz",
    "data/wiki_tutorial",
    "data/squad_dev",
    "data/mixed_dev",
    "data/query_images",
)


def _shared_required() -> bool:
    flag = os.environ.get("MMRETRIEVE_REQUIRE_SHARED", "")
    return flag not in ("", "0") or os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing_shared() -> str | None:
    """What of the shared folder is missing, naming each path in full; None when all is there."""
    where = "from MMRETRIEVE_SHARED" if "MMRETRIEVE_SHARED" in os.environ else "../shared"
    if not SHARED.is_dir():
        return f"the shared folder {SHARED} ({where}) does not exist"
    missing = [str(SHARED / need) for need in SHARED_NEEDS if not (SHARED / need).exists()]
    if missing:
        return f"the shared folder {SHARED} ({where}) lacks " + ", ".join(missing)
    return None


def pytest_configure(config: pytest.Config) -> None:
    skip_guard.install(config)
    if _shared_required() and (problem := missing_shared()):
        pytest.exit(
            f"{problem}. The tests read models and data from it; with CI=true or "
            "MMRETRIEVE_REQUIRE_SHARED=1 a missing one stops the run instead of skipping tests "
            "(set MMRETRIEVE_SHARED to the folder that has them).",
            returncode=pytest.ExitCode.USAGE_ERROR,
        )


def _need(path: Path) -> Path:
    if not path.exists():
        if _shared_required():
            pytest.fail(f"shared data not present: {path} (CI or MMRETRIEVE_REQUIRE_SHARED=1)")
        pytest.skip(f"shared data not present: {path}")
    return path


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return _need(SHARED)


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    """REAL pretrained all-MiniLM-L6-v2 (sentence-transformers folder, mean pooling)."""
    return _need(SHARED / "models" / "all-MiniLM-L6-v2")


@pytest.fixture(scope="session")
def wiki_tutorial_dir() -> Path:
    return _need(SHARED / "data" / "wiki_tutorial")


@pytest.fixture(scope="session")
def tiny_text_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny randomly initialised BertModel with the real BGE tokenizer, CLS pooling."""
    from tools.random_models import build_text_model

    tok = _need(SHARED / "models" / "bge-small-en-v1.5-tokenizer")
    out = tmp_path_factory.mktemp("tiny-bge")
    build_text_model(out, tokenizer_dir=tok, tiny=True, seed=0)
    return out


@pytest.fixture(scope="session")
def tiny_clip_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny randomly initialised CLIPModel with the real CLIP BPE vocabulary."""
    from tools.random_models import build_clip_model

    vocab = _need(SHARED / "models" / "clip-vit-b-32-tokenizer" / "bpe_simple_vocab_16e6.txt.gz")
    out = tmp_path_factory.mktemp("tiny-clip")
    build_clip_model(out, bpe_vocab=vocab, tiny=True, seed=0)
    return out
