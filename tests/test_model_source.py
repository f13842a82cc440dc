"""The four model sources behind one ``model`` parameter, from plain Python and from a workflow JSON."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from workflows_yolov5_seg import model_cache, settings
from workflows_yolov5_seg.errors import (
    ModelNotFoundError,
    RoboflowAPIKeyMissingError,
    RoboflowUnauthorizedError,
    UntrustedModelError,
)
from workflows_yolov5_seg.layouts import ANCHOR_FREE, END_TO_END
from workflows_yolov5_seg.model import YOLOSegModel, YOLOv5SegModel
from workflows_yolov5_seg.model_cache import ModelCache
from workflows_yolov5_seg.model_source import (
    is_roboflow_model_id,
    model_source_kind,
    resolve_model,
)

from support.fake_roboflow_api import FakeModel, FakeRoboflowAPI, package_files_from, roboflow_environment, serve
from support.models import LETTERBOX_320_CONFIG
from support.onnx_graphs import (
    box_protos,
    make_anchor_free_column,
    make_constant_seg_onnx,
    make_end_to_end_row,
    make_row,
    ultralytics_metadata,
)
from support.required import require_module
from support.workflows import init_engine, workflow

API_KEY = "rf_model_source_SECRET_42"
MODEL_ID = "scene-seg/7"
NAMES = {0: "circle", 1: "rectangle"}
# 640x480 at 320x320: s = 0.5, 240 rows either way (round or int), pads 40 / 40: the Ultralytics and
# inference-models rules agree, so every source must give the very same detections.
IMAGE_HW = (480, 640)


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same constant network as a bare .onnx, an inference-models package and a legacy folder."""
    root = tmp_path_factory.mktemp("sources")
    protos, coefficients = box_protos((80, 80))
    rows = np.stack(
        [
            make_row((40, 60, 120, 140), 0.9, [0.1, 0.95], coefficients),  # rectangle
            make_row((200, 150, 300, 250), 0.9, [0.9, 0.1], coefficients),  # circle
        ]
    )
    bare = make_constant_seg_onnx(root / "bare" / "scene.onnx", rows, protos, names=NAMES)
    package = root / "package"
    package.mkdir()
    shutil.copy(bare, package / "weights.onnx")
    (package / "class_names.txt").write_text("circle\nrectangle\n")
    (package / "inference_config.json").write_text(json.dumps(LETTERBOX_320_CONFIG))
    (package / "model_config.json").write_text(
        json.dumps({"model_architecture": "yolov5", "task_type": "instance-segmentation", "backend_type": "onnx"})
    )
    legacy = root / "legacy"
    legacy.mkdir()
    shutil.copy(bare, legacy / "yolov5s_weights.onnx")
    environment = {
        "PREPROCESSING": json.dumps(
            {"resize": {"enabled": True, "width": 320, "height": 320, "format": "Fit (grey edges) in"}}
        ),
        "CLASS_MAP": {"0": "circle", "1": "rectangle"},
    }
    (legacy / "environment.json").write_text(json.dumps(environment))
    return {"onnx": bare, "package": package, "legacy": legacy}


@pytest.fixture
def api(sources: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeRoboflowAPI]:
    """The package served by a local fake of Roboflow's API as ``scene-seg/7``."""
    fake = FakeRoboflowAPI(api_key=API_KEY, models={MODEL_ID: FakeModel(files=package_files_from(sources["package"]))})
    with serve(fake):
        roboflow_environment(monkeypatch, fake.base_url, tmp_path / "cache")
        yield fake


def scene() -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.integers(0, 255, size=(*IMAGE_HW, 3), dtype=np.uint8)


def source_string(kind: str, sources: dict[str, Path]) -> str:
    return MODEL_ID if kind == "roboflow" else str(sources[kind])


