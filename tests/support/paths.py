"""Where things are in the checkout."""

from __future__ import annotations

from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]
EXAMPLES = REPOSITORY / "examples"
TEST_DATA = REPOSITORY / "tests" / "data"
ASSETS = REPOSITORY / "workflows_yolov5_seg" / "assets"
TRAINED_MODEL = ASSETS / "shapes-yolov5n-seg-320.onnx"
DEMO_IMAGE = ASSETS / "demo-scene.jpg"
