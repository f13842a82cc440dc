"""The Workflows engine's names the block uses, from wherever the installed Inference release keeps them.

Inference 1.6.1 moved the engine out of ``inference-core`` into the ``roboflow-workflows`` distribution (package
``roboflow_workflows``); from then on ``inference.core.workflows`` is a legacy alias of it. Before 1.6.1 the engine
is ``inference.core.workflows`` itself. The block imports from here, so it loads on both sides of the split; the
Inference releases it is tested with are in the README's "Compatibility" table.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

# Where the engine lives: its own distribution (Inference >= 1.6.1), then inside inference-core (Inference < 1.6.1).
ENGINE_PACKAGES = ("roboflow_workflows", "inference.core.workflows")

# Module (relative to the engine package) -> the names of it that this package uses.
_NAMES = {
    "core_steps.common.utils": ("attach_parents_coordinates_to_sv_detections",),
    "execution_engine.constants": (
        "DETECTION_ID_KEY",
        "IMAGE_DIMENSIONS_KEY",
        "INFERENCE_ID_KEY",
        "PARENT_ID_KEY",
        "PREDICTION_TYPE_KEY",
        "RLE_MASK_KEY_IN_SV_DETECTIONS",
    ),
    "execution_engine.entities.base": ("Batch", "OutputDefinition", "WorkflowImageData"),
    "execution_engine.entities.types": (
        "BOOLEAN_KIND",
        "FLOAT_ZERO_TO_ONE_KIND",
        "IMAGE_KIND",
        "INFERENCE_ID_KIND",
        "INSTANCE_SEGMENTATION_PREDICTION_KIND",
        "INTEGER_KIND",
        "LIST_OF_VALUES_KIND",
        "RLE_INSTANCE_SEGMENTATION_PREDICTION_KIND",
        "ROBOFLOW_API_KEY_KIND",
        "ROBOFLOW_MODEL_ID_KIND",
        "SECRET_KIND",
        "STRING_KIND",
        "FloatZeroToOne",
        "ImageInputField",
        "Selector",
    ),
    "prototypes.block": ("BlockResult", "WorkflowBlock", "WorkflowBlockManifest"),
}


def find_engine_package() -> str:
    """The importable engine package of :data:`ENGINE_PACKAGES`; raises ``ModuleNotFoundError`` when none is."""
    for package in ENGINE_PACKAGES:
        try:
            if importlib.util.find_spec(package) is not None:
                return package
        except ModuleNotFoundError:  # a parent (inference, inference.core) is missing
            continue
    raise ModuleNotFoundError(
        "No Workflows engine: neither roboflow_workflows nor inference.core.workflows can be imported "
        "(pip install 'workflows-yolov5-seg[inference]')",
        name="roboflow_workflows",
    )


ENGINE_PACKAGE = find_engine_package()


def engine_module(relative: str) -> ModuleType:
    """The engine's module ``relative`` (e.g. ``execution_engine.core``), e.g. ``roboflow_workflows.<relative>``."""
    return importlib.import_module(f"{ENGINE_PACKAGE}.{relative}")


for _relative, _names in _NAMES.items():
    _module = engine_module(_relative)
    globals().update({_name: getattr(_module, _name) for _name in _names})

__all__ = [
    "ENGINE_PACKAGE",
    "ENGINE_PACKAGES",
    "engine_module",
    "find_engine_package",
    *(name for names in _NAMES.values() for name in names),
]
