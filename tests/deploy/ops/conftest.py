"""Fixtures of the deploy/ops tests: the command-line tools they run on the files.

The tools (promtool, kustomize) are binaries that `make test` fetches into .venv/bin with
deploy/ops/tools/fetch-tool.sh. A test that needs a missing one fails, saying how to get it: the
checks they make are part of the suite, not extras to skip.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import pytest


def find_tool(name: str) -> str:
    """The path of a command-line tool; fails the calling test where it is missing.

    `make test` puts the tools beside the venv's Python (.venv/bin), which need not be on PATH
    when pytest is started as .venv/bin/python; PATH is the fallback.
    """
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which(name)
    if found is None:
        pytest.fail(
            f"{name} is missing (looked in {beside.parent} and on PATH): `make test` installs it"
            f" into .venv/bin (deploy/ops/tools/fetch-tool.sh {name} .venv/bin/{name})",
            pytrace=False,
        )
    return found


@pytest.fixture
def tool() -> Callable[[str], str]:
    """`tool(name)`: the path of a tool (see find_tool). Called in the test's body, so that a
    missing tool fails the test rather than erroring its setup."""
    return find_tool
