"""The demo: the bundled model segments the bundled scene through the real Workflows Execution Engine.

Writes ``annotated.jpg`` (masks and labels drawn by Roboflow's core visualisation blocks) and ``result.json`` (the
serialised workflow output) into the output folder.
"""

from __future__ import annotations

import base64
import json
from importlib import resources
from pathlib import Path

import cv2

from workflows_yolov5_seg import settings
from workflows_yolov5_seg.errors import MissingDependencyError

ASSETS = resources.files("workflows_yolov5_seg") / "assets"
DEMO_MODEL = "shapes-yolov5n-seg-320.onnx"
# The same model quantized to int8 (workflows-yolov5-seg quantize; its speed and accuracy: docs/quantization.md).
DEMO_MODEL_INT8 = "shapes-yolov5n-seg-320-int8.onnx"
DEMO_IMAGE = "demo-scene.jpg"
DEMO_WORKFLOW = "demo_workflow.json"


def run_demo(output_dir: Path, image_path: Path | None = None, model: str | None = None, int8: bool = False) -> dict:
    """Runs the demo workflow and writes its outputs.

    Args:
        output_dir: where ``annotated.jpg`` and ``result.json`` are written.
        image_path: an image to use instead of the bundled scene.
        model: a model to use instead of the bundled one.
        int8: use the bundled model's int8 variant (when ``model`` is not given).

    Returns:
        The serialised workflow result of the image.
    """
    settings.register_plugin()
    try:
        from workflows_yolov5_seg.workflows_engine import engine_module

        ExecutionEngine = engine_module("execution_engine.core").ExecutionEngine
    except ImportError as error:
        raise MissingDependencyError("inference-core", "inference", "The demo workflow") from error
    bundled = DEMO_MODEL_INT8 if int8 else DEMO_MODEL
    with resources.as_file(ASSETS / bundled) as bundled_model, resources.as_file(ASSETS / DEMO_IMAGE) as scene:
        image = cv2.imread(str(image_path or scene))
        if image is None:
            raise FileNotFoundError(f"Could not read the image '{image_path or scene}'.")
        definition = json.loads((ASSETS / DEMO_WORKFLOW).read_text(encoding="utf-8"))
        engine = ExecutionEngine.init(
            workflow_definition=definition,
            init_parameters={"workflows_core.model_manager": None, "workflows_core.api_key": None},
        )
        result = engine.run(
            runtime_parameters={"image": image, "model": model or str(bundled_model)}, serialize_results=True
        )[0]
    output_dir.mkdir(parents=True, exist_ok=True)
    annotated = result.pop("annotated_image")
    (output_dir / "annotated.jpg").write_bytes(base64.b64decode(annotated["value"]))
    (output_dir / "result.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    return result


def summary(result: dict) -> str:
    """``3 circle, 2 ring`` for the demo result's predictions (``nothing`` when there are none)."""
    counts: dict[str, int] = {}
    for prediction in result["predictions"]["predictions"]:
        counts[prediction["class"]] = counts.get(prediction["class"], 0) + 1
    return ", ".join(f"{count} {name}" for name, count in sorted(counts.items())) or "nothing"
