from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto

from workflows_yolov5_seg.errors import (
    ClassNamesMismatchError,
    InvalidImageError,
    InvalidModelFileError,
    InvalidModelOutputError,
    InvalidParameterError,
    ModelNotFoundError,
    NotYOLOv5SegModelError,
    UntrustedModelError,
)
from workflows_yolov5_seg.model import InferenceParameters, YOLOv5SegModel

from support.models import CLASS_NAMES, make_two_box_model_of, two_box_rows
from support.onnx_graphs import (
    box_protos,
    make_constant_seg_onnx,
    make_detection_only_onnx,
    make_row,
    ultralytics_metadata,
)
from support.paths import REPOSITORY

IMAGE = np.zeros((160, 320, 3), dtype=np.uint8)  # letterboxed: scale 1, pads (0, 80)


def test_detections_on_the_original_image(two_box_model: Path) -> None:
    model = YOLOv5SegModel.from_pretrained(two_box_model)
    detections = model(np.zeros((160, 320, 3), dtype=np.uint8))[0]  # letterboxed: scale 1, pads (0, 80)
    np.testing.assert_allclose(detections.xyxy, [[40, 0, 120, 60], [200, 100, 300, 160]])
    assert detections.xyxy.dtype == np.float32
    assert detections.mask.shape == (2, 160, 320) and detections.mask.dtype == np.bool_
    assert detections.class_id.tolist() == [1, 0]
    assert detections.data["class_name"].tolist() == ["rectangle", "circle"]
    np.testing.assert_allclose(detections.confidence, [0.855, 0.81], rtol=1e-5)
    assert detections.mask.sum(axis=(1, 2)).tolist() == [80 * 60, 100 * 60]


@pytest.mark.parametrize("batch", [None, 1, 4])
def test_batch_of_differently_sized_images_equals_single_calls(tmp_path: Path, batch: int | None) -> None:
    rows, protos = two_box_rows()
    path = make_constant_seg_onnx(tmp_path / "m.onnx", rows, protos, batch=batch, names=CLASS_NAMES)
    model = YOLOv5SegModel.from_pretrained(path)
    assert model.backend.info.static_batch == (batch is not None)
    images = [np.zeros((h, w, 3), np.uint8) for h, w in [(427, 640), (50, 100), (1080, 1920), (333, 500), (7, 3)]]
    together = model(images)
    for image, batched in zip(images, together, strict=True):
        single = model(image)[0]
        assert batched.mask.shape[1:] == image.shape[:2]
        np.testing.assert_array_equal(batched.xyxy, single.xyxy)
        np.testing.assert_array_equal(batched.mask, single.mask)


@pytest.mark.parametrize(
    ("image", "expected_hw"),
    [
        (np.zeros((100, 200), np.uint8), (100, 200)),  # grayscale
        (np.zeros((100, 200, 1), np.uint8), (100, 200)),
        (np.zeros((100, 200, 4), np.uint8), (100, 200)),  # BGRA: alpha dropped
        (np.zeros((100, 200, 3), np.uint16), (100, 200)),
        (np.zeros((100, 200, 3), np.float32), (100, 200)),
        (np.zeros((200, 100, 3), np.uint8)[::2, :, :], (100, 100)),  # non-contiguous
    ],
)
def test_image_layouts_are_converted(two_box_model: Path, image: np.ndarray, expected_hw: tuple[int, int]) -> None:
    detections = YOLOv5SegModel.from_pretrained(two_box_model)(image)[0]
    assert detections.mask.shape[1:] == expected_hw


def test_one_and_four_channel_images_give_the_colour_result(two_box_model: Path) -> None:
    model = YOLOv5SegModel.from_pretrained(two_box_model)
    colour = model(np.full((90, 120, 3), 7, np.uint8))[0]
    for image in (np.full((90, 120), 7, np.uint8), np.full((90, 120, 4), 7, np.uint8)):
        other = model(image)[0]
        np.testing.assert_array_equal(other.xyxy, colour.xyxy)
        np.testing.assert_array_equal(other.mask, colour.mask)


