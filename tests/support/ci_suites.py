"""The tests that only CI runs by default: they install other environments (minutes, gigabytes).

A test marked ``@pytest.mark.ci_only`` runs under ``CI=true`` (:func:`support.required.in_ci`) and, on a developer's
machine, only with ``pytest --ci-suites``; otherwise ``tests/conftest.py`` marks it skipped at collection, before any
fixture or install runs. ``tests/suites/test_ci_suites.py`` keeps :data:`CI_ONLY` (the list) and the markers in the
test files in step, so none disappears silently. The full load test (``tests/lab/test_loadtest.py::test_full_load``)
is not among them: it runs neither locally nor in CI unless ``WORKFLOWS_YOLOV5_SEG_FULL_LOAD_TEST=1``, as before.
"""

from __future__ import annotations

import ast
from pathlib import Path

from support.paths import REPOSITORY

MARKER = "ci_only"
OPTION = "--ci-suites"
# Every ci_only test, as pytest names it.
CI_ONLY = (
    "tests/suites/test_inference_versions.py::test_oldest_supported_inference_runs_the_plugin_as_the_newest",
    "tests/suites/test_lowest_versions.py::test_lowest_numpy_and_supervision_give_the_same_results",
)
SKIP_REASON = f"CI-only: installs another environment (minutes); runs under CI=true, here with pytest {OPTION}"


def runs_ci_only(ci: bool, option: bool) -> bool:
    """Whether ``ci_only`` tests run: in CI, or when asked for with :data:`OPTION`."""
    return ci or option


def _is_marker(node: ast.expr) -> bool:
    """``pytest.mark.ci_only`` (called or not)."""
    if isinstance(node, ast.Call):
        node = node.func
    return isinstance(node, ast.Attribute) and node.attr == MARKER


def marked_tests(root: Path = REPOSITORY) -> list[str]:
    """The tests under ``tests/`` marked ``ci_only`` (by decorator, or the whole module by ``pytestmark``), read from
    the source, as ``path::name``."""
    found = []
    for path in sorted((root / "tests").rglob("test_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        module_marked = any(
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets)
            and any(_is_marker(n) for n in ast.walk(node.value))
            for node in tree.body
        )
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.ClassDef) and node.name.lower().startswith("test"):
                if module_marked or any(_is_marker(d) for d in node.decorator_list):
                    found.append(f"{path.relative_to(root).as_posix()}::{node.name}")
    return found
