"""``mask_format``: exact masks as COCO RLE in serialised results, in-process (the server tests repeat it over HTTP)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/: onnx_graphs, server_fixture

from required import require_module  # noqa: E402
from server_fixture import run_in_process  # noqa: E402
from workflow_steps import class_filter_step  # noqa: E402

from workflows_yolov5_seg.yolov5_instance_segmentation import v1  # noqa: E402

pytest_plugins = ["server_fixture"]  # the ring_model fixture
require_module("roboflow_workflows.execution_engine.core", "the Workflows engine")
mask_utils = require_module("pycocotools.mask", "pycocotools (the test extra)")


def workflow(mask_format: str | None = "$inputs.mask_format", outputs: dict[str, str] | None = None) -> dict:
    step = {
        "type": v1.BLOCK_TYPE,
        "name": "seg",
        "images": "$inputs.image",
        "model": "$inputs.model",
    }
    if mask_format is not None:
        step["mask_format"] = mask_format
    outputs = outputs or {"predictions": "$steps.seg.predictions"}
    return {
        "version": "1.0",
        "inputs": [
            {"type": "WorkflowImage", "name": "image"},
            {"type": "WorkflowParameter", "name": "model"},
            {"type": "WorkflowParameter", "name": "mask_format", "default_value": "dense"},
        ],
        "steps": [step],
        "outputs": [{"type": "JsonField", "name": name, "selector": selector} for name, selector in outputs.items()],
    }


IMAGE = np.zeros((320, 320, 3), np.uint8)


@pytest.fixture(scope="module")
def dense_detections(ring_model: Path):  # noqa: ANN201 - sv.Detections
    return run_in_process(workflow(), {"image": IMAGE, "model": str(ring_model)}, serialize_results=False)[0][
        "predictions"
    ]


def test_ring_fixture_has_a_hole_and_an_empty_mask(dense_detections) -> None:  # noqa: ANN001
    assert dense_detections.data["class_name"].tolist() == ["ring", "blob", "empty"]
    ring, blob, empty = dense_detections.mask
    assert ring[160, 160] == False and ring[160, 100]  # noqa: E712 - the hole and the ring
    assert ring.sum() > 1000 and blob.sum() > 1000
    assert not empty.any()


def test_rle_decodes_to_the_exact_dense_masks_holes_included(ring_model: Path, dense_detections) -> None:  # noqa: ANN001
    served = run_in_process(workflow(), {"image": IMAGE, "model": str(ring_model), "mask_format": "rle"})[0]
    predictions = served["predictions"]["predictions"]
    assert [p["class"] for p in predictions] == ["ring", "blob", "empty"]
    for prediction, dense in zip(predictions, dense_detections.mask, strict=True):
        assert "points" not in prediction
        rle = prediction["rle_mask"]
        assert rle["size"] == [320, 320] and isinstance(rle["counts"], str)
        decoded = mask_utils.decode(rle).astype(bool)
        np.testing.assert_array_equal(decoded, dense)


def test_dense_format_serialises_largest_polygon_only(ring_model: Path) -> None:
    served = run_in_process(workflow(mask_format=None), {"image": IMAGE, "model": str(ring_model)})[0]
    predictions = served["predictions"]["predictions"]
    # The core serialiser keeps one polygon per mask and drops a detection whose mask has no contour.
    assert [p["class"] for p in predictions] == ["ring", "blob"]
    assert all(p["points"] and "rle_mask" not in p for p in predictions)


def test_rle_masks_follow_detections_through_core_filter(ring_model: Path) -> None:
    definition = workflow(mask_format="rle", outputs={"filtered": "$steps.filter.predictions"})
    definition["steps"].append(class_filter_step(["blob"]))
    filtered = run_in_process(definition, {"image": IMAGE, "model": str(ring_model)}, serialize_results=False)[0][
        "filtered"
    ]
    assert filtered.data["class_name"].tolist() == ["blob"]
    np.testing.assert_array_equal(mask_utils.decode(filtered.data["rle_mask"][0]).astype(bool), filtered.mask[0])


def test_unknown_mask_format_from_inputs_is_rejected_naming_the_parameter(ring_model: Path) -> None:
    from roboflow_workflows.errors import RuntimeInputError

    # The engine validates values given through $inputs against the manifest's Literal.
    with pytest.raises(RuntimeInputError, match="mask_format"):
        run_in_process(workflow(), {"image": IMAGE, "model": str(ring_model), "mask_format": "polygons"})


def test_run_checks_mask_format_itself() -> None:
    from workflows_yolov5_seg.errors import InvalidParameterError

    block = v1.YOLOv5InstanceSegmentationBlockV1()
    with pytest.raises(InvalidParameterError, match="mask_format must be one of dense, rle, got 'polygons'"):
        block.run(
            images=[],
            model="never-loaded.onnx",
            api_key=None,
            confidence=0.4,
            iou_threshold=0.3,
            class_filter=None,
            max_detections=300,
            class_agnostic_nms=False,
            mask_decode_mode="accurate",
            tradeoff_factor=0.0,
            backend="onnx",
            mask_format="polygons",
        )


def test_literal_unknown_mask_format_fails_compilation() -> None:
    from roboflow_workflows.errors import WorkflowDefinitionError

    with pytest.raises(WorkflowDefinitionError):
        run_in_process(workflow(mask_format="polygons"), {"image": IMAGE, "model": "unused.onnx"})


def test_outputs_declare_both_kinds_rle_first() -> None:
    kinds = {o.name: [k.name for k in o.kind] for o in v1.BlockManifest.describe_outputs()}
    assert kinds["predictions"] == ["rle_instance_segmentation_prediction", "instance_segmentation_prediction"]


def test_encode_rle_masks_of_no_detections_is_empty() -> None:
    assert v1.encode_rle_masks(np.zeros((0, 5, 7), bool)).shape == (0,)
    assert v1.encode_rle_masks(None).shape == (0,)
