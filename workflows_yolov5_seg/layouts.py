"""What differs between YOLO segmentation generations: the layout of ``output0`` and how its rows are scored.

Everything else is shared by every generation and lives in its own stage: one image batch in, prototypes
``output1 (B, 32, H / 4, W / 4)`` out, 32 mask coefficients per detection, the same letterbox, the same NMS and the
same exact-geometry mask decoding.

============ ========================================== ============================================== ===========
layout       exports                                    ``output0``                                    NMS
============ ========================================== ============================================== ===========
``yolov5``   the YOLOv5 repository's ``export.py``      ``(B, N, 5 + nc + 32)``: cx, cy, w, h,          here
                                                        objectness, class probabilities, coefficients
``anchor-    the ``ultralytics`` package: YOLOv8, v9,   ``(B, 4 + nc + 32, N)``: cx, cy, w, h, class    here
free``       YOLO11, YOLO12, YOLO26                     probabilities (sigmoid applied), coefficients
``end2end``  ``ultralytics`` exports with ``nms=True``  ``(B, K, 6 + 32)``: x1, y1, x2, y2, score,      in the
             or ``nms=False`` (YOLO26's NMS-free head)  class index, coefficients                      graph
============ ========================================== ============================================== ===========

Each layout scores a row as the ``predict`` of its generation does: YOLOv5 ``objectness x best class probability``,
later generations the best class probability, end-to-end exports the score the graph wrote. Boxes are in
network-input pixels in every layout.

The layout of a model is recognised once, when its model package is read (:func:`recognise_layout`), from the
export's metadata (Ultralytics writes ``task``, ``end2end`` and its export ``args``), a package's declared
architecture, and the output's shape (the number of anchors follows from the input size and the strides).
"""

from __future__ import annotations

import ast
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import supervision as sv

from workflows_yolov5_seg.errors import InvalidModelOutputError, NotYOLOSegModelError
from workflows_yolov5_seg.nms import MAX_NMS_CANDIDATES, Candidates, non_max_suppression
from workflows_yolov5_seg.package_layout import END_TO_END_ARCHITECTURES

NUM_MASK_COEFFICIENTS = 32
# Ultralytics' default in-graph confidence of an ``nms=True`` export when its ``args`` name none.
DEFAULT_EXPORT_CONFIDENCE = 0.25

Dimension = int | str | None


def static_dim(dim: Dimension) -> int | None:
    """A dimension's size when it is static, else ``None`` (symbolic or unknown)."""
    return dim if isinstance(dim, int) and dim > 0 else None


@dataclass(frozen=True)
class Selection:
    """The thresholds :meth:`OutputLayout.detections` applies.

    Attributes:
        confidence: minimum score (strictly above).
        iou_threshold: NMS IoU threshold.
        allowed_class_ids: classes to keep (before NMS), or ``None`` for all.
        max_detections: at most this many per image.
        class_agnostic: NMS across classes.
        multi_label: every class above ``confidence`` makes a candidate (layouts that run NMS here).
    """

    confidence: float
    iou_threshold: float
    allowed_class_ids: npt.NDArray[np.integer] | None
    max_detections: int
    class_agnostic: bool
    multi_label: bool


