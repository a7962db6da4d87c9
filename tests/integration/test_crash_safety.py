"""Crash safety (issue 8): ``mmretrieve index`` killed with SIGKILL at random points, then
resumed; and interrupted with Ctrl-C (SIGINT).

After every kill the index opens and answers a search and holds no duplicate id; the resumed run
(the same command again) exits 0 and leaves exactly the rows a clean run of the same corpus
leaves, with every article's passages matching its row. Kills alternate between a first build
and an update (a third of the articles edited, some dropped with --prune, some added), so they
land in fresh writes, deletions of old passages, image batches, pruning and index optimisation.

The killed process is the real command line with FAKE encoders (tests/helpers/index_with_fakes.py)
so that it starts in about a second; bench/crash.py runs the same loop 50 times. Set
MMRETRIEVE_CRASH_SEED to replay a run.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers.crash import (
    default_sigint,
    expected_counts,
    inspect,
    resume,
    run_and_signal,
    write_corpus,
)

KILLS = 10
MAX_ROUNDS = 30  # a kill that comes after the run finished does not count; try again


def _seed() -> int:
    return int(os.environ.get("MMRETRIEVE_CRASH_SEED", time.time_ns() % 1_000_000))


def test_sigkill_at_random_points_then_resume(tmp_path: Path) -> None:
    seed = _seed()
    rng = random.Random(seed)
    corpus, index = tmp_path / "corpus", tmp_path / "idx"
    # Expected counts, and how long a first build and an update of each version take here.
    expected, build, update = {}, {}, {}
    for version in (0, 1):
        write_corpus(corpus, version)
        expected[version], build[version] = expected_counts(corpus, tmp_path / f"ref{version}")
    for version in (1, 0):
        write_corpus(corpus, version)
        counts, update[version] = expected_counts(corpus, tmp_path / f"ref{1 - version}")
        assert counts == expected[version]
    assert expected[0] != expected[1]
    log: list[str] = []
    kills = rounds = 0
    startup = 2.0  # seconds from launch to indexing; measured as the rounds go
    while kills < KILLS:
        rounds += 1
        assert rounds <= MAX_ROUNDS, f"only {kills} kills in {MAX_ROUNDS} rounds (seed {seed})"
        version = rounds % 2
        write_corpus(corpus, version)
        # Every fifth round starts from nothing and may die while the index is being created.
        fresh = rounds % 5 == 1
        if fresh:
            shutil.rmtree(index, ignore_errors=True)
            delay = rng.uniform(0, 1.2 * (startup + build[version]))
        else:
            delay = rng.uniform(0, 1.2 * update[version])
        kill = run_and_signal(corpus, index, delay, from_start=fresh)
        startup = kill.startup or startup
        where = f"seed {seed}, round {rounds}, version {version}, delay {delay:.2f}s"
        where += " from launch" if fresh else " into indexing"
        if kill.killed:
            kills += 1
            assert kill.returncode == -signal.SIGKILL, (where, kill.stderr[-2000:])
        else:
            assert kill.returncode == 0, (where, kill.stderr[-2000:])
        after_kill = inspect(index)  # opens and answers a search, or was never created
        log.append(
            f"{where}: {'killed' if kill.killed else 'finished first'}, left {after_kill.counts}"
            f" with {len(after_kill.problems)} half-written articles"
        )
        assert after_kill.exists or fresh, where
        assert not any(after_kill.duplicates.values()), (where, after_kill.duplicates)
        resumed = resume(corpus, index)
        assert resumed.exit_code == 0, (where, resumed.output[-2000:])
        final = inspect(index)
        assert final.counts == expected[version], (where, final.counts, expected[version])
        assert not any(final.duplicates.values()), (where, final.duplicates)
        assert final.problems == [], (where, final.problems[:5])
    print("\n".join(log))


def test_ctrl_c_exits_130_with_a_clean_message_and_resumes(tmp_path: Path) -> None:
    corpus, index = tmp_path / "corpus", tmp_path / "idx"
    write_corpus(corpus, 0, articles=400)
    expected, took = expected_counts(corpus, tmp_path / "ref")
    for attempt in range(6):  # ever sooner after the progress bar appears, until one lands
        stop = run_and_signal(corpus, index, took * 0.2 * 0.5**attempt, sig=signal.SIGINT)
        if stop.killed:
            break
    else:
        pytest.fail("the run always finished before Ctrl-C")
    assert stop.returncode == 130, stop.stderr[-2000:]
    last = stop.stderr.replace("\r", "\n").strip().splitlines()[-1]
    assert last.startswith("error: interrupted"), stop.stderr[-2000:]
    assert "Traceback" not in stop.stderr and "KeyboardInterrupt" not in stop.stderr
    assert inspect(index).exists
    resumed = resume(corpus, index)
    assert resumed.exit_code == 0, resumed.output[-2000:]
    final = inspect(index)
    assert (final.counts, final.problems) == (expected, [])


@pytest.mark.slow
def test_ctrl_c_with_the_installed_command_and_tiny_models(
    tmp_path: Path, tiny_text_model_dir: Path, tiny_clip_model_dir: Path
) -> None:
    """The same with the real ``mmretrieve`` entry point and real (tiny, random) models."""
    corpus, index = tmp_path / "corpus", tmp_path / "idx"
    write_corpus(corpus, 0, articles=400)
    command = [
        str(Path(sys.executable).with_name("mmretrieve")),
        "index", str(corpus), "--index", str(index),
        "--text-model", str(tiny_text_model_dir), "--image-model", str(tiny_clip_model_dir),
    ]  # fmt: skip
    # `auto`, as users run it, in a fresh export cache: this first run exports the models and
    # times every runtime in this process, then drops the losers. A released OpenVINO model
    # used to leave a freed signal stack behind, and this Ctrl-C died of SIGSEGV
    # (tests/unit/test_signal_stack.py).
    env = dict(os.environ, MMRETRIEVE_ONNX_CACHE=str(tmp_path / "export-cache"))
    env.pop("MMRETRIEVE_RUNTIME", None)
    proc = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=default_sigint,
        env=env,
    )
    assert proc.stderr is not None
    seen = b""
    deadline = time.monotonic() + 300
    # The progress bar ("indexing: N items"), not the one-off "timing the batch (indexing)
    # runtimes" message a first run prints while it measures the runtimes.
    while b"indexing:" not in seen and time.monotonic() < deadline:
        chunk = proc.stderr.read1(256)  # type: ignore[attr-defined]
        if not chunk:
            break
        seen += chunk
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    out = seen + proc.stderr.read()
    code = proc.wait(60)
    text = out.decode("utf-8", "replace")
    assert code == 130, text[-2000:]
    assert text.replace("\r", "\n").strip().splitlines()[-1].startswith("error: interrupted")
    assert "Traceback" not in text
