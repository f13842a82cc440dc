"""The block inside the real Workflows Execution Engine, and its ``mask_format``: exact masks as COCO RLE in
serialised results, in-process (the serving suite, tests/suites/test_serving.py, repeats it over HTTP)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
import supervision as sv

from workflows_yolov5_seg import model_cache
from workflows_yolov5_seg.model_cache import ModelCache
from workflows_yolov5_seg.yolov5_instance_segmentation import v1

from support.required import require_module
from support.server_fixture import run_in_process
from support.workflows import (
    class_filter_step,
    detections_filter_step,
    dynamic_crop_step,
    init_engine,
    mask_visualization_step,
    workflow,
)

require_module("roboflow_workflows.execution_engine.core", "the Workflows engine")

CONFIDENCE = {"confidence": 0.4}  # the step reads confidence from $inputs, 0.4 unless given
MASK_FORMAT = {"mask_format": "dense"}  # the step reads mask_format from $inputs, dense unless given


def engine_for(definition: dict):  # noqa: ANN201 - the engine
    return init_engine(definition, max_concurrent_steps=2)


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
    engine_for(workflow(parameters=CONFIDENCE))
    assert len(model_cache.MODELS) == 0 and model_cache.MODELS.loads == 0


def test_workflow_returns_detections_with_masks(two_box_model: Path) -> None:
    images = [np.zeros((160, 320, 3), np.uint8), np.zeros((427, 640, 3), np.uint8)]
    result = engine_for(
        workflow(
            parameters=CONFIDENCE, outputs={"predictions": "$steps.seg.predictions", "model": "$steps.seg.model_id"}
        )
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
    result = engine_for(workflow(parameters=CONFIDENCE)).run(
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
        parameters=CONFIDENCE,
        step={"mask_storage": mask_storage},
        outputs={"filtered": "$steps.filter.predictions", "vis": "$steps.vis.image", "crops": "$steps.crop.crops"},
    )
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
            keep_big,
            visualize,
            parameters=CONFIDENCE,
            step={"mask_storage": storage},
            outputs={"filtered": "$steps.filter.predictions", "vis": "$steps.vis.image"},
        )
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
    definition = workflow(parameters=CONFIDENCE, step={"mask_storage": mask_storage})
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
        engine_for(workflow(parameters=CONFIDENCE)).run(
            runtime_parameters={"image": np.zeros((16, 16, 3), np.uint8), "model": "/definitely/missing.onnx"}
        )


def test_out_of_range_input_parameter_is_rejected(two_box_model: Path) -> None:
    from roboflow_workflows.errors import RuntimeInputError

    with pytest.raises(RuntimeInputError, match="confidence"):
        engine_for(workflow(parameters=CONFIDENCE)).run(
            runtime_parameters={
                "image": np.zeros((16, 16, 3), np.uint8),
                "model": str(two_box_model),
                "confidence": 1.7,
            }
        )


def test_literal_out_of_range_parameter_fails_compilation() -> None:
    from roboflow_workflows.errors import WorkflowDefinitionError

    definition = workflow(parameters=CONFIDENCE, step={"confidence": 1.5})
    with pytest.raises(WorkflowDefinitionError):
        engine_for(definition)


def test_sixteen_concurrent_first_calls_load_the_model_once(two_box_model: Path) -> None:
    engine = engine_for(workflow(parameters=CONFIDENCE))
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


# --- mask_format: COCO RLE ------------------------------------------------------------------------------------


IMAGE = np.zeros((320, 320, 3), np.uint8)


@pytest.fixture(scope="module")
def mask_utils():  # noqa: ANN201 - pycocotools.mask
    return require_module("pycocotools.mask", "pycocotools (the test extra)")


@pytest.fixture(scope="module")
def dense_detections(ring_model: Path):  # noqa: ANN201 - sv.Detections
    return run_in_process(
        workflow(parameters=MASK_FORMAT), {"image": IMAGE, "model": str(ring_model)}, serialize_results=False
    )[0]["predictions"]


def test_ring_fixture_has_a_hole_and_an_empty_mask(dense_detections) -> None:  # noqa: ANN001
    assert dense_detections.data["class_name"].tolist() == ["ring", "blob", "empty"]
    ring, blob, empty = dense_detections.mask
    assert ring[160, 160] == False and ring[160, 100]  # noqa: E712 - the hole and the ring
    assert ring.sum() > 1000 and blob.sum() > 1000
    assert not empty.any()


def test_rle_decodes_to_the_exact_dense_masks_holes_included(ring_model: Path, dense_detections, mask_utils) -> None:  # noqa: ANN001
    served = run_in_process(
        workflow(parameters=MASK_FORMAT), {"image": IMAGE, "model": str(ring_model), "mask_format": "rle"}
    )[0]
    predictions = served["predictions"]["predictions"]
    assert [p["class"] for p in predictions] == ["ring", "blob", "empty"]
    for prediction, dense in zip(predictions, dense_detections.mask, strict=True):
        assert "points" not in prediction
        rle = prediction["rle_mask"]
        assert rle["size"] == [320, 320] and isinstance(rle["counts"], str)
        decoded = mask_utils.decode(rle).astype(bool)
        np.testing.assert_array_equal(decoded, dense)


def test_dense_format_serialises_largest_polygon_only(ring_model: Path) -> None:
    served = run_in_process(workflow(), {"image": IMAGE, "model": str(ring_model)})[0]
    predictions = served["predictions"]["predictions"]
    # The core serialiser keeps one polygon per mask and drops a detection whose mask has no contour.
    assert [p["class"] for p in predictions] == ["ring", "blob"]
    assert all(p["points"] and "rle_mask" not in p for p in predictions)


def test_rle_masks_follow_detections_through_core_filter(ring_model: Path, mask_utils) -> None:  # noqa: ANN001
    definition = workflow(
        class_filter_step(["blob"]),
        parameters=MASK_FORMAT,
        step={"mask_format": "rle"},
        outputs={"filtered": "$steps.filter.predictions"},
    )
    filtered = run_in_process(definition, {"image": IMAGE, "model": str(ring_model)}, serialize_results=False)[0][
        "filtered"
    ]
    assert filtered.data["class_name"].tolist() == ["blob"]
    np.testing.assert_array_equal(mask_utils.decode(filtered.data["rle_mask"][0]).astype(bool), filtered.mask[0])


def test_unknown_mask_format_from_inputs_is_rejected_naming_the_parameter(ring_model: Path) -> None:
    from roboflow_workflows.errors import RuntimeInputError

    # The engine validates values given through $inputs against the manifest's Literal.
    with pytest.raises(RuntimeInputError, match="mask_format"):
        run_in_process(
            workflow(parameters=MASK_FORMAT), {"image": IMAGE, "model": str(ring_model), "mask_format": "polygons"}
        )


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
        run_in_process(
            workflow(parameters=MASK_FORMAT, step={"mask_format": "polygons"}), {"image": IMAGE, "model": "unused.onnx"}
        )


def test_outputs_declare_both_kinds_rle_first() -> None:
    kinds = {o.name: [k.name for k in o.kind] for o in v1.BlockManifest.describe_outputs()}
    assert kinds["predictions"] == ["rle_instance_segmentation_prediction", "instance_segmentation_prediction"]


def test_encode_rle_masks_of_no_detections_is_empty() -> None:
    assert v1.encode_rle_masks(np.zeros((0, 5, 7), bool)).shape == (0,)
    assert v1.encode_rle_masks(None).shape == (0,)


GENERATIONS = ("YOLOv5", "YOLOv8", "YOLOv9", "YOLO11", "YOLO12", "YOLO26")


def test_the_type_id_is_kept_and_the_editor_texts_name_every_generation() -> None:
    schema = v1.BlockManifest.model_json_schema()
    assert schema["properties"]["type"]["const"] == "workflows_yolov5_seg/yolov5_instance_segmentation@v1"
    for text in (schema["short_description"], schema["long_description"]):
        assert all(generation in text for generation in GENERATIONS), text
    assert "end-to-end" in schema["long_description"]
    assert {generation.lower() for generation in GENERATIONS} <= set(schema["search_keywords"])


@pytest.mark.parametrize(
    ("field", "says"),
    [
        ("iou_threshold", "No effect on end-to-end exports"),
        ("class_agnostic_nms", "No effect on end-to-end exports"),
        ("confidence", "cannot bring them back"),  # an nms=True export applied its own confidence
        ("confidence", "0.25 unless exported with another conf"),
        ("model", "YOLO26"),
    ],
)
def test_field_descriptions_say_what_they_do_for_each_layout(field: str, says: str) -> None:
    assert says in v1.BlockManifest.model_json_schema()["properties"][field]["description"]
