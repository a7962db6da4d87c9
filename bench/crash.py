"""Kill ``mmretrieve index`` with SIGKILL at 50 random points and check each time that the index
opens, answers a search and, once the same command is run again, holds exactly what a clean run
holds (no duplicate ids, every article's passages matching its row).

The same loop as tests/integration/test_crash_safety.py (which does 10 kills), with a summary of
where the kills landed: how many left the index with no manifest yet, with half-written articles
(passages written, article row not yet), or in between runs. The killed command is the real CLI
with FAKE encoders (tests/helpers/index_with_fakes.py), so each run starts in about a second.

Example:
    python bench/crash.py --kills 50 --seed 1
"""

from __future__ import annotations

import argparse
import random
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO)]

from helpers.crash import (  # noqa: E402
    expected_counts,
    inspect,
    resume,
    run_and_signal,
    write_corpus,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=50, help="SIGKILLs to land (default 50).")
    parser.add_argument("--articles", type=int, default=120, help="Articles in the corpus.")
    parser.add_argument("--seed", type=int, default=None, help="Random seed (default: time).")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else time.time_ns() % 1_000_000
    rng = random.Random(seed)
    failures = 0
    with tempfile.TemporaryDirectory(prefix="mmretrieve-crash-") as tmp:
        base = Path(tmp)
        corpus, index = base / "corpus", base / "idx"
        expected, build, update = {}, {}, {}
        for version in (0, 1):
            write_corpus(corpus, version, args.articles)
            expected[version], build[version] = expected_counts(corpus, base / f"ref{version}")
        for version in (1, 0):
            write_corpus(corpus, version, args.articles)
            _, update[version] = expected_counts(corpus, base / f"ref{1 - version}")
        print(f"seed {seed}; expected counts {expected}")
        print(f"clean runs here: build {build}, update {update} (seconds, in-process)")
        print(
            "round  version  delay_s  from      outcome          left_articles  half_written"
            "  resumed"
        )
        kills = rounds = no_manifest = half_written = 0
        startup = 2.0
        start = time.perf_counter()
        while kills < args.kills and rounds < 4 * args.kills:
            rounds += 1
            version = rounds % 2
            write_corpus(corpus, version, args.articles)
            fresh = rounds % 5 == 1  # from nothing: may die while the index is created
            if fresh:
                shutil.rmtree(index, ignore_errors=True)
                delay = rng.uniform(0, 1.2 * (startup + build[version]))
            else:
                delay = rng.uniform(0, 1.2 * update[version])
            kill = run_and_signal(corpus, index, delay, signal.SIGKILL, from_start=fresh)
            startup = kill.startup or startup
            kills += kill.killed
            after = inspect(index)
            no_manifest += not after.exists
            half_written += bool(after.problems)
            why = []
            if kill.returncode != (-signal.SIGKILL if kill.killed else 0):
                why.append(f"exit {kill.returncode}: {kill.stderr[-500:]}")
            if any(after.duplicates.values()):
                why.append(f"duplicates after the kill: {after.duplicates}")
            result = resume(corpus, index)
            final = inspect(index)
            if result.exit_code != 0:
                why.append(f"resume exit {result.exit_code}: {result.output[-1000:]}")
            if final.counts != expected[version]:
                why.append(f"counts {final.counts} != {expected[version]}")
            if final.problems or any(final.duplicates.values()):
                why.append(f"{final.problems[:3]} {final.duplicates}")
            ok = not why
            failures += not ok
            outcome = "killed" if kill.killed else "finished first"
            left = after.counts.get("articles", "-") if after.exists else "no index"
            print(
                f"{rounds:5d}  {version:7d}  {delay:7.2f}  {'launch' if fresh else 'indexing':8s}"
                f"  {outcome:15s}  {left!s:>13}"
                f"  {len(after.problems):12d}  {'ok' if ok else 'FAILED'}"
            )
            for reason in why:
                print(f"        {reason}")
        seconds = time.perf_counter() - start
    print(
        f"\n{kills} kills in {rounds} runs ({seconds:.0f} s): {failures} failures; "
        f"{no_manifest} kills before the index existed, {half_written} left half-written "
        "articles that the next run replaced."
    )
    return 1 if failures or kills < args.kills else 0


if __name__ == "__main__":
    sys.exit(main())
