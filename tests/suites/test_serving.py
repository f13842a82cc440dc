"""End to end against the real Inference HTTP server process (``workflows-yolov5-seg serve``), with the SDK client.

One server process serves the whole session (see ``support.server_fixture.inference_server``); every served result is
compared with the in-process ExecutionEngine's result for the same workflow and images. The server module's own
cases (no server process) are in tests/test_server.py.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from support.models import make_two_box_model
from support.onnx_graphs import make_detection_only_onnx
from support.paths import DEMO_IMAGE, REPOSITORY, TRAINED_MODEL
from support.required import require_file, require_module
from support.server_fixture import (
    ServerProcess,
    assert_same_predictions,
    decode_image,
    read_image,
    run_in_process,
)
from support.workflows import BLOCK_TYPE, class_filter_step, dynamic_crop_step, mask_visualization_step
from support.workflows import workflow as build_workflow

requests = require_module("requests", "requests (the inference extra)")
require_module("inference_sdk", "the Inference SDK (the inference extra)")
require_module("uvicorn", "uvicorn (the inference extra)")
require_module("fastapi", "FastAPI (the inference extra)")

# confidence, class_filter and mask_format from $inputs
PARAMETERS = {"confidence": 0.4, "class_filter": None, "mask_format": "dense"}


def workflow(*extra_steps: dict, step: dict | None = None, outputs: dict[str, str] | None = None) -> dict:
    """The segmentation step reading PARAMETERS from $inputs; outputs its predictions and model id by default."""
    outputs = outputs or {"predictions": "$steps.seg.predictions", "model_id": "$steps.seg.model_id"}
    return build_workflow(*extra_steps, parameters=PARAMETERS, step=step, outputs=outputs)


def run_served(server: ServerProcess, definition: dict, images: dict[str, Any], **parameters: Any) -> list[dict]:
    return server.client().run_workflow(specification=definition, images=images, parameters=parameters)


def post_run(server: ServerProcess, definition: dict, image: Path, **parameters: Any) -> requests.Response:
    """``POST /workflows/run`` without the SDK, to see status codes and error bodies."""
    payload = {
        "specification": definition,
        "inputs": {
            "image": {"type": "base64", "value": base64.b64encode(image.read_bytes()).decode("ascii")},
            **parameters,
        },
    }
    return requests.post(f"{server.url}/workflows/run", json=payload, timeout=120)


def error_text(response: requests.Response) -> str:
    try:
        return json.dumps(response.json())
    except ValueError:
        return response.text


# --- the real server --------------------------------------------------------------------------------------------------


@pytest.mark.server
def test_landing_page_and_info_are_served(inference_server: ServerProcess) -> None:
    assert requests.get(f"{inference_server.url}/info", timeout=10).json()["name"] == "Roboflow Inference Server"
    assert "workflows-yolov5-seg" in requests.get(f"{inference_server.url}/", timeout=10).text


@pytest.mark.server
def test_describe_lists_the_block_with_schema_and_outputs(inference_server: ServerProcess) -> None:
    response = requests.post(f"{inference_server.url}/workflows/blocks/describe", json={}, timeout=120)
    assert response.status_code == 200, error_text(response)
    blocks = [b for b in response.json()["blocks"] if b["manifest_type_identifier"] == BLOCK_TYPE]
    assert len(blocks) == 1
    block = blocks[0]
    assert block["block_source"] == "workflows_yolov5_seg"
    properties = block["block_schema"]["properties"]
    for name in ("images", "model", "confidence", "iou_threshold", "class_filter", "max_detections", "backend"):
        assert name in properties
    assert properties["mask_format"]["default"] == "dense"
    assert set(block["block_schema"]["required"]) >= {"images", "model"}
    outputs = {o["name"]: [k["name"] for k in o["kind"]] for o in block["outputs_manifest"]}
    assert outputs == {
        "inference_id": ["inference_id"],
        "predictions": ["rle_instance_segmentation_prediction", "instance_segmentation_prediction"],
        "model_id": ["roboflow_model_id"],
    }
    # The committed description is exactly what the server returns (the generator uses the server's handler). It
    # embeds Inference's kind documentation, so it is compared on the Inference versions it was generated for.
    from importlib import metadata

    from workflows_yolov5_seg.describe import DESCRIPTIONS_GENERATED_WITH, block_file_name

    committed = REPOSITORY / "blocks" / block_file_name(BLOCK_TYPE)
    assert committed.is_file(), f"{committed} is missing; generate it: workflows-yolov5-seg generate"
    if metadata.version("inference-core") == DESCRIPTIONS_GENERATED_WITH:
        assert block == json.loads(committed.read_text(encoding="utf-8")), (
            f"{committed} differs from the server's description; regenerate: workflows-yolov5-seg generate"
        )


@pytest.mark.server
def test_single_image_equals_in_process_result(
    inference_server: ServerProcess, ring_model: Path, test_images: dict[str, Path]
) -> None:
    image = test_images["square"]
    served = run_served(inference_server, workflow(), {"image": str(image)}, model=str(ring_model))
    local = run_in_process(workflow(), {"image": read_image(image), "model": str(ring_model)})
    assert len(served) == 1
    assert served[0]["model_id"] == str(ring_model)
    assert [p["class"] for p in served[0]["predictions"]["predictions"]] == ["ring", "blob"]
    assert all(p["points"] for p in served[0]["predictions"]["predictions"])
    assert_same_predictions(served[0]["predictions"], local[0]["predictions"])


@pytest.mark.server
def test_batch_of_images_of_different_sizes(
    inference_server: ServerProcess, ring_model: Path, test_images: dict[str, Path]
) -> None:
    paths = [test_images["square"], test_images["wide"], test_images["tall"]]
    served = run_served(inference_server, workflow(), {"image": [str(p) for p in paths]}, model=str(ring_model))
    local = run_in_process(workflow(), {"image": [read_image(p) for p in paths], "model": str(ring_model)})
    assert len(served) == len(paths) == len(local)
    for path, ours, theirs in zip(paths, served, local, strict=True):
        height, width = read_image(path).shape[:2]
        assert ours["predictions"]["image"] == {"width": width, "height": height}
        assert ours["predictions"]["predictions"], f"no detections for {path.name}: equal answers would prove nothing"
        assert_same_predictions(ours["predictions"], theirs["predictions"])


@pytest.mark.server
def test_parameters_passed_as_inputs(
    inference_server: ServerProcess, ring_model: Path, test_images: dict[str, Path]
) -> None:
    image = str(test_images["square"])
    strict = run_served(inference_server, workflow(), {"image": image}, model=str(ring_model), confidence=0.8)
    assert [p["class"] for p in strict[0]["predictions"]["predictions"]] == ["ring"]
    filtered = run_served(inference_server, workflow(), {"image": image}, model=str(ring_model), class_filter=["blob"])
    assert [p["class"] for p in filtered[0]["predictions"]["predictions"]] == ["blob"]


@pytest.mark.server
def test_rle_over_http_decodes_to_the_exact_masks_holes_included(
    inference_server: ServerProcess, ring_model: Path, test_images: dict[str, Path]
) -> None:
    mask_utils = require_module("pycocotools.mask", "pycocotools (the test extra)")
    image = test_images["wide"]
    served = run_served(inference_server, workflow(), {"image": str(image)}, model=str(ring_model), mask_format="rle")
    dense = run_in_process(workflow(), {"image": read_image(image), "model": str(ring_model)}, serialize_results=False)[
        0
    ]["predictions"]
    predictions = served[0]["predictions"]["predictions"]
    assert [p["class"] for p in predictions] == ["ring", "blob", "empty"]  # the empty mask is kept, too
    for prediction, mask in zip(predictions, dense.mask, strict=True):
        assert "points" not in prediction
        np.testing.assert_array_equal(mask_utils.decode(prediction["rle_mask"]).astype(bool), mask)
    ring = mask_utils.decode(predictions[0]["rle_mask"]).astype(bool)
    assert ring.any() and not ring[120, 200], "the ring's hole is in the served mask"


@pytest.mark.server
def test_chained_with_core_blocks(
    inference_server: ServerProcess, ring_model: Path, test_images: dict[str, Path]
) -> None:
    keep_blobs = class_filter_step(["blob"])
    visualize = mask_visualization_step()
    crop = dynamic_crop_step()
    definition = workflow(
        keep_blobs,
        visualize,
        crop,
        outputs={"filtered": "$steps.filter.predictions", "vis": "$steps.vis.image", "crops": "$steps.crop.crops"},
    )
    image = test_images["square"]
    served = run_served(inference_server, definition, {"image": str(image)}, model=str(ring_model))[0]
    local = run_in_process(definition, {"image": read_image(image), "model": str(ring_model)})[0]
    assert [p["class"] for p in served["filtered"]["predictions"]] == ["blob"]
    assert_same_predictions(served["filtered"], local["filtered"])
    visualized = decode_image(served["vis"])
    assert visualized.shape == (320, 320, 3)
    assert len(served["crops"]) == 1
    crop_image = decode_image(served["crops"][0])
    assert crop_image.shape == (84, 84, 3)


@pytest.mark.server
def test_literal_invalid_parameter_is_a_4xx_naming_the_field(
    inference_server: ServerProcess, ring_model: Path, test_images: dict[str, Path]
) -> None:
    for field, value in (("confidence", 2.0), ("mask_format", "polygons"), ("max_detections", 0)):
        definition = workflow(step={field: value})
        response = post_run(inference_server, definition, test_images["square"], model=str(ring_model))
        assert 400 <= response.status_code < 500, error_text(response)
        assert field in error_text(response)
        inference_server.assert_serving()


@pytest.mark.server
def test_invalid_parameter_input_is_a_4xx_naming_the_field(
    inference_server: ServerProcess, ring_model: Path, test_images: dict[str, Path]
) -> None:
    response = post_run(inference_server, workflow(), test_images["square"], model=str(ring_model), confidence=2.0)
    assert 400 <= response.status_code < 500, error_text(response)
    assert "confidence" in error_text(response)
    inference_server.assert_serving()


@pytest.mark.server
def test_missing_model_is_a_404_naming_the_path(
    inference_server: ServerProcess, ring_model: Path, test_images: dict[str, Path], tmp_path: Path
) -> None:
    missing = tmp_path / "no-such-model.onnx"
    response = post_run(inference_server, workflow(), test_images["square"], model=str(missing))
    # Inference's step-error handler turns the block's ModelNotFoundError into a 404 (other step errors are 500s).
    assert response.status_code == 404, error_text(response)
    assert str(missing) in response.json()["message"]
    inference_server.assert_serving()
    # ...and the next request with a good model works.
    served = run_served(inference_server, workflow(), {"image": str(test_images["square"])}, model=str(ring_model))
    assert len(served[0]["predictions"]["predictions"]) == 2


@pytest.mark.server
def test_a_file_that_is_not_a_model_is_a_400_naming_the_cause(
    inference_server: ServerProcess, test_images: dict[str, Path], tmp_path: Path
) -> None:
    not_onnx = tmp_path / "not-a-model.onnx"
    not_onnx.write_text("this is not an ONNX file", encoding="utf-8")
    response = post_run(inference_server, workflow(), test_images["square"], model=str(not_onnx))
    # The caller named a file that is no model: a 400 (served_errors.py), not a server fault.
    assert response.status_code == 400, error_text(response)
    assert "could not be loaded as an ONNX model" in error_text(response)
    assert str(not_onnx) in error_text(response)
    inference_server.assert_serving()


def _text_file(tmp: Path) -> str:
    (tmp / "not-a-model.onnx").write_text("this is not an ONNX file", encoding="utf-8")
    return str(tmp / "not-a-model.onnx")


def _pickle(tmp: Path) -> str:
    (tmp / "best.pt").write_bytes(b"\x80\x04K\x01.")
    return str(tmp / "best.pt")


def _fifo(tmp: Path) -> str:
    os.mkfifo(tmp / "pipe.onnx")
    return str(tmp / "pipe.onnx")


def _symlink_loop(tmp: Path) -> str:
    (tmp / "a.onnx").symlink_to(tmp / "b.onnx")
    (tmp / "b.onnx").symlink_to(tmp / "a.onnx")
    return str(tmp / "a.onnx")


def _mismatched_class_names(tmp: Path) -> str:
    make_two_box_model(tmp / "m.onnx")
    (tmp / "class_names.txt").write_text("one\ntwo\n", encoding="utf-8")
    return str(tmp / "m.onnx")


def _empty_folder(tmp: Path) -> str:
    (tmp / "package").mkdir()
    return str(tmp / "package")


# (id, the model named by the request, its status, words its message must hold). The server's model roots are the
# test session's temporary folders (where every file below is) and the repository's model folders.
BAD_MODELS_OVER_HTTP = [
    ("missing-file", lambda tmp: str(tmp / "missing.onnx"), 404, ("missing.onnx", "does not exist")),
    ("folder-without-weights", _empty_folder, 404, ("holds no ONNX weights",)),
    ("not-onnx", _text_file, 400, ("not-a-model.onnx", "could not be loaded as an ONNX model")),
    (
        "detection-model",
        lambda tmp: str(make_detection_only_onnx(tmp / "det.onnx")),
        400,
        ("not a YOLO segmentation model",),
    ),
    ("class-names-mismatch", _mismatched_class_names, 400, ("predicts 3 classes", "2 class names")),
    ("pytorch-pickle", _pickle, 400, ("best.pt", "pickle", "Export it to ONNX")),
    ("fifo", _fifo, 400, ("pipe.onnx", "named pipe", "not a model file")),
    ("symlink-loop", _symlink_loop, 400, ("a.onnx", "cannot be resolved", "symbolic link loop")),
    ("device-outside-the-roots", lambda tmp: "/dev/zero", 400, ("outside the allowed model roots",)),
    ("file-outside-the-roots", lambda tmp: "/etc/hostname", 400, ("outside the allowed model roots",)),
    ("roboflow-id-without-key", lambda tmp: "some-project/3", 401, ("needs an API key", "api_key")),
]


@pytest.mark.server
@pytest.mark.parametrize(
    ("model", "status", "words"),
    [case[1:] for case in BAD_MODELS_OVER_HTTP],
    ids=[case[0] for case in BAD_MODELS_OVER_HTTP],
)
def test_each_bad_model_over_http_has_its_status_and_message(
    model: Callable[[Path], str],
    status: int,
    words: tuple[str, ...],
    inference_server: ServerProcess,
    ring_model: Path,
    test_images: dict[str, Path],
    tmp_path: Path,
) -> None:
    """Caller mistakes are 4xx with our message (served_errors.py); the server keeps serving."""
    response = post_run(inference_server, workflow(), test_images["square"], model=model(tmp_path))
    assert response.status_code == status, error_text(response)
    assert all(word in error_text(response) for word in words), error_text(response)
    assert "root:" not in error_text(response)  # no file content is echoed
    inference_server.assert_serving()


@pytest.mark.server
def test_a_backend_the_server_lacks_is_a_server_fault(
    inference_server: ServerProcess, ring_model: Path, test_images: dict[str, Path]
) -> None:
    """TensorRT is not installed on this server: that is the server's limit, a 5xx naming what to install."""
    response = post_run(
        inference_server, workflow(step={"backend": "trt"}), test_images["square"], model=str(ring_model)
    )
    assert response.status_code == 500, error_text(response)
    assert "tensorrt" in error_text(response).lower()
    inference_server.assert_serving()