class OutputLayout(ABC):
    """One generation's ``output0``: its shape, and how one image's rows become scored, suppressed detections."""

    name: str
    title: str
    shape_text: str
    # Ultralytics' predict drops detections whose decoded mask has no pixel; YOLOv5's predict keeps them.
    drops_empty_masks: bool = True
    # The NMS IoU threshold of the generation's own validation (``yolo val``: 0.7; YOLOv5's segment/val.py: 0.6).
    val_iou_threshold: float = 0.7

    @abstractmethod
    def num_classes(self, shape: tuple[Dimension, ...]) -> int | None:
        """``nc`` read from a static ``output0`` shape, else ``None``."""

    @abstractmethod
    def candidates(self, prediction: npt.NDArray[np.floating], num_classes: int, selection: Selection) -> Candidates:
        """Scores one image's rows and keeps those above the confidence, best first (see :class:`Candidates`)."""

    def detections(self, prediction: npt.NDArray[np.floating], num_classes: int, selection: Selection) -> Candidates:
        """One image's detections: scored, filtered, suppressed, at most ``max_detections``, by descending score.

        Args:
            prediction: this image's ``output0`` (``output0[i]``).
            num_classes: the classes the model package names.
            selection: thresholds.
        """
        found = self.candidates(prediction, num_classes, selection)
        return found.take(
            non_max_suppression(found, selection.iou_threshold, selection.class_agnostic, selection.max_detections)
        )

    def fits(self, shape: tuple[Dimension, ...], points: int | None = None) -> bool:
        """Whether a declared ``output0`` shape can be this layout's.

        Args:
            shape: ``output0``'s shape, symbolic dimensions as strings or ``None``.
            points: the anchor-free head's prediction points for the input size (:func:`anchor_points`), if known.
        """
        classes = self.num_classes(shape) if len(shape) == 3 else 0
        return len(shape) == 3 and (classes is None or classes >= 1)

    def require_shape(self, source: str, shape: tuple[Dimension, ...], points: int | None = None) -> None:
        """Raises :class:`NotYOLOSegModelError` unless ``shape`` fits this layout (see :meth:`fits`)."""
        if not self.fits(shape, points):
            anchors = "" if points is None else f" (N = {points} at its input size)"
            raise NotYOLOSegModelError(
                f"'{source}' has output0 of shape {list(shape)}, but its metadata, its package's architecture or its "
                f"input size make it a {self.title} model, whose {self.shape_text}{anchors}."
            )

    def check(self, instances: np.ndarray, batch: int, num_classes: int) -> str | None:
        """What is wrong with a batch's ``output0`` for this layout, or ``None``."""
        expected = self.num_classes(instances.shape)
        if instances.ndim != 3 or instances.shape[0] != batch or (expected is not None and expected != num_classes):
            return f"expected {self.shape_text} with B = {batch}, nc = {num_classes}"
        return None

    def __repr__(self) -> str:
        return f"<{self.name} layout>"


def _best_first(scores: npt.NDArray[np.floating]) -> npt.NDArray[np.int64]:
    return np.argsort(-scores, kind="stable")[:MAX_NMS_CANDIDATES]


