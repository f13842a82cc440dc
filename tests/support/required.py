"""What the test suite needs: skipped when missing on a developer's machine, a failure in CI.

CI (``CI=true``, as GitHub Actions and most CI services set it; any value but empty, ``0``, ``false`` or ``no``)
installs everything the tests need (``pip install -e ".[onnx-cpu,inference,test]"``) and the checkout holds the
bundled model, so a missing Workflows engine, server dependency, test dependency or bundled model there is a broken
environment, not a reason to skip: a green run must mean the tests ran. Optional hardware (GPUs, TensorRT,
onnxruntime-gpu), optional cross-checks (inference-models, torch) and platform features (POSIX file locks) keep
plain ``pytest.skip`` / ``pytest.importorskip``.

Usage, at module level or in a test or fixture::

    from support.required import require_file, require_module

    ExecutionEngine = require_module("roboflow_workflows.execution_engine.core", "the Workflows engine").ExecutionEngine
    model = require_file(TRAINED_MODEL, "the bundled trained model")
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import ModuleType
from typing import NoReturn

import pytest

CI_VARIABLE = "CI"
INSTALL_HINT = "pip install -e '.[onnx-cpu,inference,test]'"


NOT_CI_VALUES = ("", "0", "false", "no")


def in_ci() -> bool:
    """Whether the tests run in CI: the environment variable ``CI`` is set to anything but empty, ``0``, ``false`` or
    ``no`` (any case); ``CI=true`` is what GitHub Actions and most CI services set."""
    return os.environ.get(CI_VARIABLE, "").strip().lower() not in NOT_CI_VALUES


def missing(message: str) -> NoReturn:
    """Skips (the whole module when called at import) outside CI; fails in CI."""
    if in_ci():
        pytest.fail(f"{message} (required in CI: CI=true turns this skip into a failure)", pytrace=False)
    pytest.skip(message, allow_module_level=True)


def require_module(name: str, what: str | None = None) -> ModuleType:
    """Imports ``name``; when it cannot be imported, :func:`missing` (skip outside CI, fail in CI)."""
    try:
        return importlib.import_module(name)
    except ImportError as error:
        missing(f"needs {what or name} ({name}: {error}); install it: {INSTALL_HINT}")


def require_file(path: str | os.PathLike[str], what: str | None = None) -> Path:
    """``path`` as a :class:`Path` when it is a file; otherwise :func:`missing` (skip outside CI, fail in CI)."""
    path = Path(path)
    if not path.is_file():
        missing(f"{what or 'a required file'} is missing: {path}")
    return path
