"""Each generation's output0 layout: how it is recognised, and how its rows are scored and selected."""

from __future__ import annotations

import re

import numpy as np
import pytest

from workflows_yolov5_seg.errors import InvalidModelOutputError, NotYOLOv5SegModelError
from workflows_yolov5_seg.layouts import (
    ANCHOR_FREE,
    END_TO_END,
    YOLOV5,
    OutputLayout,
    Selection,
    UltralyticsExport,
    anchor_points,
    recognise_layout,
)
from workflows_yolov5_seg.nms import Candidates, non_max_suppression

from support.onnx_graphs import make_anchor_free_column, make_end_to_end_row, make_row, ultralytics_metadata

NUM_CLASSES = 3
NAMES = {0: "a", 1: "b", 2: "c"}


def selection(
    confidence: float,
    allowed_class_ids: list[int] | None = None,
    multi_label: bool = False,
    max_detections: int = 300,
    iou_threshold: float = 0.5,
    class_agnostic: bool = False,
) -> Selection:
    allowed = None if allowed_class_ids is None else np.array(allowed_class_ids)
    return Selection(confidence, iou_threshold, allowed, max_detections, class_agnostic, multi_label)


def select_candidates(
    rows: np.ndarray, num_classes: int, confidence: float, allowed_class_ids=None, multi_label: bool = False
) -> Candidates:
    """YOLOv5's candidates of ``(N, 5 + nc + 32)`` rows."""
    allowed = None if allowed_class_ids is None else list(allowed_class_ids)
    return YOLOV5.candidates(rows, num_classes, selection(confidence, allowed, multi_label))


def assert_one_candidate(found: Candidates, expected_class: int | None, expected_score: float | None) -> None:
    """``found`` is the box (10, 10, 30, 40) of ``expected_class`` with ``expected_score``, or nothing."""
    if expected_class is None:
        assert len(found) == 0
        return
    assert found.class_ids.tolist() == [expected_class]
    np.testing.assert_allclose(found.scores, [expected_score], rtol=1e-6)
    np.testing.assert_allclose(found.xyxy, [[10, 10, 30, 40]])


@pytest.mark.parametrize(
    ("shape", "input_hw", "stride", "metadata", "architecture", "expected"),
    [
        # YOLOv5 repository exports: 3 anchors per cell, metadata stride and names only
        ((1, 6300, 40), (320, 320), 32, {"stride": "32", "names": str(NAMES)}, None, YOLOV5),
        (("batch", "anchors", 40), (320, 320), 32, {}, None, YOLOV5),
        ((1, 25500, 117), (640, 640), 32, {}, None, YOLOV5),
        # hand-made graphs with any number of rows stay YOLOv5's
        ((1, 2, 40), (320, 320), 32, {}, None, YOLOV5),
        # anchor-free heads: one point per cell, channels first
        ((1, 39, 2100), (320, 320), 32, ultralytics_metadata(NAMES), None, ANCHOR_FREE),
        ((1, 39, 2100), (320, 320), 32, {}, None, ANCHOR_FREE),  # without metadata, by the anchor count
        ((1, 116, 8400), (640, 640), 32, {}, "yolov8", ANCHOR_FREE),
        (("batch", 116, "anchors"), (640, 640), 32, {}, None, ANCHOR_FREE),
        ((1, 39, 2125), (320, 320), 64, ultralytics_metadata(NAMES, stride=64), None, ANCHOR_FREE),  # P6
        ((1, 39, 2125), (320, 320), 64, {}, None, ANCHOR_FREE),
        ((1, 39, 2100), (320, 320), 32, {}, "yolo26", ANCHOR_FREE),
        # end-to-end exports: from the metadata only
        ((1, 300, 38), (320, 320), 32, ultralytics_metadata(NAMES, nms=True), None, END_TO_END),
        ((1, 300, 38), (320, 320), 32, ultralytics_metadata(NAMES, end2end=True), None, END_TO_END),
        (("batch", 300, 38), (640, 640), 32, ultralytics_metadata(NAMES, end2end=True), "yolo26", END_TO_END),
        # an engine (no metadata) of a package that declares its architecture
        ((1, 300, 38), (320, 320), 32, {}, "yolo26", END_TO_END),
        ((1, 300, 38), (320, 320), 32, {}, "yolov8", END_TO_END),
    ],
)
def test_layouts_are_recognised(shape, input_hw, stride, metadata, architecture, expected: OutputLayout) -> None:
    assert recognise_layout("m.onnx", shape, input_hw, stride, metadata, architecture) is expected