def _select_classes(
    class_scores: npt.NDArray[np.floating], selection: Selection
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """``(row, class id, score)`` of the candidates among rows of class scores ``(n, nc)``, best first."""
    if selection.multi_label:
        rows, class_ids = np.nonzero(class_scores > selection.confidence)
    else:
        rows, class_ids = np.arange(len(class_scores)), class_scores.argmax(axis=1)
    scores = class_scores[rows, class_ids]
    keep = scores > selection.confidence
    if selection.allowed_class_ids is not None:
        keep &= np.isin(class_ids, selection.allowed_class_ids)
    rows, class_ids, scores = rows[keep], class_ids[keep], scores[keep]
    order = _best_first(scores)
    return rows[order], class_ids[order].astype(np.int64), scores[order].astype(np.float32)


def _centre_box_candidates(
    rows: npt.NDArray[np.floating],
    class_ids: npt.NDArray[np.int64],
    scores: npt.NDArray[np.float32],
    first_coefficient: int,
) -> Candidates:
    """Candidates from selected rows ``[cx, cy, w, h, ..., coefficients from first_coefficient on]``."""
    return Candidates(
        xyxy=sv.xcycwh_to_xyxy(rows[:, :4]).astype(np.float32),
        scores=scores,
        class_ids=class_ids,
        coefficients=np.ascontiguousarray(rows[:, first_coefficient:], dtype=np.float32),
    )


class YOLOv5Layout(OutputLayout):
    """``(B, N, 5 + nc + 32)`` rows with objectness (the YOLOv5 repository's ``non_max_suppression``).

    A row is a candidate when ``obj > confidence`` and ``obj * cls_best > confidence``; its score is
    ``obj * cls_best``, its class the 0-based ``argmax``.
    """

    name = "yolov5"
    title = "YOLOv5-seg"
    shape_text = "output0 [B, N, 5 + classes + 32]"
    drops_empty_masks = False
    val_iou_threshold = 0.6

    def num_classes(self, shape: tuple[Dimension, ...]) -> int | None:
        width = static_dim(shape[2]) if len(shape) == 3 else None
        return None if width is None else width - 5 - NUM_MASK_COEFFICIENTS

    def candidates(self, prediction: npt.NDArray[np.floating], num_classes: int, selection: Selection) -> Candidates:
        rows = prediction[prediction[:, 4] > selection.confidence]
        index, class_ids, scores = _select_classes(rows[:, 5 : 5 + num_classes] * rows[:, 4:5], selection)
        return _centre_box_candidates(rows[index], class_ids, scores, 5 + num_classes)


class AnchorFreeLayout(OutputLayout):
    """``(B, 4 + nc + 32, N)`` channels of the ``ultralytics`` package's heads (YOLOv8 and later).

    A column is a candidate when its best class probability is above the confidence (``ultralytics.utils.nms``);
    the probability is its score.
    """

    name = "anchor-free"
    title = "Ultralytics YOLOv8 / v9 / 11 / 12 / 26-seg"
    shape_text = "output0 [B, 4 + classes + 32, N]"

    def num_classes(self, shape: tuple[Dimension, ...]) -> int | None:
        channels = static_dim(shape[1]) if len(shape) == 3 else None
        return None if channels is None else channels - 4 - NUM_MASK_COEFFICIENTS

    def fits(self, shape: tuple[Dimension, ...], points: int | None = None) -> bool:
        if not super().fits(shape):
            return False
        return points is None or static_dim(shape[2]) in (points, None)

    def candidates(self, prediction: npt.NDArray[np.floating], num_classes: int, selection: Selection) -> Candidates:
        class_scores = prediction[4 : 4 + num_classes]
        # the transposed copy is made of the few columns above the threshold only
        columns = prediction[:, class_scores.max(axis=0, initial=-np.inf) > selection.confidence].T
        index, class_ids, scores = _select_classes(columns[:, 4 : 4 + num_classes], selection)
        return _centre_box_candidates(columns[index], class_ids, scores, 4 + num_classes)


class EndToEndLayout(OutputLayout):
    """``(B, K, 6 + 32)`` rows of an export that selects its detections in the graph.

    ``nms=True`` exports run NMS in the graph with the thresholds of the export (rows left over are zeros);
    YOLO26's NMS-free one-to-one head writes its top ``K`` rows. As Ultralytics' ``predict`` does, rows with a
    score above the confidence (and of an allowed class) are kept in the graph's order, up to ``max_detections``:
    the IoU threshold, class-agnostic NMS and multi-label have no effect here.
    """

    name = "end2end"
    title = "Ultralytics end-to-end export (nms=True, or YOLO26 end2end)"
    shape_text = "output0 [B, K, 6 + 32] (x1, y1, x2, y2, score, class, 32 coefficients)"

    def num_classes(self, shape: tuple[Dimension, ...]) -> int | None:
        return None  # the class is an index column

    def fits(self, shape: tuple[Dimension, ...], points: int | None = None) -> bool:
        if len(shape) != 3 or static_dim(shape[2]) not in (6 + NUM_MASK_COEFFICIENTS, None):
            return False
        return points is None or static_dim(shape[1]) != points

    def check(self, instances: np.ndarray, batch: int, num_classes: int) -> str | None:
        if instances.ndim != 3 or instances.shape[0] != batch or instances.shape[2] != 6 + NUM_MASK_COEFFICIENTS:
            return f"expected {self.shape_text} with B = {batch}"
        return None

    def candidates(self, prediction: npt.NDArray[np.floating], num_classes: int, selection: Selection) -> Candidates:
        keep = prediction[:, 4] > selection.confidence
        rows = prediction[keep]
        class_ids = np.rint(rows[:, 5]).astype(np.int64)
        if len(class_ids) and (class_ids.min() < 0 or class_ids.max() >= num_classes):
            raise InvalidModelOutputError(
                f"The model returned class index {int(class_ids.max() if class_ids.max() >= 0 else class_ids.min())} "
                f"but its package names {num_classes} classes; make class_names.txt list the model's classes in "
                "order."
            )
        if selection.allowed_class_ids is not None:
            allowed = np.isin(class_ids, selection.allowed_class_ids)
            rows, class_ids = rows[allowed], class_ids[allowed]
        rows, class_ids = rows[: selection.max_detections], class_ids[: selection.max_detections]
        order = _best_first(rows[:, 4])
        return Candidates(
            xyxy=np.ascontiguousarray(rows[order, :4], dtype=np.float32),
            scores=rows[order, 4].astype(np.float32),
            class_ids=class_ids[order],
            coefficients=np.ascontiguousarray(rows[order, 6:], dtype=np.float32),
        )

    def detections(self, prediction: npt.NDArray[np.floating], num_classes: int, selection: Selection) -> Candidates:
        return self.candidates(prediction, num_classes, selection)


YOLOV5 = YOLOv5Layout()
ANCHOR_FREE = AnchorFreeLayout()
END_TO_END = EndToEndLayout()
LAYOUTS = {layout.name: layout for layout in (YOLOV5, ANCHOR_FREE, END_TO_END)}

# Architectures as Roboflow's model packages name them (inference-models' registry, Inference's model types).
ANCHOR_FREE_ARCHITECTURES = ("yolov8", "yolov9", "yolov10", "yolo11", "yolov11", "yolo12", "yolov12", "yolo26")


@dataclass(frozen=True)
class UltralyticsExport:
    """What an ``ultralytics`` export says of itself in its ONNX ``metadata_props``.

    Attributes:
        task: ``segment``, ``detect``, ``classify``, ``pose``, ``obb``, ... or ``None`` (not an Ultralytics export).
        end2end: the graph selects detections itself (``end2end`` metadata, or ``nms`` in the export ``args``).
        graph_confidence: the confidence threshold the graph applies (``nms=True`` exports), else ``None``.
    """

    task: str | None
    end2end: bool
    graph_confidence: float | None

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, str]) -> UltralyticsExport:
        try:
            args = ast.literal_eval(metadata.get("args", "{}"))
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            args = {}
        args = args if isinstance(args, dict) else {}
        in_graph_nms = args.get("nms") is True
        end2end = metadata.get("end2end", "").strip().lower() == "true" or in_graph_nms
        confidence = args.get("conf")
        graph_confidence = None
        if in_graph_nms:
            graph_confidence = float(confidence) if isinstance(confidence, (int, float)) else DEFAULT_EXPORT_CONFIDENCE
        return cls(metadata.get("task") or None, end2end, graph_confidence)


