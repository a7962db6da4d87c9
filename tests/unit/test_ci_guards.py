"""The guards that keep a green CI run honest (issue 18), each checked in a pytest of its own:

- with CI=true or MMRETRIEVE_REQUIRE_SHARED=1, a missing shared folder (or a missing part of it)
  stops the run at once, naming the path (tests/conftest.py);
- with MMRETRIEVE_ALLOWED_SKIPS, a skip whose reason is not listed fails the run, whether it
  skipped a test or a whole module (tests/skip_guard.py);
- tests/expected_skips.txt explains every entry.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import SHARED_NEEDS

TESTS = Path(__file__).resolve().parents[1]
REPO = TESTS.parent
GUARD_ENV = ("CI", "MMRETRIEVE_REQUIRE_SHARED", "MMRETRIEVE_SHARED", "MMRETRIEVE_ALLOWED_SKIPS")


def _pytest(*args: str, cwd: Path = REPO, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in GUARD_ENV and k != "PYTEST_ADDOPTS"}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=cwd,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


# A quick module that needs nothing from the shared folder: collecting it is enough.
QUICK = ("--co", "-q", "tests/unit/test_import_light.py")


@pytest.mark.parametrize("switch", [{"CI": "true"}, {"MMRETRIEVE_REQUIRE_SHARED": "1"}])
def test_a_missing_shared_folder_stops_the_run(tmp_path: Path, switch: dict[str, str]) -> None:
    gone = tmp_path / "no-shared-here"
    run = _pytest(*QUICK, MMRETRIEVE_SHARED=str(gone), **switch)
    out = run.stdout + run.stderr
    assert run.returncode == pytest.ExitCode.USAGE_ERROR, out
    assert f"the shared folder {gone} (from MMRETRIEVE_SHARED) does not exist" in out
    assert "collected" not in out  # stopped before collecting anything


def test_a_missing_part_of_the_shared_folder_is_named(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    for need in SHARED_NEEDS:
        (shared / need).mkdir(parents=True)
    lost = shared / "models" / "all-MiniLM-L6-v2"
    lost.rmdir()
    run = _pytest(*QUICK, CI="true", MMRETRIEVE_SHARED=str(shared))
    out = run.stdout + run.stderr
    assert run.returncode == pytest.ExitCode.USAGE_ERROR, out
    assert f"the shared folder {shared} (from MMRETRIEVE_SHARED) lacks {lost}." in out


def test_outside_ci_a_missing_shared_folder_only_skips(tmp_path: Path) -> None:
    run = _pytest(*QUICK, MMRETRIEVE_SHARED=str(tmp_path / "absent"))
    assert run.returncode == 0, run.stdout + run.stderr


# -- the skip guard -------------------------------------------------------------------------------

SKIPPING = """
import pytest

def test_runs():
    pass

def test_listed():
    pytest.skip("the frobnicator is opt-in")

@pytest.mark.skipif(True, reason="nobody explained this one")
def test_unlisted():
    pass

@pytest.mark.xfail(reason="known to fail")
def test_xfail():
    assert False
"""


def _guarded(
    tmp_path: Path, listing: str | None, *files: tuple[str, str]
) -> subprocess.CompletedProcess[str]:
    """pytest with the skip guard as a plugin (``-p skip_guard``) on a folder of its own."""
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    for name, text in files:
        (tmp_path / name).write_text(text)
    env = {"PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    if listing is not None:
        (tmp_path / "allowed.txt").write_text(listing)
        env["MMRETRIEVE_ALLOWED_SKIPS"] = str(tmp_path / "allowed.txt")
    return _pytest("-p", "skip_guard", "-q", "-rs", str(tmp_path), cwd=tmp_path, **env)


def test_an_unlisted_skip_fails_the_run(tmp_path: Path) -> None:
    importorskip = "import pytest\npytest.importorskip('no_such_module_here')\n"
    listing = "# why: opt-in\nfrobnicator is opt-in\n"
    run = _guarded(tmp_path, listing, ("test_a.py", SKIPPING), ("test_b.py", importorskip))
    out = run.stdout + run.stderr
    assert run.returncode == pytest.ExitCode.TESTS_FAILED, out
    unexpected = out[out.index("unexpected skips") : out.index("short test summary")]
    assert "test_a.py::test_unlisted: nobody explained this one" in unexpected
    assert "test_a.py::test_xfail: xfail: known to fail" in unexpected
    assert "test_b.py: could not import 'no_such_module_here'" in unexpected  # a whole module
    assert "frobnicator" not in unexpected
    assert "3 skip(s) with a reason not listed" in unexpected


def test_listed_skips_pass(tmp_path: Path) -> None:
    listing = "frobnicator is opt-in  # why\nnobody explained\n# a comment\n\nknown to fail\n"
    run = _guarded(tmp_path, listing, ("test_a.py", SKIPPING))
    assert run.returncode == 0, run.stdout + run.stderr
    assert "unexpected skips" not in run.stdout


def test_without_the_variable_skips_do_not_fail(tmp_path: Path) -> None:
    run = _guarded(tmp_path, None, ("test_a.py", SKIPPING))
    assert run.returncode == 0, run.stdout + run.stderr


def test_the_conftest_installs_the_guard_and_a_missing_list_is_an_error(tmp_path: Path) -> None:
    run = _pytest(*QUICK, MMRETRIEVE_ALLOWED_SKIPS=str(tmp_path / "nope.txt"))
    out = run.stdout + run.stderr
    assert run.returncode == pytest.ExitCode.USAGE_ERROR, out
    assert f"MMRETRIEVE_ALLOWED_SKIPS={tmp_path / 'nope.txt'}: no such file" in out


def test_every_expected_skip_says_why() -> None:
    """Each entry of tests/expected_skips.txt follows a comment line that explains it."""
    lines = (TESTS / "expected_skips.txt").read_text(encoding="utf-8").splitlines()
    entries = [i for i, line in enumerate(lines) if line.strip() and not line.startswith("#")]
    assert entries, "no expected skips listed"
    for i in entries:
        assert i > 0 and lines[i - 1].startswith("# "), f"no comment above {lines[i]!r}"
