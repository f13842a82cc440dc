"""COCO box and mask mAP of a model run through this package's own pipeline.

    workflows-yolov5-seg evaluate --model model.onnx --data DATASET --split test --out metrics.json

``DATASET`` is a COCO layout (``annotations/instances_{split}.json`` + ``images/{split}/``) or a YOLO-seg layout
(``images/{split}/``, ``labels/{split}/`` polygons, class names from ``class_names.txt`` or ``data.yaml``). The
defaults match the generation's own validation: confidence 0.001, IoU 0.6 (YOLOv5's ``segment/val.py``) or 0.7
(``yolo val`` of YOLOv8 and later; ``layouts.OutputLayout.val_iou_threshold``), 300 detections, multi-label scoring
(``--single-label`` to score like ``predict``). Masks are decoded at the original image resolution and scored with
pycocotools (``pip install 'workflows-yolov5-seg[evaluate]'``).

An end-to-end export with NMS in the graph (``nms=True``) applied its own confidence threshold (Ultralytics' 0.25
unless exported with another ``conf``) before this pipeline sees a row: a lower ``confidence`` cannot bring back what
it dropped, so its mAP is that of the detections above the export's threshold. :func:`evaluate` logs a warning and
records it in the report (``in_graph_confidence``) when the requested confidence is below it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from workflows_yolov5_seg.detections import encode_coco_rle
from workflows_yolov5_seg.errors import InvalidParameterError, MissingDependencyError
from workflows_yolov5_seg.layouts import END_TO_END, UltralyticsExport
from workflows_yolov5_seg.model import InferenceParameters, YOLOSegModel
from workflows_yolov5_seg.model_package import read_weights_header

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def _pycocotools():  # noqa: ANN202 - modules
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError as error:
        raise MissingDependencyError("pycocotools", "evaluate", "The evaluation command") from error
    return COCO, COCOeval


def _progress(items: list, description: str) -> Iterable:
    try:
        from tqdm import tqdm
    except ImportError:
        return items
    return tqdm(items, desc=description, unit="img")


@dataclass(frozen=True)
class Dataset:
    """Ground truth in COCO form (category ids are class ids + 1) and where its images are."""

    coco: dict
    image_dir: Path
    class_names: tuple[str, ...]


def _read_class_names(root: Path) -> tuple[str, ...] | None:
    names_file = root / "class_names.txt"
    if names_file.is_file():
        return tuple(line.strip() for line in names_file.read_text().splitlines() if line.strip())
    data_file = root / "data.yaml"
    if data_file.is_file():
        for line in data_file.read_text().splitlines():
            if line.startswith("names:"):
                value = line.split(":", 1)[1].strip()
                return tuple(name.strip(" '\"") for name in value.strip("[]").split(","))
    return None


def load_coco_dataset(root: Path, split: str) -> Dataset:
    annotations = json.loads((root / "annotations" / f"instances_{split}.json").read_text())
    categories = sorted(annotations["categories"], key=lambda c: c["id"])
    if [c["id"] for c in categories] != list(range(1, len(categories) + 1)):
        raise InvalidParameterError("COCO category ids must be 1..N in class order (class id = category id - 1).")
    return Dataset(annotations, root / "images" / split, tuple(c["name"] for c in categories))


def load_yolo_dataset(root: Path, split: str) -> Dataset:
    class_names = _read_class_names(root)
    if class_names is None:
        raise InvalidParameterError(f"'{root}' has no class_names.txt or data.yaml naming the classes.")
    image_dir, label_dir = root / "images" / split, root / "labels" / split
    images, annotations = [], []
    for image_id, path in enumerate(sorted(p for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), 1):
        height, width = cv2.imread(str(path), cv2.IMREAD_UNCHANGED).shape[:2]
        images.append({"id": image_id, "file_name": path.name, "height": height, "width": width})
        label_file = label_dir / f"{path.stem}.txt"
        lines = label_file.read_text().splitlines() if label_file.is_file() else []
        for line in filter(str.strip, lines):
            values = line.split()
            polygon = np.array(values[1:], dtype=np.float64).reshape(-1, 2) * (width, height)
            mask = np.zeros((height, width), np.uint8)
            cv2.fillPoly(mask, [np.round(polygon).astype(np.int32)], 1)
            annotations.append(_annotation(len(annotations) + 1, image_id, int(values[0]), mask.astype(bool)))
    categories = [{"id": i + 1, "name": name} for i, name in enumerate(class_names)]
    return Dataset({"images": images, "annotations": annotations, "categories": categories}, image_dir, class_names)


def _annotation(annotation_id: int, image_id: int, class_id: int, mask: npt.NDArray[np.bool_]) -> dict:
    ys, xs = np.nonzero(mask)
    box = [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)]
    return {
        "id": annotation_id,
        "image_id": image_id,
        "category_id": class_id + 1,
        "segmentation": encode_coco_rle(mask),
        "area": float(mask.sum()),
        "bbox": box,
        "iscrowd": 0,
    }


def load_dataset(root: Path, split: str, layout: str = "auto") -> Dataset:
    """Reads a dataset split in COCO or YOLO-seg layout (``auto`` prefers COCO when its JSON exists)."""
    if layout == "coco" or layout == "auto" and (root / "annotations" / f"instances_{split}.json").is_file():
        return load_coco_dataset(root, split)
    return load_yolo_dataset(root, split)


def predict_dataset(
    model: YOLOSegModel, dataset: Dataset, parameters: InferenceParameters, limit: int | None = None
) -> Iterator[dict]:
    """Runs the pipeline on each image and yields COCO result entries."""
    images = dataset.coco["images"][:limit]
    for image in _progress(images, "evaluating"):
        bgr = cv2.imread(str(dataset.image_dir / image["file_name"]), cv2.IMREAD_COLOR)
        detections = model.infer(bgr, parameters)[0]
        for box, mask, score, class_id in zip(
            detections.xyxy, detections.mask, detections.confidence, detections.class_id, strict=True
        ):
            x1, y1, x2, y2 = (float(v) for v in box)
            yield {
                "image_id": image["id"],
                "category_id": int(class_id) + 1,
                "bbox": [x1, y1, x2 - x1, y2 - y1],
                "score": float(score),
                "segmentation": encode_coco_rle(mask),
            }


def coco_metrics(
    ground_truth: dict, results: list[dict], class_names: tuple[str, ...], limit: int | None = None
) -> dict:
    """Box and mask mAP50 and mAP50-95 overall and per class, from pycocotools' COCOeval."""
    COCO, COCOeval = _pycocotools()
    gt = COCO()
    gt.dataset = {**ground_truth, "images": ground_truth["images"][:limit]}
    image_ids = {image["id"] for image in gt.dataset["images"]}
    gt.dataset["annotations"] = [a for a in ground_truth["annotations"] if a["image_id"] in image_ids]
    gt.createIndex()
    metrics: dict = {}
    for kind in ("bbox", "segm"):
        predictions = gt.loadRes(results) if results else None
        if predictions is None:
            metrics[kind] = {"mAP50": 0.0, "mAP50-95": 0.0, "per_class": {}}
            continue
        evaluator = COCOeval(gt, predictions, kind)
        evaluator.params.imgIds = sorted(image_ids)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
        precision = evaluator.eval["precision"]  # (IoU thresholds, recall, classes, areas, max dets)
        per_class = {}
        for index, name in enumerate(class_names):
            values = precision[:, :, index, 0, -1]
            at50 = precision[0, :, index, 0, -1]
            per_class[name] = {
                "mAP50": float(at50[at50 > -1].mean()) if (at50 > -1).any() else None,
                "mAP50-95": float(values[values > -1].mean()) if (values > -1).any() else None,
            }
        metrics[kind] = {
            "mAP50": float(evaluator.stats[1]),
            "mAP50-95": float(evaluator.stats[0]),
            "per_class": per_class,
        }
    return {"box": metrics["bbox"], "mask": metrics["segm"]}