# What to export instead, for exports of another task.
_OTHER_TASKS = {
    "detect": "a detection model",
    "classify": "a classification model",
    "pose": "a pose (keypoint) model",
    "obb": "an oriented-box (OBB) model",
    "semantic": "a semantic segmentation model",
}
# How to make the ONNX this block runs, for messages: the ``ultralytics`` package and the YOLOv5 repository.
ONNX_EXPORT_COMMANDS = (
    "`yolo export model=best.pt format=onnx` for Ultralytics YOLOv8 ... YOLO26, "
    "`python export.py --weights best.pt --include onnx` in the YOLOv5 repository"
)
EXPORT_HINT = (
    "Export an instance segmentation model instead: `yolo export model=yolo11n-seg.pt format=onnx` (any *-seg.pt of "
    "YOLOv8, YOLO11, YOLO26 ...), or for YOLOv5 `python segment/train.py` then `python export.py --include onnx`."
)


def anchor_points(input_hw: tuple[int, int], stride: int) -> int:
    """Number of prediction points of an anchor-free head: one per cell of the P3..P5 (..P6) grids."""
    strides = (8, 16, 32, 64) if stride >= 64 else (8, 16, 32)
    return sum(math.ceil(input_hw[0] / s) * math.ceil(input_hw[1] / s) for s in strides)


