"""YOLO instance segmentation for Roboflow Workflows: YOLOv5, YOLOv8, YOLOv9, YOLO11, YOLO12 and YOLO26-seg exports.

The runtime (``YOLOSegModel``) needs only numpy, OpenCV, supervision and a backend; the Workflows block
(``load_blocks``) also needs the Workflows engine: ``pip install 'workflows-yolov5-seg[inference]'``.
``YOLOv5SegModel`` and ``NotYOLOv5SegModelError``, the names from before the block ran the whole family, are the same
classes as ``YOLOSegModel`` and ``NotYOLOSegModelError``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

if TYPE_CHECKING:
    from workflows_yolov5_seg.errors import NotYOLOSegModelError, NotYOLOv5SegModelError
    from workflows_yolov5_seg.model import InferenceParameters, YOLOSegModel, YOLOv5SegModel

_MODEL_NAMES = ("YOLOSegModel", "YOLOv5SegModel", "InferenceParameters")
_ERROR_NAMES = ("NotYOLOSegModelError", "NotYOLOv5SegModelError")


def load_blocks() -> list[type]:
    """Entry point of the Workflows plugin loader (``WORKFLOWS_PLUGINS=workflows_yolov5_seg``)."""
    from workflows_yolov5_seg.yolov5_instance_segmentation.v1 import YOLOv5InstanceSegmentationBlockV1

    return [YOLOv5InstanceSegmentationBlockV1]


def __getattr__(name: str) -> object:
    # Lazy so that importing the package (as the plugin loader does) loads no backend.
    if name in _MODEL_NAMES:
        from workflows_yolov5_seg import model

        return getattr(model, name)
    if name in _ERROR_NAMES:
        from workflows_yolov5_seg import errors

        return getattr(errors, name)
    raise AttributeError(f"module 'workflows_yolov5_seg' has no attribute {name!r}")


__all__ = [
    "InferenceParameters",
    "NotYOLOSegModelError",
    "NotYOLOv5SegModelError",
    "YOLOSegModel",
    "YOLOv5SegModel",
    "__version__",
    "load_blocks",
]
