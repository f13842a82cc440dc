"""The test run's configuration: the tests only CI runs by default (they install other environments) are listed,
marked and documented, so none disappears silently, and the switch that skips them locally keeps them in CI
(``tests/support/ci_suites.py``); a warning from this package is an error (pyproject's filterwarnings)."""

from __future__ import annotations

import warnings

import pytest

from support.ci_suites import CI_ONLY, MARKER, OPTION, marked_tests, runs_ci_only
from support.paths import REPOSITORY


def test_the_ci_only_tests_are_exactly_the_listed_ones() -> None:
    """A new ci_only marker must be added to CI_ONLY, and a listed test may not lose its marker or vanish."""
    assert sorted(marked_tests()) == sorted(CI_ONLY)
    for name in CI_ONLY:
        path, function = name.split("::")
        assert f"def {function}(" in (REPOSITORY / path).read_text(encoding="utf-8"), name


def test_the_ci_only_tests_are_the_installing_suites() -> None:
    """The other Inference release and the lowest dependency versions: the two suites that build a venv."""
    assert {name.split("::")[0] for name in CI_ONLY} == {
        "tests/suites/test_inference_versions.py",
        "tests/suites/test_lowest_versions.py",
    }


@pytest.mark.parametrize(("ci", "option", "runs"), [(True, False, True), (False, True, True), (False, False, False)])
def test_ci_only_tests_run_in_ci_or_with_the_option(ci: bool, option: bool, runs: bool) -> None:
    assert runs_ci_only(ci, option) is runs


def test_the_marker_is_registered() -> None:
    markers = (REPOSITORY / "pyproject.toml").read_text(encoding="utf-8").split("\nmarkers = [", 1)[1].split("\n]")[0]
    assert f'"{MARKER}: ' in markers


def test_the_readme_names_the_option_and_each_ci_only_suite() -> None:
    readme = (REPOSITORY / "README.md").read_text(encoding="utf-8")
    tests_section = readme.split("## Demo and tests", 1)[1].split("\n## ", 1)[0]
    assert OPTION in tests_section
    for path in {name.split("::")[0] for name in CI_ONLY}:
        assert path in tests_section, path


def test_a_local_run_skips_them_at_collection(pytestconfig: pytest.Config, request: pytest.FixtureRequest) -> None:
    """In this session (whatever CI says), every collected ci_only test is skipped exactly when it should be."""
    from support.required import in_ci

    runs = runs_ci_only(in_ci(), pytestconfig.getoption(OPTION))
    for item in request.session.items:
        if item.get_closest_marker(MARKER):
            skipped = any(mark.name == "skip" for mark in item.iter_markers())
            assert skipped is not runs, item.nodeid


@pytest.mark.parametrize("module", ["workflows_yolov5_seg", "workflows_yolov5_seg.model"])
def test_a_warning_this_package_issues_fails_the_test(module: str) -> None:
    with pytest.raises(DeprecationWarning, match="a new one"):
        warnings.warn_explicit("a new one", DeprecationWarning, "x.py", 1, module=module)


def test_a_filtered_third_party_warning_does_not() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.warn_explicit("old API", DeprecationWarning, "types.py", 1, module="roboflow_workflows.types")
    assert caught == []