@pytest.mark.parametrize("kind", ["onnx", "package", "legacy", "roboflow"])
def test_every_source_gives_the_same_detections(sources, api, kind: str) -> None:
    model = YOLOv5SegModel.from_pretrained(source_string(kind, sources), backend="onnx", device="cpu", api_key=API_KEY)
    detections = model(scene())[0]
    # Letterbox: s = 0.5, pads (0, 40): x / 0.5, (y - 40) / 0.5.
    np.testing.assert_allclose(detections.xyxy, [[80, 40, 240, 200], [400, 220, 600, 420]], atol=1e-4)
    assert detections.data["class_name"].tolist() == ["rectangle", "circle"]
    assert detections.mask.shape == (2, *IMAGE_HW)
    assert detections.mask.sum(axis=(1, 2)).tolist() == [160 * 160, 200 * 200]
    assert model.model_id == source_string(kind, sources)
    reference = YOLOv5SegModel.from_pretrained(str(sources["onnx"]), backend="onnx", device="cpu")(scene())[0]
    np.testing.assert_array_equal(detections.xyxy, reference.xyxy)
    np.testing.assert_array_equal(detections.mask, reference.mask)
    np.testing.assert_array_equal(detections.confidence, reference.confidence)


def test_package_and_bare_onnx_differ_only_by_their_config(sources, tmp_path: Path) -> None:
    """The package's pre-processing really is applied: a stretch config moves the boxes."""
    stretched = tmp_path / "stretched"
    shutil.copytree(sources["package"], stretched)
    config = json.loads(json.dumps(LETTERBOX_320_CONFIG))
    config["network_input"]["resize_mode"] = "stretch"
    (stretched / "inference_config.json").write_text(json.dumps(config))
    detections = YOLOv5SegModel.from_pretrained(str(stretched), backend="onnx", device="cpu")(scene())[0]
    np.testing.assert_allclose(detections.xyxy, [[80, 90, 240, 210], [400, 225, 600, 375]], atol=1e-4)  # x*2, y*1.5


# The family's generations as each source declares them: (bare ONNX metadata, inference-models package
# model_architecture and post_processing.fused, legacy model_type.json, Roboflow modelArchitecture). The package,
# legacy and Roboflow copies carry no Ultralytics metadata: what they declare is all that tells their layout.
FAMILY = {
    # generation: (layout, package architecture, fused, legacy model type)
    "yolov8": ("anchor-free", "yolov8", False, "yolov8n-seg"),
    "yolov11": ("anchor-free", "yolov11", False, "yolov11s-seg"),
    "yolov8-nms": ("end2end", "yolov8", True, None),  # an nms=True export; legacy folders cannot say fused
    "yolo26": ("end2end", "yolo26", False, "yolo26n-seg"),
}


def family_output0(layout: str, coefficients: np.ndarray) -> np.ndarray:
    """The scene's rectangle and circle as the ``output0`` of one image in ``layout``."""
    if layout == "anchor-free":
        columns = np.zeros((4 + 2 + 32, 2100), np.float32)  # one column per point of the 320x320 grids
        columns[:, 7] = make_anchor_free_column((40, 60, 120, 140), [0.1, 0.95], coefficients)
        columns[:, 1500] = make_anchor_free_column((200, 150, 300, 250), [0.9, 0.1], coefficients)
        return columns
    rows = np.zeros((300, 6 + 32), np.float32)  # unused rows are zeros, as an nms=True export leaves them
    rows[0] = make_end_to_end_row((40, 60, 120, 140), 0.95, 1, coefficients)
    rows[1] = make_end_to_end_row((200, 150, 300, 250), 0.9, 0, coefficients)
    return rows


