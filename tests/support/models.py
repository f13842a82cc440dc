"""Models the tests share, built from hand-made raw outputs (:mod:`support.onnx_graphs`), and their constants."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from support.onnx_graphs import (
    NUM_COEFFICIENTS,
    box_protos,
    make_anchor_free_column,
    make_constant_seg_onnx,
    make_end_to_end_row,
    make_row,
    ultralytics_metadata,
)

CLASS_NAMES = {0: "circle", 1: "rectangle", 2: "triangle"}
# inference_config.json of a 320x320 package letterboxed with grey 114 (as a bare Ultralytics export is)
LETTERBOX_320_CONFIG = {
    "network_input": {
        "training_input_size": {"height": 320, "width": 320},
        "dynamic_spatial_size_supported": False,
        "color_mode": "rgb",
        "resize_mode": "letterbox",
        "padding_value": 114,
        "input_channels": 3,
        "scaling_factor": 255,
    }
}


def two_box_rows(second_objectness: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
    """Raw outputs of a 320x320 network that finds a 'rectangle' at (40, 60, 120, 140) and a 'circle' at
    (200, 180, 300, 260), both with masks that fill their boxes.

    Returns:
        ``(rows (2, 40), protos (32, 80, 80))``; ``rows[:1]`` is the rectangle alone.
    """
    protos, coefficients = box_protos((80, 80))
    rows = np.stack(
        [
            make_row((40, 60, 120, 140), 0.9, [0.1, 0.95, 0.2], coefficients),
            make_row((200, 180, 300, 260), second_objectness, [0.9, 0.1, 0.1], coefficients),
        ]
    )
    return rows, protos


def make_two_box_model(path: Path, second_objectness: float = 0.9, **options: Any) -> Path:
    """The :func:`two_box_rows` network as an ONNX file named with :data:`CLASS_NAMES` (``options`` go to
    :func:`~support.onnx_graphs.make_constant_seg_onnx`)."""
    rows, protos = two_box_rows(second_objectness)
    return make_constant_seg_onnx(path, rows, protos, **{"names": CLASS_NAMES, **options})


def make_two_box_model_of(layout: str, path: Path, **options: Any) -> Path:
    """The :func:`two_box_rows` detections as a ``yolov5``, ``anchor-free`` or ``end2end`` export (the last two with
    Ultralytics' metadata; an anchor-free head has 2100 points at 320, the end-to-end one 300 rows, zeros unused).

    Scores: YOLOv5 ``obj * cls`` (0.855 and 0.81), anchor-free the class probability (0.95 and 0.9), end-to-end the
    same as anchor-free.
    """
    rows, protos = two_box_rows()
    if layout == "yolov5":
        return make_constant_seg_onnx(path, rows, protos, **{"names": CLASS_NAMES, **options})
    coefficients = rows[:, 5 + len(CLASS_NAMES) :]
    boxes = [(40, 60, 120, 140), (200, 180, 300, 260)]
    if layout == "anchor-free":
        instances = np.zeros((4 + len(CLASS_NAMES) + NUM_COEFFICIENTS, 2100), np.float32)
        instances[:, 100] = make_anchor_free_column(boxes[0], [0.1, 0.95, 0.2], coefficients[0])
        instances[:, 1500] = make_anchor_free_column(boxes[1], [0.9, 0.1, 0.1], coefficients[1])
    else:
        instances = np.zeros((300, 6 + NUM_COEFFICIENTS), np.float32)
        instances[0] = make_end_to_end_row(boxes[0], 0.95, 1, coefficients[0])
        instances[1] = make_end_to_end_row(boxes[1], 0.9, 0, coefficients[1])
    metadata = ultralytics_metadata(CLASS_NAMES, end2end=layout == "end2end")
    return make_constant_seg_onnx(path, instances, protos, **{"metadata": metadata, **options})


def make_rectangle_model(path: Path, **options: Any) -> Path:
    """The :func:`two_box_rows` network with the rectangle alone: one detection (``options`` as for
    :func:`make_two_box_model`)."""
    rows, protos = two_box_rows()
    return make_constant_seg_onnx(path, rows[:1], protos, **{"names": CLASS_NAMES, **options})


RING_CLASSES = {0: "ring", 1: "blob", 2: "empty"}


def ring_protos(hw: tuple[int, int] = (80, 80)) -> np.ndarray:
    """Prototypes: channel 0 is a ring (positive between radii 10 and 25 cells of the centre), channel 1 a solid
    disc of radius 8 cells around (15, 15), both negative elsewhere."""
    protos = np.zeros((NUM_COEFFICIENTS, *hw), dtype=np.float32)
    yy, xx = np.mgrid[0 : hw[0], 0 : hw[1]]
    radius = np.hypot(yy - (hw[0] - 1) / 2, xx - (hw[1] - 1) / 2)
    protos[0] = np.where((radius > 10) & (radius < 25), 8.0, -8.0)
    protos[1] = np.where(np.hypot(yy - 15, xx - 15) < 8, 8.0, -8.0)
    protos[2] = -8.0
    return protos


def make_ring_model(path: Path) -> Path:
    """A 320x320 dynamic-batch model with three detections: a 'ring' (a mask with a hole), a 'blob' (a disc), and an
    'empty' detection whose mask has no pixel (the polygon serialiser drops it; RLE keeps it)."""
    coefficients = np.eye(NUM_COEFFICIENTS, dtype=np.float32)
    rows = np.stack(
        [
            make_row((40, 40, 280, 280), 0.9, [0.95, 0.05, 0.05], coefficients[0]),
            make_row((20, 20, 104, 104), 0.8, [0.05, 0.9, 0.05], coefficients[1]),
            make_row((240, 10, 300, 50), 0.7, [0.05, 0.05, 0.9], coefficients[2]),
        ]
    )
    return make_constant_seg_onnx(path, rows, ring_protos(), names=RING_CLASSES)
