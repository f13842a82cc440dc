"""Shared fixtures: hand-built ONNX models and the bundled trained model."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from onnx_graphs import box_protos, make_constant_seg_onnx, make_row

# The test process is a library user: local model paths open without model roots even after a test imports
# Inference's HTTP app. Served behaviour is tested with the setting set to "served" and with real server processes
# (``serve`` marks itself served, whatever it inherits).
os.environ["WORKFLOWS_YOLOV5_SEG_SERVING"] = "library"
# The plugin must be registered before the Workflows engine is imported anywhere in the test session.
os.environ["WORKFLOWS_PLUGINS"] = ",".join(
    p for p in dict.fromkeys([*os.environ.get("WORKFLOWS_PLUGINS", "").split(","), "workflows_yolov5_seg"]) if p
)

ASSETS = Path(__file__).resolve().parent.parent / "workflows_yolov5_seg" / "assets"
TRAINED_MODEL = ASSETS / "shapes-yolov5n-seg-320.onnx"
CLASS_NAMES = {0: "circle", 1: "rectangle", 2: "triangle"}
# inference_config.json of a 320x320 package letterboxed with grey 114 (as a bare Ultralytics export is)
LETTERBOX_320_CONFIG = {
    "network_input": {
        "training_input_size": {"height": 320, "width": 320},
        "dynamic_spatial_size_supported": False,
        "color_mode": "rgb",
        "resize_mode": "letterbox",
        "padding_value": 114,
        "input_channels": 3,
        "scaling_factor": 255,
    }
}


@pytest.fixture(scope="session")
def two_box_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 320x320 dynamic-batch model that finds a 'rectangle' and a 'circle' whose masks fill their boxes."""
    protos, coefficients = box_protos((80, 80))
    rows = np.stack(
        [
            make_row((40, 60, 120, 140), 0.9, [0.1, 0.95, 0.2], coefficients),
            make_row((200, 180, 300, 260), 0.9, [0.9, 0.1, 0.1], coefficients),
        ]
    )
    return make_constant_seg_onnx(tmp_path_factory.mktemp("two_box") / "model.onnx", rows, protos, names=CLASS_NAMES)


@pytest.fixture(scope="session")
def trained_model() -> Path:
    assert TRAINED_MODEL.is_file(), f"the bundled trained model is missing: {TRAINED_MODEL}"
    return TRAINED_MODEL
