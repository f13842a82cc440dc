"""The detection comparison used by the GPU parity test, checked on the CPU so that a GPU run can trust it."""

from __future__ import annotations

import numpy as np
import supervision as sv
from test_backend_gpu import compare_detections


def detections(boxes: list[list[float]], classes: list[int], scores: list[float], shift: int = 0) -> sv.Detections:
    masks = np.zeros((len(boxes), 100, 100), bool)
    for mask, (x1, y1, x2, y2) in zip(masks, boxes, strict=True):
        mask[int(y1) : int(y2), int(x1) + shift : int(x2) + shift] = True
    return sv.Detections(
        xyxy=np.array(boxes, np.float32).reshape(-1, 4),
        mask=masks,
        class_id=np.array(classes),
        confidence=np.array(scores, np.float32),
    )


def test_identical() -> None:
    a = detections([[10, 10, 50, 50], [60, 60, 90, 90]], [0, 1], [0.9, 0.8])
    result = compare_detections(a, a, 0.4)
    assert result == {"worst_box_px": 0.0, "worst_mask_iou": 1.0, "missing": 0, "extra": 0, "borderline": 0}


def test_order_independent_and_measures_differences() -> None:
    a = detections([[10, 10, 50, 50], [60, 60, 90, 90]], [0, 1], [0.9, 0.8])
    b = detections([[60.5, 60, 90, 90], [10, 10, 50, 51]], [1, 0], [0.8, 0.9], shift=1)
    result = compare_detections(a, b, 0.4)
    assert result["worst_box_px"] == 1.0 and 0.9 < result["worst_mask_iou"] < 1.0
    assert result["missing"] == result["extra"] == 0


def test_missing_extra_and_borderline() -> None:
    a = detections([[10, 10, 50, 50], [60, 60, 90, 90], [0, 0, 5, 5]], [0, 1, 2], [0.9, 0.8, 0.405])
    b = detections([[10, 10, 50, 50], [20, 70, 30, 80]], [0, 2], [0.9, 0.7])
    result = compare_detections(a, b, 0.4)
    assert (result["missing"], result["extra"], result["borderline"]) == (1, 1, 1)
