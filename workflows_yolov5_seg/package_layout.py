"""File names of the model package layouts (inference-models' ONNX or TensorRT package, the legacy Inference folder)
and the architecture names those packages and Roboflow's metadata use.

Kept apart from :mod:`workflows_yolov5_seg.model_package` so that the downloader (:mod:`.roboflow`) names the same
files and architectures without importing the pre-processing stack.
"""

from __future__ import annotations

import re

CLASS_NAMES_FILE = "class_names.txt"
INFERENCE_CONFIG_FILE = "inference_config.json"
MODEL_CONFIG_FILE = "model_config.json"
PACKAGE_WEIGHTS_FILE = "weights.onnx"
TRT_ENGINE_FILE = "engine.plan"
TRT_CONFIG_FILE = "trt_config.json"
LEGACY_ENVIRONMENT_FILE = "environment.json"
# Inference's cache record of a legacy package: {"project_task_type": ..., "model_type": "yolov8n-seg", ...}
LEGACY_MODEL_TYPE_FILE = "model_type.json"

# inference-models' registry keys for instance segmentation of this family (``model_architecture`` of
# ``model_config.json``, ``modelArchitecture`` of Roboflow's model metadata), as of inference-models 0.39:
# ``models/auto_loaders/models_registry.py`` looks them up exactly.
INFERENCE_MODELS_SEGMENTATION_ARCHITECTURES = ("yolov5", "yolov8", "yolov11", "yolo26")
# Architectures whose inference-models segmentation classes read output0 as end-to-end rows whatever the package's
# ``post_processing`` says (``models/yolo26/yolo26_instance_segmentation_onnx.py``).
END_TO_END_ARCHITECTURES = ("yolo26",)
# A family architecture with an optional size and task suffix: inference-models' ``yolov8``, Inference's model
# types ``yolov8n-seg``, ``yolov11s``, ``yolo26m-seg``, ``yolov5-seg``, the YOLOv9 ``yolov9c-seg``, YOLOv5u ...
_ARCHITECTURE_PATTERN = re.compile(
    r"(?P<family>yolov5|yolov8|yolov9|yolov10|yolov11|yolo11|yolov12|yolo12|yolo26)[a-z]{0,2}(?:-seg)?"
)


def family_architecture(name: str | None) -> str | None:
    """The generation an architecture or model type names (``yolov8n-seg`` -> ``yolov8``), else ``None``.

    Args:
        name: a ``model_architecture`` (inference-models), ``modelArchitecture`` (Roboflow) or ``model_type``
            (Inference), case-insensitive.

    Example:
        >>> family_architecture("yolo26n-seg"), family_architecture("YOLOv8"), family_architecture("yolov8n-pose")
        ('yolo26', 'yolov8', None)
    """
    match = _ARCHITECTURE_PATTERN.fullmatch((name or "").strip().lower())
    return match.group("family") if match else None