@pytest.mark.parametrize(
    ("shape", "metadata", "message"),
    [
        ((1, 300, 38), ultralytics_metadata(NAMES, task="detect"), "is a detection model .* task 'detect'"),
        ((1, 300, 38), ultralytics_metadata(NAMES, task="pose"), "is a pose"),
        ((1, 300, 38), ultralytics_metadata(NAMES, task="obb"), "oriented-box"),
        ((1, 300, 38), ultralytics_metadata(NAMES, task="classify"), "classification model"),
        # the metadata says end-to-end but the rows are not x1, y1, x2, y2, score, class + 32
        ((1, 300, 40), ultralytics_metadata(NAMES, end2end=True), r"output0 \[B, K, 6 \+ 32\]"),
        # the metadata says Ultralytics but there are no class channels, or not one column per point
        ((1, 36, 2100), ultralytics_metadata(NAMES), r"output0 \[B, 4 \+ classes \+ 32, N\]"),
        (
            (1, 39, 6300),
            ultralytics_metadata(NAMES),
            r"shape \[1, 39, 6300\], .* output0 \[B, 4 \+ classes \+ 32, N\] \(N = 2100",
        ),
    ],
)
def test_refusals_name_the_real_problem(shape, metadata, message: str) -> None:
    with pytest.raises(NotYOLOv5SegModelError, match=message) as caught:
        recognise_layout("m.onnx", shape, (320, 320), 32, metadata)
    assert "yolo export" in str(caught.value) or "output0" in str(caught.value)


@pytest.mark.parametrize(
    ("input_hw", "stride", "expected"),
    [((320, 320), 32, 2100), ((640, 640), 32, 8400), ((320, 320), 64, 2125), ((384, 640), 32, 5040)],
)
def test_anchor_points(input_hw, stride, expected: int) -> None:
    assert anchor_points(input_hw, stride) == expected


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ({}, UltralyticsExport(None, False, None)),
        ({"stride": "32", "names": "{0: 'a'}"}, UltralyticsExport(None, False, None)),
        (ultralytics_metadata(NAMES), UltralyticsExport("segment", False, None)),
        (ultralytics_metadata(NAMES, nms=True), UltralyticsExport("segment", True, 0.25)),
        (ultralytics_metadata(NAMES, end2end=True), UltralyticsExport("segment", True, None)),
        ({"task": "segment", "args": "{'nms': True, 'conf': 0.1}"}, UltralyticsExport("segment", True, 0.1)),
        ({"task": "segment", "args": "not a literal"}, UltralyticsExport("segment", False, None)),
    ],
)
def test_what_an_export_says_of_itself(metadata, expected: UltralyticsExport) -> None:
    assert UltralyticsExport.from_metadata(metadata) == expected


@pytest.mark.parametrize(
    ("objectness", "class_probs", "confidence", "expected_class", "expected_score"),
    [
        (0.9, [0.1, 0.95, 0.3], 0.4, 1, 0.855),  # Ultralytics: obj * cls, 0-based argmax of the classes
        (0.97, [0.1, 0.95, 0.3], 0.4, 1, 0.9215),  # objectness never becomes a class (IM's slice-space bug)
        (0.5, [0.7, 0.1, 0.1], 0.4, None, None),  # obj passes, obj * cls = 0.35 does not
        (0.4, [1.0, 0.1, 0.1], 0.39, 0, 0.4),  # obj * cls just above
        (0.4, [1.0, 0.1, 0.1], 0.4, None, None),  # obj must be strictly above the threshold
    ],
)
def test_select_candidates_scores_like_ultralytics(
    objectness, class_probs, confidence, expected_class, expected_score
) -> None:
    rows = make_row((10, 10, 30, 40), objectness, class_probs)[None]
    assert_one_candidate(select_candidates(rows, NUM_CLASSES, confidence), expected_class, expected_score)


