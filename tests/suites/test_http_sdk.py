"""HTTP with ``inference-sdk``: batches (several images in one request) and workflows defined in local JSON files.

``inference-sdk`` 1.8 takes a workflow as a dict (``InferenceHTTPClient.run_workflow(specification=...)``) and has no
call that reads a file; the file path of Inference's tooling is its CLI (``inference workflows process-image`` /
``process-images-directory --processing_target api --workflow_spec FILE.json``, shipped with inference-core), which
reads the JSON and sends it with that same SDK call, one request per image. Both routes run here against the real
server (``server_fixture.inference_server``) with every workflow in ``examples/`` and the bundled trained model on
generated shapes scenes, and every served result is compared with the in-process Execution Engine's result for the
same image alone.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType
from typing import Any

import cv2
import numpy as np
import pytest

from tools.synthetic_shapes import generate_scene

from support.required import require_module
from support.server_fixture import (
    EXAMPLES,
    ServerProcess,
    assert_same_outputs,
    read_image,
    run_in_process,
)

EXAMPLE_FILES = sorted(EXAMPLES.glob("*.json"))
SCENES = {"scene-320x320": (0, (320, 320)), "scene-480x320": (1, (480, 320)), "scene-300x427": (2, (300, 427))}


def require(module: str, reason: str) -> ModuleType:
    """The module; a missing one skips the tests locally and fails them in CI (``CI=true``: support.required)."""
    return require_module(module, reason.removeprefix("needs "))


@pytest.fixture(scope="module")
def sdk() -> ModuleType:
    require("roboflow_workflows.execution_engine.core", "needs the Workflows engine (the inference extra)")
    return require("inference_sdk", "needs inference-sdk (the inference extra)")


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Generated shapes scenes of three sizes as PNG (lossless: the server decodes exactly these pixels)."""
    folder = tmp_path_factory.mktemp("scenes")
    paths = []
    for name, (seed, size) in SCENES.items():
        image, instances = generate_scene(seed, size)
        assert instances
        paths.append(folder / f"{name}.png")
        cv2.imwrite(str(paths[-1]), image)
    return paths


def declared_inputs(definition: dict) -> set[str]:
    return {i["name"] for i in definition["inputs"]}


def parameters_for(definition: dict, model: Path) -> dict[str, Any]:
    """The bundled model, RLE masks where the workflow takes ``mask_format``, and every class where it filters."""
    parameters: dict[str, Any] = {"model": str(model)}
    if "mask_format" in declared_inputs(definition):
        parameters["mask_format"] = "rle"
    if "classes" in declared_inputs(definition):
        parameters["classes"] = ["circle", "rectangle", "triangle", "star", "ring"]
    return parameters


def count_detections(result: dict) -> int:
    return sum(len(v["predictions"]) for v in result.values() if isinstance(v, dict) and "predictions" in v)


