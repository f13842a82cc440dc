"""The package's top level: the plugin loader's entry point, and names that load the runtime only when used."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import workflows_yolov5_seg
from workflows_yolov5_seg import errors, model

from support.paths import REPOSITORY
from support.required import require_module


def test_importing_the_package_loads_no_backend_and_no_runtime() -> None:
    """What the Workflows plugin loader does first; ``-S``: no site hooks (some machines import torch there)."""
    code = "import sys, json, workflows_yolov5_seg; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-S", "-c", code],
        env={"PYTHONPATH": str(REPOSITORY)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    loaded = json.loads(done.stdout)
    assert "workflows_yolov5_seg" in loaded
    assert [name for name in loaded if name.startswith("workflows_yolov5_seg.")] == []
    assert not {"numpy", "onnxruntime", "tensorrt", "cv2"} & set(loaded)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("YOLOSegModel", model.YOLOSegModel),
        ("YOLOv5SegModel", model.YOLOSegModel),  # the name before the family: the same class
        ("InferenceParameters", model.InferenceParameters),
        ("NotYOLOSegModelError", errors.NotYOLOSegModelError),
        ("NotYOLOv5SegModelError", errors.NotYOLOSegModelError),  # the same class: old except clauses still catch
    ],
)
def test_runtime_names_are_the_models(name: str, expected: type) -> None:
    assert getattr(workflows_yolov5_seg, name) is expected
    assert name in workflows_yolov5_seg.__all__


def test_public_names() -> None:
    assert set(workflows_yolov5_seg.__all__) == {
        "InferenceParameters",
        "NotYOLOSegModelError",
        "NotYOLOv5SegModelError",
        "YOLOSegModel",
        "YOLOv5SegModel",
        "__version__",
        "load_blocks",
    }
    with pytest.raises(AttributeError, match="module 'workflows_yolov5_seg' has no attribute 'Model'"):
        workflows_yolov5_seg.Model  # noqa: B018 - the attribute access is the test


def test_load_blocks_gives_the_block() -> None:
    require_module("roboflow_workflows.execution_engine.core", "the Workflows engine")
    from workflows_yolov5_seg.yolov5_instance_segmentation.v1 import YOLOv5InstanceSegmentationBlockV1

    assert workflows_yolov5_seg.load_blocks() == [YOLOv5InstanceSegmentationBlockV1]
