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


def box_iou(boxes_a: npt.NDArray[np.floating], boxes_b: npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
    """IoU matrix ``(N, M)`` of xyxy boxes ``(N, 4)`` and ``(M, 4)`` (no +1 pixel convention), as torchvision.

    Zero-area pairs give NaN, which compares False with any threshold: such boxes never suppress.
    """
    a, b = boxes_a[:, None, :], boxes_b[None, :, :]
    inter_w = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    inter_h = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = inter_w.astype(np.float64) * inter_h
    areas_a = (boxes_a[:, 2] - boxes_a[:, 0]).astype(np.float64) * (boxes_a[:, 3] - boxes_a[:, 1])
    areas_b = (boxes_b[:, 2] - boxes_b[:, 0]).astype(np.float64) * (boxes_b[:, 3] - boxes_b[:, 1])
    with np.errstate(divide="ignore", invalid="ignore"):
        return inter / (areas_a[:, None] + areas_b[None, :] - inter)


# Candidates are suppressed block by block: IoU matrices stay at most BLOCK x BLOCK (2 MB) however many there are.
NMS_BLOCK_SIZE = 512


def non_max_suppression(
    candidates: Candidates,
    iou_threshold: float,
    class_agnostic: bool,
    max_detections: int,
    block_size: int = NMS_BLOCK_SIZE,
) -> npt.NDArray[np.int64]:
    """Greedy IoU NMS over score-sorted candidates.

    A candidate is suppressed when its IoU with a kept, higher-scoring box of the same class (any class when
    ``class_agnostic``) is strictly above ``iou_threshold``, as ``torchvision.ops.nms``. Candidates are taken in
    blocks: each block is first checked against every box kept so far with one IoU matrix, then the survivors
    suppress each other greedily with a second one, so the Python loop only visits rows, never recomputes IoUs.

    Args:
        candidates: sorted by descending score (see :func:`select_candidates`).
        iou_threshold: IoU above which the lower-scoring box is dropped.
        class_agnostic: suppress across classes.
        max_detections: stop once this many boxes are kept.
        block_size: candidates per block.

    Returns:
        Indices ``(K,)`` of the kept candidates, by descending score.
    """
    boxes, classes = candidates.xyxy, candidates.class_ids

    def overlapping(rows: npt.NDArray[np.int64], columns: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
        over = box_iou(boxes[rows], boxes[columns]) > iou_threshold
        if not class_agnostic:
            over &= classes[rows][:, None] == classes[columns][None, :]
        return over

    kept = np.zeros(0, dtype=np.int64)
    for start in range(0, len(candidates), block_size):
        if len(kept) >= max_detections:
            break
        block = np.arange(start, min(start + block_size, len(candidates)), dtype=np.int64)
        if len(kept):
            block = block[~overlapping(kept, block).any(axis=0)]
        # only lower-scoring boxes can be suppressed: keep the upper triangle
        survives = ~np.triu(overlapping(block, block), k=1)
        suppresses_any = ~survives.all(axis=1)
        alive = np.ones(len(block), dtype=np.bool_)
        block_kept: list[int] = []
        for row in range(len(block)):
            if not alive[row]:
                continue
            block_kept.append(row)
            if len(kept) + len(block_kept) == max_detections:
                break
            if suppresses_any[row]:
                alive &= survives[row]
        kept = np.concatenate([kept, block[block_kept]])
    return kept
