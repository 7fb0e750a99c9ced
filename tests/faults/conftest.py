"""The fault-injection suite's table: each case records a row (`harness.ROWS`), printed at the end
of the run and, when ``FAULTS_TABLE`` names a file, written there too (Markdown)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.faults.harness import ROWS, table


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not ROWS:
        return
    text = table(ROWS)
    terminalreporter.section("faults")
    terminalreporter.write_line(text)
    if path := os.environ.get("FAULTS_TABLE"):
        Path(path).write_text(text + "\n")
        terminalreporter.write_line(f"written to {path}")
