"""The Ultralytics YOLO segmentation family end to end: every output layout through the Workflows Execution Engine
and over HTTP from the real Inference server, with dense, RLE and compact masks.

Models: the hand-made two-box networks of each layout (exact expected answers), and the really trained exports in
``models/`` (YOLOv8n-seg, YOLO11n-seg, YOLO26n-seg, raw and end-to-end; see training/README.md).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from workflows_yolov5_seg.model import YOLOv5SegModel

from support.models import make_two_box_model_of
from support.paths import DEMO_IMAGE, REPOSITORY
from support.required import require_file, require_module
from support.server_fixture import ServerProcess, assert_same_predictions, read_image, run_in_process
from support.workflows import workflow

require_module("inference_sdk", "the Inference SDK (the inference extra)")

# The trained family exports and the layout each must be recognised as.
TRAINED = {
    "shapes-yolov8n-seg-320.onnx": "anchor-free",
    "shapes-yolov8n-seg-320-e2e.onnx": "end2end",
    "shapes-yolo11n-seg-320.onnx": "anchor-free",
    "shapes-yolo11n-seg-320-e2e.onnx": "end2end",
    "shapes-yolo26n-seg-320.onnx": "anchor-free",
    "shapes-yolo26n-seg-320-e2e.onnx": "end2end",
    "shapes-yolov8n-seg-640-dynamic.onnx": "anchor-free",
}
MODELS_DIR = REPOSITORY / "models"
MASKS = {"dense": {}, "rle": {"mask_format": "rle"}, "compact": {"mask_storage": "compact"}}


@pytest.fixture(scope="module")
def two_box_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("family")
    return {layout: make_two_box_model_of(layout, folder / f"{layout}.onnx") for layout in ("anchor-free", "end2end")}


@pytest.fixture(scope="module")
def demo_png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo scene, lossless, so the server decodes the pixels the in-process engine gets."""
    path = tmp_path_factory.mktemp("images") / "demo-scene.png"
    cv2.imwrite(str(path), read_image(DEMO_IMAGE))
    return path


@pytest.mark.parametrize(("name", "layout"), TRAINED.items())
def test_trained_exports_are_recognised(name: str, layout: str) -> None:
    model = YOLOv5SegModel.from_pretrained(require_file(MODELS_DIR / name, "a trained family export"))
    assert model.layout.name == layout
    assert model.class_names == ("circle", "rectangle", "ring", "star", "triangle")


def model_path(two_box_models: dict[str, Path], model: str) -> Path:
    if model in two_box_models:
        return two_box_models[model]
    return require_file(MODELS_DIR / model, "a trained family export")


@pytest.mark.server
@pytest.mark.parametrize("masks", MASKS)
@pytest.mark.parametrize("model", ["anchor-free", "end2end", *TRAINED])
def test_served_equals_the_engine_in_process(
    inference_server: ServerProcess, two_box_models: dict[str, Path], demo_png: Path, model: str, masks: str
) -> None:
    path = str(model_path(two_box_models, model))
    definition = workflow(step={"confidence": 0.25, **MASKS[masks]})
    image = read_image(demo_png)
    served = inference_server.client().run_workflow(
        specification=definition, images={"image": str(demo_png)}, parameters={"model": path}
    )[0]
    local = run_in_process(definition, {"image": image, "model": path})[0]
    detections = run_in_process(definition, {"image": image, "model": path}, serialize_results=False)[0]
    dense = detections["predictions"]
    assert len(dense) >= (2 if model in two_box_models else 1), "every model finds something in the demo scene"
    if masks != "rle":
        assert_same_predictions(served["predictions"], local["predictions"])
        return
    mask_utils = require_module("pycocotools.mask", "pycocotools (the test extra)")
    predictions = served["predictions"]["predictions"]
    assert len(predictions) == len(dense)
    for prediction, mask in zip(predictions, dense.mask, strict=True):
        np.testing.assert_array_equal(mask_utils.decode(prediction["rle_mask"]).astype(bool), np.asarray(mask))
