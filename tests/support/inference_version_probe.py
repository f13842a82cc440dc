"""Exercises the plugin against whatever Inference release the running interpreter has; prints one JSON object.

Run by ``tests/suites/test_inference_versions.py`` as ``python -m support.inference_version_probe`` from ``tests/``,
in a venv with the oldest supported Inference release and in the test environment (the newest), whose outputs must
agree. It needs this package (installed, or on ``PYTHONPATH``), Inference, onnxruntime and ``support.workflows``,
nothing else of the test suite. ``--serve`` also builds the HTTP app the way ``workflows-yolov5-seg serve`` does and
runs the workflows through ``POST /workflows/run``.

What it reports: the installed versions and the engine's version, the plugin's blocks as the blocks loader and the
describe handler list them, and the results of real workflow runs (the bundled model on the bundled scene) with
dense, RLE and compact masks, with the volatile parts (uuids, timings, images) left out.
"""

from __future__ import annotations

import os

os.environ["WORKFLOWS_PLUGINS"] = "workflows_yolov5_seg"  # before Inference reads it (at import)
os.environ.setdefault("METRICS_ENABLED", "False")
os.environ.setdefault("DISABLE_VERSION_CHECK", "True")

import argparse  # noqa: E402
import base64  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from importlib import metadata  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import cv2  # noqa: E402

import workflows_yolov5_seg  # noqa: E402
from workflows_yolov5_seg.workflows_engine import ENGINE_PACKAGE, engine_module  # noqa: E402

from support.workflows import BLOCK_TYPE, STEP, mask_visualization_step, workflow  # noqa: E402

ASSETS = Path(workflows_yolov5_seg.__file__).parent / "assets"
MODEL = str(ASSETS / "shapes-yolov5n-seg-320.onnx")
SCENE = ASSETS / "demo-scene.jpg"
DISTRIBUTIONS = ("inference-core", "roboflow-workflows", "inference-sdk", "supervision", "numpy", "pydantic")


def variant(visualise: bool = True, **fields: str) -> dict[str, Any]:
    """The block on the ONNX Runtime backend with ``fields``, then Roboflow's mask visualisation reading its masks."""
    if not visualise:
        return workflow(step={"backend": "onnx", **fields})
    return workflow(
        mask_visualization_step(),
        step={"backend": "onnx", **fields},
        outputs={"predictions": f"$steps.{STEP}.predictions", "annotated_image": "$steps.vis.image"},
    )


VARIANTS = {
    "dense": variant(),
    "rle": variant(mask_format="rle"),
    "compact": variant(mask_storage="compact"),
    "compact_rle": variant(visualise=False, mask_format="rle", mask_storage="compact"),
}


def summary(result: dict[str, Any]) -> dict[str, Any]:
    """The serialised workflow output without its volatile parts (ids, the image)."""
    predictions = result["predictions"]
    annotated = result.get("annotated_image")
    return {
        "image": predictions["image"],
        "predictions": [
            {
                "class": p["class"],
                "class_id": p["class_id"],
                "confidence": p["confidence"],
                "box": [p["x"], p["y"], p["width"], p["height"]],
                "points": [[point["x"], point["y"]] for point in p.get("points", [])],
                "rle_mask": p.get("rle_mask"),
            }
            for p in predictions["predictions"]
        ],
        "annotated_image_bytes": len(base64.b64decode(annotated["value"])) if annotated else None,
    }


def run_variants(run: Any) -> dict[str, Any]:
    """``run(definition) -> serialised result``, for each variant; a failure is reported by its type and message."""
    results: dict[str, Any] = {}
    for name, definition in VARIANTS.items():
        try:
            results[name] = summary(run(definition))
        except Exception as error:  # reported, then judged by the test
            cause = error.__cause__ or error.__context__
            results[name] = {
                "error": type(error).__name__,
                "message": str(error),
                "cause": type(cause).__name__ if cause else None,
            }
    return results


def engine_runs() -> dict[str, Any]:
    execution_engine = engine_module("execution_engine.core").ExecutionEngine
    image = cv2.imread(str(SCENE))

    def run(definition: dict[str, Any]) -> dict[str, Any]:
        engine = execution_engine.init(
            workflow_definition=definition,
            init_parameters={"workflows_core.model_manager": None, "workflows_core.api_key": None},
        )
        return engine.run(runtime_parameters={"image": image, "model": MODEL}, serialize_results=True)[0]

    return run_variants(run)


def blocks() -> dict[str, Any]:
    loader = engine_module("execution_engine.introspection.blocks_loader")
    loaded = [
        {"source": b.block_source, "class": b.block_class.__name__, "identifier": b.identifier}
        for b in loader.load_workflow_blocks()
        if b.block_source == "workflows_yolov5_seg"
    ]
    from inference.core.interfaces.http.handlers.workflows import handle_describe_workflows_blocks_request

    response = json.loads(handle_describe_workflows_blocks_request().model_dump_json(by_alias=True))
    described = [
        {
            "type": b["manifest_type_identifier"],
            "source": b["block_source"],
            "execution_engine_compatibility": b["execution_engine_compatibility"],
            "inputs": sorted(b["block_schema"]["properties"]),
            "outputs": {o["name"]: [k["name"] for k in o["kind"]] for o in b["outputs_manifest"]},
        }
        for b in response["blocks"]
        if b["block_source"] == "workflows_yolov5_seg"
    ]
    return {"loaded": loaded, "described": described}


def server_runs() -> dict[str, Any]:
    from starlette.testclient import TestClient

    from workflows_yolov5_seg.server import create_app

    # Served, local model paths must lie in the model roots: the bundled model's folder.
    os.environ["WORKFLOWS_YOLOV5_SEG_MODEL_ROOTS"] = str(ASSETS)
    encoded = base64.b64encode(SCENE.read_bytes()).decode("ascii")
    with TestClient(create_app()) as client:
        describe = client.post("/workflows/blocks/describe", json={})
        describe.raise_for_status()
        described = [b["manifest_type_identifier"] for b in describe.json()["blocks"]]

        def run(definition: dict[str, Any]) -> dict[str, Any]:
            response = client.post(
                "/workflows/run",
                json={
                    "specification": definition,
                    "inputs": {"image": {"type": "base64", "value": encoded}, "model": MODEL},
                },
            )
            if response.status_code != 200:
                raise RuntimeError(f"HTTP {response.status_code}: {response.text[:2000]}")
            return response.json()["outputs"][0]

        # A caller's mistake is answered 4xx with the block's message (served_errors.py), not 500.
        missing = client.post(
            "/workflows/run",
            json={
                "specification": variant(visualise=False),
                "inputs": {"image": {"type": "base64", "value": encoded}, "model": str(ASSETS / "missing.onnx")},
            },
        )
        return {
            "described": BLOCK_TYPE in described,
            "runs": run_variants(run),
            "missing_model": {"status": missing.status_code, "names_the_model": "missing.onnx" in missing.text},
        }


def versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name in DISTRIBUTIONS:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", action="store_true", help="also run the workflows through the HTTP app")
    arguments = parser.parse_args()
    report: dict[str, Any] = {
        "python": sys.version.split()[0],
        "versions": versions(),
        "engine_package": ENGINE_PACKAGE,
        "engine_version": str(engine_module("execution_engine.v1.core").EXECUTION_ENGINE_V1_VERSION),
        "package": workflows_yolov5_seg.__file__,
        "blocks": blocks(),
        "engine": engine_runs(),
    }
    if arguments.serve:
        report["server"] = server_runs()
    print(json.dumps(report))


if __name__ == "__main__":
    main()
