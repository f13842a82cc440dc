"""Test honesty in CI (issue 13): what the suite needs skips on a developer's machine and fails under ``CI=true``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from support.required import in_ci, require_file, require_module

pytest_plugins = ["pytester"]

TESTS = Path(__file__).resolve().parents[1]
# What the tests may still skip without: optional hardware and optional cross-checks, never the Workflows engine,
# the server's dependencies, the test extra or the bundled model.
OPTIONAL_MODULES = {"tensorrt", "torch", "fcntl"}
OPTIONAL_MODULE_PREFIXES = ("inference_models",)


@pytest.mark.parametrize("value", ["true", "TRUE", "True", " true ", "1", "yes"])
def test_ci_true_in_any_case(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("CI", value)
    assert in_ci()


@pytest.mark.parametrize("value", [None, "", "false", "FALSE", "0", "no", " "])
def test_not_ci(monkeypatch: pytest.MonkeyPatch, value: str | None) -> None:
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    assert not in_ci()


def test_a_missing_module_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="no_such_module_for_the_test.*required in CI"):
        require_module("no_such_module_for_the_test", "the Workflows engine")


def test_a_missing_module_skips_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="needs the Workflows engine"):
        require_module("no_such_module_for_the_test", "the Workflows engine")


def test_a_missing_file_fails_in_ci_and_skips_outside(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    absent = tmp_path / "shapes-yolov5n-seg-320.onnx"
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="the bundled trained model is missing"):
        require_file(absent, "the bundled trained model")
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception, match="the bundled trained model is missing"):
        require_file(absent, "the bundled trained model")
    (tmp_path / "folder.onnx").mkdir()
    with pytest.raises(pytest.skip.Exception):
        require_file(tmp_path / "folder.onnx")


def test_present_things_are_returned(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    assert require_module("json").dumps([]) == "[]"
    assert require_file(__file__) == Path(__file__)


def test_a_module_level_miss_fails_collection_in_ci(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """A test module that needs a missing module errors at collection under CI=true (a red run), and is skipped
    otherwise."""
    pytester.makepyfile(
        test_needs_engine="""
        from support.required import require_module

        require_module("no_such_workflows_engine_for_the_test", "the Workflows engine")

        def test_never_runs():
            pass
        """
    )
    monkeypatch.setenv("CI", "true")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    assert result.ret != 0
    monkeypatch.setenv("CI", "")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(skipped=1)
    assert result.ret in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED)


def test_no_test_skips_on_a_required_dependency() -> None:
    """``pytest.importorskip`` is kept for optional things only; the rest goes through :mod:`support.required`."""
    offending = []
    for path in sorted(TESTS.rglob("*.py")):
        if path.name in ("required.py", Path(__file__).name):
            continue
        text = path.read_text(encoding="utf-8")
        for module in re.findall(r"importorskip\(\s*[\"']([\w.]+)[\"']", text):
            if module not in OPTIONAL_MODULES and not module.startswith(OPTIONAL_MODULE_PREFIXES):
                offending.append(f"{path.relative_to(TESTS)}: importorskip({module!r})")
        for line in re.findall(r".*skipif\(.*(?:is_file|exists)\(\).*", text):
            offending.append(f"{path.relative_to(TESTS)}: {line.strip()}")
    assert not offending, f"use support.required.require_module / require_file instead: {offending}"
