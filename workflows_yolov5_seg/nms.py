"""Non-maximum suppression of scored candidates (Ultralytics / torchvision semantics, vectorised numpy).

How each generation's ``output0`` becomes :class:`Candidates` (scores, 0-based class ids, boxes in network-input
pixels) is :mod:`workflows_yolov5_seg.layouts`' business; suppression is the same for all of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import supervision as sv

# Ultralytics' max_nms: only the best candidates by score enter NMS.
MAX_NMS_CANDIDATES = 30_000


@dataclass(frozen=True)
class Candidates:
    """Scored detections of one image, in network-input pixels.

    Attributes:
        xyxy: ``(N, 4)`` float32 boxes.
        scores: ``(N,)`` float32 (how a generation scores: :mod:`workflows_yolov5_seg.layouts`).
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
        candidates: sorted by descending score (see :meth:`workflows_yolov5_seg.layouts.OutputLayout.candidates`).
        iou_threshold: IoU above which the lower-scoring box is dropped.
        class_agnostic: suppress across classes.
        max_detections: stop once this many boxes are kept.
        block_size: candidates per block.

    Returns:
        Indices ``(K,)`` of the kept candidates, by descending score.
    """
    boxes, classes = candidates.xyxy, candidates.class_ids

    def overlapping(rows: npt.NDArray[np.int64], columns: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
        # zero-area pairs have IoU 0 here (NaN in torchvision): either way such boxes never suppress
        over = sv.box_iou_batch(boxes[rows], boxes[columns]) > iou_threshold
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