@pytest.fixture(scope="module")
def family_sources(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Path]:
    """``(generation, kind)`` -> the same scene network as a bare export, a package and a legacy folder."""
    root = tmp_path_factory.mktemp("family")
    protos, coefficients = box_protos((80, 80))
    found = {}
    for generation, (layout, architecture, fused, model_type) in FAMILY.items():
        output0 = family_output0(layout, coefficients)
        metadata = ultralytics_metadata(NAMES, end2end=layout == "end2end")
        found[generation, "onnx"] = make_constant_seg_onnx(
            root / generation / "best.onnx", output0, protos, metadata=metadata
        )
        plain = make_constant_seg_onnx(root / generation / "plain.onnx", output0, protos)  # no metadata
        package = root / generation / "package"
        package.mkdir()
        shutil.copy(plain, package / "weights.onnx")
        (package / "class_names.txt").write_text("circle\nrectangle\n")
        config = json.loads(json.dumps(LETTERBOX_320_CONFIG))
        if fused:
            config["post_processing"] = {"type": "nms", "fused": True}
        (package / "inference_config.json").write_text(json.dumps(config))
        (package / "model_config.json").write_text(
            json.dumps(
                {"model_architecture": architecture, "task_type": "instance-segmentation", "backend_type": "onnx"}
            )
        )
        found[generation, "package"] = package
        if model_type is not None:
            legacy = root / generation / "legacy"
            legacy.mkdir()
            shutil.copy(plain, legacy / "weights.onnx")
            environment = {
                "PREPROCESSING": {
                    "resize": {"enabled": True, "width": 320, "height": 320, "format": "Fit (grey edges) in"}
                },
                "CLASS_MAP": {"0": "circle", "1": "rectangle"},
            }
            (legacy / "environment.json").write_text(json.dumps(environment))
            record = {"project_task_type": "instance-segmentation", "model_type": model_type, "model_id": "scene/1"}
            (legacy / "model_type.json").write_text(json.dumps(record))
            found[generation, "legacy"] = legacy
    return found


@pytest.fixture
def family_api(family_sources, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeRoboflowAPI]:
    """Each generation's package served as ``scene-<generation>/1`` with its ``modelArchitecture``."""
    models = {
        f"scene-{generation}/1": FakeModel(
            files=package_files_from(family_sources[generation, "package"]), architecture=architecture
        )
        for generation, (_, architecture, _, _) in FAMILY.items()
    }
    fake = FakeRoboflowAPI(api_key=API_KEY, models=models)
    with serve(fake):
        roboflow_environment(monkeypatch, fake.base_url, tmp_path / "cache")
        yield fake


@pytest.mark.parametrize(
    ("generation", "kind"),
    [
        (generation, kind)
        for generation, (_, _, _, model_type) in FAMILY.items()
        for kind in ("onnx", "package", "legacy", "roboflow")
        if kind != "legacy" or model_type is not None
    ],
)
def test_every_source_of_every_generation_gives_the_same_detections(
    family_sources, family_api, generation: str, kind: str
) -> None:
    layout = FAMILY[generation][0]
    source = f"scene-{generation}/1" if kind == "roboflow" else str(family_sources[generation, kind])
    model = YOLOSegModel.from_pretrained(source, backend="onnx", device="cpu", api_key=API_KEY)
    detections = model(scene())[0]
    assert model.layout is {"anchor-free": ANCHOR_FREE, "end2end": END_TO_END}[layout]
    # Letterbox: s = 0.5, pads (0, 40): x / 0.5, (y - 40) / 0.5.
    np.testing.assert_allclose(detections.xyxy, [[80, 40, 240, 200], [400, 220, 600, 420]], atol=1e-4)
    np.testing.assert_allclose(detections.confidence, [0.95, 0.9], atol=1e-6)
    assert detections.data["class_name"].tolist() == ["rectangle", "circle"]
    assert detections.mask.sum(axis=(1, 2)).tolist() == [160 * 160, 200 * 200]


@pytest.mark.parametrize(
    ("kind", "expected"),
    [("onnx", "onnx"), ("package", "package"), ("legacy", "legacy"), ("roboflow", "roboflow")],
)
def test_model_source_kind(sources, kind: str, expected: str) -> None:
    assert model_source_kind(source_string(kind, sources)) == expected


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("my-project/3", True),
        ("My_Project.v2/12", True),
        ("project", False),
        ("project/v3", False),
        ("workspace/project/3", False),
        ("/abs/project/3", False),
        ("./project/3", False),
        ("project/3.onnx", False),
    ],
)
def test_roboflow_model_ids(model: str, expected: bool) -> None:
    assert is_roboflow_model_id(model) == expected


