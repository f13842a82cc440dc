"""YOLOv5-seg's network interface, checked once per model: one image batch in, ``output0`` and ``output1`` out.

The model package layer checks an ONNX's declared inputs and outputs (:mod:`workflows_yolov5_seg.onnx_file`) before
any backend loads it; the TensorRT backend checks a package's pre-built engine the same way.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from workflows_yolov5_seg.errors import NotYOLOv5SegModelError

logger = logging.getLogger(__name__)

NUM_MASK_COEFFICIENTS = 32
DEFAULT_DYNAMIC_INPUT_HW = (640, 640)
DEFAULT_STRIDE = 32  # YOLOv5's largest stride (P5 models); P6 exports declare 64 in their metadata


@dataclass(frozen=True)
class IOSignature:
    """YOLOv5-seg's tensors in a network.

    Attributes:
        input_name: the image batch input ``(B, 3, H, W)``.
        input_hw: ``(H, W)`` of the input (from the network, else the package config, else 640x640).
        batch_size: the static batch size, or ``None`` when the batch dimension is dynamic.
        instances_name: ``output0`` ``(B, N, 5 + nc + 32)``.
        protos_name: ``output1`` ``(B, 32, H / 4, W / 4)``.
        num_classes: ``nc`` when the output width is static, else ``None``.
    """

    input_name: str
    input_hw: tuple[int, int]
    batch_size: int | None
    instances_name: str
    protos_name: str
    num_classes: int | None


def _static(dim: object) -> int | None:
    return dim if isinstance(dim, int) and dim > 0 else None


def check_io_signature(
    source: str,
    inputs: list[tuple[str, tuple]],
    outputs: list[tuple[str, tuple]],
    default_input_hw: tuple[int, int] | None = None,
    stride: int = DEFAULT_STRIDE,
) -> IOSignature:
    """Checks that a network has YOLOv5-seg's inputs and outputs; symbolic dimensions are accepted.

    Args:
        source: the weights' path or name, for messages.
        inputs: ``(name, shape)`` of each input; a dimension is an int, or a string / ``None`` when dynamic.
        outputs: ``(name, shape)`` of each output.
        default_input_hw: the input size to use when the network's height and width are dynamic (else 640x640).
        stride: the network's largest stride; the input size must be a multiple of it.

    Raises:
        NotYOLOv5SegModelError: with what was found and what YOLOv5-seg has.
    """
    input_shapes = [shape for _, shape in inputs]
    output_names, output_shapes = [name for name, _ in outputs], [shape for _, shape in outputs]
    expected = (
        "YOLOv5-seg has one input [B, 3, H, W] and two outputs: output0 [B, N, 5 + classes + 32] and "
        "output1 [B, 32, H/4, W/4]"
    )
    found = f"inputs {input_shapes}, outputs {dict(zip(output_names, output_shapes, strict=False))}"
    if len(input_shapes) != 1 or len(input_shapes[0]) != 4 or _static(input_shapes[0][1]) not in (3, None):
        raise NotYOLOv5SegModelError(f"'{source}' is not a YOLOv5-seg model: it has {found}. {expected}.")
    if len(output_shapes) != 2:
        hint = ""
        if len(output_shapes) == 1 and len(output_shapes[0]) == 3:
            hint = " A single [B, N, 5 + classes] output is a detection model: export a -seg model."
        elif len(output_shapes) == 1 and len(output_shapes[0]) == 2:
            hint = (
                " A single [B, classes] output is a classification model: train and export a YOLOv5 -seg model "
                "(segment/train.py, then export.py --include onnx)."
            )
        raise NotYOLOv5SegModelError(
            f"'{source}' is not a YOLOv5-seg model: it has {len(output_shapes)} output(s) ({found}). {expected}.{hint}"
        )
    if set(output_names) == {"output0", "output1"}:
        instances_index = output_names.index("output0")
    else:
        instances_index = 0 if len(output_shapes[0]) == 3 else 1
    protos_index = 1 - instances_index
    instances, protos = output_shapes[instances_index], output_shapes[protos_index]
    width = _static(instances[2]) if len(instances) == 3 else None
    if (
        len(instances) != 3
        or len(protos) != 4
        or _static(protos[1]) not in (NUM_MASK_COEFFICIENTS, None)
        or (width is not None and width <= 5 + NUM_MASK_COEFFICIENTS)
    ):
        raise NotYOLOv5SegModelError(f"'{source}' is not a YOLOv5-seg model: it has {found}. {expected}.")
    height_width = (_static(input_shapes[0][2]), _static(input_shapes[0][3]))
    if None in height_width:
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
        raise NotYOLOv5SegModelError(
            f"'{source}' takes {height_width[1]}x{height_width[0]} input; YOLOv5 needs multiples of {stride}."
        )
    return IOSignature(
        input_name=inputs[0][0],
        input_hw=(int(height_width[0]), int(height_width[1])),
        batch_size=_static(input_shapes[0][0]),
        instances_name=output_names[instances_index],
        protos_name=output_names[protos_index],
        num_classes=None if width is None else width - 5 - NUM_MASK_COEFFICIENTS,
    )
