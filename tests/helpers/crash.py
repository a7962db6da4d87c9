"""Kill ``mmretrieve index`` at random points and check what it leaves (test-only).

Shared by tests/integration/test_crash_safety.py (10 kills) and bench/crash.py (50 kills). The
killed process is the real command line run by tests/helpers/index_with_fakes.py (FAKE encoders,
so it starts in about a second); the resumed run is the same command, in-process.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image as PILImage

REPO = Path(__file__).resolve().parents[2]
LAUNCHER = REPO / "tests" / "helpers" / "index_with_fakes.py"
# Small passages make many of them, so a run writes several batches: more places to die in.
CHUNK_ARGS = ("--chunk-tokens", "16", "--chunk-overlap", "4")
TABLES = ("articles", "passages", "images")


def write_corpus(root: Path, version: int, articles: int = 120, seed: int = 0) -> None:
    """A folder-layout corpus. Version 1 edits a third of version 0's articles (so their passage
    counts change), drops a tenth, adds new ones, and changes or drops some pictures."""
    if root.exists():
        shutil.rmtree(root)
    rng = random.Random(seed)
    words = [f"w{n}" for n in range(400)]
    for n in range(articles + (10 if version else 0)):
        if version and n % 10 == 3:
            continue  # dropped in version 1
        folder = root / f"A{n:04d}"
        folder.mkdir(parents=True)
        edited = version and n % 3 == 0
        sentences = rng.randint(2, 9) + (3 if edited else 0)
        text = " ".join(
            " ".join(rng.choice(words) for _ in range(rng.randint(6, 14))) + "."
            for _ in range(sentences * 2)
        )
        (folder / "article.txt").write_text(f"Article {n} topic{n}. {text}", encoding="utf-8")
        (folder / "meta.json").write_text(json.dumps({"id": f"crash:{n}", "title": f"Article {n}"}))
        if n % 2 == 0 and not (version and n % 8 == 0):
            pixels = np.random.default_rng(n * 7 + (version if n % 6 == 0 else 0)).integers(
                0, 255, (24, 32, 3), dtype=np.uint8
            )
            PILImage.fromarray(pixels).save(folder / "photo.png")


def index_args(corpus: Path, index: Path) -> list[str]:
    return ["index", str(corpus), "--index", str(index), "--prune", *CHUNK_ARGS]


@dataclass
class State:
    """What an index holds after a run (or a kill)."""

    exists: bool
    counts: dict[str, int] = field(default_factory=dict)
    duplicates: dict[str, list[str]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def inspect(index_path: Path) -> State:
    """Open the index (if any), search it, count rows and look for duplicate ids and articles
    whose passages do not match their row."""
    if str(REPO / "tests") not in sys.path:
        sys.path.insert(0, str(REPO / "tests"))
    from fakes import FakeClipEncoder, FakeTextEncoder
    from mmretrieve import Index

    if not (index_path / "manifest.json").exists():
        return State(exists=False)
    index = Index.open(
        index_path, create=False, text_encoder=FakeTextEncoder(), image_encoder=FakeClipEncoder()
    )
    with index:
        state = State(exists=True)
        result = index.search(text="topic7 w1 w2", k=5)  # must answer, whatever it finds
        assert result.routes, "a search ran no route"
        index.search(image=PILImage.new("RGB", (8, 8), (1, 2, 3)), k=3)
        store = index.store
        ids = {t: [r["id"] for r in store.scan(t, ["id"])] for t in TABLES}
        state.counts = {t: len(v) for t, v in ids.items()}
        state.duplicates = {
            t: sorted(k for k, c in Counter(v).items() if c > 1) for t, v in ids.items()
        }
        articles = {
            r["id"]: r for r in store.scan("articles", ["id", "n_passages", "content_hash"])
        }
        per_article: Counter[str] = Counter()
        hashes: dict[str, set[str]] = {}
        for row in store.scan("passages", ["article_id", "content_hash"]):
            per_article[row["article_id"]] += 1
            hashes.setdefault(row["article_id"], set()).add(row["content_hash"])
        for article_id, row in articles.items():
            if per_article[article_id] != row["n_passages"]:
                state.problems.append(
                    f"{article_id}: {per_article[article_id]} passages, "
                    f"its row says {row['n_passages']}"
                )
            if hashes.get(article_id, set()) - {row["content_hash"]}:
                state.problems.append(f"{article_id}: passages of another version")
        return state


@dataclass
class Kill:
    delay: float
    killed: bool  # False when the run finished before the signal
    returncode: int
    stderr: str
    startup: float | None  # seconds from launch to the progress bar, when seen


def default_sigint() -> None:
    """For a child that must feel Ctrl-C: a test run started in the background (nohup, ``&``)
    ignores SIGINT, every child inherits that, and Python then installs no KeyboardInterrupt
    handler at all."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def launch(corpus: Path, index: Path, *extra: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1", "LANCE_LOG": "error"}
    return subprocess.Popen(
        [sys.executable, str(LAUNCHER), *index_args(corpus, index), "--progress", *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
        cwd=str(REPO),
        preexec_fn=default_sigint,
    )


def run_and_signal(
    corpus: Path,
    index: Path,
    delay: float,
    sig: int = signal.SIGKILL,
    timeout: float = 120,
    from_start: bool = False,
) -> Kill:
    """Start the command, wait until it starts indexing (its progress bar appears; with
    ``from_start``, do not wait: the signal may land while it opens or creates the index),
    then ``delay`` seconds more, and send ``sig``."""
    launched = time.perf_counter()
    proc = launch(corpus, index)
    started = threading.Event()
    seen: list[float] = []
    chunks: list[bytes] = []

    def read() -> None:
        assert proc.stderr is not None
        while True:
            chunk = proc.stderr.read1(4096)  # type: ignore[attr-defined]
            if not chunk:
                break
            chunks.append(chunk)
            if b"indexing:" in chunk and not seen:  # the progress bar itself
                seen.append(time.perf_counter() - launched)
                started.set()
        started.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    if not from_start:
        started.wait(timeout)
    time.sleep(delay)
    sent = proc.poll() is None
    if sent:
        proc.send_signal(sig)
    code = proc.wait(timeout)
    killed = sent and code != 0  # it may still have finished between the poll and the signal
    reader.join(timeout)
    text = b"".join(chunks).decode("utf-8", "replace")
    return Kill(delay, killed, code, text, seen[0] if seen else None)


def resume(corpus: Path, index: Path) -> Any:
    """The same command again, in this process, with FAKE encoders: must finish with exit 0."""
    from click.testing import CliRunner

    from helpers.index_with_fakes import install_fake_encoders
    from mmretrieve.interfaces.cli import main

    undo = install_fake_encoders()
    try:
        return CliRunner().invoke(main, [*index_args(corpus, index), "--no-progress", "--json"])
    finally:
        undo()


def expected_counts(corpus: Path, scratch: Path) -> tuple[dict[str, int], float]:
    """Counts after one clean run of ``corpus`` into ``scratch`` (a fresh index unless it holds
    one already: then the run is an update), and how long the run took."""
    start = time.perf_counter()
    result = resume(corpus, scratch)
    assert result.exit_code == 0, result.output
    took = time.perf_counter() - start
    state = inspect(scratch)
    assert not any(state.duplicates.values()) and not state.problems
    return state.counts, took
