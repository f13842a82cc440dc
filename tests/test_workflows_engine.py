"""The engine's names from wherever the installed Inference keeps them: ``roboflow_workflows`` (Inference >= 1.6.1),
else ``inference.core.workflows``. The oldest supported release, where only the second exists, runs the block in
tests/suites/test_inference_versions.py."""

from __future__ import annotations

import importlib
import importlib.util
import sys

import pytest

from support.required import require_module

require_module("roboflow_workflows", "the Workflows engine")

from workflows_yolov5_seg import workflows_engine  # noqa: E402 - after the check above


def test_the_newest_inference_keeps_the_engine_in_roboflow_workflows() -> None:
    assert workflows_engine.ENGINE_PACKAGE == "roboflow_workflows"
    import roboflow_workflows.execution_engine.core

    assert workflows_engine.engine_module("execution_engine.core") is roboflow_workflows.execution_engine.core


def test_every_name_is_the_engine_object_of_that_name() -> None:
    for relative, names in workflows_engine._NAMES.items():
        module = importlib.import_module(f"roboflow_workflows.{relative}")
        for name in names:
            assert getattr(workflows_engine, name) is getattr(module, name), name
            assert name in workflows_engine.__all__


def test_the_legacy_path_names_the_same_objects() -> None:
    """From Inference 1.6.1 on, ``inference.core.workflows`` aliases ``roboflow_workflows``: the fallback imports the
    same classes there, and before 1.6.1 it is the engine itself."""
    legacy = importlib.import_module("inference.core.workflows.execution_engine.entities.base")
    assert legacy.WorkflowImageData is workflows_engine.WorkflowImageData


def test_without_roboflow_workflows_the_engine_is_inference_core_workflows(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, *args: object) -> object:
        return None if name == "roboflow_workflows" else real_find_spec(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    assert workflows_engine.find_engine_package() == "inference.core.workflows"


def test_without_any_engine_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None)
    with pytest.raises(ModuleNotFoundError, match=r"workflows-yolov5-seg\[inference\]") as raised:
        workflows_engine.find_engine_package()
    assert raised.value.name == "roboflow_workflows"


def test_a_missing_parent_package_means_no_engine_there(monkeypatch: pytest.MonkeyPatch) -> None:
    """``find_spec('inference.core.workflows')`` raises when ``inference`` itself is missing: that is 'not here'."""

    def find_spec(name: str, *args: object) -> object:
        if name == "roboflow_workflows":
            return None
        raise ModuleNotFoundError(f"No module named {name.split('.')[0]!r}")

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(ModuleNotFoundError, match="No Workflows engine"):
        workflows_engine.find_engine_package()
    assert "workflows_yolov5_seg.workflows_engine" in sys.modules
