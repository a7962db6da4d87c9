"""The bad-input battery (issue 8): one corpus of every awkward input we know, indexed by the real
``mmretrieve index`` command (click, in-process) with FAKE encoders (tests/fakes.py).

Every case states its exact outcome: indexed (and, for pictures, decoded right: the stored vector
is the FAKE vector of the picture as it should look), or skipped with a reason, kind and path
that appear as one line of ``--report FILE`` and in the summary on stderr. The run exits 3 (some
skipped); separate runs check 0 (all indexed), 1 (failed) and 2 (usage error), and a corpus that
disappears in the middle of a run. docs/RELIABILITY.md lists the same cases.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from helpers.battery import MB, Corpus, QuickClip, QuickText, pattern, png_bytes, write
from helpers.battery_texts import build_all
from helpers.denied import deny_reading
from mmretrieve import Index

EXIT_SKIPPED = 3
SUMMARY_LINES = 50  # the summary on stderr lists this many, then points to --report


def use_fake_models(monkeypatch: pytest.MonkeyPatch, text: Any = None, clip: Any = None) -> None:
    """Every model the CLI loads in this test is a FAKE one."""
    import mmretrieve.encoders as encoders

    monkeypatch.setattr(encoders, "load_text_encoder", lambda *a, **k: text or QuickText())
    monkeypatch.setattr(encoders, "load_image_encoder", lambda *a, **k: clip or QuickClip())


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str
    report: list[dict[str, str]]


def index_cli(*args: str, report: Path | None = None) -> Run:
    argv = ["index", *args, "--no-progress"]
    if report is not None:
        argv += ["--report", str(report)]
    result = CliRunner().invoke(_cli(), argv, catch_exceptions=False)
    lines = []
    if report is not None and report.exists():
        lines = [json.loads(line) for line in report.read_text(encoding="utf-8").splitlines()]
    return Run(result.exit_code, result.stdout, result.stderr, lines)


def _cli() -> Any:
    from mmretrieve.interfaces.cli import main

    return main


# -------------------------------------------------------------------------- the run


@dataclass
class Battery:
    corpus: Corpus
    run: Run
    index: Index


@pytest.fixture(scope="module")
def battery(tmp_path_factory: pytest.TempPathFactory) -> Battery:
    mp = pytest.MonkeyPatch()
    base = tmp_path_factory.mktemp("bad").resolve()
    corpus = build_all(base)
    deny_reading(mp, *corpus.denied)
    use_fake_models(mp)
    try:
        sources = [str(base / "folder"), str(base / "flat"), str(base / "jsonl")]
        run = index_cli(*sources, "--index", str(base / "idx"), report=base / "report.jsonl")
    finally:
        mp.undo()
    index = Index.open(base / "idx", text_encoder=QuickText(), image_encoder=QuickClip())
    return Battery(corpus, run, index)


def _case_ids() -> list[str]:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        return [case.name for case in build_all(Path(tmp).resolve()).cases]


CASES = _case_ids()


def test_the_battery_has_at_least_50_cases() -> None:
    assert len(CASES) >= 50 and len(set(CASES)) == len(CASES)


@pytest.mark.parametrize("name", CASES)
def test_case(battery: Battery, name: str) -> None:
    (case,) = [c for c in battery.corpus.cases if c.name == name]
    run, index = battery.run, battery.index
    assert run.code == EXIT_SKIPPED, run.stderr[-2000:]
    if case.item is not None:
        kind, id_ = case.item
        if kind == "article":
            assert id_ in index.articles([id_]), f"{name}: article {id_!r} not indexed"
        else:
            assert index.image(id_) is not None, f"{name}: image {id_!r} not indexed"
        if case.check is not None:
            case.check(index)
        return
    lines = [line for line in run.report if line["path"] == case.path]
    assert len(lines) == 1, f"{name}: {len(lines)} report lines for {case.path}"
    (line,) = lines
    assert case.reason is not None and case.reason in line["reason"], (name, line)
    assert line["kind"] == case.kind, (name, line)
    shown = f"  {case.path}: {line['reason']}"
    if run.report.index(line) < SUMMARY_LINES:
        assert shown in run.stderr, f"{name}: not in the summary"
    else:
        assert shown not in run.stderr and "more (use --report FILE)" in run.stderr


def test_nothing_else_is_reported_or_indexed(battery: Battery) -> None:
    """The report holds exactly the expected lines, and the index exactly the expected items."""
    expected_paths = sorted(c.path for c in battery.corpus.cases if c.path is not None)
    assert sorted(line["path"] for line in battery.run.report) == expected_paths
    counts = battery.index.stats()["counts"]
    items = [c.item for c in battery.corpus.cases if c.item is not None]
    assert counts["articles"] == 1 + sum(kind == "article" for kind, _ in items)  # + gallery
    assert counts["images"] == sum(kind == "image" for kind, _ in items)
    assert "SECRET-OUTSIDE-THE-CORPUS" not in json.dumps(
        [h.text for h in battery.index.search(text="SECRET OUTSIDE CORPUS", k=50).hits]
    )
    assert f"Skipped {len(expected_paths)} items:" in battery.run.stderr
    more = len(expected_paths) - SUMMARY_LINES
    assert f"  ... and {more} more (use --report FILE)" in battery.run.stderr


def test_the_index_still_answers(battery: Battery) -> None:
    # The passage routes find the Latin-1 article by its words. (The FAKE CLIP compares a bag of
    # words with pixels: among 19 images one accidental outlier reads as a real match, so the
    # text->image routes are left out of this check of what was indexed.)
    result = battery.index.search(text="Café crème brûlée dessert", k=3, weights={"text->image": 0})
    assert result.articles[0].article.id == "Latin1"
    hit = battery.index.search(image=battery.corpus.base / "folder" / "Gallery" / "ok.png", k=1)
    assert hit.hits[0].route_scores["image->image"] == pytest.approx(1.0, abs=1e-5)


# -------------------------------------------------------------------------- exit codes


def test_exit_0_when_everything_is_indexed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    use_fake_models(monkeypatch)
    write(tmp_path / "c" / "Batman.txt", "Batman lives in Gotham.")
    write(tmp_path / "c" / "bat.png", png_bytes(pattern()))
    run = index_cli(
        str(tmp_path / "c"), "--index", str(tmp_path / "idx"), report=tmp_path / "r.jsonl"
    )
    assert (run.code, run.report) == (0, [])
    assert (tmp_path / "r.jsonl").read_text() == ""  # the report exists, and is empty
    again = index_cli(str(tmp_path / "c"), "--index", str(tmp_path / "idx"))
    assert again.code == 0 and "1 unchanged" in again.stdout


def test_exit_1_when_the_run_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    use_fake_models(monkeypatch)
    write(tmp_path / "c" / "Batman.txt", "Batman lives in Gotham.")
    assert index_cli(str(tmp_path / "c"), "--index", str(tmp_path / "idx")).code == 0
    missing_model = str(tmp_path / "no-such-model")
    run = index_cli(
        str(tmp_path / "c"), "--index", str(tmp_path / "idx"), "--text-model", missing_model
    )
    assert run.code == 1, run.stderr
    assert run.stderr.startswith("error: ") and "Traceback" not in run.stderr
    assert missing_model in run.stderr


def test_exit_2_on_usage_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    use_fake_models(monkeypatch)
    write(tmp_path / "c" / "Batman.txt", "Batman lives in Gotham.")
    missing = index_cli(
        str(tmp_path / "c"), str(tmp_path / "nope"), "--index", str(tmp_path / "idx")
    )
    assert missing.code == 2 and "no such file or folder" in missing.stderr
    # Checked before any work: the good source was not indexed either.
    assert (
        not (tmp_path / "idx" / "manifest.json").exists()
        or Index.open(
            tmp_path / "idx", text_encoder=QuickText(), image_encoder=QuickClip()
        ).stats()["counts"]["articles"]
        == 0
    )
    bad_flag = index_cli(str(tmp_path / "c"), "--chunk-tokens", "1")
    assert bad_flag.code == 2


# -------------------------------------------------------------------------- vanishing corpus


class Vanishing(QuickText):
    """Deletes ``victim`` the first time it chunks an article: the corpus disappears mid-run."""

    def __init__(self, victim: Path) -> None:
        super().__init__()
        self.victim = victim

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if self.victim.exists():
            shutil.rmtree(self.victim)
        return super().count_tokens(texts)


def test_a_source_that_disappears_mid_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    for n in range(3):
        write(first / f"A{n}.txt", f"First source article {n}.")
        write(second / f"B{n}.txt", f"Second source article {n}.")
    use_fake_models(monkeypatch, text=Vanishing(second))
    run = index_cli(
        str(first), str(second), "--index", str(tmp_path / "idx"), report=tmp_path / "r.jsonl"
    )
    assert run.code == EXIT_SKIPPED, run.stderr
    assert [line["path"] for line in run.report] == [str(second.resolve())]
    assert "No such file or directory" in run.report[0]["reason"]
    index = Index.open(tmp_path / "idx", text_encoder=QuickText(), image_encoder=QuickClip())
    assert sorted(index.articles(["A0", "A1", "A2", "B0"])) == ["A0", "A1", "A2"]


def test_a_folder_that_disappears_while_it_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    corpus = tmp_path / "corpus"
    for n in range(3):
        write(corpus / f"Art{n}" / "article.txt", f"Article number {n}.")
        write(corpus / f"Art{n}" / "pic.png", png_bytes(pattern(seed=n)))
    use_fake_models(monkeypatch, text=Vanishing(corpus))
    run = index_cli(str(corpus), "--index", str(tmp_path / "idx"), report=tmp_path / "r.jsonl")
    assert run.code == EXIT_SKIPPED, run.stderr
    root = corpus.resolve()
    reasons = {line["path"]: line["reason"] for line in run.report}
    # The first article was read before the folder went (and is indexed); its images and the
    # other articles are reported, and the run finishes.
    assert reasons == {
        str(root / "Art0"): "cannot read: No such file or directory",
        str(root / "Art1"): "disappeared during the run",
        str(root / "Art2"): "disappeared during the run",
    }
    index = Index.open(tmp_path / "idx", text_encoder=QuickText(), image_encoder=QuickClip())
    assert list(index.articles(["Art0", "Art1"])) == ["Art0"]


# -------------------------------------------------------------------------- memory


def test_a_10_mb_article_is_chunked_in_bounded_memory() -> None:
    """Chunking a 10 MB article allocates little more than its passages (measured with
    tracemalloc: about 1.2x the text, of which 1.1x is the passages themselves). Measured in a
    fresh process: tracemalloc counts every thread's allocations, and threads an earlier test
    left running (servers, background calibration) would be counted as the chunker's."""
    import subprocess
    import sys

    script = """
import json, tracemalloc
from mmretrieve.documents.chunking import chunk_article
from mmretrieve.types import Article
sentence = "The quick brown fox {} jumps over the lazy dog near river {}. "
paragraph = "".join(sentence.format(n, n) for n in range(500)) + "\\n\\n"
text = paragraph * (10 * 1024 * 1024 // len(paragraph) + 1)
article = Article(id="big", title="Big", text=text)
tracemalloc.start()
passages = chunk_article(article, lambda ts: [len(t.split()) for t in ts], 256, 32)
_, peak = tracemalloc.get_traced_memory()
tracemalloc.stop()
kept = sum(len(p.text) for p in passages)
print(json.dumps({"passages": len(passages), "kept": kept, "text": len(text), "peak": peak}))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True
    )
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    passages, kept, text_len, peak = (
        figures["passages"],
        figures["kept"],
        figures["text"],
        figures["peak"],
    )
    assert passages > 1000 and kept >= text_len - passages
    assert peak < 2 * text_len, f"peak {peak / MB:.0f} MiB for a {text_len / MB:.0f} MiB text"
