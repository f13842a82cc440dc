"""Scoring and non-maximum suppression of YOLOv5-seg raw predictions (Ultralytics semantics, vectorised numpy).

One image's ``output0`` rows are ``[cx, cy, w, h, obj, cls_0 .. cls_{nc-1}, coef_0 .. coef_31]`` in network-input
pixels. A row is a candidate when ``obj > confidence`` and ``obj * cls_best > confidence``; its score is
``obj * cls_best`` and its class id the 0-based ``argmax`` of the class probabilities (Ultralytics'
``non_max_suppression``, not the legacy objectness-only score nor inference-models' shifted ids).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

NUM_MASK_COEFFICIENTS = 32
# Ultralytics' max_nms: only the best candidates by score enter NMS.
MAX_NMS_CANDIDATES = 30_000


@dataclass(frozen=True)
class Candidates:
    """Scored detections of one image, in network-input pixels.

    Attributes:
        xyxy: ``(N, 4)`` float32 boxes.
        scores: ``(N,)`` float32, ``obj * cls``.
        class_ids: ``(N,)`` int64, 0-based.
        coefficients: ``(N, 32)`` float32 mask coefficients.
    """

    xyxy: npt.NDArray[np.float32]
    scores: npt.NDArray[np.float32]
    class_ids: npt.NDArray[np.int64]
    coefficients: npt.NDArray[np.float32]

    def __len__(self) -> int:
        return len(self.scores)

    def take(self, index: npt.NDArray[np.integer]) -> Candidates:
        """Returns the candidates at ``index`` (in that order)."""
        return Candidates(self.xyxy[index], self.scores[index], self.class_ids[index], self.coefficients[index])


def xywh_to_xyxy(xywh: npt.NDArray[np.floating]) -> npt.NDArray[np.float32]:
    """Converts centre boxes ``(N, 4)`` ``[cx, cy, w, h]`` to corner boxes ``[x1, y1, x2, y2]``."""
    half = xywh[:, 2:4] / 2
    return np.concatenate([xywh[:, 0:2] - half, xywh[:, 0:2] + half], axis=1).astype(np.float32)


def select_candidates(
    prediction: npt.NDArray[np.floating],
    num_classes: int,
    confidence: float,
    allowed_class_ids: npt.NDArray[np.integer] | None = None,
    multi_label: bool = False,
) -> Candidates:
    """Scores the rows of one image and keeps those above ``confidence``, best first.

    Args:
        prediction: ``(N, 5 + nc + 32)`` raw rows of ``output0`` for one image.
        num_classes: ``nc``.
        confidence: threshold applied, strictly, to objectness and to ``obj * cls``.
        allowed_class_ids: when given, candidates of other classes are dropped before NMS.
        multi_label: every class with ``obj * cls > confidence`` makes a candidate (Ultralytics ``val.py``),
            not only the best class of the row.

    Returns:
        Candidates sorted by descending score (stable), at most :data:`MAX_NMS_CANDIDATES`.
    """
    rows = prediction[prediction[:, 4] > confidence]
    class_scores = rows[:, 5 : 5 + num_classes] * rows[:, 4:5]
    if multi_label:
        row_index, class_ids = np.nonzero(class_scores > confidence)
    else:
        row_index, class_ids = np.arange(len(rows)), class_scores.argmax(axis=1)
    scores = class_scores[row_index, class_ids]
    keep = scores > confidence
    if allowed_class_ids is not None:
        keep &= np.isin(class_ids, allowed_class_ids)
    row_index, scores, class_ids = row_index[keep], scores[keep], class_ids[keep]
    order = np.argsort(-scores, kind="stable")[:MAX_NMS_CANDIDATES]
    rows = rows[row_index[order]]
    return Candidates(
        xyxy=xywh_to_xyxy(rows[:, :4]),
        scores=scores[order].astype(np.float32),
        class_ids=class_ids[order].astype(np.int64),
        coefficients=np.ascontiguousarray(rows[:, 5 + num_classes :], dtype=np.float32),
    )


def box_iou_one_to_many(box: npt.NDArray[np.floating], boxes: npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
    """IoU of one box ``(4,)`` against ``boxes`` ``(N, 4)`` (xyxy, no +1 pixel convention), as torchvision."""
    inter_w = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    inter_h = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = inter_w.astype(np.float64) * inter_h
    area = float(box[2] - box[0]) * float(box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]).astype(np.float64) * (boxes[:, 3] - boxes[:, 1])
    with np.errstate(divide="ignore", invalid="ignore"):
        return inter / (area + areas - inter)


def non_max_suppression(
    candidates: Candidates, iou_threshold: float, class_agnostic: bool, max_detections: int
) -> npt.NDArray[np.int64]:
    """Greedy IoU NMS over score-sorted candidates.

    A candidate is suppressed when its IoU with a kept, higher-scoring box of the same class (any class when
    ``class_agnostic``) is strictly above ``iou_threshold``, as ``torchvision.ops.nms``.

    Args:
        candidates: sorted by descending score (see :func:`select_candidates`).
        iou_threshold: IoU above which the lower-scoring box is dropped.
        class_agnostic: suppress across classes.
        max_detections: stop once this many boxes are kept.

    Returns:
        Indices ``(K,)`` of the kept candidates, by descending score.
    """
    remaining = np.arange(len(candidates))
    kept: list[int] = []
    while remaining.size and len(kept) < max_detections:
        best, rest = remaining[0], remaining[1:]
        kept.append(int(best))
        overlapping = box_iou_one_to_many(candidates.xyxy[best], candidates.xyxy[rest]) > iou_threshold
        if not class_agnostic:
            overlapping &= candidates.class_ids[rest] == candidates.class_ids[best]
        remaining = rest[~overlapping]
    return np.asarray(kept, dtype=np.int64)
