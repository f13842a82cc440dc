"""Trust (issue 8): pickles are never loaded, the model-roots allow-list holds, API keys never leak through a
workflow. The other trust checks are tested with their modules:

- the API key in download logs, errors, stdout/stderr and cache files: ``tests/test_roboflow.py``
  (``test_the_api_key_never_leaks``, ``test_malformed_keys_are_refused_without_echoing_them``);
- the download cache owner-only, appearing in one rename, nothing left by an interrupted download:
  ``tests/test_roboflow.py`` (``test_download_cache_is_owner_only``, ``test_download_cache_appears_in_one_rename``,
  ``test_an_interrupted_download_leaves_no_package``);
- the key in a workflow's serialised outputs and refused-key step errors: ``tests/test_model_source.py``;
- engine cache files owner-only: ``tests/backends/test_engine_cache.py``
  (``test_store_and_load_round_trip_owner_only``); atomic writes and owner-only cache folders:
  ``tests/test_private_files.py`` (``test_interrupted_write_leaves_nothing``, ``test_private_dir_mode``);
- package engines with host code refused unless opted in, and the opt-in off by default:
  ``tests/backends/test_tensorrt.py`` (``test_package_engine_host_code_needs_opt_in``,
  ``test_package_engines_run_no_host_code_by_default``, ``test_package_engine_is_used_without_building``).
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from workflows_yolov5_seg import model_cache, roboflow, settings
from workflows_yolov5_seg.errors import InvalidModelFileError, ModelNotFoundError, UntrustedModelError
from workflows_yolov5_seg.model import YOLOv5SegModel
from workflows_yolov5_seg.model_cache import ModelCache
from workflows_yolov5_seg.model_package import PICKLE_SUFFIXES
from workflows_yolov5_seg.model_source import resolve_model

from support.fake_roboflow_api import FakeModel, FakeRoboflowAPI, package_files_from, roboflow_environment, serve
from support.models import LETTERBOX_320_CONFIG, make_rectangle_model
from support.required import require_module
from support.workflows import init_engine, workflow

API_KEY = "rf_security_SECRET_9f8e7d"
MODEL_ID = "secure-seg/2"


def write_package(folder: Path) -> Path:
    folder.mkdir(parents=True)
    make_rectangle_model(folder / "weights.onnx")
    (folder / "class_names.txt").write_text("circle\nrectangle\ntriangle\n")
    (folder / "inference_config.json").write_text(json.dumps(LETTERBOX_320_CONFIG))
    return folder


# --- pickles ---------------------------------------------------------------------------------------------------


class _Payload:
    """Unpickling this creates the marker file: proof that a pickle was loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204
        return (Path.touch, (self.marker,))


@pytest.fixture
def hostile_pickle(tmp_path: Path) -> tuple[bytes, Path]:
    marker = tmp_path / "PICKLE-WAS-LOADED"
    return pickle.dumps(_Payload(marker)), marker


@pytest.mark.parametrize("suffix", PICKLE_SUFFIXES)
def test_pickle_files_are_refused_without_being_read(tmp_path: Path, hostile_pickle, suffix: str) -> None:
    payload, marker = hostile_pickle
    path = tmp_path / f"best{suffix}"
    path.write_bytes(payload)
    with pytest.raises(UntrustedModelError, match=r"pickle.*never loaded.*export\.py .*--include onnx"):
        YOLOv5SegModel.from_pretrained(path)
    assert not marker.exists()


