"""The demo: the bundled model on the bundled scene (or a given image and model) through the real Workflows engine,
written as annotated.jpg and result.json."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from workflows_yolov5_seg import demo

from support.paths import ASSETS, DEMO_IMAGE
from support.required import require_module

require_module("roboflow_workflows.execution_engine.core", "the Workflows engine")


@pytest.fixture(scope="module")
def bundled_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("demo") / "out"
    return out, demo.run_demo(out)


def test_the_bundled_demo_writes_the_annotated_scene_and_the_result(bundled_run: tuple[Path, dict]) -> None:
    out, result = bundled_run
    annotated = cv2.imread(str(out / "annotated.jpg"))
    assert annotated is not None and annotated.shape == cv2.imread(str(DEMO_IMAGE)).shape
    assert "annotated_image" not in result
    assert json.loads((out / "result.json").read_text(encoding="utf-8")) == result
    predictions = result["predictions"]["predictions"]
    assert predictions, "the bundled model finds shapes in the bundled scene"
    assert {p["class"] for p in predictions} <= set((ASSETS / "class_names.txt").read_text().split())


def test_an_image_and_a_model_of_ones_own(two_box_model: Path, tmp_path: Path) -> None:
    image = tmp_path / "scene.png"
    cv2.imwrite(str(image), np.zeros((160, 320, 3), np.uint8))
    result = demo.run_demo(tmp_path / "out", image, str(two_box_model))
    assert demo.summary(result) == "1 circle, 1 rectangle"
    assert cv2.imread(str(tmp_path / "out" / "annotated.jpg")).shape == (160, 320, 3)


def test_an_unreadable_image_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=f"Could not read the image '{tmp_path / 'missing.jpg'}'"):
        demo.run_demo(tmp_path / "out", tmp_path / "missing.jpg")
    assert not (tmp_path / "out").exists()


def test_summary_counts_the_classes() -> None:
    predictions = [{"class": name} for name in ("triangle", "circle", "triangle")]
    assert demo.summary({"predictions": {"predictions": predictions}}) == "1 circle, 2 triangle"
    assert demo.summary({"predictions": {"predictions": []}}) == "nothing"