def test_select_candidates_sorts_by_score_and_filters_classes_before_nms() -> None:
    rows = np.stack(
        [
            make_row((0, 0, 10, 10), 0.6, [0.9, 0.0, 0.0]),
            make_row((0, 0, 10, 10), 0.9, [0.0, 0.9, 0.0]),
            make_row((0, 0, 10, 10), 0.8, [0.0, 0.0, 0.9]),
        ]
    )
    found = select_candidates(rows, NUM_CLASSES, 0.3)
    assert found.class_ids.tolist() == [1, 2, 0]
    only_circle = select_candidates(rows, NUM_CLASSES, 0.3, allowed_class_ids=np.array([0]))
    assert only_circle.class_ids.tolist() == [0]
    # with the filter applied before agnostic NMS, the better boxes of other classes cannot suppress it
    assert non_max_suppression(only_circle, 0.3, class_agnostic=True, max_detections=300).tolist() == [0]


def test_coefficients_are_not_scaled_by_objectness() -> None:
    coefficients = np.arange(32, dtype=np.float32)
    found = select_candidates(make_row((0, 0, 5, 5), 0.5, [0.9, 0, 0], coefficients)[None], NUM_CLASSES, 0.1)
    np.testing.assert_array_equal(found.coefficients[0], coefficients)


def test_multi_label_makes_one_candidate_per_class_above_the_threshold() -> None:
    rows = make_row((0, 0, 10, 10), 0.9, [0.8, 0.6, 0.1])[None]
    single = select_candidates(rows, NUM_CLASSES, 0.3)
    multi = select_candidates(rows, NUM_CLASSES, 0.3, multi_label=True)
    assert single.class_ids.tolist() == [0]
    assert multi.class_ids.tolist() == [0, 1]
    np.testing.assert_allclose(multi.scores, [0.72, 0.54], rtol=1e-6)
    # per-class NMS keeps both labels of the same box
    assert non_max_suppression(multi, 0.5, class_agnostic=False, max_detections=300).tolist() == [0, 1]


def anchor_free(columns: list[np.ndarray]) -> np.ndarray:
    return np.stack(columns, axis=1)


@pytest.mark.parametrize(
    ("class_probs", "confidence", "expected_class", "expected_score"),
    [
        ([0.1, 0.95, 0.3], 0.4, 1, 0.95),  # the best class probability is the score: no objectness
        ([0.4, 0.1, 0.1], 0.4, None, None),  # strictly above the threshold
        ([0.41, 0.1, 0.1], 0.4, 0, 0.41),
    ],
)
def test_anchor_free_scores_like_ultralytics(class_probs, confidence, expected_class, expected_score) -> None:
    found = ANCHOR_FREE.candidates(
        anchor_free([make_anchor_free_column((10, 10, 30, 40), class_probs)]), NUM_CLASSES, selection(confidence)
    )
    assert_one_candidate(found, expected_class, expected_score)


