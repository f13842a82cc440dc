"""The contract every inference backend fulfils: one input batch in, the two raw YOLOv5-seg outputs out."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from workflows_yolov5_seg.errors import NotYOLOv5SegModelError

logger = logging.getLogger(__name__)

DEFAULT_DYNAMIC_INPUT_HW = (640, 640)


@dataclass(frozen=True)
class BackendInfo:
    """What the pipeline needs to know about a loaded network.

    Attributes:
        name: ``onnx`` or ``trt``.
        device: where it runs, e.g. ``cpu`` or ``cuda:0``.
        input_hw: ``(H, W)`` of the network input.
        input_dtype: numpy dtype the input batch must have.
        min_batch_size: the smallest batch the network accepts.
        max_batch_size: the largest batch the network accepts (equal to ``min_batch_size`` for a static batch).
        num_classes: classes the network predicts, when its output width is static.
        providers: what actually runs the network, for reporting: the ONNX Runtime execution providers the session
            uses, or ``("TensorRT <version>",)``.
        precision: ``fp32`` / ``fp16`` where known (TensorRT engines), else ``None``.
    """

    name: str
    device: str
    input_hw: tuple[int, int]
    input_dtype: np.dtype
    min_batch_size: int
    max_batch_size: int
    num_classes: int | None = None
    providers: tuple[str, ...] = ()
    precision: str | None = None

    @property
    def static_batch(self) -> bool:
        return self.min_batch_size == self.max_batch_size

    def as_dict(self) -> dict[str, object]:
        """A JSON-friendly summary, e.g. ``{"name": "trt", "device": "cuda:0", "precision": "fp16", ...}``."""
        return {
            "name": self.name,
            "device": self.device,
            "providers": list(self.providers),
            "precision": self.precision,
            "input_hw": list(self.input_hw),
            "input_dtype": str(np.dtype(self.input_dtype)),
            "min_batch_size": self.min_batch_size,
            "max_batch_size": self.max_batch_size,
        }


class Backend(Protocol):
    """Maps a pre-processed batch to YOLOv5-seg's raw outputs; nothing more."""

    info: BackendInfo

    def infer(self, batch: np.ndarray) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """Runs the network.

        Args:
            batch: ``(B, 3, H, W)`` of ``info.input_dtype`` with ``min_batch_size <= B <= max_batch_size``.

        Returns:
            ``(instances, protos)``: ``(B, N, 5 + nc + 32)`` and ``(B, 32, H / 4, W / 4)``, float32.
        """
        ...

    def close(self) -> None:
        """Releases the network's memory."""
        ...


@dataclass(frozen=True)
class IOSignature:
    """Where YOLOv5-seg's tensors are in a network's IO list.

    Attributes:
        input_hw: ``(H, W)`` of the input.
        batch_size: the static batch size, or ``None`` when the batch dimension is dynamic.
        instances_index: position of ``output0`` ``(B, N, 5 + nc + 32)`` among the outputs.
        protos_index: position of ``output1`` ``(B, 32, H / 4, W / 4)`` among the outputs.
        num_classes: ``nc`` when the output width is static, else ``None``.
    """

    input_hw: tuple[int, int]
    batch_size: int | None
    instances_index: int
    protos_index: int
    num_classes: int | None


def _static(dim: object) -> int | None:
    return dim if isinstance(dim, int) and dim > 0 else None


def check_io_signature(
    source: str,
    input_shapes: list[tuple],
    output_names: list[str],
    output_shapes: list[tuple],
    default_input_hw: tuple[int, int] | None = None,
) -> IOSignature:
    """Checks that a network has YOLOv5-seg's inputs and outputs; symbolic dimensions are accepted.

    Args:
        source: the weights' path or name, for messages.
        input_shapes: shapes of the inputs (ints, or strings / None for dynamic dimensions).
        output_names: names of the outputs.
        output_shapes: shapes of the outputs.
        default_input_hw: the input size to use when the network's height and width are dynamic (else 640x640).

    Raises:
        NotYOLOv5SegModelError: with what was found and what YOLOv5-seg has.
    """
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
        or _static(protos[1]) not in (32, None)
        or (width is not None and width <= 5 + 32)
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
    if height_width[0] % 32 or height_width[1] % 32:
        raise NotYOLOv5SegModelError(
            f"'{source}' takes {height_width[1]}x{height_width[0]} input; YOLOv5 needs multiples of 32."
        )
    return IOSignature(
        input_hw=(int(height_width[0]), int(height_width[1])),
        batch_size=_static(input_shapes[0][0]),
        instances_index=instances_index,
        protos_index=protos_index,
        num_classes=None if width is None else width - 5 - 32,
    )
