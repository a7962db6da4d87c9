"""An index reopens in a new process (issue 15): a Milvus Lite file written by one process is
searched by another. FAKE text encoder (tests/fakes.py), the three sample articles."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
pytest.importorskip("pymilvus", reason="pymilvus not installed (pip install 'mmretrieve[milvus]')")
pytest.importorskip("milvus_lite", reason="milvus-lite not installed")

TESTS = Path(__file__).resolve().parents[1]

WRITE = """
from pathlib import Path
from fakes import SAMPLE_ARTICLES, FakeTextEncoder
from mmretrieve import Index
corpus = Path(CORPUS)
for title, text in SAMPLE_ARTICLES.items():
    (corpus / title).mkdir(parents=True, exist_ok=True)
    (corpus / title / "article.txt").write_text(text, encoding="utf-8")
index = Index.open(URI, text_encoder=FakeTextEncoder(), image_model="none")
print(index.add(corpus).articles_added)
index.close()
"""
READ = """
from fakes import FakeTextEncoder
from mmretrieve import Index
index = Index.open(URI, text_encoder=FakeTextEncoder(), image_model="none", create=False)
print(index.search(text="Who is Bruce Wayne?", k=1).articles[0].article.title)
print(index.stats()["counts"]["articles"])
index.close()
"""


def _run(code: str, **values: str) -> list[str]:
    prologue = "".join(f"{name} = {value!r}\n" for name, value in values.items())
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), *sys.path])}
    done = subprocess.run(
        [sys.executable, "-c", prologue + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.split()


def test_a_milvus_lite_index_reopens_in_another_process(tmp_path: Path) -> None:
    uri = f"milvus-lite://{tmp_path / 'w.db'}"
    assert _run(WRITE, URI=uri, CORPUS=str(tmp_path / "corpus")) == ["3"]
    assert _run(READ, URI=uri) == ["Batman", "3"]
    assert _run(READ, URI=uri) == ["Batman", "3"]  # and again
