"""Register a numpy-backed ``torchvision::nms`` operator for CPU-only torch.

The PyPI ``torchvision==0.28.0`` wheel that matches ``torch==2.13.0`` is a CUDA
build whose compiled operators do not load next to the CPU torch wheel used in
the training venv (``operator torchvision::nms does not exist``). YOLOv5 only
needs ``torchvision.ops.nms``, so this module defines that operator with
``torch.library`` *before* torchvision is imported; torchvision then finds it
and everything else works.

The implementation is exact greedy NMS with the same semantics as
torchvision's CPU kernel: boxes are visited by descending score (stable sort,
so ties keep their original order), a box is suppressed when its IoU with an
already kept box is strictly greater than ``iou_threshold``, and the kept
indices are returned as ``int64`` sorted by descending score.

Import this module first (``import torchvision_nms_shim``) in every process
that imports torchvision. Importing it twice is harmless.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

_LIB: torch.library.Library | None = None


def nms_numpy(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy NMS.

    Args:
        boxes: ``(N, 4)`` array of ``x1, y1, x2, y2``.
        scores: ``(N,)`` array of scores.
        iou_threshold: Boxes with IoU > threshold with a kept box are removed.

    Returns:
        ``(K,)`` int64 array of kept indices, by descending score.
    """
    n = boxes.shape[0]
    if n == 0:
        return np.zeros((0,), dtype=np.int64)
    boxes = boxes.astype(np.float64 if boxes.dtype == np.float64 else np.float32, copy=False)
    order = np.argsort(-scores, kind="stable")
    b = boxes[order]
    x1, y1, x2, y2 = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    areas = (x2 - x1) * (y2 - y1)
    suppressed = np.zeros(n, dtype=bool)
    keep: list[int] = []
    # Process in blocks: the pairwise IoU of a block against all later boxes is
    # vectorised; the greedy walk inside a block is a cheap Python loop.
    block = 256
    for start in range(0, n, block):
        stop = min(start + block, n)
        bx1, by1, bx2, by2 = x1[start:stop, None], y1[start:stop, None], x2[start:stop, None], y2[start:stop, None]
        rest = slice(start, n)
        iw = np.clip(np.minimum(bx2, x2[rest]) - np.maximum(bx1, x1[rest]), 0, None)
        ih = np.clip(np.minimum(by2, y2[rest]) - np.maximum(by1, y1[rest]), 0, None)
        inter = iw * ih
        iou = inter / (areas[start:stop, None] + areas[rest] - inter)
        over = iou > iou_threshold
        for i in range(stop - start):
            gi = start + i
            if suppressed[gi]:
                continue
            keep.append(gi)
            row = over[i]
            row[: i + 1] = False
            suppressed[start:][row] = True
    return order[np.asarray(keep, dtype=np.int64)].astype(np.int64)


def _nms_impl(dets: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    keep = nms_numpy(dets.detach().cpu().numpy(), scores.detach().cpu().numpy(), float(iou_threshold))
    return torch.from_numpy(keep).to(dets.device)


def torchvision_ops_load() -> bool:
    """Whether torchvision's compiled operators load next to this torch (then they are registered, and the shim must
    not define them again: importing torchvision would abort on the second definition)."""
    import importlib.util

    spec = importlib.util.find_spec("torchvision")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        for library in sorted(Path(folder).glob("_C*.so")):
            try:
                torch.ops.load_library(str(library))
            except OSError:  # e.g. a CUDA torchvision wheel next to the CPU torch wheel
                return False
            return True
    return False


def register() -> None:
    """Define ``torchvision::nms`` unless a working one already exists."""
    global _LIB
    if _LIB is not None:
        return
    if torchvision_ops_load():
        return
    try:
        torch.ops.torchvision.nms  # noqa: B018 - probe for an op registered some other way
        return
    except (AttributeError, RuntimeError):
        pass
    _LIB = torch.library.Library("torchvision", "DEF")  # noqa: TID251
    _LIB.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _LIB.impl("nms", _nms_impl, "CPU")
    # torchvision registers a fake (meta) kernel for ``qnms`` unconditionally,
    # so the schema must exist too; it is never called by YOLOv5.
    _LIB.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")


def patch_torchvision() -> None:
    """Import torchvision and make ``torchvision.ops.nms`` use the shim op.

    torchvision's Python wrappers refuse to run when its C++ extension failed
    to load (``_assert_has_ops``); report ops as available so ``nms`` (the
    only op registered here) goes through. Other compiled ops still fail.
    """
    import torchvision.extension

    if not torchvision.extension._has_ops():
        torchvision.extension._has_ops = lambda: True


register()
patch_torchvision()
