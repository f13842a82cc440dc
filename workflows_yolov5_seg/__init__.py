"""YOLOv5 instance segmentation for Roboflow Workflows.

The runtime (``YOLOv5SegModel``) needs only numpy, OpenCV, supervision and a backend; the Workflows block
(``load_blocks``) also needs the Workflows engine: ``pip install 'workflows-yolov5-seg[inference]'``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

if TYPE_CHECKING:
    from workflows_yolov5_seg.model import InferenceParameters, YOLOv5SegModel


def load_blocks() -> list[type]:
    """Entry point of the Workflows plugin loader (``WORKFLOWS_PLUGINS=workflows_yolov5_seg``)."""
    from workflows_yolov5_seg.yolov5_instance_segmentation.v1 import YOLOv5InstanceSegmentationBlockV1

    return [YOLOv5InstanceSegmentationBlockV1]


def __getattr__(name: str) -> object:
    # Lazy so that importing the package (as the plugin loader does) loads no backend.
    if name in ("YOLOv5SegModel", "InferenceParameters"):
        from workflows_yolov5_seg import model

        return getattr(model, name)
    raise AttributeError(f"module 'workflows_yolov5_seg' has no attribute {name!r}")


__all__ = ["InferenceParameters", "YOLOv5SegModel", "__version__", "load_blocks"]