def describe_other_task(source: str, task: str) -> str:
    kind = _OTHER_TASKS.get(task, f"a '{task}' model")
    return (
        f"'{source}' is {kind} (its Ultralytics metadata says task '{task}'), not instance segmentation. {EXPORT_HINT}"
    )


def recognise_layout(
    source: str,
    instances_shape: tuple[Dimension, ...],
    input_hw: tuple[int, int],
    stride: int,
    metadata: Mapping[str, str],
    architecture: str | None = None,
    fused_nms: bool = False,
) -> OutputLayout:
    """The layout of a segmentation network's ``output0``.

    Evidence, strongest first: the export's Ultralytics metadata (``end2end``, ``args.nms``, ``task``), what a
    model package declares (``post_processing.fused``, then its architecture), then the shape, which tells the
    layouts apart when the input size is static (YOLOv5 has 3 anchors per grid cell, anchor-free heads one point
    per cell). As in inference-models, a package whose ``post_processing`` is ``fused`` or whose architecture is
    ``yolo26`` has end-to-end rows, when its ``output0`` is ``[B, K, 38]`` and its metadata says nothing else.

    Args:
        source: the weights, for messages.
        instances_shape: ``output0``'s shape, with symbolic dimensions as strings or ``None``.
        input_hw: the network input's ``(H, W)``.
        stride: the largest stride (64 for P6 models).
        metadata: the ONNX ``metadata_props`` (empty for an engine).
        architecture: ``yolov5``, ``yolov8``, ``yolov11``, ``yolo26``, ... from a model package's config (or a
            legacy package's model type, ``yolov8n-seg``), if any.
        fused_nms: the package's ``inference_config.json`` says ``post_processing.fused`` (NMS in the graph).

    Raises:
        NotYOLOSegModelError: an Ultralytics export of another task, or a shape no layout has.
    """
    export = UltralyticsExport.from_metadata(metadata)
    if export.task not in (None, "segment"):
        raise NotYOLOSegModelError(describe_other_task(source, export.task))
    shape = tuple(instances_shape)
    first, second = (static_dim(shape[1]), static_dim(shape[2])) if len(shape) == 3 else (None, None)
    points = anchor_points(input_hw, stride)
    arch = (architecture or "").lower()
    package_says_end_to_end = fused_nms or arch.startswith(END_TO_END_ARCHITECTURES)
    if export.end2end:
        layout: OutputLayout = END_TO_END
    elif package_says_end_to_end and export.task is None and second == 6 + NUM_MASK_COEFFICIENTS != first:
        layout = END_TO_END
    elif export.task == "segment" or arch.startswith(ANCHOR_FREE_ARCHITECTURES):
        # a package (or its engine) of these architectures may hold an end-to-end export without metadata
        end_to_end = END_TO_END.fits(shape, points) and not ANCHOR_FREE.fits(shape, points) and not export.task
        layout = END_TO_END if end_to_end else ANCHOR_FREE
    elif arch.startswith("yolov5") or first == 3 * points:
        layout = YOLOV5
    elif second == points or (first is not None and second is None):
        layout = ANCHOR_FREE
    else:  # YOLOv5's rows, also of networks that do not have a whole number of anchors (hand-made graphs)
        layout = YOLOV5
    layout.require_shape(source, shape, points)
    return layout
