from __future__ import annotations

import numpy as np
import pytest
import supervision as sv

from workflows_yolov5_seg.nms import Candidates, non_max_suppression


def candidates(boxes: list[tuple[float, float, float, float]], scores: list[float], classes: list[int]) -> Candidates:
    return Candidates(
        xyxy=np.array(boxes, dtype=np.float32).reshape(-1, 4),
        scores=np.array(scores, dtype=np.float32),
        class_ids=np.array(classes, dtype=np.int64),
        coefficients=np.zeros((len(scores), 32), dtype=np.float32),
    )


@pytest.mark.parametrize(
    ("boxes", "scores", "classes", "iou", "agnostic", "max_det", "expected"),
    [
        # nested: the small box has IoU 0.04 with the big one; the legacy "overlap" would drop it, IoU keeps it
        ([(0, 0, 200, 200), (60, 60, 100, 100)], [0.9, 0.8], [0, 0], 0.3, False, 300, [0, 1]),
        # touching edges: IoU 0
        ([(0, 0, 10, 10), (10, 0, 20, 10)], [0.9, 0.8], [0, 0], 0.0, False, 300, [0, 1]),
        # heavy overlap, same class: suppressed
        ([(0, 0, 10, 10), (1, 0, 11, 10)], [0.9, 0.8], [0, 0], 0.3, False, 300, [0]),
        # heavy overlap, different classes: kept unless class-agnostic
        ([(0, 0, 10, 10), (1, 0, 11, 10)], [0.9, 0.8], [0, 1], 0.3, False, 300, [0, 1]),
        ([(0, 0, 10, 10), (1, 0, 11, 10)], [0.9, 0.8], [0, 1], 0.3, True, 300, [0]),
        # IoU exactly at the threshold is kept (suppression is strictly above), as torchvision
        ([(0, 0, 10, 10), (0, 0, 10, 5)], [0.9, 0.8], [0, 0], 0.5, False, 300, [0, 1]),
        ([(0, 0, 10, 10), (0, 0, 10, 5)], [0.9, 0.8], [0, 0], 0.49, False, 300, [0]),
        # a suppressed box does not suppress others (chain a-b-c: b suppressed by a, c kept)
        ([(0, 0, 10, 10), (5, 0, 15, 10), (10, 0, 20, 10)], [0.9, 0.8, 0.7], [0, 0, 0], 0.3, False, 300, [0, 2]),
        # max_detections keeps the best
        ([(0, 0, 1, 1), (5, 5, 6, 6), (9, 9, 10, 10)], [0.9, 0.8, 0.7], [0, 1, 2], 0.5, False, 2, [0, 1]),
        # degenerate (zero-area) boxes never suppress (IoU NaN in torchvision, 0 in supervision)
        ([(0, 0, 0, 0), (0, 0, 0, 0)], [0.9, 0.8], [0, 0], 0.3, False, 300, [0, 1]),
        ([], [], [], 0.3, False, 300, []),
    ],
)
def test_non_max_suppression(boxes, scores, classes, iou, agnostic, max_det, expected) -> None:
    kept = non_max_suppression(candidates(boxes, scores, classes), iou, agnostic, max_det)
    assert kept.tolist() == expected


def reference_greedy_nms(
    found: Candidates, iou_threshold: float, class_agnostic: bool, max_detections: int
) -> list[int]:
    """The textbook loop: keep the best remaining box, drop what overlaps it, repeat."""
    remaining, kept = list(range(len(found))), []
    while remaining and len(kept) < max_detections:
        best, remaining = remaining[0], remaining[1:]
        kept.append(best)
        iou = sv.box_iou_batch(found.xyxy[best : best + 1], found.xyxy[remaining])[0] if remaining else np.zeros(0)
        remaining = [
            other
            for other, value in zip(remaining, iou, strict=True)
            if not (value > iou_threshold and (class_agnostic or found.class_ids[other] == found.class_ids[best]))
        ]
    return kept


@pytest.mark.parametrize(
    ("seed", "count", "block_size", "class_agnostic", "max_detections"),
    [
        (0, 300, 512, False, 300),
        (1, 300, 7, False, 300),  # many blocks: later blocks are checked against every earlier kept box
        (2, 1000, 64, True, 300),
        (3, 1000, 64, False, 25),  # stops inside a block
        (4, 50, 1, False, 300),
    ],
)
def test_blocked_nms_equals_the_textbook_loop(seed, count, block_size, class_agnostic, max_detections) -> None:
    rng = np.random.default_rng(seed)
    corners = rng.uniform(0, 200, (count, 2))
    sizes = rng.uniform(1, 60, (count, 2))
    found = candidates(
        [tuple(box) for box in np.concatenate([corners, corners + sizes], axis=1)],
        sorted(rng.uniform(0, 1, count), reverse=True),
        rng.integers(0, 3, count).tolist(),
    )
    kept = non_max_suppression(found, 0.45, class_agnostic, max_detections, block_size=block_size)
    expected = reference_greedy_nms(found, 0.45, class_agnostic, max_detections)
    assert len(expected) < count  # the case really suppresses something
    assert kept.tolist() == expected
