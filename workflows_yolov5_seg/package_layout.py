"""File names of the model package layouts: inference-models' (ONNX or TensorRT) and the legacy Inference folder.

Kept apart from :mod:`workflows_yolov5_seg.model_package` so that the downloader (:mod:`.roboflow`) names the same
files without importing the pre-processing stack.
"""

from __future__ import annotations

CLASS_NAMES_FILE = "class_names.txt"
INFERENCE_CONFIG_FILE = "inference_config.json"
MODEL_CONFIG_FILE = "model_config.json"
PACKAGE_WEIGHTS_FILE = "weights.onnx"
TRT_ENGINE_FILE = "engine.plan"
TRT_CONFIG_FILE = "trt_config.json"
LEGACY_ENVIRONMENT_FILE = "environment.json"
