"""``encode_coco_rle``: supervision's COCO RLE strings against pycocotools' on a table of masks."""

from __future__ import annotations

import sys
from collections.abc import Callable

import numpy as np
import pytest
import supervision as sv

from workflows_yolov5_seg.detections import encode_coco_rle

from support.required import require_module

mask_utils = require_module("pycocotools.mask", "pycocotools (the test extra)")


def random_mask(shape: tuple[int, int], density: float, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random(shape) < density


def disc_with_hole(height: int, width: int) -> np.ndarray:
    """A filled disc with a square hole, and a second part in the last columns: an instance mask at full HD."""
    rows, cols = np.mgrid[:height, :width]
    mask = (rows - height // 2) ** 2 + (cols - width // 2) ** 2 < (height // 3) ** 2
    mask[height // 2 - 40 : height // 2 + 40, width // 2 - 40 : width // 2 + 40] = False
    mask[: height // 4, -7:] = True
    return mask


MASKS: dict[str, Callable[[], np.ndarray]] = {
    "0x7": lambda: np.zeros((0, 7), bool),
    "7x0": lambda: np.zeros((7, 0), bool),
    "0x0": lambda: np.zeros((0, 0), bool),
    "1x1 False": lambda: np.zeros((1, 1), bool),
    "1x1 True": lambda: np.ones((1, 1), bool),
    "1xN": lambda: random_mask((1, 97), 0.5, seed=1),
    "Nx1": lambda: random_mask((97, 1), 0.5, seed=2),
    "all False": lambda: np.zeros((37, 53), bool),
    "all True": lambda: np.ones((37, 53), bool),
    "starts True": lambda: np.pad(np.ones((5, 5), bool), ((0, 3), (0, 3))),
    "density 0.01": lambda: random_mask((64, 80), 0.01, seed=3),
    "density 0.5": lambda: random_mask((64, 80), 0.5, seed=4),
    "density 0.99": lambda: random_mask((64, 80), 0.99, seed=5),
    "ring (hole)": lambda: disc_with_hole(120, 160),
    "1080x1920": lambda: disc_with_hole(1080, 1920),
    "1080x1920 all True": lambda: np.ones((1080, 1920), bool),  # one run of 2 073 600: a 5-digit count
    "Fortran order": lambda: np.asfortranarray(random_mask((45, 61), 0.3, seed=6)),
    "strided view": lambda: random_mask((90, 120), 0.3, seed=7)[::2, 1::3],
    "transposed view": lambda: random_mask((61, 45), 0.3, seed=8).T,
    "uint8 0/1": lambda: random_mask((33, 21), 0.4, seed=9).astype(np.uint8),
}


@pytest.mark.parametrize("make_mask", MASKS.values(), ids=MASKS.keys())
def test_encode_coco_rle_gives_pycocotools_strings_and_decodes_back(make_mask: Callable[[], np.ndarray]) -> None:
    mask = make_mask()
    expected = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))

    rle = encode_coco_rle(mask)

    assert rle == {"size": [int(v) for v in expected["size"]], "counts": expected["counts"].decode("ascii")}
    assert type(rle["counts"]) is str and all(type(v) is int for v in rle["size"])  # JSON-ready
    np.testing.assert_array_equal(mask_utils.decode(rle).astype(bool), mask.astype(bool))
    height, width = mask.shape
    np.testing.assert_array_equal(sv.rle_to_mask(rle["counts"], resolution_wh=(width, height)), mask.astype(bool))


def test_encode_coco_rle_does_not_need_pycocotools(monkeypatch: pytest.MonkeyPatch) -> None:
    for module in ("pycocotools", "pycocotools.mask", "pycocotools._mask"):
        monkeypatch.setitem(sys.modules, module, None)  # importing it now raises ImportError

    assert encode_coco_rle(np.ones((2, 3), bool)) == {"size": [2, 3], "counts": "06"}