@pytest.mark.server
def test_sdk_reports_errors_with_status_and_message(
    inference_server: ServerProcess, test_images: dict[str, Path], tmp_path: Path
) -> None:
    from inference_sdk.http.errors import HTTPCallErrorError

    missing = tmp_path / "missing.onnx"
    with pytest.raises(HTTPCallErrorError) as caught:
        run_served(inference_server, workflow(), {"image": str(test_images["square"])}, model=str(missing))
    assert caught.value.status_code == 404
    assert str(missing) in caught.value.api_message
    inference_server.assert_serving()


@pytest.mark.server
def test_trained_model_served_equals_in_process(inference_server: ServerProcess, tmp_path: Path) -> None:
    require_file(TRAINED_MODEL, "the bundled trained model")
    mask_utils = require_module("pycocotools.mask", "pycocotools (the test extra)")
    image = read_image(DEMO_IMAGE)
    png = tmp_path / "demo-scene.png"  # lossless, so both sides decode the same pixels
    cv2.imwrite(str(png), image)
    model = str(TRAINED_MODEL)
    served = run_served(inference_server, workflow(), {"image": str(png)}, model=model)[0]
    local = run_in_process(workflow(), {"image": image, "model": model})[0]
    assert served["predictions"]["predictions"], "the trained model finds shapes in the demo scene"
    assert_same_predictions(served["predictions"], local["predictions"])
    served_rle = run_served(inference_server, workflow(), {"image": str(png)}, model=model, mask_format="rle")[0]
    dense = run_in_process(workflow(), {"image": image, "model": model}, serialize_results=False)[0]["predictions"]
    predictions = served_rle["predictions"]["predictions"]
    assert len(predictions) == len(dense)
    for prediction, mask in zip(predictions, dense.mask, strict=True):
        np.testing.assert_array_equal(mask_utils.decode(prediction["rle_mask"]).astype(bool), np.asarray(mask))