@pytest.mark.parametrize(
    "image",
    [np.zeros((0, 10, 3), np.uint8), np.zeros((10, 10, 2), np.uint8), np.zeros((10, 10, 3), np.int32), "image"],
)
def test_unusable_images_raise(two_box_model: Path, image: object) -> None:
    with pytest.raises(InvalidImageError, match="Image|image"):
        YOLOv5SegModel.from_pretrained(two_box_model)(image)


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"confidence": 1.5}, "confidence"),
        ({"iou_threshold": -0.1}, "iou_threshold"),
        ({"tradeoff_factor": 2}, "tradeoff_factor"),
        ({"max_detections": 0}, "max_detections"),
        ({"mask_decode_mode": "exact"}, "mask_decode_mode"),
    ],
)
def test_parameters_out_of_range_raise(parameters: dict, message: str) -> None:
    with pytest.raises(InvalidParameterError, match=message):
        InferenceParameters(**parameters)


def test_class_filter_max_detections_and_agnostic_nms(tmp_path: Path) -> None:
    protos, coefficients = box_protos((80, 80))
    rows = np.stack(
        [
            make_row((10, 10, 100, 100), 0.9, [0.9, 0.0, 0.0], coefficients),
            make_row((12, 10, 102, 100), 0.9, [0.0, 0.8, 0.0], coefficients),
            make_row((200, 200, 250, 250), 0.9, [0.0, 0.0, 0.7], coefficients),
        ]
    )
    model = YOLOv5SegModel.from_pretrained(make_constant_seg_onnx(tmp_path / "m.onnx", rows, protos, names=CLASS_NAMES))
    image = np.zeros((320, 320, 3), np.uint8)
    assert model(image)[0].class_id.tolist() == [0, 1, 2]
    assert model(image, class_agnostic_nms=True)[0].class_id.tolist() == [0, 2]
    assert model(image, class_filter=("rectangle", "triangle"))[0].class_id.tolist() == [1, 2]
    assert model(image, class_filter=("rectangle",), class_agnostic_nms=True)[0].class_id.tolist() == [1]
    assert model(image, max_detections=1)[0].class_id.tolist() == [0]


def test_zero_detections_keep_the_image_size(two_box_model: Path) -> None:
    detections = YOLOv5SegModel.from_pretrained(two_box_model)(np.zeros((31, 47, 3), np.uint8), confidence=0.99)[0]
    assert len(detections) == 0
    assert detections.mask.shape == (0, 31, 47)
    assert detections.xyxy.shape == (0, 4)


def test_class_names_from_a_file_beside_the_weights(tmp_path: Path) -> None:
    rows, protos = two_box_rows()
    path = make_constant_seg_onnx(tmp_path / "m.onnx", rows, protos)
    (tmp_path / "class_names.txt").write_text("a\nb\n\nc\n")
    assert YOLOv5SegModel.from_pretrained(path).class_names == ("a", "b", "c")


def test_missing_class_names_fall_back_to_indices(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    rows, protos = two_box_rows()
    model = YOLOv5SegModel.from_pretrained(make_constant_seg_onnx(tmp_path / "m.onnx", rows, protos))
    assert model.class_names == ("0", "1", "2")
    assert "class_names.txt" in caplog.text


def test_class_names_that_do_not_match_the_model_raise(tmp_path: Path) -> None:
    rows, protos = two_box_rows()
    path = make_constant_seg_onnx(tmp_path / "m.onnx", rows, protos)
    (tmp_path / "class_names.txt").write_text("a\nb\n")
    with pytest.raises(ClassNamesMismatchError, match=r"predicts 3 classes .* but 2 class names"):
        YOLOv5SegModel.from_pretrained(path)


def test_outputs_found_by_name_or_rank(tmp_path: Path, two_box_model: Path) -> None:
    rows, protos = two_box_rows()
    reference = YOLOv5SegModel.from_pretrained(two_box_model)(np.zeros((64, 64, 3), np.uint8))[0]
    for name, kwargs in {
        "swapped.onnx": {"swap_output_order": True},
        "renamed.onnx": {"output_names": ("dets", "protos"), "swap_output_order": True},
    }.items():
        path = make_constant_seg_onnx(tmp_path / name, rows, protos, names=CLASS_NAMES, **kwargs)
        other = YOLOv5SegModel.from_pretrained(path)(np.zeros((64, 64, 3), np.uint8))[0]
        np.testing.assert_array_equal(other.xyxy, reference.xyxy)


def test_float16_input_model(tmp_path: Path) -> None:
    rows, protos = two_box_rows()
    path = make_constant_seg_onnx(tmp_path / "m.onnx", rows, protos, names=CLASS_NAMES, input_type=TensorProto.FLOAT16)
    model = YOLOv5SegModel.from_pretrained(path)
    assert model.backend.info.input_dtype == np.float16
    assert len(model(np.zeros((64, 64, 3), np.uint8))[0]) == 2


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match=str(tmp_path / "nope.onnx")):
        YOLOv5SegModel.from_pretrained(tmp_path / "nope.onnx")


