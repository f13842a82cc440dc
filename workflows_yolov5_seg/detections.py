"""Assembly of one image's decoded predictions into ``sv.Detections``."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import supervision as sv
from supervision.detection.compact_mask import CompactMask

CLASS_NAME_KEY = "class_name"


def build_detections(
    xyxy: npt.NDArray[np.floating],
    masks: npt.NDArray[np.bool_] | CompactMask,
    confidence: npt.NDArray[np.floating],
    class_ids: npt.NDArray[np.integer],
    class_names: tuple[str, ...],
) -> sv.Detections:
    """Builds ``sv.Detections`` with pixel masks.

    Args:
        xyxy: ``(N, 4)`` boxes in original-image pixels.
        masks: ``(N, H, W)`` boolean masks on the original image (``(0, H, W)`` when empty), dense or compact.
        confidence: ``(N,)`` scores.
        class_ids: ``(N,)`` 0-based class ids.
        class_names: names indexed by class id.

    Returns:
        Detections whose ``data["class_name"]`` holds each detection's class name.
    """
    names = np.array(class_names, dtype=object)[class_ids] if len(class_ids) else np.array([], dtype=object)
    return sv.Detections(
        xyxy=np.asarray(xyxy, dtype=np.float32).reshape(-1, 4),
        mask=masks,
        confidence=np.asarray(confidence, dtype=np.float32),
        class_id=np.asarray(class_ids, dtype=np.int64),
        data={CLASS_NAME_KEY: names.astype(str) if len(names) else np.array([], dtype=str)},
    )


def encode_coco_rle(mask: npt.NDArray[np.bool_]) -> dict:
    """COCO compressed RLE of one mask, JSON-ready, with supervision's encoder.

    The string is the one ``pycocotools.mask.encode`` gives (column-major runs, packed as pycocotools' ``rleToString``),
    so ``pycocotools.mask.decode`` or ``sv.rle_to_mask`` give the mask back exactly, holes included.

    Args:
        mask: ``(H, W)`` mask, boolean (or 0/1), in any memory order.

    Returns:
        ``{"size": [H, W], "counts": str}``.
    """
    height, width = mask.shape
    # supervision refuses a mask without pixels; pycocotools encodes it as the single run [0], i.e. "0"
    counts = sv.mask_to_rle(mask, compressed=True) if mask.size else "0"
    return {"size": [int(height), int(width)], "counts": counts}
