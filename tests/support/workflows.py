"""The one builder of the workflow definitions tests run: the segmentation step, its ``$inputs`` and its outputs, and
the core-block steps tests chain after it. The product's example workflows (``examples/*.json``) are loaded as files.

    workflow()                                          # image + model -> $steps.seg.predictions
    workflow(parameters={"confidence": 0.4})            # the step reads confidence from $inputs (default 0.4)
    workflow(step={"mask_format": "rle"})               # a literal value in the step
    workflow(class_filter_step(["blob"]), outputs={"filtered": "$steps.filter.predictions"})
"""

from __future__ import annotations

from typing import Any

BLOCK_TYPE = "workflows_yolov5_seg/yolov5_instance_segmentation@v1"
STEP = "seg"


def segmentation_step(**fields: Any) -> dict:
    """The block's step ``seg`` on ``$inputs.image`` with ``$inputs.model``, plus ``fields``."""
    return {"type": BLOCK_TYPE, "name": STEP, "images": "$inputs.image", "model": "$inputs.model", **fields}


def workflow(
    *extra_steps: dict,
    parameters: dict[str, Any] | None = None,
    step: dict[str, Any] | None = None,
    outputs: dict[str, str] | None = None,
) -> dict:
    """A workflow definition: the segmentation step, then ``extra_steps``.

    Args:
        extra_steps: further steps (e.g. :func:`class_filter_step`).
        parameters: ``{name: default}``: a ``WorkflowParameter`` each, which the segmentation step's field of the same
            name reads (``"$inputs.<name>"``).
        step: literal fields of the segmentation step (they win over ``parameters``, which stay declared; a literal
            ``model`` drops the ``model`` input).
        outputs: ``{name: selector}`` (default: the step's predictions as ``predictions``).
    """
    parameters = parameters or {}
    segmentation = segmentation_step(**{**{name: f"$inputs.{name}" for name in parameters}, **(step or {})})
    inputs = [{"type": "WorkflowImage", "name": "image"}]
    if segmentation["model"] == "$inputs.model":  # not with a literal model
        inputs.append({"type": "WorkflowParameter", "name": "model"})
    inputs += [
        {"type": "WorkflowParameter", "name": name, "default_value": value} for name, value in parameters.items()
    ]
    outputs = outputs or {"predictions": f"$steps.{STEP}.predictions"}
    return {
        "version": "1.0",
        "inputs": inputs,
        "steps": [segmentation, *extra_steps],
        "outputs": [{"type": "JsonField", "name": name, "selector": selector} for name, selector in outputs.items()],
    }


def init_engine(definition: dict, **options: Any) -> Any:
    """The Workflows Execution Engine compiled for ``definition`` without Inference's model manager or an API key
    (``options``: e.g. ``max_concurrent_steps``)."""
    from roboflow_workflows.execution_engine.core import ExecutionEngine

    return ExecutionEngine.init(
        workflow_definition=definition,
        init_parameters={"workflows_core.model_manager": None, "workflows_core.api_key": None},
        **options,
    )


# --- core-block steps chained after the segmentation step ---------------------------------------------------------


def detections_filter_step(
    property_name: str,
    comparator: str,
    value: object,
    name: str = "filter",
    predictions: str = "$steps.seg.predictions",
) -> dict:
    """A ``roboflow_core/detections_filter@v1`` step keeping detections whose property compares true to ``value``."""
    return {
        "type": "roboflow_core/detections_filter@v1",
        "name": name,
        "predictions": predictions,
        "operations": [
            {
                "type": "DetectionsFilter",
                "filter_operation": {
                    "type": "StatementGroup",
                    "operator": "and",
                    "statements": [
                        {
                            "type": "BinaryStatement",
                            "left_operand": {
                                "type": "DynamicOperand",
                                "operand_name": "_",
                                "operations": [{"type": "ExtractDetectionProperty", "property_name": property_name}],
                            },
                            "comparator": {"type": comparator},
                            "right_operand": {"type": "StaticOperand", "value": value},
                        }
                    ],
                },
            }
        ],
    }


def class_filter_step(classes: list[str], name: str = "filter", predictions: str = "$steps.seg.predictions") -> dict:
    """A detections filter keeping the given class names."""
    return detections_filter_step("class_name", "in (Sequence)", classes, name, predictions)


def mask_visualization_step(predictions: str = "$steps.seg.predictions", name: str = "vis") -> dict:
    """A ``roboflow_core/mask_visualization@v1`` step drawing ``predictions`` on the input image."""
    return {
        "type": "roboflow_core/mask_visualization@v1",
        "name": name,
        "image": "$inputs.image",
        "predictions": predictions,
    }


def dynamic_crop_step(predictions: str = "$steps.filter.predictions", name: str = "crop") -> dict:
    """A ``roboflow_core/dynamic_crop@v1`` step cropping the input image to each of ``predictions``."""
    return {
        "type": "roboflow_core/dynamic_crop@v1",
        "name": name,
        "images": "$inputs.image",
        "predictions": predictions,
    }