def test_a_file_that_is_not_onnx(tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(b"this is not a protobuf" * 10)
    with pytest.raises(InvalidModelFileError, match="could not be loaded as an ONNX model"):
        YOLOv5SegModel.from_pretrained(path)


def test_a_truncated_onnx(tmp_path: Path, two_box_model: Path) -> None:
    path = tmp_path / "truncated.onnx"
    path.write_bytes(two_box_model.read_bytes()[:200])
    with pytest.raises(InvalidModelFileError):
        YOLOv5SegModel.from_pretrained(path)


def test_a_detection_only_model(tmp_path: Path) -> None:
    with pytest.raises(NotYOLOv5SegModelError, match="detection model"):
        YOLOv5SegModel.from_pretrained(make_detection_only_onnx(tmp_path / "det.onnx"))


def test_protos_with_the_wrong_channel_count(tmp_path: Path) -> None:
    rows, _ = two_box_rows()
    path = make_constant_seg_onnx(tmp_path / "m.onnx", rows, np.zeros((16, 80, 80), np.float32), names=CLASS_NAMES)
    with pytest.raises(NotYOLOv5SegModelError, match="not a YOLO segmentation model"):
        YOLOv5SegModel.from_pretrained(path)


def test_a_pytorch_pickle_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "best.pt"
    path.write_bytes(b"\x80\x04")
    with pytest.raises(UntrustedModelError, match="export.py"):
        YOLOv5SegModel.from_pretrained(path)


def test_nan_outputs_raise(tmp_path: Path) -> None:
    rows, protos = two_box_rows()
    rows[0, 4] = np.nan
    model = YOLOv5SegModel.from_pretrained(make_constant_seg_onnx(tmp_path / "m.onnx", rows, protos, names=CLASS_NAMES))
    with pytest.raises(InvalidModelOutputError, match="NaN"):
        model(np.zeros((64, 64, 3), np.uint8))


def test_pipeline_steps_compose(two_box_model: Path) -> None:
    model = YOLOv5SegModel.from_pretrained(two_box_model)
    image = np.zeros((160, 320, 3), np.uint8)
    batch = model.pre_process([image])
    assert batch.tensor.shape == (1, 3, 320, 320)
    assert batch.geometries[0].pad_ltrb == (0, 80, 0, 80)
    # letterbox padding is grey 114, RGB scaled to [0, 1]
    np.testing.assert_allclose(batch.tensor[0, :, 0, 0], 114 / 255, rtol=1e-6)
    instances, protos = model.forward(batch.tensor)
    assert instances.shape == (1, 2, 5 + 3 + 32) and protos.shape == (1, 32, 80, 80)
    detections = model.post_process(instances, protos, batch.geometries)[0]
    np.testing.assert_array_equal(detections.xyxy, model(image)[0].xyxy)
    with pytest.raises(InvalidParameterError, match="1 output0 rows, 1 output1 rows and 2 geometries"):
        model.post_process(instances, protos, batch.geometries * 2)


PIPELINE_ON_A_LOCAL_PACKAGE = """
import sys
from pathlib import Path
import numpy as np
from workflows_yolov5_seg.backends import create_backend
from workflows_yolov5_seg.model import YOLOv5SegModel
from workflows_yolov5_seg.model_package import load_model_package

package = load_model_package(Path(sys.argv[1]))
model = YOLOv5SegModel(package, create_backend(package, "onnx", device="cpu"))
batch = model.pre_process(np.zeros((160, 320, 3), np.uint8))
model.post_process(*model.forward(batch.tensor), batch.geometries)
print(" ".join(sorted(name for name in sys.modules if name.startswith("workflows_yolov5_seg"))))
"""


def test_the_pipeline_on_a_local_package_loads_no_model_source(two_box_model: Path) -> None:
    """Model sources (and with them the Roboflow client and key authorisation) are imported by from_pretrained only."""
    result = subprocess.run(
        [sys.executable, "-c", PIPELINE_ON_A_LOCAL_PACKAGE, str(two_box_model)],
        capture_output=True,
        text=True,
        cwd=REPOSITORY,
        timeout=120,
        check=True,
    )
    loaded = set(result.stdout.split())
    assert "workflows_yolov5_seg.model" in loaded
    network_stack = {"model_source", "roboflow", "authorization"}
    assert loaded & {f"workflows_yolov5_seg.{name}" for name in network_stack} == set()


def test_compact_masks_and_the_dense_mask_budget(two_box_model: Path) -> None:
    from supervision.detection.compact_mask import CompactMask

    image = np.zeros((160, 320, 3), np.uint8)
    dense = YOLOv5SegModel.from_pretrained(two_box_model)(image)[0]
    compact = YOLOv5SegModel.from_pretrained(two_box_model)(image, compact_masks=True)[0]
    assert isinstance(compact.mask, CompactMask)
    np.testing.assert_array_equal(compact.mask.to_dense(), dense.mask)
    small_budget = YOLOv5SegModel.from_pretrained(two_box_model)
    small_budget.max_mask_bytes = 2 * 160 * 320 - 1
    with pytest.raises(InvalidParameterError, match="compact masks"):
        small_budget(image)
    assert len(small_budget(image, compact_masks=True)[0]) == 2


def test_inference_parameters_accept_the_bounds() -> None:
    """The edges of every range are valid (the matrix checks just outside them)."""
    InferenceParameters(confidence=0, iou_threshold=1, tradeoff_factor=1, max_detections=1)
    InferenceParameters(confidence=1, iou_threshold=0, tradeoff_factor=0, mask_decode_mode="tradeoff")


@pytest.mark.parametrize(
    ("layout", "scores"), [("yolov5", [0.855, 0.81]), ("anchor-free", [0.95, 0.9]), ("end2end", [0.95, 0.9])]
)
@pytest.mark.parametrize("batch", [1, None])
def test_every_layout_gives_the_same_detections(tmp_path: Path, layout: str, scores: list[float], batch) -> None:
    reference = YOLOv5SegModel.from_pretrained(make_two_box_model_of("yolov5", tmp_path / "v5.onnx"))(IMAGE)[0]
    model = YOLOv5SegModel.from_pretrained(make_two_box_model_of(layout, tmp_path / "m.onnx", batch=batch))
    assert model.layout.name == layout
    found = model([IMAGE, IMAGE], compact_masks=True)[1]
    np.testing.assert_allclose(found.xyxy, reference.xyxy, atol=1e-4)
    assert found.data["class_name"].tolist() == ["rectangle", "circle"]
    np.testing.assert_allclose(found.confidence, scores, rtol=1e-6)
    np.testing.assert_array_equal(found.mask.to_dense(), reference.mask)


def test_ultralytics_generations_drop_detections_without_mask_pixels(tmp_path: Path) -> None:
    """Ultralytics' predict drops a detection whose decoded mask is empty; YOLOv5's predict keeps it."""
    rows, protos = two_box_rows()
    rows[1, 5 + 3 :] = -rows[1, 5 + 3 :]  # the circle's mask logits are all negative
    kept = YOLOv5SegModel.from_pretrained(make_constant_seg_onnx(tmp_path / "v5.onnx", rows, protos, names=CLASS_NAMES))
    columns = np.zeros((39, 2100), np.float32)
    columns[:, :2] = np.delete(rows, 4, axis=1).T
    dropped = YOLOv5SegModel.from_pretrained(
        make_constant_seg_onnx(tmp_path / "v8.onnx", columns, protos, metadata=ultralytics_metadata(CLASS_NAMES))
    )
    assert kept(IMAGE)[0].data["class_name"].tolist() == ["rectangle", "circle"]
    for compact in (False, True):
        assert dropped(IMAGE, compact_masks=compact)[0].data["class_name"].tolist() == ["rectangle"]


def test_a_p6_export_of_a_later_generation(tmp_path: Path) -> None:
    """P6 models (stride 64) have a fourth grid: 2125 points at 320 instead of 2100."""
    rows, protos = two_box_rows()
    columns = np.zeros((39, 2125), np.float32)
    columns[:, 2124] = np.delete(rows[0], 4)
    metadata = ultralytics_metadata(CLASS_NAMES, stride=64)
    model = YOLOv5SegModel.from_pretrained(
        make_constant_seg_onnx(tmp_path / "p6.onnx", columns, protos, metadata=metadata)
    )
    assert (model.layout.name, model.package.stride) == ("anchor-free", 64)
    assert model(IMAGE)[0].data["class_name"].tolist() == ["rectangle"]
    metadata["imgsz"] = "[352, 352]"  # not a multiple of 64
    with pytest.raises(NotYOLOv5SegModelError, match="multiple of the model's stride 64"):
        YOLOv5SegModel.from_pretrained(
            make_constant_seg_onnx(tmp_path / "p6-352.onnx", columns, protos, input_hw=(352, 352), metadata=metadata)
        )
