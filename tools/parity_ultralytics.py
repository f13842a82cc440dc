"""Parity of this package's pipeline with Ultralytics YOLOv5 (``yolov5==7.0.14``), on the same weights and data.

Runs in the training venv (torch + the YOLOv5 code; see ``training/README.md``) with the repository on the path::

    PYTHONPATH=. /work/train-venv/bin/python tools/parity_ultralytics.py --weights best.pt --onnx model.onnx \\
        --data DATASET_ROOT --split test --out parity.json

The package's runtime needs only numpy, OpenCV, supervision and onnxruntime there
(``pip install --no-deps onnxruntime supervision==0.30.9 pyDeprecate defusedxml pycocotools``).

Two parts:

**(a) Same raw tensors.** Each image is pre-processed once with *our* ``model.pre_process`` (which is checked to be
bit-identical to YOLOv5's ``letterbox(im, imgsz, auto=False)`` + BGR->RGB + /255, i.e. what ``segment/predict.py``
feeds an ONNX model) and run once through the ONNX file with ``model.forward``. The identical ``output0`` /
``output1`` then go to both post-processings:

- ours: ``model.post_process`` (exact letterbox geometry, masks decoded at the original resolution);
- Ultralytics: ``non_max_suppression`` + ``scale_boxes`` + ``process_mask_native`` at the original image size, as
  ``segment/predict.py --retina-masks`` does (boxes ``.round()``-ed first in the ``predict`` setting, as there;
  unrounded in the ``val`` setting, as ``val.py``'s JSON path).

Settings: ``predict`` (conf 0.25, IoU 0.45, max_det 1000, best class), ``ours_default`` (conf 0.4, IoU 0.3,
max_det 300, best class) and ``val`` (conf 0.001, IoU 0.6, max_det 300, multi-label). For each: the same detections
(count, class, score within 1e-5), box differences (against unrounded ``scale_boxes``), mask IoU ours vs Ultralytics,
and both sides' mask IoU with the ground truth (each detection pair matched to one ground-truth instance of its class
by box IoU >= 0.5, greedily by score, so both sides are scored on the same pairs). In the ``val`` setting both sides'
predictions are also scored with pycocotools (the same scorer as ``python -m workflows_yolov5_seg.evaluate``; the
``ours`` figure there *is* that command's result, since ``evaluate`` runs the same ``infer`` chain).

**(b) Ultralytics' own validation.** ``segment/val.py`` (``run()``, in-process) on ``--weights`` (the ``.pt``) with
``--imgsz``, batch 16, conf 0.001, IoU 0.6:

- ``process_mask``: the published figure. Masks are cropped on the prototype grid (``imgsz / 4`` squared, letterbox
  space, no upsampling); ground-truth polygons are rasterised at the letterboxed image size and resized bilinearly
  to the prototype grid (> 0.5); Ultralytics' own AP (``ap_per_class``, 101-point interpolation, its own matching).
- ``--save-json``: ``process_mask_native`` at the network size for its own AP, and masks brought back to the
  original image with ``scale_image`` (``int(pad)`` crop + ``cv2.resize``) for a COCO JSON, which this tool scores
  with pycocotools against the split's COCO annotations.

``val.py`` pre-processes differently from ``predict``/ours: each image is first resized so its long side is
``imgsz`` (``math.ceil`` sizes, ``INTER_AREA`` when shrinking, never enlarged), then letterboxed into a rectangular
batch shape (``rect=True`` for ``.pt`` weights: pads only to a stride multiple of the batch's aspect ratio), and it
runs the PyTorch model, not the ONNX file.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "training"))
sys.path.insert(0, str(REPO))

import run_yolov5  # noqa: E402, I001  (NMS shim + offline settings; must come before torch / torchvision)
import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

SETTINGS = {
    "predict": {"confidence": 0.25, "iou_threshold": 0.45, "max_detections": 1000, "multi_label": False},
    "ours_default": {"confidence": 0.4, "iou_threshold": 0.3, "max_detections": 300, "multi_label": False},
    "val": {"confidence": 0.001, "iou_threshold": 0.6, "max_detections": 300, "multi_label": True},
}
SCORE_TOLERANCE = 1e-5
MASK_CHUNK = 32  # process_mask_native is per mask; chunks bound the (n, H, W) float32 intermediate


def _yolov5():  # noqa: ANN202 - modules
    root = run_yolov5.find_yolov5_dir(None)
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    run_yolov5.disable_hub_download()
    from yolov5.utils.augmentations import letterbox
    from yolov5.utils.general import non_max_suppression, scale_boxes
    from yolov5.utils.segment.general import process_mask_native

    return letterbox, non_max_suppression, scale_boxes, process_mask_native


def _stats(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    array = np.asarray(values, dtype=np.float64)
    return {
        "n": int(array.size),
        "mean": round(float(array.mean()), 5),
        "median": round(float(np.median(array)), 5),
        "p05": round(float(np.percentile(array, 5)), 5),
        "min": round(float(array.min()), 5),
    }


def _mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return 1.0 if union == 0 else np.count_nonzero(a & b) / union


def _box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    inter_w = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    inter_h = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = inter_w * inter_h
    union = (box[2] - box[0]) * (box[3] - box[1]) + (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) - inter
    return inter / np.maximum(union, 1e-9)


def _gt_masks(annotations: list[dict], height: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from pycocotools import mask as mask_utils

    masks, boxes, classes = [], [], []
    for annotation in annotations:
        segmentation = annotation["segmentation"]
        if isinstance(segmentation, dict) and isinstance(segmentation["counts"], list):
            segmentation = mask_utils.frPyObjects(segmentation, height, width)
        elif isinstance(segmentation, list):
            segmentation = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
        masks.append(mask_utils.decode(segmentation).astype(bool))
        x, y, w, h = annotation["bbox"]
        boxes.append([x, y, x + w, y + h])
        classes.append(annotation["category_id"] - 1)
    return (
        np.asarray(masks, dtype=bool).reshape(-1, height, width),
        np.asarray(boxes, dtype=np.float64).reshape(-1, 4),
        np.asarray(classes, dtype=np.int64),
    )


def _match_detections(ours: dict, ul: dict) -> list[tuple[int, int]]:
    """Pairs each of our detections with an unmatched Ultralytics one of the same class and score (best box IoU)."""
    pairs, taken = [], np.zeros(len(ul["scores"]), dtype=bool)
    for i in range(len(ours["scores"])):
        candidates = np.flatnonzero(
            ~taken
            & (ul["classes"] == ours["classes"][i])
            & (np.abs(ul["scores"] - ours["scores"][i]) <= SCORE_TOLERANCE)
        )
        if candidates.size == 0:
            continue
        j = int(candidates[np.argmax(_box_iou(ours["boxes"][i].astype(np.float64), ul["boxes"][candidates]))])
        taken[j] = True
        pairs.append((i, j))
    return pairs


def _match_to_gt(
    boxes: np.ndarray, classes: np.ndarray, gt_boxes: np.ndarray, gt_classes: np.ndarray
) -> list[tuple[int, int]]:
    """Greedy (detections in score order) one-to-one matching to ground truth of the same class, box IoU >= 0.5."""
    pairs, taken = [], np.zeros(len(gt_boxes), dtype=bool)
    for i, (box, class_id) in enumerate(zip(boxes, classes, strict=True)):
        if not len(gt_boxes):
            break
        iou = _box_iou(box.astype(np.float64), gt_boxes)
        iou[taken | (gt_classes != class_id)] = -1
        j = int(np.argmax(iou))
        if iou[j] >= 0.5:
            taken[j] = True
            pairs.append((i, j))
    return pairs


def ultralytics_native_geometry(geometry, protos_hw: tuple[int, int]):  # noqa: ANN001, ANN201
    """An ``ImageGeometry`` under which our decoder samples the prototypes as ``process_mask_native`` does.

    ``process_mask_native(protos, c, boxes, (H0, W0))`` keeps prototype rows ``[int(pad_h), int(mh - pad_h))`` (and
    columns likewise) of the float pad ``pad = (mh - H0 * gain) / 2`` and resizes them to ``(H0, W0)``. That is our
    sampling ``(u + 0.5) * scale + pad`` with ``pad = top * stride`` and ``scale = (bottom - top) * stride / H0``.
    """
    from workflows_yolov5_seg.preprocessing import ImageGeometry

    (mh, mw), (net_h, net_w), (h0, w0) = protos_hw, geometry.network_hw, geometry.original_hw
    gain = min(mh / h0, mw / w0)
    pad_w, pad_h = (mw - w0 * gain) / 2, (mh - h0 * gain) / 2
    top, left, bottom, right = int(pad_h), int(pad_w), int(mh - pad_h), int(mw - pad_w)
    stride_y, stride_x = net_h / mh, net_w / mw
    return ImageGeometry(
        original_hw=(h0, w0),
        crop_xy=(0, 0),
        crop_hw=(h0, w0),
        resized_hw=(round((bottom - top) * stride_y), round((right - left) * stride_x)),
        pad_ltrb=(
            round(left * stride_x),
            round(top * stride_y),
            round(net_w - right * stride_x),
            round(net_h - bottom * stride_y),
        ),
        network_hw=(net_h, net_w),
    )


def _rle(mask: np.ndarray) -> dict:
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def _coco_entries(image_id: int, side: dict) -> list[dict]:
    entries = []
    for box, mask, score, class_id in zip(side["boxes"], side["masks"], side["scores"], side["classes"], strict=True):
        x1, y1, x2, y2 = (float(v) for v in box)
        entries.append(
            {
                "image_id": image_id,
                "category_id": int(class_id) + 1,
                "bbox": [x1, y1, x2 - x1, y2 - y1],
                "score": float(score),
                "segmentation": _rle(mask),
            }
        )
    return entries


class Accumulator:
    """Per-setting agreement figures over all images."""

    def __init__(self) -> None:
        self.detections_ours = self.detections_ul = self.matched = 0
        self.images_same_count = self.images = 0
        self.max_score_diff = 0.0
        self.box_diffs: list[float] = []
        self.box_diffs_rounded: list[float] = []
        self.mask_iou: list[float] = []
        self.gt_ours: list[float] = []
        self.gt_ul: list[float] = []
        self.worst: list[tuple[float, str, int]] = []
        self.network_box_diffs: list[float] = []
        self.emulated_iou: list[float] = []
        self.ul_inputs_exact_iou: list[float] = []

    def add(self, name: str, ours: dict, ul: dict, gt: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
        self.images += 1
        self.detections_ours += len(ours["scores"])
        self.detections_ul += len(ul["scores"])
        self.images_same_count += len(ours["scores"]) == len(ul["scores"])
        pairs = _match_detections(ours, ul)
        self.matched += len(pairs)
        for i, j in pairs:
            self.max_score_diff = max(self.max_score_diff, abs(float(ours["scores"][i]) - float(ul["scores"][j])))
            self.box_diffs.append(float(np.abs(ours["boxes"][i] - ul["boxes"][j]).max()))
            self.box_diffs_rounded.append(float(np.abs(ours["boxes"][i] - ul["boxes_rounded"][j]).max()))
            self.network_box_diffs.append(float(np.abs(ours["boxes"][i] - ul["boxes_exact_geometry"][j]).max()))
            if "masks_emulated" in ours:
                self.emulated_iou.append(_mask_iou(ours["masks_emulated"][i], ul["masks"][j]))
                self.ul_inputs_exact_iou.append(_mask_iou(ours["masks_ul_inputs"][i], ul["masks"][j]))
            iou = _mask_iou(ours["masks"][i], ul["masks"][j])
            self.mask_iou.append(iou)
            self.worst.append((iou, name, i))
        gt_masks, gt_boxes, gt_classes = gt
        if pairs:
            ours_index = np.array([i for i, _ in pairs])
            for k, g in _match_to_gt(ours["boxes"][ours_index], ours["classes"][ours_index], gt_boxes, gt_classes):
                i, j = pairs[k]
                self.gt_ours.append(_mask_iou(ours["masks"][i], gt_masks[g]))
                self.gt_ul.append(_mask_iou(ul["masks"][j], gt_masks[g]))

    def summary(self) -> dict:
        gt_ours, gt_ul = np.asarray(self.gt_ours), np.asarray(self.gt_ul)
        return {
            "images": self.images,
            "detections_ours": self.detections_ours,
            "detections_ultralytics": self.detections_ul,
            "matched (same class, score within 1e-5)": self.matched,
            "unmatched_ours": self.detections_ours - self.matched,
            "unmatched_ultralytics": self.detections_ul - self.matched,
            "images_with_same_count": self.images_same_count,
            "max_score_diff": float(self.max_score_diff),
            "box_max_abs_diff_px (vs unrounded scale_boxes)": _stats(self.box_diffs)
            | {
                "max": round(max(self.box_diffs, default=0.0), 4),
                "within_1px": round(float(np.mean(np.asarray(self.box_diffs) <= 1.0)), 5) if self.box_diffs else None,
            },
            "box_max_abs_diff_px (vs predict's .round()-ed boxes)": {
                "max": round(max(self.box_diffs_rounded, default=0.0), 4),
            },
            "box_max_abs_diff_px (Ultralytics' network-space boxes mapped with our exact pads and scale)": {
                "max": round(max(self.network_box_diffs, default=0.0), 6),
            },
            "mask_iou_ours_vs_ultralytics_native": _stats(self.mask_iou)
            | {
                "share_ge_0.95": round(float(np.mean(np.asarray(self.mask_iou) >= 0.95)), 5) if self.mask_iou else None,
                "share_ge_0.98": round(float(np.mean(np.asarray(self.mask_iou) >= 0.98)), 5) if self.mask_iou else None,
                "worst": [(round(v, 4), n, i) for v, n, i in sorted(self.worst)[:5]],
            },
            "diagnostics (where the mask differences come from)": {
                "our decoder given Ultralytics' inputs (obj-scaled coefficients, its boxes) and exact geometry vs "
                "process_mask_native": _stats(self.ul_inputs_exact_iou),
                "our decoder given Ultralytics' inputs and its int(pad) prototype crop vs process_mask_native": _stats(
                    self.emulated_iou
                ),
            },
            "mask_iou_with_ground_truth (same detection pairs)": {
                "pairs": len(self.gt_ours),
                "ours": _stats(self.gt_ours),
                "ultralytics_native": _stats(self.gt_ul),
                "ours_better": int(np.sum(gt_ours > gt_ul + 1e-9)),
                "ultralytics_better": int(np.sum(gt_ul > gt_ours + 1e-9)),
                "equal": int(np.sum(np.abs(gt_ours - gt_ul) <= 1e-9)),
            },
        }


def same_tensor_parity(args: argparse.Namespace, dataset, model) -> dict:  # noqa: ANN001
    from workflows_yolov5_seg.masks import decode_masks
    from workflows_yolov5_seg.model import InferenceParameters

    letterbox, non_max_suppression, scale_boxes, process_mask_native = _yolov5()
    net_h, net_w = model.backend.info.input_hw
    parameters = {name: InferenceParameters(**values) for name, values in SETTINGS.items()}
    accumulators = {name: Accumulator() for name in SETTINGS}
    coco_results: dict[str, list[dict]] = {"ours": [], "ultralytics_native": []}
    annotations_by_image: dict[int, list[dict]] = {}
    for annotation in dataset.coco["annotations"]:
        annotations_by_image.setdefault(annotation["image_id"], []).append(annotation)
    tensor_diff, images = 0.0, dataset.coco["images"][: args.limit]
    started = time.time()
    for number, image in enumerate(images, 1):
        bgr = cv2.imread(str(dataset.image_dir / image["file_name"]), cv2.IMREAD_COLOR)
        height, width = bgr.shape[:2]
        batch = model.pre_process(bgr)
        ul_input = letterbox(bgr, (net_h, net_w), auto=False)[0][:, :, ::-1].transpose(2, 0, 1)
        tensor_diff = max(tensor_diff, float(np.abs(batch.tensor[0] - ul_input.astype(np.float32) / 255).max()))
        instances, protos = model.forward(batch.tensor)
        gt = _gt_masks(annotations_by_image.get(image["id"], []), height, width)
        for name, values in SETTINGS.items():
            detections = model.post_process(instances, protos, batch.geometries, parameters[name])[0]
            ours = {
                "boxes": detections.xyxy.astype(np.float64),
                "scores": detections.confidence.astype(np.float64),
                "classes": detections.class_id.astype(np.int64),
                "masks": detections.mask,
            }
            pred = non_max_suppression(
                torch.from_numpy(instances),
                values["confidence"],
                values["iou_threshold"],
                multi_label=values["multi_label"],
                max_det=values["max_detections"],
                nm=32,
            )[0]
            boxes = scale_boxes((net_h, net_w), pred[:, :4].clone(), (height, width))
            rounded = boxes.clone().round()
            crop_boxes = rounded if name == "predict" else boxes  # predict.py rounds before process_mask_native
            proto = torch.from_numpy(protos[0])
            masks = [
                process_mask_native(
                    proto, pred[k : k + MASK_CHUNK, 6:], crop_boxes[k : k + MASK_CHUNK], (height, width)
                )
                for k in range(0, len(pred), MASK_CHUNK)
            ]
            network_boxes = pred[:, :4].numpy()
            ul = {
                "boxes_exact_geometry": batch.geometries[0].network_to_image(network_boxes).astype(np.float64),
                "boxes": boxes.numpy().astype(np.float64),
                "boxes_rounded": rounded.numpy().astype(np.float64),
                "scores": pred[:, 4].numpy().astype(np.float64),
                "classes": pred[:, 5].numpy().astype(np.int64),
                "masks": torch.cat(masks).numpy().astype(bool) if masks else np.zeros((0, height, width), bool),
            }
            if name != "val":  # diagnostics: our decoder on Ultralytics' inputs, exact and int(pad) geometry
                ul_coefficients, ul_crop_boxes = pred[:, 6:].numpy(), crop_boxes.numpy()
                pairs = _match_detections(ours, ul)
                order = np.array([j for _, j in sorted(pairs)], dtype=np.int64)
                emulated = ultralytics_native_geometry(batch.geometries[0], protos.shape[2:])
                if len(order) == len(ours["scores"]):
                    ours["masks_ul_inputs"] = decode_masks(
                        protos[0], ul_coefficients[order], ul_crop_boxes[order], batch.geometries[0]
                    )
                    ours["masks_emulated"] = decode_masks(
                        protos[0], ul_coefficients[order], ul_crop_boxes[order], emulated
                    )
            accumulators[name].add(image["file_name"], ours, ul, gt)
            if name == "val":
                coco_results["ours"] += _coco_entries(image["id"], ours)
                coco_results["ultralytics_native"] += _coco_entries(image["id"], ul)
        if number % 25 == 0 or number == len(images):
            print(f"  same-tensor parity: {number}/{len(images)} images, {time.time() - started:.0f} s", flush=True)
    result = {
        "images": len(images),
        "pre_processing": (
            "ours (model.pre_process); checked against yolov5 letterbox(im, imgsz, auto=False) + BGR->RGB + /255 "
            "(what segment/predict.py feeds an ONNX model)"
        ),
        "input_tensor_max_abs_diff_vs_yolov5_letterbox": tensor_diff,
        "settings": SETTINGS,
        "agreement": {name: accumulator.summary() for name, accumulator in accumulators.items()},
    }
    result["val_setting_mAP (pycocotools, same tensors)"] = _score(dataset, coco_results, args.limit)
    return result


def _score(dataset, results: dict[str, list[dict]], limit: int | None) -> dict:  # noqa: ANN001
    from workflows_yolov5_seg.evaluate import coco_metrics

    scores = {}
    for name, entries in results.items():
        metrics = coco_metrics(dataset.coco, entries, dataset.class_names, limit)
        scores[name] = _brief(metrics) | {"detections": len(entries)}
    return scores


def _brief(metrics: dict) -> dict:
    return {
        "mask_mAP50-95": round(metrics["mask"]["mAP50-95"], 5),
        "mask_mAP50": round(metrics["mask"]["mAP50"], 5),
        "box_mAP50-95": round(metrics["box"]["mAP50-95"], 5),
        "box_mAP50": round(metrics["box"]["mAP50"], 5),
    }


def ultralytics_val(args: argparse.Namespace, dataset, workdir: Path) -> dict:  # noqa: ANN001
    _yolov5()
    from yolov5.segment import val as ul_val

    # YOLOv5's NMS stops after 0.5 + 0.05 * batch seconds (a GPU budget) and leaves the rest of the batch without
    # detections. On this CPU (numpy NMS shim, conf 0.001) that could silently drop images, so val.py's NMS is run
    # one image at a time: the same results (NMS is per image), but the limit check can no longer cut anything.
    batched_nms = ul_val.non_max_suppression

    def per_image_nms(prediction, *args, labels=(), **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        return [
            batched_nms(prediction[i : i + 1], *args, labels=labels[i : i + 1] if labels else (), **kwargs)[0]
            for i in range(prediction.shape[0])
        ]

    ul_val.non_max_suppression = per_image_nms

    # scale_image() cv2.resize-s all of an image's masks at once, as channels; OpenCV 5 takes at most 128 channels
    # (OpenCV 4: 512), so --save-json fails beyond 128 detections. Resizing is per channel: chunks give the same masks.
    whole_scale_image = ul_val.scale_image

    def chunked_scale_image(im1_shape, masks, im0_shape, ratio_pad=None):  # noqa: ANN001, ANN202
        chunks = [
            whole_scale_image(im1_shape, np.ascontiguousarray(masks[:, :, k : k + 64]), im0_shape, ratio_pad)
            for k in range(0, max(masks.shape[2], 1), 64)
        ]
        return np.concatenate(chunks, axis=2)

    ul_val.scale_image = chunked_scale_image

    data_yaml = args.data / "data.yaml"
    common = {
        "data": str(data_yaml),
        "weights": str(args.weights),
        "imgsz": args.imgsz,
        "batch_size": 16,
        "conf_thres": 0.001,
        "iou_thres": 0.6,
        "max_det": 300,
        "task": args.split,
        "device": "cpu",
        "workers": 2,
        "half": False,
        "plots": False,
        "project": str(workdir),
        "exist_ok": True,
    }
    out = {
        "adaptations": [
            "non_max_suppression called per image (no time-limit truncation; same results)",
            "scale_image applied to at most 64 masks per cv2.resize call (OpenCV 5 channel limit; same results)",
        ],
        "command_equivalent": (
            f"segment/val.py --weights {args.weights} --data {data_yaml} --imgsz {args.imgsz} --batch-size 16 "
            f"--conf-thres 0.001 --iou-thres 0.6 --max-det 300 --task {args.split} --device cpu [--save-json]"
        ),
    }
    for name, save_json in (("process_mask (published)", False), ("process_mask_native (--save-json)", True)):
        started = time.time()
        results, _, _ = ul_val.run(**common, save_json=save_json, name=f"val-json{int(save_json)}")
        out[name] = {
            "ultralytics_metric": {
                "mask_mAP50-95": round(float(results[7]), 5),
                "mask_mAP50": round(float(results[6]), 5),
                "box_mAP50-95": round(float(results[3]), 5),
                "box_mAP50": round(float(results[2]), 5),
            },
            "seconds": round(time.time() - started, 1),
        }
        if save_json:
            predictions = json.loads(next((workdir / "val-json1").glob("*_predictions.json")).read_text())
            ids = {Path(image["file_name"]).stem: image["id"] for image in dataset.coco["images"]}
            for entry in predictions:
                entry["image_id"] = ids[str(entry["image_id"])]
                entry["category_id"] = int(entry["category_id"]) + 1  # val.py writes class ids (class_map = range)
            out[name]["pycocotools (COCO GT of the split)"] = _score(dataset, {"json": predictions}, None)["json"]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", required=True, type=Path, help="YOLOv5 .pt checkpoint (for segment/val.py)")
    parser.add_argument("--onnx", required=True, type=Path, help="the same weights exported to ONNX (for ours)")
    parser.add_argument(
        "--data", required=True, type=Path, help="dataset root: data.yaml, images/, labels/, annotations/"
    )
    parser.add_argument("--split", default="test")
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--limit", type=int, default=None, help="first N images only (part a)")
    parser.add_argument("--skip-val", action="store_true", help="skip part (b), Ultralytics' segment/val.py")
    parser.add_argument("--workdir", type=Path, default=Path("runs/parity"), help="where val.py writes its runs")
    parser.add_argument("--out", type=Path, default=Path("parity.json"))
    args = parser.parse_args(argv)
    args.data = args.data.resolve()

    from workflows_yolov5_seg.evaluate import load_dataset
    from workflows_yolov5_seg.model import YOLOv5SegModel

    dataset = load_dataset(args.data, args.split)
    model = YOLOv5SegModel.from_pretrained(args.onnx, backend="onnx", device="cpu")
    report: dict = {
        "command": " ".join(["tools/parity_ultralytics.py", *(argv if argv is not None else sys.argv[1:])]),
        "weights": str(args.weights),
        "onnx": str(args.onnx),
        "data": str(args.data),
        "split": args.split,
        "versions": {"torch": torch.__version__, "numpy": np.__version__, "opencv": cv2.__version__},
    }
    validation = None
    if not args.skip_val:  # (b) in a second process, beside (a): the two take minutes each on a CPU
        print("(b) Ultralytics segment/val.py (in a second process)", flush=True)
        pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
        validation = pool.submit(ultralytics_val, args, dataset, args.workdir.resolve())
        pool.shutdown(wait=False)
    print("(a) same raw tensors", flush=True)
    report["same_tensors"] = same_tensor_parity(args, dataset, model)
    if validation is not None:
        report["ultralytics_val"] = validation.result()
        ours = report["same_tensors"]["val_setting_mAP (pycocotools, same tensors)"]["ours"]
        published = report["ultralytics_val"]["process_mask (published)"]["ultralytics_metric"]
        native_json = report["ultralytics_val"]["process_mask_native (--save-json)"][
            "pycocotools (COCO GT of the split)"
        ]
        report["differences (points, ours - ultralytics)"] = {
            "mask_mAP50-95 vs val.py published (process_mask, UL metric)": round(
                100 * (ours["mask_mAP50-95"] - published["mask_mAP50-95"]), 2
            ),
            "mask_mAP50 vs val.py published (process_mask, UL metric)": round(
                100 * (ours["mask_mAP50"] - published["mask_mAP50"]), 2
            ),
            "mask_mAP50-95 vs val.py --save-json (native, pycocotools)": round(
                100 * (ours["mask_mAP50-95"] - native_json["mask_mAP50-95"]), 2
            ),
            "mask_mAP50 vs val.py --save-json (native, pycocotools)": round(
                100 * (ours["mask_mAP50"] - native_json["mask_mAP50"]), 2
            ),
        }
    if args.limit is None or args.limit > 0:
        agreement = report["same_tensors"]["agreement"]
        checks = {}
        for name in ("predict", "ours_default"):
            summary = agreement[name]
            gt = summary["mask_iou_with_ground_truth (same detection pairs)"]
            checks[name] = {
                "same_detections": summary["unmatched_ours"] == 0 and summary["unmatched_ultralytics"] == 0,
                "boxes_within_1px": summary["box_max_abs_diff_px (vs unrounded scale_boxes)"]["max"] <= 1.0,
                "mask_median_iou_ge_0.95": summary["mask_iou_ours_vs_ultralytics_native"].get("median", 0) >= 0.95,
                "ours_at_least_as_close_to_gt (mean)": gt["ours"].get("mean", 0)
                >= gt["ultralytics_native"].get("mean", 0),
            }
        if "differences (points, ours - ultralytics)" in report:
            checks["mAP50-95_not_below_published_by_more_than_0.3_points"] = (
                report["differences (points, ours - ultralytics)"][
                    "mask_mAP50-95 vs val.py published (process_mask, UL metric)"
                ]
                >= -0.3
            )
        report["checks"] = checks
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    print(f"Wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
