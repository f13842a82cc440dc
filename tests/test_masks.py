from __future__ import annotations

import numpy as np
import pytest

from workflows_yolov5_seg.masks import decode_masks, decoding_grid_hw
from workflows_yolov5_seg.preprocessing import ImageGeometry, PreprocessingConfig, StaticCrop, resize_geometry

NETWORK_HW = (320, 320)
PROTOS_HW = (80, 80)


def letterbox_geometry(height: int, width: int, crop_xy: tuple[int, int] = (0, 0)) -> ImageGeometry:
    resized, pads = resize_geometry((height, width), NETWORK_HW, "letterbox")
    return ImageGeometry((height, width), crop_xy, (height, width), resized, pads, NETWORK_HW)


def constant_protos(value: float = 8.0) -> tuple[np.ndarray, np.ndarray]:
    protos = np.zeros((32, *PROTOS_HW), dtype=np.float32)
    protos[0] = value
    coefficients = np.zeros((1, 32), dtype=np.float32)
    coefficients[0, 0] = 1.0
    return protos, coefficients


def row_ramp_protos(zero_row_network: int, slope: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Channel 0 is positive above network row ``zero_row_network`` and negative below, antisymmetric around it."""
    centres = (np.arange(PROTOS_HW[0]) + 0.5) * 4
    protos = np.zeros((32, *PROTOS_HW), dtype=np.float32)
    protos[0] = (slope * (zero_row_network - centres))[:, None]
    coefficients = np.zeros((1, 32), dtype=np.float32)
    coefficients[0, 0] = 1.0
    return protos, coefficients


@pytest.mark.parametrize(
    ("box", "expected_cols", "expected_rows"),
    [
        ((10.0, 20.0, 30.0, 40.0), (10, 30), (20, 40)),
        ((10.2, 20.7, 30.2, 40.5), (11, 31), (21, 41)),  # Ultralytics' rule: x1 <= c < x2
        ((0.0, 0.0, 100.0, 50.0), (0, 100), (0, 50)),
    ],
)
def test_mask_fills_exactly_its_box(box, expected_cols, expected_rows) -> None:
    geometry = letterbox_geometry(50, 100)
    protos, coefficients = constant_protos()
    mask = decode_masks(protos, coefficients, np.array([box]), geometry)[0]
    expected = np.zeros((50, 100), dtype=bool)
    expected[expected_rows[0] : expected_rows[1], expected_cols[0] : expected_cols[1]] = True
    np.testing.assert_array_equal(mask, expected)


@pytest.mark.parametrize(
    ("height", "width", "zero_row_network"),
    [
        (1080, 1920, 160),  # pad 70 on a 320 input: not a whole prototype cell (Ultralytics' int(pad) shifts)
        (427, 640, 120),  # odd total pad: 53 top, 54 bottom
        (50, 100, 160),  # upscaled
        (333, 500, 200),
    ],
)
def test_mask_edge_lands_where_the_network_put_it(height: int, width: int, zero_row_network: int) -> None:
    geometry = letterbox_geometry(height, width)
    protos, coefficients = row_ramp_protos(zero_row_network)
    mask = decode_masks(protos, coefficients, np.array([[0, 0, width, height]], dtype=np.float32), geometry)[0]
    # pixel row r is foreground when its centre maps above the zero crossing on the network input
    _, scale_y = geometry.scale_xy
    rows = (np.arange(height) + 0.5) * scale_y + geometry.pad_ltrb[1]
    expected_rows = rows < zero_row_network
    np.testing.assert_array_equal(mask.any(axis=1), expected_rows)
    np.testing.assert_array_equal(mask.all(axis=1), expected_rows)


@pytest.mark.parametrize(
    ("mode", "factor", "min_iou"), [("fast", 0.0, 0.9), ("tradeoff", 0.0, 0.9), ("tradeoff", 0.5, 0.97)]
)
def test_reduced_decode_modes_approximate_accurate(mode: str, factor: float, min_iou: float) -> None:
    geometry = letterbox_geometry(720, 1280)
    yy, xx = np.mgrid[0:80, 0:80]
    protos = np.zeros((32, 80, 80), dtype=np.float32)
    protos[0] = 6.0 - np.hypot(yy - 40, xx - 30)  # a disc of radius 6 cells = 96 image pixels
    coefficients = np.zeros((1, 32), dtype=np.float32)
    coefficients[0, 0] = 1.0
    box = np.array([[0, 0, 1280, 720]], dtype=np.float32)
    accurate = decode_masks(protos, coefficients, box, geometry, "accurate")[0]
    reduced = decode_masks(protos, coefficients, box, geometry, mode, factor)[0]
    assert abs(accurate.sum() - np.pi * 96**2) < 0.01 * np.pi * 96**2
    assert (accurate & reduced).sum() / (accurate | reduced).sum() > min_iou
    assert not np.array_equal(accurate, reduced), "a reduced grid should be coarser than accurate"
    # no shift: both discs share their centre (network centre (122, 162) -> image (487.5, 367.5))
    for mask in (accurate, reduced):
        rows, cols = np.nonzero(mask)
        assert abs(rows.mean() - 367.5) < 0.5 and abs(cols.mean() - 487.5) < 0.5


@pytest.mark.parametrize(
    ("mode", "factor", "expected"),
    [
        ("accurate", 0.0, (720, 1280)),
        ("fast", 0.0, (45, 80)),
        ("tradeoff", 0.5, (382, 680)),
        ("tradeoff", 1.0, (720, 1280)),
    ],
)
def test_decoding_grid_follows_roboflow_tradeoff(mode: str, factor: float, expected: tuple[int, int]) -> None:
    from workflows_yolov5_seg.masks import resolution_factor

    assert decoding_grid_hw(letterbox_geometry(720, 1280), PROTOS_HW, resolution_factor(mode, factor)) == expected


def test_zero_detections_give_empty_masks_of_the_image_size() -> None:
    protos, _ = constant_protos()
    masks = decode_masks(protos, np.zeros((0, 32), np.float32), np.zeros((0, 4), np.float32), letterbox_geometry(7, 9))
    assert masks.shape == (0, 7, 9) and masks.dtype == np.bool_


def test_static_crop_places_masks_at_the_crop_offset() -> None:
    crop = StaticCrop(x_min=10, y_min=20, x_max=60, y_max=70)  # of a 200x100 (w x h) image
    x0, y0, x1, y1 = crop.pixels(100, 200)
    assert (x0, y0, x1, y1) == (20, 20, 120, 70)
    resized, pads = resize_geometry((y1 - y0, x1 - x0), NETWORK_HW, PreprocessingConfig().resize_mode)
    geometry = ImageGeometry((100, 200), (x0, y0), (y1 - y0, x1 - x0), resized, pads, NETWORK_HW)
    protos, coefficients = constant_protos()
    # the crop (100x50) is letterboxed to 320x160 with 80 px pads: network corners map to the crop's corners
    box = geometry.network_to_image(np.array([[0, 80, 320, 240]], dtype=np.float32))
    np.testing.assert_allclose(box, [[20, 20, 120, 70]])
    # masks stay inside the region the network saw, even for a box that covers the whole image
    mask = decode_masks(protos, coefficients, np.array([[0, 0, 200, 100]], dtype=np.float32), geometry)[0]
    expected = np.zeros((100, 200), dtype=bool)
    expected[20:70, 20:120] = True
    np.testing.assert_array_equal(mask, expected)


def test_masks_decode_only_inside_each_box_and_keep_holes() -> None:
    geometry = letterbox_geometry(320, 320)
    yy, xx = np.mgrid[0:80, 0:80]
    radius = np.hypot(yy - 40 + 0.5, xx - 40 + 0.5)
    protos = np.zeros((32, 80, 80), dtype=np.float32)
    protos[0] = np.where((radius > 8) & (radius < 20), 10.0, -10.0)  # a ring
    coefficients = np.zeros((2, 32), dtype=np.float32)
    coefficients[:, 0] = 1.0
    boxes = np.array([[80, 80, 240, 240], [80, 80, 160, 160]], dtype=np.float32)
    masks = decode_masks(protos, coefficients, boxes, geometry)
    assert not masks[0, 160, 160], "the ring's hole must stay empty"
    assert masks[0, 160, 100] and masks[0, 100, 160]
    assert not masks[1, :, 160:].any() and not masks[1, 160:, :].any()
    np.testing.assert_array_equal(masks[1, :160, :160], masks[0, :160, :160])


@pytest.mark.parametrize("mode", ["accurate", "fast", "tradeoff"])
def test_compact_masks_equal_dense_masks(mode: str) -> None:
    geometry = letterbox_geometry(427, 640)
    rng = np.random.default_rng(3)
    protos = rng.normal(size=(32, 80, 80)).astype(np.float32)
    coefficients = rng.normal(size=(5, 32)).astype(np.float32)
    boxes = np.array(
        [[0, 0, 640, 427], [10.5, 20.2, 200.7, 300.1], [300, 300, 300, 310], [600, 400, 640, 427], [5, 5, 6, 6]],
        dtype=np.float32,
    )
    dense = decode_masks(protos, coefficients, boxes, geometry, mode, 0.5)
    compact = decode_masks(protos, coefficients, boxes, geometry, mode, 0.5, compact=True)
    assert compact.shape == dense.shape
    np.testing.assert_array_equal(compact.to_dense(), dense)


@pytest.mark.parametrize(
    "crop",
    [
        np.array([[True, False], [True, True]]),
        np.array([[False, False], [False, True]]),
        np.ones((3, 4), dtype=bool),
        np.zeros((2, 5), dtype=bool),
    ],
)
def test_column_major_rle_matches_supervision(crop: np.ndarray) -> None:
    from supervision.detection.utils.converters import _mask_to_rle_counts

    from workflows_yolov5_seg.masks import column_major_rle

    np.testing.assert_array_equal(column_major_rle(crop), _mask_to_rle_counts(crop))
