"""The block inside the real Workflows Execution Engine."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
import supervision as sv
from required import require_module
from workflow_steps import (
    class_filter_step,
    detections_filter_step,
    dynamic_crop_step,
    mask_visualization_step,
)

from workflows_yolov5_seg import model_cache
from workflows_yolov5_seg.model_cache import ModelCache
from workflows_yolov5_seg.yolov5_instance_segmentation import v1

ExecutionEngine = require_module("roboflow_workflows.execution_engine.core", "the Workflows engine").ExecutionEngine

SEGMENTATION_STEP = {
    "type": "workflows_yolov5_seg/yolov5_instance_segmentation@v1",
    "name": "seg",
    "images": "$inputs.image",
    "model": "$inputs.model",
    "confidence": "$inputs.confidence",
}
INPUTS = [
    {"type": "WorkflowImage", "name": "image"},
    {"type": "WorkflowParameter", "name": "model"},
    {"type": "WorkflowParameter", "name": "confidence", "default_value": 0.4},
]


def workflow(*extra_steps: dict, outputs: dict[str, str] | None = None) -> dict:
    outputs = outputs or {"predictions": "$steps.seg.predictions"}
    return {
        "version": "1.0",
        "inputs": INPUTS,
        "steps": [SEGMENTATION_STEP, *extra_steps],
        "outputs": [{"type": "JsonField", "name": name, "selector": selector} for name, selector in outputs.items()],
    }


def engine_for(definition: dict):  # noqa: ANN201 - the engine
    return ExecutionEngine.init(
        workflow_definition=definition,
        init_parameters={"workflows_core.model_manager": None, "workflows_core.api_key": None},
        max_concurrent_steps=2,
    )


@pytest.fixture(autouse=True)
def fresh_model_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(model_cache, "MODELS", ModelCache())


def test_block_is_loaded_by_the_plugin_loader() -> None:
    from roboflow_workflows.execution_engine.introspection.blocks_loader import describe_available_blocks

    blocks = describe_available_blocks(dynamic_blocks=[])
    ours = [b for b in blocks.blocks if b.manifest_type_identifier == v1.BLOCK_TYPE]
    assert len(ours) == 1
    assert ours[0].block_source == "workflows_yolov5_seg"
    assert {o.name for o in ours[0].outputs_manifest} == {"predictions", "inference_id", "model_id"}


def test_plugin_loads_beside_other_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    from roboflow_workflows.execution_engine.introspection.blocks_loader import load_workflow_blocks

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent.parent / "plugins"))
    monkeypatch.setenv("WORKFLOWS_PLUGINS", "neighbour_plugin,workflows_yolov5_seg")
    sources = [(b.block_source, b.block_class.__name__) for b in load_workflow_blocks()]
    assert sources.count(("workflows_yolov5_seg", "YOLOv5InstanceSegmentationBlockV1")) == 1
    assert sources.count(("neighbour_plugin", "NeighbourBlock")) == 1


def test_compiling_loads_no_model(two_box_model: Path) -> None:
    engine_for(workflow())
    assert len(model_cache.MODELS) == 0 and model_cache.MODELS.loads == 0


def test_workflow_returns_detections_with_masks(two_box_model: Path) -> None:
    images = [np.zeros((160, 320, 3), np.uint8), np.zeros((427, 640, 3), np.uint8)]
    result = engine_for(
        workflow(outputs={"predictions": "$steps.seg.predictions", "model": "$steps.seg.model_id"})
    ).run(runtime_parameters={"image": images, "model": str(two_box_model)})
    assert len(result) == 2
    for image, output in zip(images, result, strict=True):
        detections: sv.Detections = output["predictions"]
        assert detections.mask.shape == (2, *image.shape[:2])
        assert detections.data["class_name"].tolist() == ["rectangle", "circle"]
        assert detections.data["prediction_type"].tolist() == ["instance-segmentation"] * 2
        assert detections.data["image_dimensions"].tolist() == [list(image.shape[:2])] * 2
        assert len(set(detections.data["detection_id"])) == 2
        assert len(set(detections.data["inference_id"])) == 1
        assert set(detections.data) >= {"parent_id", "parent_coordinates", "root_parent_id", "root_parent_coordinates"}
        assert output["model"] == str(two_box_model)
    np.testing.assert_allclose(result[0]["predictions"].xyxy, [[40, 0, 120, 60], [200, 100, 300, 160]])


def test_zero_detections_carry_image_metadata(two_box_model: Path) -> None:
    result = engine_for(workflow()).run(
        runtime_parameters={"image": np.zeros((30, 40, 3), np.uint8), "model": str(two_box_model), "confidence": 0.99}
    )
    detections = result[0]["predictions"]
    assert len(detections) == 0
    assert detections.mask.shape == (0, 30, 40)
    assert detections.metadata["image_dimensions"] == [30, 40]
    assert "parent_id" in detections.metadata


@pytest.mark.parametrize(
    "mask_storage",
    [
        "dense",
        pytest.param(
            "compact",
            marks=pytest.mark.xfail(
                strict=True,
                reason="roboflow_core/dynamic_crop@v1 slices masks as mask[:, y0:y1, x0:x1], which supervision 0.30's "
                "CompactMask does not support; use mask_storage 'dense' before a dynamic crop",
            ),
        ),
    ],
)
def test_chained_with_core_blocks(two_box_model: Path, mask_storage: str) -> None:
    keep_circles = class_filter_step(["circle"])
    visualize = mask_visualization_step()
    crop = dynamic_crop_step()
    definition = workflow(
        keep_circles,
        visualize,
        crop,
        outputs={"filtered": "$steps.filter.predictions", "vis": "$steps.vis.image", "crops": "$steps.crop.crops"},
    )
    definition["steps"][0] = {**SEGMENTATION_STEP, "mask_storage": mask_storage}
    image = np.zeros((160, 320, 3), np.uint8)
    result = engine_for(definition).run(runtime_parameters={"image": image, "model": str(two_box_model)})[0]
    assert result["filtered"].data["class_name"].tolist() == ["circle"]
    visualized = result["vis"].numpy_image
    assert visualized.shape == image.shape
    assert visualized[100:160, 200:300].any() and not visualized[:, :40].any()
    assert len(result["crops"]) == 1
    assert result["crops"][0].numpy_image.shape == (60, 100, 3)


def test_compact_masks_work_with_filter_and_visualisation(two_box_model: Path) -> None:
    visualize = mask_visualization_step("$steps.filter.predictions")
    keep_big = detections_filter_step("size", "(Number) >=", 5000)
    image = np.zeros((160, 320, 3), np.uint8)
    results = {}
    for storage in ("dense", "compact"):
        definition = workflow(
            keep_big, visualize, outputs={"filtered": "$steps.filter.predictions", "vis": "$steps.vis.image"}
        )
        definition["steps"][0] = {**SEGMENTATION_STEP, "mask_storage": storage}
        results[storage] = engine_for(definition).run(runtime_parameters={"image": image, "model": str(two_box_model)})[
            0
        ]
    from supervision.detection.compact_mask import CompactMask

    assert isinstance(results["compact"]["filtered"].mask, CompactMask)
    assert results["compact"]["filtered"].data["class_name"].tolist() == ["circle"]
    np.testing.assert_array_equal(results["compact"]["filtered"].mask.to_dense(), results["dense"]["filtered"].mask)
    np.testing.assert_array_equal(results["compact"]["vis"].numpy_image, results["dense"]["vis"].numpy_image)


@pytest.mark.parametrize("mask_storage", ["dense", "compact"])
def test_serialized_results_are_json(two_box_model: Path, mask_storage: str) -> None:
    definition = workflow()
    definition["steps"][0] = {**SEGMENTATION_STEP, "mask_storage": mask_storage}
    result = engine_for(definition).run(
        runtime_parameters={"image": np.zeros((160, 320, 3), np.uint8), "model": str(two_box_model)},
        serialize_results=True,
    )
    payload = json.loads(json.dumps(result[0]))
    predictions = payload["predictions"]["predictions"]
    assert [p["class"] for p in predictions] == ["rectangle", "circle"]
    assert predictions[0]["width"] == 80 and predictions[0]["height"] == 60
    assert predictions[0]["points"], "masks are serialised as polygons"
    assert payload["predictions"]["image"] == {"width": 320, "height": 160}


def test_missing_model_is_a_step_error_naming_the_path(two_box_model: Path) -> None:
    from roboflow_workflows.errors import StepExecutionError

    with pytest.raises(StepExecutionError, match="/definitely/missing.onnx"):
        engine_for(workflow()).run(
            runtime_parameters={"image": np.zeros((16, 16, 3), np.uint8), "model": "/definitely/missing.onnx"}
        )


def test_out_of_range_input_parameter_is_rejected(two_box_model: Path) -> None:
    from roboflow_workflows.errors import RuntimeInputError

    with pytest.raises(RuntimeInputError, match="confidence"):
        engine_for(workflow()).run(
            runtime_parameters={
                "image": np.zeros((16, 16, 3), np.uint8),
                "model": str(two_box_model),
                "confidence": 1.7,
            }
        )


def test_literal_out_of_range_parameter_fails_compilation() -> None:
    from roboflow_workflows.errors import WorkflowDefinitionError

    definition = workflow()
    definition["steps"][0] = {**SEGMENTATION_STEP, "confidence": 1.5}
    with pytest.raises(WorkflowDefinitionError):
        engine_for(definition)


def test_sixteen_concurrent_first_calls_load_the_model_once(two_box_model: Path) -> None:
    engine = engine_for(workflow())
    barrier = threading.Barrier(16)
    results: list[object] = [None] * 16
    errors: list[BaseException] = []

    def call(index: int) -> None:
        try:
            barrier.wait()
            results[index] = engine.run(
                runtime_parameters={"image": np.zeros((160, 320, 3), np.uint8), "model": str(two_box_model)}
            )[0]["predictions"]
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert model_cache.MODELS.loads == 1
    for detections in results:
        np.testing.assert_array_equal(detections.xyxy, results[0].xyxy)
