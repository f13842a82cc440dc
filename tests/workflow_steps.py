"""Core-block steps that several workflow tests chain after the segmentation step."""

from __future__ import annotations


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