def in_graph_confidence(model: YOLOSegModel) -> float | None:
    """The confidence threshold the model's graph applies before its output (an ``nms=True`` end-to-end export,
    read from its ONNX metadata), else ``None`` (raw exports, YOLO26's NMS-free head, engines without ONNX)."""
    weights = model.package.weights_path
    if model.layout is not END_TO_END or weights is None:
        return None
    return UltralyticsExport.from_metadata(read_weights_header(weights).metadata).graph_confidence


def evaluate(
    model: YOLOSegModel,
    dataset: Dataset,
    parameters: InferenceParameters,
    limit: int | None = None,
) -> dict:
    """Evaluates ``model`` on ``dataset``; returns the metrics (see :func:`coco_metrics`).

    When the model's graph already dropped detections below a confidence higher than ``parameters.confidence``
    (:func:`in_graph_confidence`), logs a warning and adds ``in_graph_confidence`` to the metrics: that threshold,
    the requested one and what it means for the mAP.
    """
    graph_confidence = in_graph_confidence(model)
    dropped_in_graph = graph_confidence is not None and parameters.confidence < graph_confidence
    if dropped_in_graph:
        logger.warning(
            "'%s' is an end-to-end export whose graph already dropped detections with a confidence below %s (its "
            "export confidence); the requested confidence %s cannot bring them back, so the mAP is that of the "
            "detections that remain. Evaluate the raw export (nms=False) to score all of them.",
            model.package.model_id,
            graph_confidence,
            parameters.confidence,
        )
    results = list(predict_dataset(model, dataset, parameters, limit))
    metrics = coco_metrics(dataset.coco, results, dataset.class_names, limit)
    metrics["images"] = len(dataset.coco["images"][:limit])
    metrics["detections"] = len(results)
    if dropped_in_graph:
        metrics["in_graph_confidence"] = {
            "threshold": graph_confidence,
            "requested": parameters.confidence,
            "note": "the export's graph dropped detections below the threshold before this pipeline; the mAP is "
            "that of the detections that remain",
        }
    return metrics


def format_table(metrics: dict) -> str:
    lines = [f"{'class':<14}{'box mAP50':>11}{'box mAP50-95':>14}{'mask mAP50':>12}{'mask mAP50-95':>15}"]

    def cell(value: float | None, width: int) -> str:
        return f"{'-' if value is None else f'{value:.4f}':>{width}}"

    lines.append(
        f"{'all':<14}{cell(metrics['box']['mAP50'], 11)}{cell(metrics['box']['mAP50-95'], 14)}"
        f"{cell(metrics['mask']['mAP50'], 12)}{cell(metrics['mask']['mAP50-95'], 15)}"
    )
    for name, box in metrics["box"]["per_class"].items():
        mask = metrics["mask"]["per_class"][name]
        lines.append(
            f"{name:<14}{cell(box['mAP50'], 11)}{cell(box['mAP50-95'], 14)}"
            f"{cell(mask['mAP50'], 12)}{cell(mask['mAP50-95'], 15)}"
        )
    return "\n".join(lines)
