"""The segmentation network's interface, checked once per model: one image batch in, ``output0`` and ``output1`` out.

The model package layer checks an ONNX's declared inputs and outputs (:mod:`workflows_yolov5_seg.onnx_file`) before
any backend loads it, and recognises the layout of ``output0`` (:mod:`workflows_yolov5_seg.layouts`); the TensorRT
backend checks a package's pre-built engine the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from workflows_yolov5_seg.errors import NotYOLOSegModelError
from workflows_yolov5_seg.layouts import (
    EXPORT_HINT,
    NUM_MASK_COEFFICIENTS,
    YOLOV5,
    OutputLayout,
    UltralyticsExport,
    anchor_points,
    describe_other_task,
    recognise_layout,
    static_dim,
)

logger = logging.getLogger(__name__)

__all__ = ["NUM_MASK_COEFFICIENTS", "IOSignature", "check_io_signature"]
DEFAULT_DYNAMIC_INPUT_HW = (640, 640)
DEFAULT_STRIDE = 32  # the largest stride of P5 models; P6 exports declare 64 in their metadata


@dataclass(frozen=True)
class IOSignature:
    """A segmentation network's tensors.

    Attributes:
        input_name: the image batch input ``(B, 3, H, W)``.
        input_hw: ``(H, W)`` of the input (from the network, else the package config or the export's ``imgsz``,
            else 640x640).
        batch_size: the static batch size, or ``None`` when the batch dimension is dynamic.
        instances_name: ``output0``, laid out as ``layout`` says.
        protos_name: ``output1`` ``(B, 32, H / 4, W / 4)``.
        num_classes: ``nc`` when ``output0``'s shape tells it, else ``None``.
        layout: the generation's ``output0`` layout.
        instances_shape: ``output0``'s declared shape (symbolic dimensions as strings or ``None``), for messages.
        dynamic_hw: the input's height and width are dynamic (the network takes any size).
    """

    input_name: str
    input_hw: tuple[int, int]
    batch_size: int | None
    instances_name: str
    protos_name: str
    num_classes: int | None
    layout: OutputLayout = YOLOV5
    instances_shape: tuple = field(default=(), compare=False)
    dynamic_hw: bool = field(default=False, compare=False)


def check_io_signature(
    source: str,
    inputs: list[tuple[str, tuple]],
    outputs: list[tuple[str, tuple]],
    default_input_hw: tuple[int, int] | None = None,
    stride: int = DEFAULT_STRIDE,
    metadata: Mapping[str, str] | None = None,
    architecture: str | None = None,
    layout: OutputLayout | None = None,
    fused_nms: bool = False,
) -> IOSignature:
    """Checks that a network has a YOLO segmentation model's inputs and outputs; symbolic dimensions are accepted.

    Args:
        source: the weights' path or name, for messages.
        inputs: ``(name, shape)`` of each input; a dimension is an int, or a string / ``None`` when dynamic.
        outputs: ``(name, shape)`` of each output.
        default_input_hw: the input size to use when the network's height and width are dynamic (else 640x640).
        stride: the network's largest stride; the input size must be a multiple of it.
        metadata: the ONNX's ``metadata_props`` (Ultralytics' ``task``, ``end2end``, ``args``), if any.
        architecture: the architecture a model package declares (``yolov5``, ``yolov8``, ...), if any.
        layout: the known layout (an engine built from a package's ONNX), checked instead of recognised.
        fused_nms: the package's ``inference_config.json`` has ``post_processing.fused`` (NMS in the graph).

    Raises:
        NotYOLOSegModelError: with what was found and what a segmentation model has.
    """
    metadata = metadata or {}
    task = UltralyticsExport.from_metadata(metadata).task
    if task not in (None, "segment"):
        raise NotYOLOSegModelError(describe_other_task(source, task))
    input_shapes = [shape for _, shape in inputs]
    output_names, output_shapes = [name for name, _ in outputs], [shape for _, shape in outputs]
    expected = (
        "A YOLO segmentation model has one input [B, 3, H, W] and two outputs: output0 (YOLOv5 [B, N, 5 + classes + "
        "32], YOLOv8 and later [B, 4 + classes + 32, N], end-to-end exports [B, K, 38]) and output1 [B, 32, H/4, W/4]"
    )
    found = f"inputs {input_shapes}, outputs {dict(zip(output_names, output_shapes, strict=False))}"
    not_segmentation = f"'{source}' is not a YOLO segmentation model: it has"
    if len(input_shapes) != 1 or len(input_shapes[0]) != 4 or static_dim(input_shapes[0][1]) not in (3, None):
        raise NotYOLOSegModelError(f"{not_segmentation} {found}. {expected}.")
    if len(output_shapes) != 2:
        hint = ""
        if len(output_shapes) == 1 and len(output_shapes[0]) == 3:
            hint = (
                " A single output [B, N, 5 + classes], [B, 4 + classes, N] or [B, K, 6] is a detection model (pose "
                f"and oriented-box models have one too). {EXPORT_HINT}"
            )
        elif len(output_shapes) == 1 and len(output_shapes[0]) == 2:
            hint = f" A single [B, classes] output is a classification model. {EXPORT_HINT}"
        raise NotYOLOSegModelError(f"{not_segmentation} {len(output_shapes)} output(s) ({found}). {expected}.{hint}")
    if set(output_names) == {"output0", "output1"}:
        instances_index = output_names.index("output0")
    else:
        instances_index = 0 if len(output_shapes[0]) == 3 else 1
    protos_index = 1 - instances_index
    instances, protos = output_shapes[instances_index], output_shapes[protos_index]
    if len(instances) != 3 or len(protos) != 4 or static_dim(protos[1]) not in (NUM_MASK_COEFFICIENTS, None):
        raise NotYOLOSegModelError(f"{not_segmentation} {found}. {expected}.")
    height_width = (static_dim(input_shapes[0][2]), static_dim(input_shapes[0][3]))
    dynamic_hw = None in height_width
    if dynamic_hw:
        height_width = default_input_hw or DEFAULT_DYNAMIC_INPUT_HW
        if default_input_hw is None:
            logger.warning(
                "'%s' has a dynamic input size %s and no training size is known; using %sx%s (Ultralytics' "
                "default). Give training_input_size in the package's inference_config.json to change it.",
                source,
                input_shapes[0],
                height_width[1],
                height_width[0],
            )
    if height_width[0] % stride or height_width[1] % stride:
        raise NotYOLOSegModelError(
            f"'{source}' takes {height_width[1]}x{height_width[0]} input; it must be a multiple of the model's "
            f"stride {stride}."
        )
    input_hw = (int(height_width[0]), int(height_width[1]))
    if layout is None:
        layout = recognise_layout(source, tuple(instances), input_hw, stride, metadata, architecture, fused_nms)
    else:
        layout.require_shape(source, tuple(instances), anchor_points(input_hw, stride))
    return IOSignature(
        input_name=inputs[0][0],
        input_hw=input_hw,
        batch_size=static_dim(input_shapes[0][0]),
        instances_name=output_names[instances_index],
        protos_name=output_names[protos_index],
        num_classes=layout.num_classes(tuple(instances)),
        layout=layout,
        instances_shape=tuple(instances),
        dynamic_hw=dynamic_hw,
    )