def test_pickles_disguised_or_beside_the_weights_are_never_unpickled(tmp_path: Path, hostile_pickle) -> None:
    payload, marker = hostile_pickle
    disguised = tmp_path / "model.onnx"
    disguised.write_bytes(payload)
    with pytest.raises(InvalidModelFileError, match="could not be loaded as an ONNX model"):
        YOLOv5SegModel.from_pretrained(disguised)
    only_pickle = tmp_path / "folder"
    only_pickle.mkdir()
    (only_pickle / "best.pt").write_bytes(payload)
    with pytest.raises(ModelNotFoundError, match="export to ONNX"):
        YOLOv5SegModel.from_pretrained(only_pickle)
    package = write_package(tmp_path / "package")
    (package / "best.pt").write_bytes(payload)  # ignored: the weights are weights.onnx
    assert YOLOv5SegModel.from_pretrained(package).backend.info.name == "onnx"
    assert not marker.exists()


def test_the_pipeline_never_imports_an_unpickler(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading and running a model never calls pickle (or torch) loading functions."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a pickle loader was called")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)
    model = YOLOv5SegModel.from_pretrained(write_package(tmp_path / "package"))
    assert len(model(np.zeros((64, 64, 3), np.uint8))[0]) == 1


# --- the allow-list of model roots ------------------------------------------------------------------------------------


@pytest.fixture
def roots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """``allowed/`` is the only root; ``outside/`` holds a model and a package; ``allowed-evil`` shares a prefix."""
    allowed, outside, evil = tmp_path / "allowed", tmp_path / "outside", tmp_path / "allowed-evil"
    for folder in (allowed, outside, evil):
        folder.mkdir()
    paths = {
        "allowed": allowed,
        "inside_file": make_rectangle_model(allowed / "inside.onnx"),
        "inside_package": write_package(allowed / "package"),
        "outside_file": make_rectangle_model(outside / "outside.onnx"),
        "outside_package": write_package(outside / "package"),
        "evil_file": make_rectangle_model(evil / "model.onnx"),
        "outside": outside,
    }
    monkeypatch.setenv(settings.MODEL_ROOTS.name, str(allowed))
    return paths


def test_models_under_a_root_load(roots: dict[str, Path]) -> None:
    assert resolve_model(str(roots["inside_file"])).weights_path == roots["inside_file"]
    assert resolve_model(str(roots["inside_package"])).weights_path == roots["inside_package"] / "weights.onnx"
    inner = roots["allowed"] / "sub" / ".." / "inside.onnx"  # '..' that stays inside is fine
    (roots["allowed"] / "sub").mkdir()
    assert resolve_model(str(inner)).weights_path is not None


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda r: r["outside_file"], id="file-outside"),
        pytest.param(lambda r: r["outside_package"], id="package-outside"),
        pytest.param(lambda r: r["allowed"] / ".." / "outside" / "outside.onnx", id="file-via-dotdot"),
        pytest.param(lambda r: r["allowed"] / ".." / "outside" / "package", id="package-via-dotdot"),
        pytest.param(lambda r: r["evil_file"], id="sibling-with-the-same-prefix"),
        pytest.param(lambda r: _link(r["allowed"] / "link.onnx", r["outside_file"]), id="file-symlink-out"),
        pytest.param(lambda r: _link(r["allowed"] / "linked-package", r["outside_package"]), id="package-symlink-out"),
        pytest.param(lambda r: _package_with_linked(r, "weights.onnx"), id="weights-symlink-out-of-a-package"),
        pytest.param(lambda r: _package_with_linked(r, "class_names.txt"), id="class-names-symlink-out"),
        pytest.param(lambda r: _package_with_linked(r, "inference_config.json"), id="config-symlink-out"),
        pytest.param(lambda r: _file_with_linked_names(r), id="names-beside-a-file-symlink-out"),
        pytest.param(lambda r: _link(r["allowed"] / "dangling.onnx", r["outside"] / "gone.onnx"), id="dangling-out"),
    ],
)
def test_paths_outside_the_roots_are_refused(roots: dict[str, Path], make) -> None:  # noqa: ANN001
    path = make(roots)
    with pytest.raises(UntrustedModelError, match=rf"outside the allowed model roots \({settings.MODEL_ROOTS.name}\)"):
        YOLOv5SegModel.from_pretrained(path)


