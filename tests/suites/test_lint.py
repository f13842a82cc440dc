"""ruff's lint and format checks over the whole repository (package, tests, lab code), run by CI with the tests."""

from __future__ import annotations

import subprocess
import sys

import pytest

from support.paths import REPOSITORY


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]], ids=["check", "format"])
def test_ruff(command: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ruff", *command, "."], cwd=REPOSITORY, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, f"ruff {' '.join(command)} found problems:\n{result.stdout}{result.stderr}"
