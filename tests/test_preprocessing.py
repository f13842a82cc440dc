"""Pre-processing: every option's geometry, hand-computed, through the whole pipeline; parity with inference-models.

Each resize mode and static crop is checked twice:

1. ``preprocess_image`` reports the hand-computed crop, resized size and pads;
2. a constant ONNX graph (``tests/support/onnx_graphs.py``) returns one network-space box and a prototype field that is
   positive on a network-space rectangle; the pipeline's box and mask on the original image must equal the
   hand-computed ones. Each case also proves it is sensitive: shifting any crop offset, pad or resized size of the
   hand geometry by one pixel changes the expected box or mask.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from workflows_yolov5_seg.backends import create_backend
from workflows_yolov5_seg.errors import InvalidImageError, InvalidParameterError
from workflows_yolov5_seg.model import YOLOv5SegModel
from workflows_yolov5_seg.model_package import load_model_package
from workflows_yolov5_seg.preprocessing import (
    ImageGeometry,
    PreprocessingConfig,
    StaticCrop,
    apply_contrast,
    minimum_rectangle_hw,
    normalize_image,
    preprocess_image,
    preprocess_images,
    resize_geometry,
)

from support.onnx_graphs import NUM_COEFFICIENTS, make_constant_seg_onnx, make_row

NETWORK_HW = (320, 320)
PROTOS_HW = (80, 80)
# The prototype field is +10 on network x in (84, 164), y in (124, 164) (prototype cells 21..40 x 31..40) and -10
# elsewhere: probabilities interpolated between cell centres cross 0.5 exactly on those network lines (chosen so
# that no pixel centre of the cases below lands exactly on one).
FIELD_X, FIELD_Y = (84.0, 164.0), (124.0, 164.0)
NETWORK_BOX = (40.0, 100.0, 280.0, 220.0)
PACKAGE = PreprocessingConfig(resize_mode="letterbox", padding_value=114, size_rounding="truncate")


@dataclass(frozen=True)
class Case:
    """A hand-computed geometry: what the original image looks like on the network input.

    Attributes:
        image_hw: ``(H0, W0)``.
        config: the pre-processing.
        crop_xy, crop_hw: static crop offset and size (the whole image without one).
        resized_hw: size the crop is resized to.
        pads: ``(left, top, right, bottom)``; negative for center-crop cropping.
        canvas: the padding value expected in the network input.
    """

    image_hw: tuple[int, int]
    config: PreprocessingConfig
    crop_xy: tuple[int, int]
    crop_hw: tuple[int, int]
    resized_hw: tuple[int, int]
    pads: tuple[int, int, int, int]
    canvas: int | None

    def network_to_image(self, x: float, y: float) -> tuple[float, float]:
        sx, sy = self.resized_hw[1] / self.crop_hw[1], self.resized_hw[0] / self.crop_hw[0]
        return (x - self.pads[0]) / sx + self.crop_xy[0], (y - self.pads[1]) / sy + self.crop_xy[1]

    def expected_box(self) -> np.ndarray:
        (x1, y1), (x2, y2) = self.network_to_image(*NETWORK_BOX[:2]), self.network_to_image(*NETWORK_BOX[2:])
        h0, w0 = self.image_hw
        return np.array([np.clip(x1, 0, w0), np.clip(y1, 0, h0), np.clip(x2, 0, w0), np.clip(y2, 0, h0)])

    def expected_mask(self, strict: bool = True) -> np.ndarray:
        """The hand-computed mask.

        A pixel is foreground when it is inside the box (``x1 <= c < x2``), inside the region the network saw, and
        the prototype probability at its centre exceeds 0.5. The probability field is bilinear between prototype
        cell centres (stride 4, centres at ``4 i + 2``) of a 0/1 rectangle, so it is the product of two ramps:
        ``fx = clip(min(nx - (x0 - 2), (x1 + 2) - nx) / 4, 0, 1)`` and the same along y (square edges, rounded
        corners). ``strict``: no pixel centre may sit on the 0.5 contour.
        """
        h0, w0 = self.image_hw
        sx, sy = self.resized_hw[1] / self.crop_hw[1], self.resized_hw[0] / self.crop_hw[0]
        cols, rows = np.arange(w0), np.arange(h0)
        net_x = (cols + 0.5 - self.crop_xy[0]) * sx + self.pads[0]
        net_y = (rows + 0.5 - self.crop_xy[1]) * sy + self.pads[1]
        fx = np.clip(np.minimum(net_x - (FIELD_X[0] - 2), (FIELD_X[1] + 2) - net_x) / 4, 0, 1)
        fy = np.clip(np.minimum(net_y - (FIELD_Y[0] - 2), (FIELD_Y[1] + 2) - net_y) / 4, 0, 1)
        probability = fy[:, None] * fx[None, :]
        if strict:
            assert np.abs(probability - 0.5).min() > 1e-3, "a pixel centre lies on the mask edge"
        x1, y1, x2, y2 = self.expected_box()
        col_ok = (cols >= x1) & (cols < x2) & (cols >= self.crop_xy[0]) & (cols < self.crop_xy[0] + self.crop_hw[1])
        row_ok = (rows >= y1) & (rows < y2) & (rows >= self.crop_xy[1]) & (rows < self.crop_xy[1] + self.crop_hw[0])
        return row_ok[:, None] & col_ok[None, :] & (probability > 0.5)

    def off_by_one(self) -> list[Case]:
        """The same case with one crop offset, pad, resized size or crop size shifted by one pixel."""
        variants = []
        for axis in (0, 1):
            crop_xy = list(self.crop_xy)
            crop_xy[axis] += 1
            variants.append(replace(self, crop_xy=tuple(crop_xy)))
            pads = list(self.pads)
            pads[axis] += 1
            variants.append(replace(self, pads=tuple(pads)))
            resized = list(self.resized_hw)
            resized[1 - axis] += 1
            variants.append(replace(self, resized_hw=tuple(resized)))
            if self.config.static_crop is not None:  # otherwise the crop is the whole image and cannot be off
                crop_hw = list(self.crop_hw)
                crop_hw[1 - axis] += 1
                variants.append(replace(self, crop_hw=tuple(crop_hw)))
        return variants


CROP_10_5_90_95 = StaticCrop(10, 5, 90, 95)
CASES = {
    # Ultralytics (bare .onnx): s = min(320/640, 320/427) = 0.5; 427 * 0.5 = 213.5 -> round 214; pad 106 -> 53 / 53.
    "letterbox-round": Case((427, 640), PreprocessingConfig(), (0, 0), (427, 640), (214, 320), (0, 53, 0, 53), 114),
    # inference-models: int(213.5) = 213; pad 107 -> int(107 / 2) = 53 top, 54 bottom.
    "letterbox-truncate": Case((427, 640), PACKAGE, (0, 0), (427, 640), (213, 320), (0, 53, 0, 54), 114),
    # padding_value null -> 0 (same geometry).
    "letterbox-black": Case(
        (427, 640), replace(PACKAGE, padding_value=0), (0, 0), (427, 640), (213, 320), (0, 53, 0, 54), 0
    ),
    # Portrait: s = min(320/301, 320/500) = 0.64; 301 * 0.64 = 192.64 -> 192; pad 128 -> 64 / 64.
    "letterbox-portrait": Case((500, 301), PACKAGE, (0, 0), (500, 301), (320, 192), (64, 0, 64, 0), 114),
    # inference-models replaces fit-longer-edge by letterbox with padding 127.
    "fit-longer-edge": Case(
        (427, 640), replace(PACKAGE, resize_mode="fit-longer-edge"), (0, 0), (427, 640), (213, 320), (0, 53, 0, 54), 127
    ),
    # letterbox-reflect-edges is padded with the constant padding value, as in inference-models.
    "letterbox-reflect-edges": Case(
        (427, 640),
        replace(PACKAGE, resize_mode="letterbox-reflect-edges", padding_value=50),
        (0, 0),
        (427, 640),
        (213, 320),
        (0, 53, 0, 54),
        50,
    ),
    "stretch": Case(
        (427, 640), replace(PACKAGE, resize_mode="stretch"), (0, 0), (427, 640), (320, 320), (0,) * 4, None
    ),
    # Larger than the input: crop (640 - 320) // 2 = 160 columns and (427 - 320) // 2 = 53 rows before (54 after).
    "center-crop-larger": Case(
        (427, 640),
        replace(PACKAGE, resize_mode="center-crop"),
        (0, 0),
        (427, 640),
        (427, 640),
        (-160, -53, -160, -54),
        None,
    ),
    # Smaller: pad (320 - 101) // 2 = 109 left, 110 right; (320 - 51) // 2 = 134 top, 135 bottom; always with 0.
    "center-crop-smaller": Case(
        (51, 101), replace(PACKAGE, resize_mode="center-crop"), (0, 0), (51, 101), (51, 101), (109, 134, 110, 135), 0
    ),
    # Static crop 10/5/90/95 % of 640x427: x int(64.0) = 64 .. int(576.0) = 576, y int(21.35) = 21 .. int(405.65) =
    # 405 -> 512x384; letterbox s = min(320/512, 320/384) = 0.625 -> 320x240, pads 40 / 40.
    "static-crop-letterbox": Case(
        (427, 640), replace(PACKAGE, static_crop=CROP_10_5_90_95), (64, 21), (384, 512), (240, 320), (0, 40, 0, 40), 114
    ),
    # Static crop 12/7/88/93 % of 641x433: x int(76.92) = 76 .. int(564.08) = 564, y int(30.31) = 30 .. int(402.69)
    # = 402 -> 488x372; stretch to 320x320.
    "static-crop-stretch": Case(
        (433, 641),
        replace(PACKAGE, resize_mode="stretch", static_crop=StaticCrop(12, 7, 88, 93)),
        (76, 30),
        (372, 488),
        (320, 320),
        (0,) * 4,
        None,
    ),
    # Static crop then center-crop: crop 10/5/90/95 % of 640x427 -> 512x384 at (64, 21); center-crop 320 from it:
    # (512 - 320) // 2 = 96 columns, (384 - 320) // 2 = 32 rows.
    "static-crop-center-crop": Case(
        (427, 640),
        replace(PACKAGE, resize_mode="center-crop", static_crop=CROP_10_5_90_95),
        (64, 21),
        (384, 512),
        (384, 512),
        (-96, -32, -96, -32),
        None,
    ),
}


def scene_model(tmp_path: Path, config: PreprocessingConfig) -> YOLOv5SegModel:
    """The pipeline on a constant graph: one box ``NETWORK_BOX`` with the prototype field of ``FIELD_X/FIELD_Y``."""
    protos = np.full((NUM_COEFFICIENTS, *PROTOS_HW), 0.0, dtype=np.float32)
    protos[0] = -10.0
    protos[0, int(FIELD_Y[0]) // 4 : int(FIELD_Y[1]) // 4, int(FIELD_X[0]) // 4 : int(FIELD_X[1]) // 4] = 10.0
    assert all(v % 4 == 0 for v in (*FIELD_X, *FIELD_Y))
    coefficients = np.zeros(NUM_COEFFICIENTS, dtype=np.float32)
    coefficients[0] = 1.0
    rows = make_row(NETWORK_BOX, 0.9, [0.9], coefficients)[None]
    path = tmp_path / "scene.onnx"
    if not path.exists():
        make_constant_seg_onnx(path, rows, protos, input_hw=NETWORK_HW)
    package = replace(load_model_package(path), model_id="scene", class_names=("thing",), preprocessing=config)
    return YOLOv5SegModel(package, create_backend(package, backend="onnx", device="cpu"))


def gradient_image(height: int, width: int) -> np.ndarray:
    rows, cols = np.mgrid[0:height, 0:width]
    return np.stack([(cols * 7) % 256, (rows * 5) % 256, (cols + rows) % 256], axis=-1).astype(np.uint8)


@pytest.mark.parametrize("name", list(CASES))
def test_geometry_matches_the_hand_computation(name: str) -> None:
    case = CASES[name]
    out = np.empty((3, *NETWORK_HW), dtype=np.float32)
    geometry = preprocess_image(gradient_image(*case.image_hw), case.config, NETWORK_HW, out)
    assert geometry.original_hw == case.image_hw
    assert geometry.crop_xy == case.crop_xy
    assert geometry.crop_hw == case.crop_hw
    assert geometry.resized_hw == case.resized_hw
    assert geometry.pad_ltrb == case.pads
    if case.canvas is not None:  # the padding value sits in the padded corner
        corner = (slice(None), slice(0, 1), slice(0, 1)) if max(case.pads[:2]) > 0 else (slice(None), -1, -1)
        np.testing.assert_allclose(out[corner], case.canvas / 255, rtol=1e-6)


@pytest.mark.parametrize("name", list(CASES))
def test_box_and_mask_land_on_the_original_image(tmp_path: Path, name: str) -> None:
    case = CASES[name]
    model = scene_model(tmp_path, case.config)
    detections = model(gradient_image(*case.image_hw), confidence=0.5)[0]
    assert len(detections) == 1
    np.testing.assert_allclose(detections.xyxy[0], case.expected_box(), atol=1e-3)
    expected = case.expected_mask()
    assert expected.sum() > 50
    np.testing.assert_array_equal(detections.mask[0], expected)
    for shifted in case.off_by_one():  # the assertions above would catch a one-pixel error in any term
        box_moved = np.abs(shifted.expected_box() - case.expected_box()).max() > 1e-2
        mask_moved = not np.array_equal(shifted.expected_mask(strict=False), expected)
        assert box_moved or mask_moved, shifted


@pytest.mark.parametrize(
    ("image_hw", "rounding", "resized_hw", "pads"),
    [
        # Issue 2 golden cases, 640x640 input (Ultralytics rule, a bare .onnx).
        ((427, 640), "round", (427, 640), (0, 106, 0, 107)),
        ((853, 1280), "round", (426, 640), (0, 107, 0, 107)),
        ((1080, 1920), "round", (360, 640), (0, 140, 0, 140)),
        ((50, 100), "round", (320, 640), (0, 160, 0, 160)),
        ((3, 1000), "round", (2, 640), (0, 319, 0, 319)),
        # inference-models' int() rule (packages): the same, except where truncation loses the pixel.
        ((427, 640), "truncate", (427, 640), (0, 106, 0, 107)),
        ((853, 1280), "truncate", (426, 640), (0, 107, 0, 107)),
        ((1080, 1920), "truncate", (360, 640), (0, 140, 0, 140)),
        ((50, 100), "truncate", (320, 640), (0, 160, 0, 160)),
        ((3, 1000), "truncate", (1, 640), (0, 319, 0, 320)),
        ((1000, 3), "truncate", (640, 1), (319, 0, 320, 0)),
        # 77 * (640 / 77) = 639.999... in floating point: inference-models makes it 639 wide (50 * 8.31 = 415.58).
        ((50, 77), "truncate", (415, 639), (0, 112, 1, 113)),
        ((50, 77), "round", (416, 640), (0, 112, 0, 112)),
        # 77 * 6.4 = 492.8: truncated to 492, rounded to 493.
        ((77, 100), "truncate", (492, 640), (0, 74, 0, 74)),
        ((77, 100), "round", (493, 640), (0, 73, 0, 74)),
        # Never below one pixel.
        ((1, 5000), "truncate", (1, 640), (0, 319, 0, 320)),
    ],
)
def test_letterbox_golden_pads(image_hw, rounding, resized_hw, pads) -> None:
    assert resize_geometry(image_hw, (640, 640), "letterbox", rounding) == (resized_hw, pads)


@pytest.mark.parametrize(
    ("image_hw", "resized_hw", "pads"),
    [
        ((427, 640), (427, 640), (0, 106, 0, 107)),
        ((641, 641), (641, 641), (0, 0, -1, -1)),  # crop (641 - 640) // 2 = 0 before, 1 after
        ((643, 645), (643, 645), (-2, -1, -3, -2)),  # int(-2.5) = -2, not floor -3
        ((3, 1000), (3, 1000), (-180, 318, -180, 319)),
    ],
)
def test_center_crop_golden_pads(image_hw, resized_hw, pads) -> None:
    assert resize_geometry(image_hw, (640, 640), "center-crop") == (resized_hw, pads)


def test_stretch_geometry() -> None:
    assert resize_geometry((427, 640), (640, 640), "stretch") == ((640, 640), (0, 0, 0, 0))


@pytest.mark.parametrize(
    ("crop", "image_hw", "expected"),
    [
        (StaticCrop(10, 5, 90, 95), (427, 640), (64, 21, 576, 405)),
        (StaticCrop(0, 0, 100, 100), (427, 640), (0, 0, 640, 427)),
        (StaticCrop(33, 33, 67, 67), (100, 100), (33, 33, 67, 67)),
        (StaticCrop(33, 33, 67, 67), (3, 3), (0, 0, 2, 2)),  # int(0.99) = 0, int(2.01) = 2
        (StaticCrop(50, 50, 51, 51), (10, 10), (5, 5, 6, 6)),  # int(5.1) = 5 would be empty: one pixel is kept
    ],
)
def test_static_crop_pixels(crop, image_hw, expected) -> None:
    assert crop.pixels(*image_hw) == expected


@pytest.mark.parametrize(("order", "channel_of_red"), [("rgb", 0), ("bgr", 2)])
def test_colour_order(order: str, channel_of_red: int) -> None:
    image = np.zeros((8, 8, 3), dtype=np.uint8)
    image[..., 2] = 200  # red in BGR
    out = np.empty((3, 8, 8), dtype=np.float32)
    preprocess_image(image, replace(PACKAGE, resize_mode="stretch", color_order=order), (8, 8), out)
    np.testing.assert_allclose(out[channel_of_red], 200 / 255, rtol=1e-6)
    assert np.count_nonzero(out) == 64


@pytest.mark.parametrize(
    ("scaling", "normalization", "expected"),
    [
        (255.0, None, (0.4, 0.8, 0.2)),
        (1.0, None, (102.0, 204.0, 51.0)),
        (255.0, ((0.5, 0.5, 0.5), (0.25, 0.5, 1.0)), ((0.4 - 0.5) / 0.25, (0.8 - 0.5) / 0.5, (0.2 - 0.5) / 1.0)),
    ],
)
def test_scaling_and_normalization(scaling, normalization, expected) -> None:
    image = np.zeros((4, 4, 3), dtype=np.uint8)
    image[...] = (51, 204, 102)  # BGR -> RGB (102, 204, 51)
    config = replace(PACKAGE, resize_mode="stretch", scaling_factor=scaling, normalization=normalization)
    out = np.empty((3, 4, 4), dtype=np.float32)
    preprocess_image(image, config, (4, 4), out)
    np.testing.assert_allclose(out[:, 0, 0], expected, rtol=1e-5)


def test_grayscale_gives_three_equal_channels_of_opencv_gray() -> None:
    image = gradient_image(16, 16)
    out = np.empty((3, 16, 16), dtype=np.float32)
    preprocess_image(image, replace(PACKAGE, resize_mode="stretch", grayscale=True), (16, 16), out)
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) / 255
    for channel in out:
        np.testing.assert_allclose(channel, gray, atol=1e-6)


@pytest.mark.parametrize("contrast", ["Adaptive Equalization", "Contrast Stretching", "Histogram Equalization"])
def test_contrast_widens_a_dull_image(contrast: str) -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(100, 140, size=(64, 64, 3), dtype=np.uint8)
    result = apply_contrast(image, contrast)
    assert result.dtype == np.uint8 and result.shape == image.shape
    assert np.ptp(result) > np.ptp(image) * 2


def test_contrast_stretching_of_a_nearly_flat_image_clamps_like_scikit_image() -> None:
    """2nd and 98th percentiles equal: scikit-image (and so inference-models) clamps every pixel to that value."""
    image = np.full((10, 10, 3), 77, dtype=np.uint8)
    image[0, 0], image[0, 1] = 255, 0
    np.testing.assert_array_equal(apply_contrast(image, "Contrast Stretching"), np.full_like(image, 77))


def test_order_is_crop_then_grayscale_then_contrast() -> None:
    image = gradient_image(60, 80)
    config = replace(
        PACKAGE,
        resize_mode="center-crop",
        static_crop=StaticCrop(10, 10, 60, 90),
        grayscale=True,
        contrast="Histogram Equalization",
    )
    out = np.empty((3, 48, 40), dtype=np.float32)
    geometry = preprocess_image(image, config, (48, 40), out)
    cropped = image[6:54, 8:48]
    expected = apply_contrast(
        cv2.cvtColor(cv2.cvtColor(cropped, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR), config.contrast
    )
    assert geometry.crop_xy == (8, 6) and geometry.pad_ltrb == (0, 0, 0, 0)
    np.testing.assert_allclose(out, expected[:, :, ::-1].transpose(2, 0, 1) / 255, atol=1e-6)
    wrong_order = cv2.cvtColor(apply_contrast(cropped, config.contrast), cv2.COLOR_BGR2GRAY)
    assert not np.allclose(out[0], wrong_order / 255, atol=1e-3)


# --- normalize_image -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image", "expected_pixel"),
    [
        (np.full((2, 3), 9, np.uint8), (9, 9, 9)),  # (H, W) gray -> 3 equal channels
        (np.full((2, 3, 1), 9, np.uint8), (9, 9, 9)),  # (H, W, 1)
        (np.tile(np.array([1, 2, 3], np.uint8), (2, 3, 1)), (1, 2, 3)),  # BGR unchanged
        (np.tile(np.array([1, 2, 3, 0], np.uint8), (2, 3, 1)), (1, 2, 3)),  # BGRA: alpha dropped, colour kept
        (np.full((2, 3, 3), 65535, np.uint16), (255, 255, 255)),  # uint16 scaled by 255 / 65535
        (np.full((2, 3, 3), 257 * 100, np.uint16), (100, 100, 100)),
        (np.full((2, 3, 3), 0.5, np.float32), (128, 128, 128)),  # float in [0, 1]: round(0.5 * 255) = 128
        (np.full((2, 3, 3), 1.0, np.float64), (255, 255, 255)),
        (np.full((2, 3, 3), 37.4, np.float32), (37, 37, 37)),  # float above 1: taken as 0..255
        (np.full((2, 3, 3), 300.0, np.float32), (255, 255, 255)),  # clipped
        (np.ones((2, 3), np.bool_), (255, 255, 255)),
    ],
)
def test_normalize_image_conversions(image: np.ndarray, expected_pixel: tuple[int, int, int]) -> None:
    result = normalize_image(image)
    assert result.shape == (2, 3, 3) and result.dtype == np.uint8 and result.flags.c_contiguous
    assert (result == np.array(expected_pixel, np.uint8)).all()


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.zeros((4, 4, 2), np.uint8), "not supported"),
        (np.zeros((0, 4, 3), np.uint8), "empty"),
        (np.full((2, 2, 3), np.nan, np.float32), "NaN"),
        (np.zeros((2, 2, 3), np.int32), "dtype int32"),
        (np.zeros((2, 2, 3, 1), np.uint8), "not supported"),
        ([[0, 0]], "numpy array"),
    ],
)
def test_normalize_image_rejects(image, message) -> None:
    with pytest.raises(InvalidImageError, match=message):
        normalize_image(image)


def test_pixel_limit() -> None:
    with pytest.raises(InvalidImageError, match="exceeds the limit"):
        normalize_image(np.zeros((10, 11, 3), np.uint8), max_pixels=100)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"resize_mode": "fill"}, "resize_mode"),
        ({"contrast": "Sharpen"}, "contrast"),
        ({"color_order": "gbr"}, "color_order"),
        ({"padding_value": 256}, "padding_value"),
        ({"scaling_factor": 0}, "scaling_factor"),
        ({"size_rounding": "ceil"}, "size_rounding"),
        ({"normalization": ((0.5,), (0.0,))}, "normalization"),
    ],
)
def test_invalid_config(kwargs, message) -> None:
    with pytest.raises(InvalidParameterError, match=message):
        PreprocessingConfig(**kwargs)


def test_batch_keeps_one_geometry_per_image() -> None:
    images = [gradient_image(427, 640), gradient_image(51, 101)]
    batch, geometries = preprocess_images(images, PACKAGE, NETWORK_HW)
    assert batch.shape == (2, 3, *NETWORK_HW)
    # 51x101: s = 320 / 101, int(51 * 3.168...) = 161 rows, pad 159 -> 79 / 80.
    assert [g.pad_ltrb for g in geometries] == [(0, 53, 0, 54), (0, 79, 0, 80)]
    assert isinstance(geometries[0], ImageGeometry)


# --- parity with inference-models' own pre-processing (needs torch; skipped without inference-models) -------------

PARITY_CONFIGS = {
    "letterbox-114": {"resize_mode": "letterbox", "padding_value": 114},
    "letterbox-null": {"resize_mode": "letterbox", "padding_value": None},
    "fit-longer-edge": {"resize_mode": "fit-longer-edge"},
    "reflect": {"resize_mode": "letterbox-reflect-edges", "padding_value": 7},
    "stretch": {"resize_mode": "stretch"},
    "center-crop": {"resize_mode": "center-crop"},
    "bgr": {"resize_mode": "letterbox", "color_mode": "bgr"},
    "static-crop": {"resize_mode": "letterbox", "static_crop": (10, 5, 90, 95)},
    "grayscale": {"resize_mode": "stretch", "grayscale": True},
    "adaptive": {"resize_mode": "letterbox", "contrast": "Adaptive Equalization"},
    "stretching": {"resize_mode": "letterbox", "contrast": "Contrast Stretching"},
    "histogram": {"resize_mode": "letterbox", "contrast": "Histogram Equalization"},
    "normalized": {"resize_mode": "letterbox", "normalization": [[0.485, 0.456, 0.406], [0.229, 0.224, 0.225]]},
    "unscaled": {"resize_mode": "stretch", "scaling_factor": None},
    "all-steps": {
        "resize_mode": "center-crop",
        "static_crop": (12, 7, 88, 93),
        "grayscale": True,
        "contrast": "Histogram Equalization",
    },
}


def _im_config(options: dict) -> dict:
    steps = {}
    if "static_crop" in options:
        x_min, y_min, x_max, y_max = options["static_crop"]
        steps["static-crop"] = {"enabled": True, "x_min": x_min, "y_min": y_min, "x_max": x_max, "y_max": y_max}
    if options.get("grayscale"):
        steps["grayscale"] = {"enabled": True}
    if "contrast" in options:
        steps["contrast"] = {"enabled": True, "type": options["contrast"]}
    return {
        "image_pre_processing": steps,
        "network_input": {
            "training_input_size": {"height": 96, "width": 128},
            "dynamic_spatial_size_supported": False,
            "color_mode": options.get("color_mode", "rgb"),
            "resize_mode": options["resize_mode"],
            "padding_value": options.get("padding_value"),
            "input_channels": 3,
            "scaling_factor": options.get("scaling_factor", 255),
            "normalization": options.get("normalization"),
        },
    }


@pytest.mark.parametrize("image_hw", [(77, 211), (213, 101), (50, 50)])
@pytest.mark.parametrize("name", list(PARITY_CONFIGS))
def test_parity_with_inference_models(tmp_path: Path, name: str, image_hw: tuple[int, int]) -> None:
    pytest.importorskip("torch")
    roboflow_pre = pytest.importorskip("inference_models.models.common.roboflow.pre_processing")
    packages = pytest.importorskip("inference_models.models.common.roboflow.model_packages")
    import json

    import torch

    from workflows_yolov5_seg.model_package import parse_inference_config

    config_json = _im_config(PARITY_CONFIGS[name])
    path = tmp_path / "inference_config.json"
    path.write_text(json.dumps(config_json))
    im_config = packages.parse_inference_config(
        str(path),
        allowed_resize_modes=set(packages.ResizeMode) - {packages.ResizeMode.FIT_LONGER_EDGE},
        implicit_resize_mode_substitutions={
            packages.ResizeMode.FIT_LONGER_EDGE: (packages.ResizeMode.LETTERBOX, 127, None)
        },
    )
    ours, input_hw = parse_inference_config(path)
    assert input_hw == (96, 128)
    image = gradient_image(*image_hw)
    im_tensor, (im_meta,) = roboflow_pre.pre_process_network_input(
        images=image,
        image_pre_processing=im_config.image_pre_processing,
        network_input=im_config.network_input,
        target_device=torch.device("cpu"),
    )
    out = np.empty((3, 96, 128), dtype=np.float32)
    geometry = preprocess_image(image, ours, (96, 128), out)

    np.testing.assert_allclose(out, im_tensor[0].numpy(), atol=1e-5, rtol=1e-6)
    assert geometry.pad_ltrb == (im_meta.pad_left, im_meta.pad_top, im_meta.pad_right, im_meta.pad_bottom)
    assert geometry.crop_xy == (im_meta.static_crop_offset.offset_x, im_meta.static_crop_offset.offset_y)
    assert geometry.crop_hw == (im_meta.size_after_pre_processing.height, im_meta.size_after_pre_processing.width)
    assert geometry.original_hw == (im_meta.original_size.height, im_meta.original_size.width)
    if ours.resize_mode != "center-crop":
        assert geometry.resized_hw == (
            96 - im_meta.pad_top - im_meta.pad_bottom,
            128 - im_meta.pad_left - im_meta.pad_right,
        )
    assert math.isfinite(float(out.sum()))


def test_missing_opencv_names_the_extra() -> None:
    """supervision >= 0.30 no longer installs OpenCV: without any cv2 the import says which extra brings it."""
    import subprocess
    import sys

    script = (
        "import sys\n"
        "sys.modules['cv2'] = None\n"  # as if no OpenCV distribution were installed
        "try:\n"
        "    import workflows_yolov5_seg.model\n"
        "except ImportError as error:\n"
        "    print(type(error).__name__, error)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert "MissingDependencyError" in result.stdout, result.stdout + result.stderr
    assert "pip install 'workflows-yolov5-seg[opencv]'" in result.stdout


@pytest.mark.parametrize(
    ("image_hw", "network_hw", "stride", "expected"),
    [
        # Ultralytics' LetterBox(auto=True): the padding to the full size is kept modulo the stride
        ((720, 1280), (640, 640), 32, (384, 640)),  # resized 360x640, 280 rows of padding % 32 = 24
        ((640, 640), (640, 640), 32, (640, 640)),
        ((427, 300), (640, 640), 32, (640, 480)),  # resized 640x450 (round), 190 % 32 = 30
        ((100, 1000), (640, 640), 64, (64, 640)),  # P6: resized 64x640, 576 rows of padding % 64 = 0
        ((720, 1280), (320, 320), 32, (192, 320)),
    ],
)
def test_minimum_rectangle_is_ultralytics_auto_letterbox(image_hw, network_hw, stride, expected) -> None:
    assert minimum_rectangle_hw(image_hw, network_hw, stride) == expected


def test_minimum_rectangle_applies_to_batches_of_one_size_only() -> None:
    config = PreprocessingConfig(minimum_rectangle=True)
    wide = np.zeros((720, 1280, 3), np.uint8)
    batch, geometries = preprocess_images([wide, wide], config, (640, 640), stride=32)
    assert batch.shape == (2, 3, 384, 640)
    assert geometries[0].pad_ltrb == (0, 12, 0, 12) and geometries[0].network_hw == (384, 640)
    # mixed sizes share one tensor of the full size, as Ultralytics' predict does; so does a fixed-size network
    assert preprocess_images([wide, np.zeros((50, 50, 3), np.uint8)], config, (640, 640), stride=32)[0].shape[2:] == (
        640,
        640,
    )
    assert preprocess_images([wide], config, (640, 640), stride=None)[0].shape[2:] == (640, 640)
    assert preprocess_images([wide], PreprocessingConfig(), (640, 640), stride=32)[0].shape[2:] == (640, 640)
