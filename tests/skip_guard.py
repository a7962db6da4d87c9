"""The skip guard: with MMRETRIEVE_ALLOWED_SKIPS naming a file of expected skip reasons, a skip
(or xfail) whose reason matches none of them fails the run.

In CI a skip is a test that did not run, so only listed, explained reasons may skip (.ci/run sets
the variable to tests/expected_skips.txt). The file holds one substring of an expected reason per
line; ``#`` starts a comment, and each entry carries one saying why it is expected.

Skips are collected from both places pytest reports them: while running a test (``pytest.skip``,
``skipif``, a fixture that skips) and while collecting a module (a module-level
``pytest.importorskip`` skips the whole file). tests/conftest.py installs it; ``-p skip_guard``
(with tests/ on the path) does the same, which is how tests/unit/test_ci_guards.py checks it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ENV = "MMRETRIEVE_ALLOWED_SKIPS"
PLUGIN_NAME = "mmretrieve-skip-guard"


def read_allowed(listing: Path) -> list[str]:
    """The expected reasons: every line without its ``#`` comment, blank lines dropped."""
    lines = listing.read_text(encoding="utf-8").splitlines()
    return [entry for entry in (line.split("#", 1)[0].strip() for line in lines) if entry]


def skip_reason(report: pytest.CollectReport | pytest.TestReport) -> str:
    wasxfail = getattr(report, "wasxfail", None)
    if wasxfail is not None:
        return f"xfail: {wasxfail}"
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        reason = str(longrepr[2])
    else:
        reason = str(longrepr)
    return reason.removeprefix("Skipped: ")


class SkipGuard:
    def __init__(self, listing: Path, allowed: list[str]) -> None:
        self.listing = listing
        self.allowed = allowed
        self.skipped: list[tuple[str, str]] = []  # (node id, reason)
        self.unexpected: list[tuple[str, str]] = []

    def _note(self, report: pytest.CollectReport | pytest.TestReport) -> None:
        if report.skipped:
            self.skipped.append((report.nodeid, skip_reason(report)))

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        self._note(report)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self._note(report)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        self.unexpected = [
            (nodeid, reason)
            for nodeid, reason in self.skipped
            if not any(entry in reason for entry in self.allowed)
        ]
        if self.unexpected and session.exitstatus in (
            pytest.ExitCode.OK,
            pytest.ExitCode.NO_TESTS_COLLECTED,
        ):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self.unexpected:
            return
        terminalreporter.section("unexpected skips", sep="=", red=True, bold=True)
        terminalreporter.write_line(
            f"{len(self.unexpected)} skip(s) with a reason not listed in {self.listing} "
            f"({ENV}); each one is a test that did not run, so the run fails:",
            red=True,
        )
        for nodeid, reason in self.unexpected:
            terminalreporter.write_line(f"  {nodeid}: {reason}", red=True)


def install(config: pytest.Config) -> None:
    """Register the guard when MMRETRIEVE_ALLOWED_SKIPS is set (a missing file is a usage error)."""
    listing = os.environ.get(ENV)
    if not listing or config.pluginmanager.has_plugin(PLUGIN_NAME):
        return
    path = Path(listing)
    if not path.is_file():
        raise pytest.UsageError(f"{ENV}={listing}: no such file (the expected skip reasons)")
    config.pluginmanager.register(SkipGuard(path, read_allowed(path)), PLUGIN_NAME)


pytest_configure = install  # as a plugin of its own: `-p skip_guard`
