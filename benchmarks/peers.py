"""Thin adapters that run the peers of this package on the same raw YOLOv5-seg outputs, for the benchmark.

- **legacy**: inference-core 1.8's own YOLOv5-seg post-processing (``InstanceSegmentationBaseOnnxRoboflowInferenceModel
  .postprocess``): ``w_np_non_max_suppression`` + ``process_mask_accurate`` / ``process_mask_tradeoff`` /
  ``process_mask_fast`` + ``masks2poly`` + ``post_process_bboxes`` / ``post_process_polygons``, transcribed call for
  call (it produces masks at the network's resolution and returns polygons, not dense masks).
- **inference-models**: ``YOLOv5ForInstanceSegmentationOnnx`` 0.39 loaded from a local package folder built here
  (``weights.onnx``, ``class_names.txt``, ``inference_config.json``, ``model_config.json``); its ``post_process``
  alone on our raw outputs (as torch tensors) and its whole ``pre_process`` -> ``forward`` -> ``post_process``.

Everything is imported lazily: the peers are optional and heavy (torch).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from workflows_yolov5_seg.network import NUM_MASK_COEFFICIENTS

LEGACY_LETTERBOX = "Fit (grey edges) in"


@dataclass
class LegacyResult:
    """One image's output of the legacy post-processing: rows ``[x1, y1, x2, y2, obj, cls_conf, cls_id, coef..]``
    (boxes on the original image) and one polygon per detection."""

    predictions: np.ndarray
    polygons: list


def legacy_available() -> bool:
    try:
        import inference.core.nms  # noqa: F401
        import inference.core.utils.postprocess  # noqa: F401
    except Exception:  # noqa: BLE001 - any import failure means "not available"
        return False
    return True


def legacy_post_process(
    instances: np.ndarray,
    protos: np.ndarray,
    original_hws: Sequence[tuple[int, int]],
    network_hw: tuple[int, int],
    mask_decode_mode: str = "accurate",
    tradeoff_factor: float = 0.0,
    confidence: float = 0.4,
    iou_threshold: float = 0.3,
    max_detections: int = 300,
    class_agnostic_nms: bool = False,
    max_candidates: int = 3000,
) -> list[LegacyResult]:
    """inference-core 1.8.3's legacy YOLOv5-seg ``postprocess`` for letterboxed images, without the response objects.

    ``w_np_non_max_suppression`` rewrites the boxes of ``instances`` in place: pass a copy.

    Args:
        instances: ``(B, N, 5 + nc + 32)`` raw ``output0`` (modified in place).
        protos: ``(B, 32, H/4, W/4)`` raw ``output1``.
        original_hws: ``(H0, W0)`` per image.
        network_hw: the network input ``(H, W)``.
    """
    from inference.core.nms import w_np_non_max_suppression
    from inference.core.utils.postprocess import (
        masks2poly,
        post_process_bboxes,
        post_process_polygons,
        process_mask_accurate,
        process_mask_fast,
        process_mask_tradeoff,
    )

    predictions = w_np_non_max_suppression(
        instances,
        conf_thresh=confidence,
        iou_thresh=iou_threshold,
        class_agnostic=class_agnostic_nms,
        max_detections=max_detections,
        max_candidate_detections=max_candidates,
        num_masks=NUM_MASK_COEFFICIENTS,
    )
    results = []
    for pred, proto, img_dim in zip([np.array(p) for p in predictions], protos, original_hws, strict=True):
        if pred.size == 0:
            results.append(LegacyResult(np.zeros((0, 7 + NUM_MASK_COEFFICIENTS), np.float32), []))
            continue
        if mask_decode_mode == "accurate":
            masks = process_mask_accurate(proto, pred[:, 7:], pred[:, :4], network_hw)
            output_mask_shape = network_hw
        elif mask_decode_mode == "tradeoff":
            masks = process_mask_tradeoff(proto, pred[:, 7:], pred[:, :4], network_hw, tradeoff_factor)
            output_mask_shape = masks.shape[1:]
        else:
            masks = process_mask_fast(proto, pred[:, 7:], pred[:, :4], network_hw)
            output_mask_shape = masks.shape[1:]
        polygons = masks2poly(masks)
        pred[:, :4] = post_process_bboxes(
            [pred[:, :4]], network_hw, [tuple(img_dim)], {}, resize_method=LEGACY_LETTERBOX
        )[0]
        polygons = post_process_polygons(
            tuple(img_dim), polygons, output_mask_shape, {}, resize_method=LEGACY_LETTERBOX
        )
        results.append(LegacyResult(pred, polygons))
    return results


def inference_models_available() -> bool:
    try:
        import inference_models.models.yolov5.yolov5_instance_segmentation_onnx  # noqa: F401
    except Exception:  # noqa: BLE001
        return False
    return True


def build_inference_models_package(
    weights: Path,
    class_names: Sequence[str],
    input_hw: tuple[int, int],
    folder: Path,
    static_batch_size: int | None = 1,
) -> Path:
    """Writes an inference-models package folder for a bare Ultralytics YOLOv5-seg ONNX export.

    The pre-processing is Ultralytics' letterbox with grey 114 padding (as our pipeline does for a bare ``.onnx``).
    """
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "weights.onnx"
    if not target.exists():
        try:
            target.symlink_to(Path(weights).resolve())
        except OSError:
            shutil.copyfile(weights, target)
    (folder / "class_names.txt").write_text("".join(f"{name}\n" for name in class_names))
    config = {
        "image_pre_processing": {
            "auto-orient": {"enabled": True},
            "static-crop": None,
            "contrast": None,
            "grayscale": None,
        },
        "network_input": {
            "training_input_size": {"height": int(input_hw[0]), "width": int(input_hw[1])},
            "dynamic_spatial_size_supported": False,
            "dynamic_spatial_size_mode": None,
            "color_mode": "rgb",
            "resize_mode": "letterbox",
            "padding_value": 114,
            "input_channels": 3,
            "scaling_factor": 255,
            "normalization": None,
        },
        "forward_pass": {
            "static_batch_size": static_batch_size,
            "max_dynamic_batch_size": None if static_batch_size else 16,
        },
        "post_processing": {"type": "nms", "fused": False, "nms_parameters": None},
        "model_initialization": None,
        "class_names_operations": None,
    }
    (folder / "inference_config.json").write_text(json.dumps(config, indent=2))
    (folder / "model_config.json").write_text(
        json.dumps({"model_architecture": "yolov5", "task_type": "instance-segmentation", "backend_type": "onnx"})
    )
    return folder


def load_inference_models(package_dir: Path) -> Any:  # noqa: ANN401 - the peer's model type
    """``YOLOv5ForInstanceSegmentationOnnx.from_pretrained`` on the CPU execution provider."""
    import torch
    from inference_models.models.yolov5.yolov5_instance_segmentation_onnx import YOLOv5ForInstanceSegmentationOnnx

    return YOLOv5ForInstanceSegmentationOnnx.from_pretrained(
        str(package_dir), onnx_execution_providers=["CPUExecutionProvider"], device=torch.device("cpu")
    )


def inference_models_pre_process(model: Any, images: Sequence[np.ndarray]) -> tuple[Any, list]:  # noqa: ANN401
    """The peer's pre-processing of BGR numpy images: ``(tensor, metadata per image)``."""
    return model.pre_process(list(images), input_color_format="bgr")


def inference_models_post_process(
    model: Any,  # noqa: ANN401
    instances: np.ndarray,
    protos: np.ndarray,
    metadata: list,
    confidence: float = 0.4,
    iou_threshold: float = 0.3,
    max_detections: int = 300,
    masks_resolution_factor: float = 1.0,
) -> list:
    """The peer's ``post_process`` alone, on our raw outputs (shared with torch, no copy)."""
    import torch

    return model.post_process(
        (torch.from_numpy(instances), torch.from_numpy(protos)),
        metadata,
        confidence=confidence,
        iou_threshold=iou_threshold,
        max_detections=max_detections,
        masks_resolution_factor=masks_resolution_factor,
    )


def inference_models_infer(
    model: Any,  # noqa: ANN401
    images: Sequence[np.ndarray],
    confidence: float = 0.4,
    iou_threshold: float = 0.3,
) -> list:
    """The peer end to end: ``pre_process`` -> ``forward`` -> ``post_process`` (dense masks at full resolution)."""
    return model(list(images), input_color_format="bgr", confidence=confidence, iou_threshold=iou_threshold)
