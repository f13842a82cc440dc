"""Throw-away venvs for the suites that install the package against other versions (the lowest allowed numpy and
supervision, the oldest Inference): pip with a clear skip-or-fail rule, and the package's sources copied out of the
checkout so that building writes nothing into it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from support.paths import REPOSITORY
from support.required import in_ci


def pip(venv_python: Path, *arguments: str, timeout_s: float, index_probe: str) -> None:
    """Runs pip in the venv; skips (outside CI) when the package index cannot be reached (asked for
    ``index_probe``'s versions), fails otherwise."""
    done = subprocess.run([venv_python, "-m", "pip", *arguments], capture_output=True, text=True, timeout=timeout_s)
    if done.returncode == 0:
        return
    report = f"pip {' '.join(arguments)} failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    if not in_ci():
        index = subprocess.run(
            [venv_python, "-m", "pip", "index", "versions", index_probe], capture_output=True, text=True, timeout=120
        )
        if index.returncode != 0:
            pytest.skip(f"the package index cannot be reached (it is required in CI):\n{report}")
    pytest.fail(report)


def skip_without_index(index_probe: str) -> None:
    """Outside CI, skips before anything is installed when the package index cannot be reached (asked for
    ``index_probe``'s versions with this environment's pip); in CI the install itself fails loudly."""
    if in_ci():
        return
    index = subprocess.run(
        [sys.executable, "-m", "pip", "index", "versions", index_probe], capture_output=True, text=True, timeout=120
    )
    if index.returncode != 0:
        pytest.skip(f"the package index cannot be reached (it is required in CI): {index.stderr.strip()[-500:]}")


def copy_of_sources(destination: Path) -> Path:
    """What building the package reads, copied, so that the build writes nothing (build/, egg-info) into the repo."""
    package = "workflows_yolov5_seg"
    shutil.copytree(REPOSITORY / package, destination / package, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPOSITORY / name, destination / name)
    return destination
