"""Shared fixtures: paths to ../shared, tiny random models of the real architectures, fakes."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MMRETRIEVE_SHARED", REPO.parent / "shared"))
sys.path.insert(0, str(REPO))  # tools/ and tests/ helpers

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _need(path: Path) -> Path:
    if not path.exists():
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
