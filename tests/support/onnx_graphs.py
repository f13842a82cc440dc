"""Hand-built ONNX graphs whose outputs are exactly what a test needs.

The graphs read the input only for its batch size: ``output0`` and ``output1`` are constants broadcast over the
batch, so a test chooses the raw YOLOv5-seg tensors and checks the pipeline's decoding of them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

NUM_COEFFICIENTS = 32


def make_constant_seg_onnx(
    path: Path,
    instances: np.ndarray,
    protos: np.ndarray,
    input_hw: tuple[int, int] = (320, 320),
    batch: int | None = None,
    names: dict[int, str] | None = None,
    metadata: dict[str, str] | None = None,
    output_names: tuple[str, str] = ("output0", "output1"),
    swap_output_order: bool = False,
    input_type: int = TensorProto.FLOAT,
) -> Path:
    """Writes an ONNX segmentation model that returns fixed tensors.

    Args:
        path: where to write the model.
        instances: ``output0`` of every image in any layout: ``(N, 5 + nc + 32)`` YOLOv5 rows, ``(4 + nc + 32, N)``
            anchor-free channels or ``(K, 38)`` end-to-end rows.
        protos: ``(32, H/4, W/4)`` prototypes returned for every image.
        input_hw: ``(H, W)`` of the input.
        batch: static batch size, or ``None`` for a dynamic batch.
        names: Ultralytics-style ``names`` metadata, if any (with YOLOv5's ``stride``).
        metadata: the whole ``metadata_props`` instead (see :func:`ultralytics_metadata`).
        output_names: names of the instances and protos outputs.
        swap_output_order: declare the protos output first.
        input_type: ONNX element type of the input.
    """
    height, width = input_hw
    batch_dim = batch if batch is not None else "batch"
    image = helper.make_tensor_value_info("images", input_type, [batch_dim, 3, height, width])
    nodes = [
        helper.make_node("Cast", ["images"], ["images_f"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["images_f"], ["mean"], axes=[1, 2, 3], keepdims=1),  # (B,1,1,1)
        helper.make_node("Mul", ["mean", "zero"], ["zeros4"]),
        helper.make_node("Reshape", ["zeros4", "shape3"], ["zeros3"]),  # (B,1,1)
        helper.make_node("Add", ["zeros3", "instances_const"], [output_names[0]]),
        helper.make_node("Add", ["zeros4", "protos_const"], [output_names[1]]),
    ]
    initializers = [
        numpy_helper.from_array(np.zeros((1,), dtype=np.float32), "zero"),
        numpy_helper.from_array(np.array([-1, 1, 1], dtype=np.int64), "shape3"),
        numpy_helper.from_array(instances[None].astype(np.float32), "instances_const"),
        numpy_helper.from_array(protos[None].astype(np.float32), "protos_const"),
    ]
    outputs = [
        helper.make_tensor_value_info(output_names[0], TensorProto.FLOAT, [batch_dim, *instances.shape]),
        helper.make_tensor_value_info(output_names[1], TensorProto.FLOAT, [batch_dim, *protos.shape]),
    ]
    if swap_output_order:
        outputs.reverse()
    graph = helper.make_graph(nodes, "yolov5_seg_constant", [image], outputs, initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if names is not None:
        helper.set_model_props(model, {"stride": "32", "names": str(names)})
    if metadata is not None:
        helper.set_model_props(model, metadata)
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def make_detection_only_onnx(path: Path, num_classes: int = 3, input_hw: tuple[int, int] = (320, 320)) -> Path:
    """Writes a model with YOLOv5 *detection*'s signature: a single ``(B, N, 5 + nc)`` output."""
    rows = np.zeros((10, 5 + num_classes), dtype=np.float32)
    image = helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, *input_hw])
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["mean"], axes=[1, 2, 3], keepdims=1),
        helper.make_node("Reshape", ["mean", "shape3"], ["mean3"]),
        helper.make_node("Mul", ["mean3", "zero"], ["zeros3"]),
        helper.make_node("Add", ["zeros3", "rows"], ["output0"]),
    ]
    initializers = [
        numpy_helper.from_array(np.zeros((1,), dtype=np.float32), "zero"),
        numpy_helper.from_array(np.array([-1, 1, 1], dtype=np.int64), "shape3"),
        numpy_helper.from_array(rows[None], "rows"),
    ]
    output = helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["batch", *rows.shape])
    graph = helper.make_graph(nodes, "yolov5_det", [image], [output], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def make_classification_onnx(path: Path, num_classes: int = 3) -> Path:
    """A classifier's signature: one input ``[B, 3, 320, 320]``, one output ``[B, nc]``."""
    image = helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, 320, 320])
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["mean"], axes=[1, 2, 3], keepdims=1),
        helper.make_node("Reshape", ["mean", "shape2"], ["mean2"]),
        helper.make_node("Add", ["mean2", "logits"], ["output0"]),
    ]
    initializers = [
        numpy_helper.from_array(np.array([-1, 1], dtype=np.int64), "shape2"),
        numpy_helper.from_array(np.zeros((1, num_classes), np.float32), "logits"),
    ]
    output = helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["batch", num_classes])
    graph = helper.make_graph(nodes, "classifier", [image], [output], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def make_row(
    xyxy: tuple[float, float, float, float],
    objectness: float,
    class_probs: list[float],
    coefficients: np.ndarray | None = None,
) -> np.ndarray:
    """One ``output0`` row from a corner box (network pixels), objectness, class probabilities and coefficients."""
    x1, y1, x2, y2 = xyxy
    coefficients = np.zeros(NUM_COEFFICIENTS, dtype=np.float32) if coefficients is None else coefficients
    return np.concatenate(
        [[(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1, objectness], class_probs, coefficients]
    ).astype(np.float32)


def make_anchor_free_column(
    xyxy: tuple[float, float, float, float], class_probs: list[float], coefficients: np.ndarray | None = None
) -> np.ndarray:
    """One ``output0`` column of an Ultralytics YOLOv8+ export: cx, cy, w, h, class probabilities, coefficients."""
    row = make_row(xyxy, 0.0, class_probs, coefficients)
    return np.delete(row, 4)


def make_end_to_end_row(
    xyxy: tuple[float, float, float, float], score: float, class_id: int, coefficients: np.ndarray | None = None
) -> np.ndarray:
    """One ``output0`` row of an end-to-end export: x1, y1, x2, y2, score, class index, coefficients."""
    coefficients = np.zeros(NUM_COEFFICIENTS, dtype=np.float32) if coefficients is None else coefficients
    return np.concatenate([xyxy, [score, class_id], coefficients]).astype(np.float32)


def ultralytics_metadata(
    names: dict[int, str],
    task: str = "segment",
    end2end: bool = False,
    nms: bool = False,
    imgsz: tuple[int, int] = (320, 320),
    stride: int = 32,
) -> dict[str, str]:
    """``metadata_props`` as the ``ultralytics`` package writes them (see tests/data/ultralytics_interfaces.json)."""
    return {
        "description": "Ultralytics model",
        "author": "Ultralytics",
        "version": "8.4.190",
        "stride": str(stride),
        "task": task,
        "batch": "1",
        "imgsz": str(list(imgsz)),
        "names": str(names),
        "args": str({"batch": 1, "half": False, "dynamic": False, "nms": nms}),
        "channels": "3",
        "end2end": str(end2end),
    }


def box_protos(proto_hw: tuple[int, int], strength: float = 8.0) -> tuple[np.ndarray, np.ndarray]:
    """Prototypes whose first channel is a constant ``+strength`` plane, so a mask fills its box.

    Returns:
        ``(protos (32, mh, mw), coefficients (32,))`` where the coefficients select channel 0.
    """
    protos = np.zeros((NUM_COEFFICIENTS, *proto_hw), dtype=np.float32)
    protos[0] = strength
    coefficients = np.zeros(NUM_COEFFICIENTS, dtype=np.float32)
    coefficients[0] = 1.0
    return protos, coefficients
