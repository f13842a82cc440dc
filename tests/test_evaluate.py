"""COCO box and mask mAP through the pipeline, on tiny YOLO-seg and COCO datasets whose ground truth is what the
two-box model finds: every score is 1. (The bundled model's real accuracy: tests/suites/test_accuracy.py.)"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from workflows_yolov5_seg import evaluate
from workflows_yolov5_seg.errors import InvalidParameterError, MissingDependencyError
from workflows_yolov5_seg.model import InferenceParameters, YOLOSegModel, YOLOv5SegModel

from support.onnx_graphs import (
    box_protos,
    make_anchor_free_column,
    make_constant_seg_onnx,
    make_end_to_end_row,
    ultralytics_metadata,
)
from support.required import require_module

# What the two-box model finds on a 160x320 image (letterboxed: scale 1, pads (0, 80)): class id, xyxy.
OBJECTS = [(1, (40, 0, 120, 60)), (0, (200, 100, 300, 160))]
HEIGHT, WIDTH = 160, 320


@pytest.fixture
def yolo_root(tmp_path: Path) -> Path:
    """Two images in a YOLO-seg layout, each with the two objects as polygons."""
    (tmp_path / "images" / "test").mkdir(parents=True)
    (tmp_path / "labels" / "test").mkdir(parents=True)
    (tmp_path / "class_names.txt").write_text("circle\nrectangle\ntriangle\n")
    for name in ("a", "b"):
        cv2.imwrite(str(tmp_path / "images" / "test" / f"{name}.png"), np.zeros((HEIGHT, WIDTH, 3), np.uint8))
        lines = []
        for class_id, (x1, y1, x2, y2) in OBJECTS:
            corners = [(x1, y1), (x2 - 1, y1), (x2 - 1, y2 - 1), (x1, y2 - 1)]
            lines.append(" ".join([str(class_id), *(f"{x / WIDTH:.6f} {y / HEIGHT:.6f}" for x, y in corners)]))
        (tmp_path / "labels" / "test" / f"{name}.txt").write_text("\n".join(lines) + "\n")
    return tmp_path


@pytest.fixture(scope="module")
def model(two_box_model: Path) -> YOLOv5SegModel:
    return YOLOv5SegModel.from_pretrained(two_box_model, backend="onnx", device="cpu")


@pytest.fixture
def pycocotools() -> None:
    require_module("pycocotools", "pycocotools (the evaluate and test extras)")


def test_yolo_layout_becomes_coco_ground_truth(yolo_root: Path) -> None:
    dataset = evaluate.load_dataset(yolo_root, "test")
    assert dataset.class_names == ("circle", "rectangle", "triangle")
    assert dataset.image_dir == yolo_root / "images" / "test"
    assert [image["file_name"] for image in dataset.coco["images"]] == ["a.png", "b.png"]
    annotations = dataset.coco["annotations"]
    assert [a["category_id"] for a in annotations] == [2, 1, 2, 1]  # class id + 1
    assert annotations[0]["bbox"] == [40.0, 0.0, 80.0, 60.0] and annotations[0]["area"] == 80 * 60
    assert [c["id"] for c in dataset.coco["categories"]] == [1, 2, 3]


def test_perfect_detections_score_one(yolo_root: Path, model: YOLOv5SegModel, pycocotools: None) -> None:
    metrics = evaluate.evaluate(model, evaluate.load_dataset(yolo_root, "test"), InferenceParameters(confidence=0.4))
    assert (metrics["images"], metrics["detections"]) == (2, 4)
    for kind in ("box", "mask"):
        assert metrics[kind]["mAP50"] == pytest.approx(1.0) and metrics[kind]["mAP50-95"] == pytest.approx(1.0)
        assert metrics[kind]["per_class"]["circle"]["mAP50"] == pytest.approx(1.0)
        assert metrics[kind]["per_class"]["triangle"] == {"mAP50": None, "mAP50-95": None}  # never in the data
    table = evaluate.format_table(metrics).splitlines()
    assert table[0].split() == ["class", "box", "mAP50", "box", "mAP50-95", "mask", "mAP50", "mask", "mAP50-95"]
    assert table[1].split() == ["all", "1.0000", "1.0000", "1.0000", "1.0000"]
    assert table[-1].split() == ["triangle", "-", "-", "-", "-"]


def test_limit_and_no_detections(yolo_root: Path, model: YOLOv5SegModel, pycocotools: None) -> None:
    dataset = evaluate.load_dataset(yolo_root, "test")
    limited = evaluate.evaluate(model, dataset, InferenceParameters(confidence=0.4), limit=1)
    assert (limited["images"], limited["detections"]) == (1, 2)
    nothing = evaluate.evaluate(model, dataset, InferenceParameters(confidence=0.99))
    assert nothing["detections"] == 0 and nothing["mask"] == {"mAP50": 0.0, "mAP50-95": 0.0, "per_class": {}}


def test_coco_layout_is_preferred_when_its_json_exists(yolo_root: Path) -> None:
    coco = evaluate.load_dataset(yolo_root, "test").coco
    (yolo_root / "annotations").mkdir()
    coco["categories"] = [{"id": 1, "name": "disc"}, {"id": 2, "name": "box"}, {"id": 3, "name": "wedge"}]
    (yolo_root / "annotations" / "instances_test.json").write_text(json.dumps(coco))
    assert evaluate.load_dataset(yolo_root, "test").class_names == ("disc", "box", "wedge")
    assert evaluate.load_dataset(yolo_root, "test", layout="yolo").class_names == ("circle", "rectangle", "triangle")


def test_coco_category_ids_must_follow_the_class_order(tmp_path: Path) -> None:
    (tmp_path / "annotations").mkdir()
    document = {"images": [], "annotations": [], "categories": [{"id": 0, "name": "a"}, {"id": 1, "name": "b"}]}
    (tmp_path / "annotations" / "instances_val.json").write_text(json.dumps(document))
    with pytest.raises(InvalidParameterError, match=r"category ids must be 1..N"):
        evaluate.load_dataset(tmp_path, "val")


def test_class_names_from_data_yaml_or_an_error(yolo_root: Path) -> None:
    (yolo_root / "class_names.txt").unlink()
    with pytest.raises(InvalidParameterError, match="no class_names.txt or data.yaml"):
        evaluate.load_dataset(yolo_root, "test")
    (yolo_root / "data.yaml").write_text("path: .\nnames: ['disc', \"box\", wedge]\n")
    assert evaluate.load_dataset(yolo_root, "test").class_names == ("disc", "box", "wedge")


def test_scoring_without_pycocotools_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pycocotools.coco", None)
    with pytest.raises(MissingDependencyError, match=r"workflows-yolov5-seg\[evaluate\]"):
        evaluate.coco_metrics({"images": [], "annotations": [], "categories": []}, [], ())


# The two-box scene as Ultralytics exports write it (network coordinates, as support.models.two_box_rows).
SCENE_BOXES = [((40, 60, 120, 140), 1, [0.1, 0.95, 0.2]), ((200, 180, 300, 260), 0, [0.9, 0.1, 0.1])]
NAMES = {0: "circle", 1: "rectangle", 2: "triangle"}


def with_export_confidence(metadata: dict[str, str], conf: float) -> dict[str, str]:
    """The metadata of an ``nms=True`` export made with ``conf=...`` (Ultralytics records it in ``args``)."""
    return {**metadata, "args": str({"batch": 1, "half": False, "dynamic": False, "nms": True, "conf": conf})}


def scene_export(path: Path, kind: str) -> Path:
    """The scene as an Ultralytics export of ``kind``: ``raw`` anchor-free, ``nms`` (nms=True, default conf 0.25),
    ``nms-conf-0.5`` (nms=True, conf=0.5) or ``end2end`` (YOLO26's NMS-free head)."""
    protos, coefficients = box_protos((80, 80))
    if kind == "raw":
        output0 = np.zeros((4 + 3 + 32, 2100), np.float32)
        for column, (xyxy, _, probabilities) in zip((5, 900), SCENE_BOXES, strict=True):
            output0[:, column] = make_anchor_free_column(xyxy, probabilities, coefficients)
        return make_constant_seg_onnx(path, output0, protos, metadata=ultralytics_metadata(NAMES))
    output0 = np.zeros((300, 38), np.float32)
    for row, (xyxy, class_id, probabilities) in enumerate(SCENE_BOXES):
        output0[row] = make_end_to_end_row(xyxy, max(probabilities), class_id, coefficients)
    metadata = {
        "nms": ultralytics_metadata(NAMES, nms=True),
        "nms-conf-0.5": with_export_confidence(ultralytics_metadata(NAMES, nms=True), 0.5),
        "end2end": ultralytics_metadata(NAMES, end2end=True),
    }[kind]
    return make_constant_seg_onnx(path, output0, protos, metadata=metadata)


@pytest.mark.parametrize(
    ("export", "confidence", "graph_confidence"),
    [
        ("nms", 0.001, 0.25),  # evaluate's default below Ultralytics' default export confidence
        ("nms", 0.2, 0.25),
        ("nms-conf-0.5", 0.4, 0.5),  # exported with conf=0.5
        ("nms", 0.25, None),  # not below: nothing was lost
        ("nms", 0.4, None),
        ("end2end", 0.001, None),  # YOLO26's NMS-free head writes its top K rows: no threshold in the graph
        ("raw", 0.001, None),  # NMS here: every candidate is scored
    ],
)
def test_a_confidence_below_the_graphs_own_is_reported(
    tmp_path: Path,
    yolo_root: Path,
    pycocotools: None,
    caplog: pytest.LogCaptureFixture,
    export: str,
    confidence: float,
    graph_confidence: float | None,
) -> None:
    model = YOLOSegModel.from_pretrained(scene_export(tmp_path / "best.onnx", export), backend="onnx", device="cpu")
    dataset = evaluate.load_dataset(yolo_root, "test")
    with caplog.at_level("WARNING", logger="workflows_yolov5_seg.evaluate"):
        metrics = evaluate.evaluate(model, dataset, InferenceParameters(confidence=confidence))
    assert (metrics["detections"], metrics["mask"]["mAP50"]) == (4, pytest.approx(1.0))  # the scene is still scored
    warnings = [r.getMessage() for r in caplog.records if r.name == "workflows_yolov5_seg.evaluate"]
    if graph_confidence is None:
        assert "in_graph_confidence" not in metrics and warnings == []
        return
    assert metrics["in_graph_confidence"]["threshold"] == graph_confidence
    assert metrics["in_graph_confidence"]["requested"] == confidence
    assert "the mAP is that of the detections that remain" in metrics["in_graph_confidence"]["note"]
    assert len(warnings) == 1 and f"below {graph_confidence}" in warnings[0] and "nms=False" in warnings[0]
    json.dumps(metrics)  # the report stays JSON


@pytest.mark.parametrize(("export", "iou"), [("yolov5", 0.6), ("raw", 0.7), ("end2end", 0.7)])
def test_the_command_defaults_to_the_generations_own_val_iou(
    tmp_path: Path, yolo_root: Path, two_box_model: Path, pycocotools: None, export: str, iou: float
) -> None:
    """``evaluate`` scores like the generation's own validation: YOLOv5's segment/val.py (IoU 0.6), ``yolo val``
    (0.7)."""
    from workflows_yolov5_seg.cli import main

    weights = two_box_model if export == "yolov5" else scene_export(tmp_path / "best.onnx", export)
    out = tmp_path / "metrics.json"
    assert (
        main(["evaluate", "--model", str(weights), "--data", str(yolo_root), "--backend", "onnx", "--out", str(out)])
        == 0
    )
    assert json.loads(out.read_text())["settings"]["iou_threshold"] == iou
