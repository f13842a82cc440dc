"""The workflows in ``examples/``: valid, wired to ``$inputs``, run in-process and on the real server alike."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from support.paths import DEMO_IMAGE, EXAMPLES, TRAINED_MODEL
from support.required import require_file, require_module
from support.server_fixture import (
    ServerProcess,
    assert_same_outputs,
    decode_image,
    load_example,
    read_image,
    run_in_process,
)
from support.workflows import BLOCK_TYPE, init_engine

require_module("roboflow_workflows.execution_engine.core", "the Workflows engine")

VISUALIZATION = "segmentation_and_mask_visualization.json"
FILTER_CROP_COUNT = "segmentation_filter_crop_count.json"
EXAMPLE_NAMES = sorted(p.name for p in EXAMPLES.glob("*.json"))


def selectors(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value] if value.startswith("$") else []
    if isinstance(value, dict):
        return [s for v in value.values() for s in selectors(v)]
    if isinstance(value, list):
        return [s for v in value for s in selectors(v)]
    return []


def test_examples_folder_holds_the_documented_examples() -> None:
    assert {VISUALIZATION, FILTER_CROP_COUNT} <= set(EXAMPLE_NAMES)


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_example_is_wired_to_inputs(name: str) -> None:
    definition = load_example(name)
    declared = {i["name"] for i in definition["inputs"]}
    segmentation = [s for s in definition["steps"] if s["type"] == BLOCK_TYPE]
    assert len(segmentation) == 1
    assert segmentation[0]["images"] == "$inputs.image" and segmentation[0]["model"] == "$inputs.model"
    used = {s.split(".")[1] for s in selectors(definition["steps"]) if s.startswith("$inputs.")}
    assert used == declared, "every input is used and every $inputs reference is declared"
    steps = {s["name"] for s in definition["steps"]}
    for selector in selectors(definition):
        if selector.startswith("$steps."):
            assert selector.split(".")[1] in steps, selector


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_example_compiles_in_the_engine(name: str) -> None:
    init_engine(load_example(name))


def test_visualization_example_in_process(ring_model: Path, test_images: dict[str, Path]) -> None:
    image = read_image(test_images["wide"])
    result = run_in_process(load_example(VISUALIZATION), {"image": image, "model": str(ring_model)}, False)[0]
    assert result["predictions"].data["class_name"].tolist() == ["ring", "blob", "empty"]
    visualization = result["visualization"].numpy_image
    assert visualization.shape == image.shape and not np.array_equal(visualization, image)


def test_filter_crop_count_example_in_process(ring_model: Path, test_images: dict[str, Path]) -> None:
    image = read_image(test_images["square"])
    parameters = {"image": image, "model": str(ring_model), "classes": ["ring", "blob"]}
    result = run_in_process(load_example(FILTER_CROP_COUNT), parameters, False)[0]
    assert result["count"] == 2
    assert result["predictions"].data["class_name"].tolist() == ["ring", "blob"]
    assert [c.numpy_image.shape for c in result["crops"]] == [(240, 240, 3), (84, 84, 3)]
    default_classes = run_in_process(load_example(FILTER_CROP_COUNT), {"image": image, "model": str(ring_model)})[0]
    assert default_classes["count"] == 0, "the default class ('circle') is not one of the ring model's"


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_examples_run_on_the_bundled_model_and_image(name: str) -> None:
    require_file(TRAINED_MODEL, "the bundled trained model")
    image = read_image(DEMO_IMAGE)
    result = run_in_process(load_example(name), {"image": image, "model": str(TRAINED_MODEL)}, False)[0]
    if name == FILTER_CROP_COUNT:
        assert result["count"] == len(result["crops"]) == len(result["predictions"]) > 0
    elif name == VISUALIZATION:
        assert len(result["predictions"]) > 0


@pytest.mark.server
@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_example_on_the_server_equals_in_process(
    name: str, inference_server: ServerProcess, ring_model: Path, test_images: dict[str, Path]
) -> None:
    definition = load_example(name)
    image = test_images["tall"]
    parameters: dict[str, Any] = {"model": str(ring_model)}
    if name == FILTER_CROP_COUNT:
        parameters["classes"] = ["ring", "blob"]
    served = inference_server.client().run_workflow(
        specification=definition, images={"image": str(image)}, parameters=parameters
    )
    local = run_in_process(definition, {"image": read_image(image), **parameters})
    assert len(served) == len(local) == 1
    assert_same_outputs(served[0], local[0])
    if name == FILTER_CROP_COUNT:
        assert served[0]["count"] == 2 and len(served[0]["crops"]) == 2
    elif name == VISUALIZATION:
        assert decode_image(served[0]["visualization"]).shape == read_image(image).shape
        assert [p["class"] for p in served[0]["predictions"]["predictions"]] == ["ring", "blob"]


@pytest.mark.server
def test_visualization_example_over_http_with_rle(
    inference_server: ServerProcess, ring_model: Path, test_images: dict[str, Path]
) -> None:
    served = inference_server.client().run_workflow(
        specification=load_example(VISUALIZATION),
        images={"image": str(test_images["square"])},
        parameters={"model": str(ring_model), "mask_format": "rle"},
    )[0]
    predictions = served["predictions"]["predictions"]
    assert [p["class"] for p in predictions] == ["ring", "blob", "empty"]
    assert all("rle_mask" in p for p in predictions)
    json.dumps(served)  # plain JSON all the way
