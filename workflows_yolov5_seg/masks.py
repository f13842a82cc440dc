"""Mask decoding: 32 coefficients x prototypes -> a boolean mask per detection on the original image.

Each mask is decoded only inside its box. For an output pixel centre ``u + 0.5`` of the original image, the
matching prototype-grid sample position is ``((u + 0.5 - crop_x) * scale_x + pad_left) * mw / W - 0.5``: the exact
fractional extent of the un-padded image region on the prototype grid (no ``int(pad)`` truncation, which shifts
Ultralytics' native masks by up to a prototype cell). Probabilities ``sigmoid(coef @ protos)`` on the prototype
cells around the box are resampled bilinearly (``align_corners=False``, edge-clamped, as ``F.interpolate`` and
``cv2.resize``; separably, rows then columns), thresholded ``> 0.5``, and cropped to the box with Ultralytics'
rule: pixel ``(r, c)`` is inside when ``x1 <= c < x2`` and ``y1 <= r < y2``. Work and memory scale with the boxes'
areas, not the image's: no full-size float intermediates.

Decode modes, as in Roboflow's instance-segmentation block:

- ``accurate``: decoded at the original resolution.
- ``fast``: decoded at the resolution of the un-padded prototype grid, then enlarged (nearest) to the image.
- ``tradeoff``: decoded on a grid between the two, ``tradeoff_factor`` 0 -> fast, 1 -> accurate.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt
from supervision.detection.compact_mask import CompactMask

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


@dataclass(frozen=True)
class _Axis:
    """One axis of the mapping original-image pixel -> decoding-grid cell -> prototype sample position.

    The per-cell bilinear taps (and, on a reduced grid, the per-pixel cells) are tabulated once per image, so a box
    only slices them.

    Attributes:
        offset: static-crop origin on this axis.
        crop: size of the region the network saw (after the static crop).
        grid: size of the decoding grid over that region (``crop`` for accurate masks).
        scale: network pixels per cropped-image pixel.
        pad: letterbox pad before the image on the network input (negative when cropping).
        stride: network pixels per prototype cell (4 for YOLOv5).
        protos: prototype grid size.
    """

    offset: int
    crop: int
    grid: int
    scale: float
    pad: int
    stride: float
    protos: int
    pixel_cells: npt.NDArray[np.int64] | None = field(init=False, repr=False)
    low: npt.NDArray[np.intp] = field(init=False, repr=False)
    high: npt.NDArray[np.intp] = field(init=False, repr=False)
    weight: npt.NDArray[np.float32] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        pixel_cells = None
        if self.grid != self.crop:
            pixel_centres = np.arange(self.crop) + 0.5
            pixel_cells = np.clip(np.floor(pixel_centres * (self.grid / self.crop)), 0, self.grid - 1).astype(np.int64)
        # cell centres map to ((centre * crop / grid) * scale + pad) / stride - 0.5 on the prototype grid, clamped to
        # its edges (align_corners=False sampling, as F.interpolate and cv2.resize)
        centres = (np.arange(self.grid) + 0.5) * (self.crop / self.grid)
        positions = np.clip((centres * self.scale + self.pad) / self.stride - 0.5, 0, self.protos - 1)
        low = np.floor(positions).astype(np.intp)
        object.__setattr__(self, "pixel_cells", pixel_cells)
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", np.minimum(low + 1, self.protos - 1))
        object.__setattr__(self, "weight", (positions - low).astype(np.float32))

    def pixel_span(self, low: float, high: float) -> tuple[int, int]:
        """Pixels ``c`` with ``low <= c < high`` (Ultralytics' crop rule), within the region the network saw."""
        return max(math.ceil(low), self.offset), min(math.ceil(high), self.offset + self.crop)

    def cells(self, first: int, stop: int) -> tuple[int, int, npt.NDArray[np.int64] | None]:
        """Decoding-grid cells covering pixels ``[first, stop)``.

        Returns:
            ``(cell_first, cell_stop, repeats)``: the cells to decode and, on a reduced grid, how many pixels each
            cell covers (nearest-neighbour enlargement); ``None`` when the grid is the pixel grid.
        """
        if self.pixel_cells is None:
            return first - self.offset, stop - self.offset, None
        cells = self.pixel_cells[first - self.offset : stop - self.offset]
        return int(cells[0]), int(cells[-1]) + 1, np.bincount(cells - cells[0])

    def samples(
        self, cell_first: int, cell_stop: int
    ) -> tuple[int, int, npt.NDArray[np.intp], npt.NDArray[np.intp], npt.NDArray[np.float32]]:
        """Bilinear taps on the prototype grid for decoding cells ``[cell_first, cell_stop)``.

        Returns:
            ``(start, stop, low, high, weight)``: the prototype cells ``[start, stop)`` that are read, and per
            decoding cell the two taps (relative to ``start``) and the weight of the high tap.
        """
        low, high = self.low[cell_first:cell_stop], self.high[cell_first:cell_stop]
        start, stop = int(low[0]), int(high[-1]) + 1
        return start, stop, low - start, high - start, self.weight[cell_first:cell_stop]


def _axes(geometry: ImageGeometry, protos_hw: tuple[int, int], grid_hw: tuple[int, int]) -> tuple[_Axis, _Axis]:
    (mh, mw), (net_h, net_w) = protos_hw, geometry.network_hw
    scale_x, scale_y = geometry.scale_xy
    rows = _Axis(geometry.crop_xy[1], geometry.crop_hw[0], grid_hw[0], scale_y, geometry.pad_ltrb[1], net_h / mh, mh)
    cols = _Axis(geometry.crop_xy[0], geometry.crop_hw[1], grid_hw[1], scale_x, geometry.pad_ltrb[0], net_w / mw, mw)
    return rows, cols


def decode_box_mask(
    protos: npt.NDArray[np.float32],
    coefficients: npt.NDArray[np.float32],
    box_xyxy: npt.NDArray[np.floating],
    rows: _Axis,
    cols: _Axis,
) -> tuple[int, int, npt.NDArray[np.bool_]]:
    """Decodes one detection's mask inside its box.

    Args:
        protos: ``(32, mh, mw)`` prototypes.
        coefficients: ``(32,)`` the detection's mask coefficients.
        box_xyxy: ``(4,)`` its box in original-image pixels.
        rows: the vertical axis mapping.
        cols: the horizontal axis mapping.

    Returns:
        ``(row0, col0, crop)``: the crop ``(h, w)`` of the mask whose top-left pixel is ``(row0, col0)``; an
        empty crop when the box holds no pixel.
    """
    x1, y1, x2, y2 = (float(v) for v in box_xyxy)
    row0, row1 = rows.pixel_span(y1, y2)
    col0, col1 = cols.pixel_span(x1, x2)
    if row1 <= row0 or col1 <= col0:
        return max(row0, 0), max(col0, 0), np.zeros((0, 0), dtype=np.bool_)
    cell_row0, cell_row1, row_repeats = rows.cells(row0, row1)
    cell_col0, cell_col1, col_repeats = cols.cells(col0, col1)
    y_start, y_stop, y_low, y_high, y_weight = rows.samples(cell_row0, cell_row1)
    x_start, x_stop, x_low, x_high, x_weight = cols.samples(cell_col0, cell_col1)
    window = protos[:, y_start:y_stop, x_start:x_stop]
    logits = coefficients @ window.reshape(len(coefficients), -1)
    with np.errstate(over="ignore"):  # exp overflow -> inf -> probability 0, which is exact enough
        probabilities = (1.0 / (1.0 + np.exp(-logits))).reshape(window.shape[1:])
    # separable bilinear resampling: rows first (on the narrow window), then columns
    by_rows = probabilities[y_low] * (1 - y_weight)[:, None] + probabilities[y_high] * y_weight[:, None]
    resampled = by_rows[:, x_low]
    resampled *= 1 - x_weight
    high = by_rows[:, x_high]
    high *= x_weight
    resampled += high
    crop = resampled > 0.5
    if row_repeats is not None:
        crop = np.repeat(crop, row_repeats, axis=0)
    if col_repeats is not None:
        crop = np.repeat(crop, col_repeats, axis=1)
    return row0, col0, crop


def column_major_rle(crop: npt.NDArray[np.bool_]) -> npt.NDArray[np.int32]:
    """Run lengths of a boolean crop in column-major order, starting with a (possibly empty) False run."""
    flat = crop.ravel(order="F")
    if flat.size == 0:
        return np.zeros(1, dtype=np.int32)
    bounds = np.concatenate([[0], np.flatnonzero(flat[1:] != flat[:-1]) + 1, [flat.size]])
    runs = np.diff(bounds)
    if flat[0]:
        runs = np.concatenate([[0], runs])
    return runs.astype(np.int32)


def dense_mask_bytes(count: int, image_hw: tuple[int, int]) -> int:
    """Bytes of ``count`` dense boolean masks of an image."""
    return count * image_hw[0] * image_hw[1]


def decode_masks(
    protos: npt.NDArray[np.floating],
    coefficients: npt.NDArray[np.floating],
    boxes_xyxy: npt.NDArray[np.floating],
    geometry: ImageGeometry,
    mode: MaskDecodeMode = "accurate",
    tradeoff_factor: float = 0.0,
    compact: bool = False,
) -> npt.NDArray[np.bool_] | CompactMask:
    """Decodes instance masks on the original image, each only inside its box.

    Args:
        protos: ``(32, mh, mw)`` prototypes of this image (``output1[i]``).
        coefficients: ``(N, 32)`` mask coefficients of the kept detections.
        boxes_xyxy: ``(N, 4)`` boxes in original-image pixels, clipped to the image.
        geometry: the image's pre-processing geometry.
        mode: ``accurate``, ``fast`` or ``tradeoff``.
        tradeoff_factor: in [0, 1], used by ``tradeoff``.
        compact: return a ``supervision`` ``CompactMask`` (run-length crops, memory of the order of the boxes)
            instead of dense ``(N, H0, W0)`` masks.

    Returns:
        ``(N, H0, W0)`` boolean masks, dense or compact.
    """
    height, width = geometry.original_hw
    protos = np.asarray(protos, dtype=np.float32)
    coefficients = np.asarray(coefficients, dtype=np.float32)
    rows, cols = _axes(
        geometry,
        protos.shape[1:],
        decoding_grid_hw(geometry, protos.shape[1:], resolution_factor(mode, tradeoff_factor)),
    )
    crops = (decode_box_mask(protos, c, box, rows, cols) for c, box in zip(coefficients, boxes_xyxy, strict=True))
    if compact:
        return _compact_masks(crops, len(coefficients), (height, width))
    masks = np.zeros((len(coefficients), height, width), dtype=np.bool_)
    for index, (row0, col0, crop) in enumerate(crops):
        masks[index, row0 : row0 + crop.shape[0], col0 : col0 + crop.shape[1]] = crop
    return masks


def masks_with_pixels(
    masks: npt.NDArray[np.bool_] | CompactMask, boxes_xyxy: npt.NDArray[np.floating]
) -> npt.NDArray[np.bool_]:
    """Which masks have at least one pixel, looking only inside each box (where :func:`decode_masks` draws).

    Args:
        masks: ``(N, H0, W0)`` masks from :func:`decode_masks`, dense or compact.
        boxes_xyxy: ``(N, 4)`` the boxes they were decoded in.

    Returns:
        ``(N,)`` boolean.
    """
    if isinstance(masks, CompactMask):
        return masks.area > 0
    found = np.zeros(len(masks), dtype=np.bool_)
    for index, (x1, y1, x2, y2) in enumerate(boxes_xyxy):
        found[index] = masks[index, max(int(y1), 0) : math.ceil(y2), max(int(x1), 0) : math.ceil(x2)].any()
    return found


def _compact_masks(
    crops: Iterator[tuple[int, int, npt.NDArray[np.bool_]]], count: int, image_hw: tuple[int, int]
) -> CompactMask:
    rles, shapes, offsets = [], np.zeros((count, 2), np.int32), np.zeros((count, 2), np.int32)
    for index, (row0, col0, crop) in enumerate(crops):
        if crop.size == 0:  # CompactMask keeps a 1x1 empty crop for a box without pixels
            crop = np.zeros((1, 1), dtype=np.bool_)
            row0, col0 = min(row0, image_hw[0] - 1), min(col0, image_hw[1] - 1)
        rles.append(column_major_rle(crop))
        shapes[index] = crop.shape
        offsets[index] = (col0, row0)
    return CompactMask(rles, shapes, offsets, image_hw)