def test_anchor_free_sorts_filters_classes_and_keeps_coefficients() -> None:
    coefficients = np.arange(32, dtype=np.float32)
    prediction = anchor_free(
        [
            make_anchor_free_column((0, 0, 10, 10), [0.6, 0.0, 0.0]),
            make_anchor_free_column((0, 0, 10, 10), [0.0, 0.9, 0.0], coefficients),
            make_anchor_free_column((0, 0, 10, 10), [0.0, 0.0, 0.8]),
            make_anchor_free_column((50, 50, 60, 60), [0.1, 0.0, 0.0]),
        ]
    )
    found = ANCHOR_FREE.candidates(prediction, NUM_CLASSES, selection(0.3))
    assert found.class_ids.tolist() == [1, 2, 0]
    np.testing.assert_array_equal(found.coefficients[0], coefficients)
    assert ANCHOR_FREE.candidates(prediction, NUM_CLASSES, selection(0.3, [0])).class_ids.tolist() == [0]
    multi = ANCHOR_FREE.candidates(
        anchor_free([make_anchor_free_column((0, 0, 10, 10), [0.8, 0.6, 0.1])]), NUM_CLASSES, selection(0.3, None, True)
    )
    assert multi.class_ids.tolist() == [0, 1]
    # NMS runs here: the three equal boxes of different classes survive per-class NMS, one survives agnostic NMS
    assert len(ANCHOR_FREE.detections(prediction, NUM_CLASSES, selection(0.3))) == 3
    assert len(ANCHOR_FREE.detections(prediction, NUM_CLASSES, selection(0.3, class_agnostic=True))) == 1


def test_end_to_end_rows_are_taken_in_graph_order_without_nms() -> None:
    rows = np.stack(
        [
            make_end_to_end_row((0, 0, 10, 10), 0.9, 1),
            make_end_to_end_row((1, 0, 11, 10), 0.8, 1),  # overlaps the first: NMS was the graph's business
            make_end_to_end_row((20, 20, 40, 40), 0.5, 2),
            make_end_to_end_row((0, 0, 0, 0), 0.0, 0),  # an unused row of an nms=True export
        ]
    )
    found = END_TO_END.detections(rows, NUM_CLASSES, selection(0.25, iou_threshold=0.1, class_agnostic=True))
    assert found.class_ids.tolist() == [1, 1, 2]
    np.testing.assert_allclose(found.xyxy[1], [1, 0, 11, 10])
    np.testing.assert_allclose(found.scores, [0.9, 0.8, 0.5])
    assert END_TO_END.detections(rows, NUM_CLASSES, selection(0.25, [2])).class_ids.tolist() == [2]
    # max_detections keeps the graph's first rows, as Ultralytics' predict
    assert END_TO_END.detections(rows, NUM_CLASSES, selection(0.25, max_detections=2)).scores.tolist() == [
        pytest.approx(0.9),
        pytest.approx(0.8),
    ]


def test_an_end_to_end_class_index_beyond_the_class_names_is_an_error() -> None:
    rows = make_end_to_end_row((0, 0, 10, 10), 0.9, 5)[None]
    with pytest.raises(InvalidModelOutputError, match="class index 5 but its package names 3 classes"):
        END_TO_END.detections(rows, NUM_CLASSES, selection(0.25))


@pytest.mark.parametrize(
    ("layout", "shape", "problem"),
    [
        (YOLOV5, (1, 6300, 40), None),
        (YOLOV5, (1, 6300, 41), "nc = 3"),
        (ANCHOR_FREE, (1, 39, 2100), None),
        (ANCHOR_FREE, (2, 39, 2100), "B = 1"),
        (END_TO_END, (1, 300, 38), None),
        (END_TO_END, (1, 300, 39), "6 \\+ 32"),
    ],
)
def test_runtime_output_checks(layout: OutputLayout, shape, problem: str | None) -> None:
    found = layout.check(np.zeros(shape, np.float32), 1, NUM_CLASSES)
    if problem is None:
        assert found is None
    else:
        assert found is not None and re.search(problem, found)


def test_nms_is_shared_by_the_layouts_that_run_it() -> None:
    rows = np.stack([make_row((0, 0, 10, 10), 0.9, [0.9, 0, 0]), make_row((1, 0, 11, 10), 0.9, [0.8, 0, 0])])
    found = YOLOV5.candidates(rows, NUM_CLASSES, selection(0.3))
    kept = YOLOV5.detections(rows, NUM_CLASSES, selection(0.3))
    assert kept.scores.tolist() == found.take(non_max_suppression(found, 0.5, False, 300)).scores.tolist()