class RequestCounter:
    """Counts the SDK's workflow requests (its ``send_post_request``)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import inference_sdk.http.client as client_module

        self.urls: list[str] = []
        real = client_module.send_post_request

        def counting(*args: Any, **kwargs: Any) -> Any:  # noqa: ANN401
            self.urls.append(kwargs.get("url", args[0] if args else None))
            return real(*args, **kwargs)

        monkeypatch.setattr(client_module, "send_post_request", counting)


@pytest.mark.server
@pytest.mark.parametrize("example", EXAMPLE_FILES, ids=lambda p: p.stem)
def test_sdk_batch_from_a_workflow_file_is_one_request_equal_to_images_run_alone(
    example: Path,
    sdk: ModuleType,
    inference_server: ServerProcess,
    trained_model: Path,
    scenes: list[Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    definition = json.loads(example.read_text(encoding="utf-8"))
    parameters = parameters_for(definition, trained_model)
    requests = RequestCounter(monkeypatch)
    served = inference_server.client().run_workflow(
        specification=definition, images={"image": [str(p) for p in scenes]}, parameters=parameters
    )
    assert requests.urls == [f"{inference_server.url}/workflows/run"], "the whole batch goes in one request"
    assert len(served) == len(scenes), "one result per image, in order"
    for path, ours in zip(scenes, served, strict=True):
        image = read_image(path)
        alone = run_in_process(definition, {"image": image, **parameters})
        assert len(alone) == 1
        assert_same_outputs(ours, alone[0], path.name)
        assert count_detections(ours) > 0, f"{path.name}: the trained model finds shapes"
        predictions = ours["predictions"]
        assert predictions["image"] == {"width": image.shape[1], "height": image.shape[0]}
        if parameters.get("mask_format") == "rle":
            assert all("rle_mask" in p for p in predictions["predictions"])


@pytest.mark.server
def test_sdk_batch_rle_masks_decode_to_the_in_process_masks(
    sdk: ModuleType, inference_server: ServerProcess, trained_model: Path, scenes: list[Path]
) -> None:
    mask_utils = require("pycocotools.mask", "needs pycocotools (the test extra)")
    definition = json.loads((EXAMPLES / "video_mask_visualization.json").read_text(encoding="utf-8"))
    parameters = {"model": str(trained_model), "mask_format": "rle"}
    served = inference_server.client().run_workflow(
        specification=definition, images={"image": [str(p) for p in scenes]}, parameters=parameters
    )
    for path, ours in zip(scenes, served, strict=True):
        dense = run_in_process(definition, {"image": read_image(path), "model": str(trained_model)}, False)[0]
        masks = np.asarray(dense["predictions"].mask)
        predictions = ours["predictions"]["predictions"]
        assert len(predictions) == len(masks) > 0
        for prediction, mask in zip(predictions, masks, strict=True):
            np.testing.assert_array_equal(mask_utils.decode(prediction["rle_mask"]).astype(bool), mask)


def run_cli(arguments: list[str]) -> None:
    require("inference_cli.main", "needs Inference's CLI (inference-core, the inference extra)")
    from inference_cli.main import app
    from typer.testing import CliRunner

    outcome = CliRunner().invoke(app, ["workflows", *arguments, "--debug_mode"], catch_exceptions=False)
    assert outcome.exit_code == 0, outcome.output
    assert "Command failed" not in outcome.output, outcome.output


def cli_parameters(parameters: dict[str, Any], folder: Path) -> list[str]:
    """The workflow parameters as the CLI takes them: a JSON file (lists do not survive the command line)."""
    path = folder / "parameters.json"
    path.write_text(json.dumps(parameters), encoding="utf-8")
    return ["--workflow_params", str(path)]


@pytest.mark.server
@pytest.mark.parametrize("example", EXAMPLE_FILES, ids=lambda p: p.stem)
def test_cli_process_image_sends_the_workflow_file_to_the_server(
    example: Path,
    sdk: ModuleType,
    inference_server: ServerProcess,
    trained_model: Path,
    scenes: list[Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``inference workflows process-image --processing_target api --workflow_spec examples/X.json``."""
    for name in ("ROBOFLOW_API_KEY", "API_KEY"):
        monkeypatch.delenv(name, raising=False)
    definition = json.loads(example.read_text(encoding="utf-8"))
    parameters = parameters_for(definition, trained_model)
    image, out = scenes[1], tmp_path / "out"
    requests = RequestCounter(monkeypatch)
    run_cli(
        [
            "process-image", "--image_path", str(image), "--output_dir", str(out),
            "--processing_target", "api", "--api_url", inference_server.url, "--workflow_spec", str(example),
            *cli_parameters(parameters, tmp_path),
        ]
    )  # fmt: skip
    assert requests.urls == [f"{inference_server.url}/workflows/run"]
    result = json.loads((out / image.name / "results.json").read_text(encoding="utf-8"))
    alone = run_in_process(definition, {"image": read_image(image), **parameters})[0]
    assert_same_outputs(result, alone)
    assert count_detections(result) > 0
    image_outputs = [name for name, value in alone.items() if isinstance(value, dict) and value.get("type") == "base64"]
    for name in image_outputs:  # the CLI decodes each image output and writes it beside results.json
        written = cv2.imread(str(out / image.name / f"{name}.jpg"))
        assert written is not None and written.shape == read_image(image).shape, name


@pytest.mark.server
def test_cli_process_images_directory_with_a_workflow_file(
    sdk: ModuleType,
    inference_server: ServerProcess,
    trained_model: Path,
    scenes: list[Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``inference workflows process-images-directory --processing_target api --workflow_spec FILE``: one request
    per image, results aggregated into a JSONL file."""
    for name in ("ROBOFLOW_API_KEY", "API_KEY"):
        monkeypatch.delenv(name, raising=False)
    example = EXAMPLES / "segmentation_and_mask_visualization.json"
    definition = json.loads(example.read_text(encoding="utf-8"))
    parameters = parameters_for(definition, trained_model)
    requests = RequestCounter(monkeypatch)
    out = tmp_path / "out"
    run_cli(
        [
            "process-images-directory", "--input_directory", str(scenes[0].parent), "--output_dir", str(out),
            "--processing_target", "api", "--api_url", inference_server.url, "--workflow_spec", str(example),
            "--aggregation_format", "jsonl", "--threads", "2", *cli_parameters(parameters, tmp_path),
        ]
    )  # fmt: skip
    assert len(requests.urls) == len(scenes)
    for path in scenes:
        result = json.loads((out / path.name / "results.json").read_text(encoding="utf-8"))
        alone = run_in_process(definition, {"image": read_image(path), **parameters})[0]
        assert_same_outputs(result, alone, path.name)
        assert count_detections(result) > 0
    aggregated = list(out.glob("*.jsonl"))
    assert len(aggregated) == 1
    assert len(aggregated[0].read_text(encoding="utf-8").splitlines()) == len(scenes)