def test_an_existing_path_wins_over_a_model_id(sources, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    shutil.copytree(sources["package"], tmp_path / "scene-seg" / "7")
    assert model_source_kind("scene-seg/7") == "package"
    assert resolve_model("scene-seg/7").weights_path == Path("scene-seg/7/weights.onnx")


def test_roboflow_id_downloads_once_then_loads_from_the_cache(sources, api, monkeypatch) -> None:
    first = resolve_model(MODEL_ID, api_key=API_KEY)
    assert first.model_id == MODEL_ID
    assert first.class_names == ("circle", "rectangle")
    assert first.preprocessing.size_rounding == "truncate"
    requests = len(api.requests)
    monkeypatch.setenv(settings.API_URL.name, "http://127.0.0.1:9")  # offline now
    second = resolve_model(MODEL_ID, api_key=API_KEY)  # its confirmation is remembered: no request
    assert second == first
    assert len(api.requests) == requests


def test_roboflow_id_key_from_the_environment(api, monkeypatch) -> None:
    monkeypatch.setenv("ROBOFLOW_API_KEY", API_KEY)
    assert resolve_model(MODEL_ID, api_key="").model_id == MODEL_ID  # an empty block value falls back too


def test_roboflow_id_without_key(api) -> None:
    with pytest.raises(RoboflowAPIKeyMissingError, match="ROBOFLOW_API_KEY"):
        resolve_model(MODEL_ID)


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        resolve_model(str(tmp_path / "nothing.onnx"))
    with pytest.raises(ModelNotFoundError, match="No model"):
        resolve_model("  ")


def test_allowed_model_roots(sources, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(settings.MODEL_ROOTS.name, str(sources["package"].parent))
    assert resolve_model(str(sources["package"])).weights_path is not None
    monkeypatch.setenv(settings.MODEL_ROOTS.name, str(tmp_path / "elsewhere"))
    with pytest.raises(UntrustedModelError, match=settings.MODEL_ROOTS.name):
        resolve_model(str(sources["package"]))


# --- one workflow JSON, four sources ------------------------------------------------------------------------------


def run_workflow(model: str, api_key: str | None, serialize: bool = False) -> dict:
    require_module("roboflow_workflows.execution_engine.core", "the Workflows engine")
    definition = workflow(
        parameters={"api_key": None},
        step={"backend": "onnx"},
        outputs={"predictions": "$steps.seg.predictions", "model_id": "$steps.seg.model_id"},
    )
    engine = init_engine(definition)
    return engine.run(
        runtime_parameters={"image": scene(), "model": model, "api_key": api_key}, serialize_results=serialize
    )[0]


@pytest.fixture
def fresh_block_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(model_cache, "MODELS", ModelCache())


@pytest.mark.parametrize("kind", ["onnx", "package", "legacy", "roboflow"])
def test_the_same_workflow_json_runs_with_every_source(sources, api, fresh_block_cache, kind: str) -> None:
    model = source_string(kind, sources)
    result = run_workflow(model, API_KEY if kind == "roboflow" else None)
    predictions = result["predictions"]
    np.testing.assert_allclose(predictions.xyxy, [[80, 40, 240, 200], [400, 220, 600, 420]], atol=1e-4)
    assert predictions.data["class_name"].tolist() == ["rectangle", "circle"]
    assert predictions.mask.shape == (2, *IMAGE_HW)
    assert result["model_id"] == model


def test_workflow_with_a_refused_key_reports_a_step_error_without_the_key(api, fresh_block_cache, caplog) -> None:
    from roboflow_workflows.errors import StepExecutionError

    wrong_key = "rf_WRONG_key_value_77"
    with caplog.at_level(logging.DEBUG), pytest.raises(StepExecutionError) as caught:
        run_workflow(MODEL_ID, wrong_key)
    texts = [str(caught.value), repr(caught.value), caplog.text]
    cause = caught.value.__cause__ or caught.value.__context__
    assert isinstance(cause, RoboflowUnauthorizedError) or "refused the API key" in texts[0]
    for text in texts:
        assert wrong_key not in text


def test_workflow_outputs_do_not_carry_the_key(api, fresh_block_cache) -> None:
    result = run_workflow(MODEL_ID, API_KEY, serialize=True)
    assert API_KEY not in json.dumps(result, default=str)
    assert result["model_id"] == MODEL_ID
