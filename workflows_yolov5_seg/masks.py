"""Mask decoding: 32 coefficients x prototypes -> a boolean mask per detection on the original image.

Each mask is decoded only inside its box. For an output pixel centre ``u + 0.5`` of the original image, the
matching prototype-grid sample position is ``((u + 0.5 - crop_x) * scale_x + pad_left) * mw / W - 0.5``: the exact
fractional extent of the un-padded image region on the prototype grid (no ``int(pad)`` truncation, which shifts
Ultralytics' native masks by up to a prototype cell). Probabilities ``sigmoid(coef @ protos)`` on the prototype
cells around the box are resampled bilinearly (``align_corners=False``, edge-clamped, as ``F.interpolate`` and
``cv2.resize``) with two small interpolation matrices, thresholded ``> 0.5``, and cropped to the box with
Ultralytics' rule: pixel ``(r, c)`` is inside when ``x1 <= c < x2`` and ``y1 <= r < y2``.

Decode modes, as in Roboflow's instance-segmentation block:

- ``accurate``: decoded at the original resolution.
- ``fast``: decoded at the resolution of the un-padded prototype grid, then enlarged (nearest) to the image.
- ``tradeoff``: decoded on a grid between the two, ``tradeoff_factor`` 0 -> fast, 1 -> accurate.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import numpy.typing as npt

from workflows_yolov5_seg.preprocessing import ImageGeometry

MaskDecodeMode = Literal["accurate", "fast", "tradeoff"]
MASK_DECODE_MODES: tuple[str, ...] = ("accurate", "fast", "tradeoff")


def resolution_factor(mode: MaskDecodeMode, tradeoff_factor: float) -> float:
    """Maps a decode mode to the fraction of the way from the prototype grid to the full resolution."""
    return {"accurate": 1.0, "fast": 0.0}.get(mode, tradeoff_factor)


def decoding_grid_hw(geometry: ImageGeometry, protos_hw: tuple[int, int], factor: float) -> tuple[int, int]:
    """Size ``(Hr, Wr)`` of the grid masks are decoded on, covering the (statically cropped) image region.

    Args:
        geometry: the image's pre-processing geometry.
        protos_hw: ``(mh, mw)`` of the prototype grid.
        factor: 1.0 gives the image size ``(Hc, Wc)``; 0.0 the un-padded prototype region's size.
    """
    if factor >= 1.0:
        return geometry.crop_hw
    (hc, wc), (rh, rw) = geometry.crop_hw, geometry.resized_hw
    (mh, mw), (net_h, net_w) = protos_hw, geometry.network_hw
    unpadded_h, unpadded_w = rh * mh / net_h, rw * mw / net_w
    return (
        max(1, round(unpadded_h * (1 - factor) + hc * factor)),
        max(1, round(unpadded_w * (1 - factor) + wc * factor)),
    )


def _interpolation_matrix(
    positions: npt.NDArray[np.float64], size: int
) -> tuple[int, int, npt.NDArray[np.float32]]:
    """Bilinear weights sampling a 1-D grid of ``size`` cells at ``positions`` (edge-clamped).

    Returns:
        ``(start, stop, weights)``: the cells ``[start, stop)`` that are used and the ``(len(positions),
        stop - start)`` weight matrix.
    """
    positions = np.clip(positions, 0, size - 1)
    low = np.floor(positions).astype(np.int64)
    high = np.minimum(low + 1, size - 1)
    frac = (positions - low).astype(np.float32)
    start, stop = int(low.min()), int(high.max()) + 1
    weights = np.zeros((len(positions), stop - start), dtype=np.float32)
    rows = np.arange(len(positions))
    np.add.at(weights, (rows, low - start), 1 - frac)
    np.add.at(weights, (rows, high - start), frac)
    return start, stop, weights


def _grid_to_protos(
    grid_indices: npt.NDArray[np.int64], grid_size: int, crop_size: int, scale: float, pad: int, proto_stride: float
) -> npt.NDArray[np.float64]:
    """Prototype-grid sample positions of decoding-grid cell centres along one axis."""
    cropped = (grid_indices + 0.5) * (crop_size / grid_size)
    return (cropped * scale + pad) / proto_stride - 0.5


def _pixels_to_grid(
    pixels: npt.NDArray[np.int64], offset: int, crop_size: int, grid_size: int
) -> npt.NDArray[np.int64]:
    """Nearest decoding-grid cell of original-image pixels along one axis."""
    cells = np.floor((pixels - offset + 0.5) * (grid_size / crop_size)).astype(np.int64)
    return np.clip(cells, 0, grid_size - 1)


def decode_masks(
    protos: npt.NDArray[np.floating],
    coefficients: npt.NDArray[np.floating],
    boxes_xyxy: npt.NDArray[np.floating],
    geometry: ImageGeometry,
    mode: MaskDecodeMode = "accurate",
    tradeoff_factor: float = 0.0,
) -> npt.NDArray[np.bool_]:
    """Decodes instance masks on the original image.

    Args:
        protos: ``(32, mh, mw)`` prototypes of this image (``output1[i]``).
        coefficients: ``(N, 32)`` mask coefficients of the kept detections.
        boxes_xyxy: ``(N, 4)`` boxes in original-image pixels, clipped to the image.
        geometry: the image's pre-processing geometry.
        mode: ``accurate``, ``fast`` or ``tradeoff``.
        tradeoff_factor: in [0, 1], used by ``tradeoff``.

    Returns:
        ``(N, H0, W0)`` boolean masks.
    """
    height, width = geometry.original_hw
    masks = np.zeros((len(coefficients), height, width), dtype=np.bool_)
    if len(coefficients) == 0:
        return masks
    protos = np.asarray(protos, dtype=np.float32)
    mh, mw = protos.shape[1:]
    grid_h, grid_w = decoding_grid_hw(geometry, (mh, mw), resolution_factor(mode, tradeoff_factor))
    (crop_x, crop_y), (crop_h, crop_w) = geometry.crop_xy, geometry.crop_hw
    scale_x, scale_y = geometry.scale_xy
    stride_x, stride_y = geometry.network_hw[1] / mw, geometry.network_hw[0] / mh
    reduced = (grid_h, grid_w) != (crop_h, crop_w)
    for index, (x1, y1, x2, y2) in enumerate(np.asarray(boxes_xyxy, dtype=np.float64)):
        # Ultralytics' crop rule (x1 <= c < x2), restricted to the region the network saw.
        col0, col1 = max(math.ceil(x1), crop_x), min(math.ceil(x2), crop_x + crop_w)
        row0, row1 = max(math.ceil(y1), crop_y), min(math.ceil(y2), crop_y + crop_h)
        if col1 <= col0 or row1 <= row0:
            continue
        cols, rows = np.arange(col0, col1), np.arange(row0, row1)
        if reduced:
            grid_cols = _pixels_to_grid(cols, crop_x, crop_w, grid_w)
            grid_rows = _pixels_to_grid(rows, crop_y, crop_h, grid_h)
        else:
            grid_cols, grid_rows = cols - crop_x, rows - crop_y
        col_base, row_base = int(grid_cols[0]), int(grid_rows[0])
        sample_cols = np.arange(col_base, int(grid_cols[-1]) + 1)
        sample_rows = np.arange(row_base, int(grid_rows[-1]) + 1)
        x_start, x_stop, x_weights = _interpolation_matrix(
            _grid_to_protos(sample_cols, grid_w, crop_w, scale_x, geometry.pad_ltrb[0], stride_x), mw
        )
        y_start, y_stop, y_weights = _interpolation_matrix(
            _grid_to_protos(sample_rows, grid_h, crop_h, scale_y, geometry.pad_ltrb[1], stride_y), mh
        )
        window = protos[:, y_start:y_stop, x_start:x_stop]
        logits = np.tensordot(coefficients[index].astype(np.float32), window, axes=1)
        with np.errstate(over="ignore"):  # exp overflow -> inf -> probability 0, which is exact enough
            probabilities = 1.0 / (1.0 + np.exp(-logits))
        decoded = (y_weights @ probabilities @ x_weights.T) > 0.5
        if reduced:
            decoded = decoded[np.ix_(grid_rows - row_base, grid_cols - col_base)]
        masks[index, row0:row1, col0:col1] = decoded
    return masks