def test_the_refusal_says_where_a_link_leads(roots: dict[str, Path]) -> None:
    link = _link(roots["allowed"] / "link.onnx", roots["outside_file"])
    with pytest.raises(UntrustedModelError, match=f"resolves to '{roots['outside_file']}'"):
        resolve_model(str(link))


def test_several_roots(roots: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(settings.MODEL_ROOTS.name, os.pathsep.join([str(roots["allowed"]), str(roots["outside"])]))
    assert resolve_model(str(roots["outside_file"])).weights_path == roots["outside_file"]
    with pytest.raises(UntrustedModelError):
        resolve_model(str(roots["evil_file"]))


def test_a_refused_path_in_a_workflow_is_a_step_error(roots: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    require_module("roboflow_workflows.execution_engine.core", "the Workflows engine")
    from roboflow_workflows.errors import StepExecutionError

    monkeypatch.setattr(model_cache, "MODELS", ModelCache())
    engine = init_engine(key_workflow())
    with pytest.raises(StepExecutionError, match=settings.MODEL_ROOTS.name):
        engine.run(runtime_parameters={"image": np.zeros((32, 32, 3), np.uint8), "model": str(roots["outside_file"])})
    result = engine.run(
        runtime_parameters={"image": np.zeros((32, 32, 3), np.uint8), "model": str(roots["inside_file"])}
    )
    assert len(result[0]["predictions"]) == 1


def _link(link: Path, target: Path) -> Path:
    link.symlink_to(target)
    return link


def _package_with_linked(roots: dict[str, Path], name: str) -> Path:
    folder = roots["allowed"] / f"package-linking-{name}"
    shutil.copytree(roots["inside_package"], folder)
    (folder / name).unlink()
    (folder / name).symlink_to(roots["outside_package"] / name)
    return folder


def _file_with_linked_names(roots: dict[str, Path]) -> Path:
    folder = roots["allowed"] / "file-with-names"
    folder.mkdir()
    model = make_rectangle_model(folder / "model.onnx")
    (roots["outside"] / "secret.txt").write_text("root:x:0:0\n")
    (folder / "class_names.txt").symlink_to(roots["outside"] / "secret.txt")
    return model


# --- API keys ---------------------------------------------------------------------------------------------------------


def key_workflow() -> dict:
    """The key from ``$inputs.api_key``; every output of the step, RLE masks included."""
    return workflow(
        parameters={"api_key": None},
        step={"mask_format": "rle"},
        outputs={
            "predictions": "$steps.seg.predictions",
            "model_id": "$steps.seg.model_id",
            "inference_id": "$steps.seg.inference_id",
            "everything": "$steps.seg.*",
        },
    )


@pytest.fixture
def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeRoboflowAPI]:
    package = write_package(tmp_path / "served-package")
    fake = FakeRoboflowAPI(api_key=API_KEY, models={MODEL_ID: FakeModel(files=package_files_from(package))})
    with serve(fake):
        roboflow_environment(monkeypatch, fake.base_url, tmp_path / "cache")
        yield fake


@pytest.mark.parametrize("key_from", ["inputs", "environment"])
def test_the_key_is_in_no_workflow_output_log_or_cache_name(
    api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, key_from: str
) -> None:
    """Both the raw outputs (``sv.Detections`` with all their data) and the serialised ones, at every log level."""
    require_module("roboflow_workflows.execution_engine.core", "the Workflows engine")

    monkeypatch.setattr(model_cache, "MODELS", ModelCache())
    if key_from == "environment":
        monkeypatch.setenv(settings.API_KEY.name, API_KEY)
    engine = init_engine(key_workflow())
    parameters = {
        "image": np.zeros((100, 120, 3), np.uint8),
        "model": MODEL_ID,
        "api_key": API_KEY if key_from == "inputs" else None,
    }
    with caplog.at_level(logging.DEBUG):
        raw = engine.run(runtime_parameters=parameters)[0]
        serialised = engine.run(runtime_parameters=parameters, serialize_results=True)[0]
    detections = raw["predictions"]
    assert len(detections) == 1 and raw["model_id"] == MODEL_ID
    raw_text = repr(raw) + repr(dict(detections.data)) + repr(detections.metadata)
    for text in (raw_text, json.dumps(serialised, default=str), caplog.text):
        assert API_KEY not in text
    for path in (tmp_path / "cache").rglob("*"):
        assert API_KEY not in path.name
        if path.is_file():
            assert API_KEY.encode() not in path.read_bytes()
    assert api.metadata_requests() == 1


# --- API keys in the authorisation of cached Roboflow models (issue 15) ----------------------------------------------
# Behaviour: tests/test_authorization.py (the file's format, salts and modes included) and, over HTTP (responses,
# server log, server cache), tests/suites/test_authorization_http.py. Here: the key hygiene of every new path.

OTHER_KEY = "rf_security_OTHER_SECRET_4c3b2a"


def _chain_texts(error: BaseException | None) -> str:
    texts = []
    while error is not None:
        texts += [str(error), repr(error), *map(str, error.args)]
        error = error.__cause__ or error.__context__
    return "\n".join(texts)


def test_no_key_in_authorisation_errors_logs_or_files(
    api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, capfd
) -> None:
    """Refusals (live, remembered, offline, with the API failing and echoing the key), confirmations and the
    confirmed-keys file never hold either key; the file is owner-only."""
    from workflows_yolov5_seg import authorization
    from workflows_yolov5_seg.errors import RoboflowAPIError, RoboflowKeyNotConfirmedError

    monkeypatch.setattr(authorization, "ANSWERS", authorization.RememberedAnswers())
    api.echo_key_in_errors = True
    api.grant(OTHER_KEY)
    failures = []
    with caplog.at_level(logging.DEBUG):
        roboflow.download_model_package(MODEL_ID, api_key=API_KEY)
        for _ in range(2):  # refused by the API, then from memory
            with pytest.raises(RoboflowAPIError) as caught:
                roboflow.download_model_package(MODEL_ID, api_key=OTHER_KEY)
            failures.append(caught.value)
        monkeypatch.setattr(authorization, "ANSWERS", authorization.RememberedAnswers())  # as a new process
        monkeypatch.setenv(settings.KEY_CONFIRMATION_TTL.name, "0")
        monkeypatch.setenv(settings.KEY_REFUSAL_TTL.name, "0")
        monkeypatch.setenv(settings.API_MAX_TRIES.name, "1")
        api.status_overrides[roboflow.WEIGHTS_ENDPOINT] = [500] * 10  # failing, its error bodies echo the key
        roboflow.download_model_package(MODEL_ID, api_key=API_KEY)  # served on its record, with a warning
        with pytest.raises(RoboflowKeyNotConfirmedError) as caught:
            roboflow.download_model_package(MODEL_ID, api_key=OTHER_KEY)
        failures.append(caught.value)
        monkeypatch.setenv(settings.OFFLINE_MODE.name, "1")
        with pytest.raises(RoboflowKeyNotConfirmedError) as caught:
            roboflow.download_model_package(MODEL_ID, api_key=OTHER_KEY)
        failures.append(caught.value)

    captured = capfd.readouterr()
    assert "***" in _chain_texts(failures[2])  # the echoed key was redacted, not just absent
    assert "could not confirm an API key" in caplog.text
    for key in (API_KEY, OTHER_KEY):
        for text in [caplog.text, captured.out, captured.err, *map(_chain_texts, failures)]:
            assert key not in text
        for path in (tmp_path / "cache").rglob("*"):
            assert key not in path.name
            if path.is_file():
                assert key.encode() not in path.read_bytes()
    keys_file = roboflow.package_dir(MODEL_ID).with_name("2.keys.json")
    assert stat.S_IMODE(keys_file.stat().st_mode) == 0o600
