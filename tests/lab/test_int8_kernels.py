"""``benchmarks.int8_kernels``: the golden-scene comparison against fp32 and the two arithmetics it runs."""

from __future__ import annotations

import os

import numpy as np
import supervision as sv

from benchmarks import int8_kernels


def detections(boxes: list[list[float]], confidence: list[float], class_id: list[int]) -> sv.Detections:
    xyxy = np.array(boxes, dtype=np.float32).reshape(-1, 4)
    mask = np.zeros((len(boxes), 100, 100), dtype=bool)
    for mask_, (x0, y0, x1, y1) in zip(mask, xyxy.astype(int), strict=True):
        mask_[y0:y1, x0:x1] = True
    return sv.Detections(xyxy=xyxy, mask=mask, confidence=np.array(confidence), class_id=np.array(class_id))


def test_compare_matches_each_confident_detection_to_its_best_overlap() -> None:
    reference = detections([[0, 0, 20, 20], [50, 50, 90, 90], [0, 60, 10, 70]], [0.9, 0.7, 0.3], [0, 1, 2])
    actual = detections([[50, 50, 90, 80], [0, 0, 20, 20]], [0.65, 0.92], [1, 0])
    result = int8_kernels.compare(reference, actual)
    assert result["count_change"] == -1 and result["confident"] == 2 and result["classes_kept"]
    first, second = result["detections"]
    assert (first["box_iou"], first["mask_iou"], first["confidence_change"]) == (1.0, 1.0, 0.02)
    assert second["box_iou"] == second["mask_iou"] == 0.75 and second["confidence_change"] == 0.05
    assert (result["min_box_iou"], result["min_mask_iou"], result["max_confidence_change"]) == (0.75, 0.75, 0.05)


def test_a_changed_class_and_no_detections_are_reported() -> None:
    reference = detections([[0, 0, 20, 20]], [0.9], [0])
    assert not int8_kernels.compare(reference, detections([[0, 0, 20, 20]], [0.9], [3]))["classes_kept"]
    empty = int8_kernels.compare(reference, detections([], [], []))
    assert empty["count_change"] == -1 and not empty["classes_kept"] and empty["min_mask_iou"] is None


def test_the_reference_arithmetic_disables_graph_optimisation_for_the_block_only() -> None:
    before = os.environ.get(int8_kernels.OPTIMISATION)
    with int8_kernels.graph_optimisation(int8_kernels.ARITHMETIC["reference"]):
        assert os.environ[int8_kernels.OPTIMISATION] == "disable"
    assert os.environ.get(int8_kernels.OPTIMISATION) == before
