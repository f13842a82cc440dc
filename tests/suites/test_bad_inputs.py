"""The bad-input matrix (issue 8): every bad input gives a typed error whose message names the cause and the fix,
and the same process then serves a good request with the model it already had loaded.

One table, one test: each :class:`Case` runs an action that must raise ``error`` (its message must contain every
pattern of ``words``, case-insensitive) or, with ``error=None``, must work and pass its own ``check``. After each
case, the shared model (loaded once for the module) and the shared Workflows engine serve a good request and give
the reference answer. The figures of docs/reliability.md come from this table.

Run alone: ``python -m pytest tests/suites/test_bad_inputs.py``.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from workflows_yolov5_seg import errors, roboflow, settings
from workflows_yolov5_seg.model import YOLOv5SegModel

from support.fake_roboflow_api import FakeModel, FakeRoboflowAPI, package_files_from, roboflow_environment, serve
from support.fake_tensorrt import FakeCuda, FakeTrt
from support.models import CLASS_NAMES, LETTERBOX_320_CONFIG, two_box_rows
from support.onnx_graphs import (
    make_classification_onnx,
    make_constant_seg_onnx,
    make_detection_only_onnx,
    ultralytics_metadata,
)
from support.required import require_module
from support.workflows import init_engine, workflow

GOOD_IMAGE = np.zeros((160, 320, 3), np.uint8)
REFERENCE_XYXY = [[40, 0, 120, 60], [200, 100, 300, 160]]  # two_box_model on GOOD_IMAGE (see test_model.py)
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


# --- the shared process state ---------------------------------------------------------------------------------------


@dataclass
class Env:
    """What a case may use: a fresh folder, monkeypatch, caplog, the good model and the shared objects."""

    tmp: Path
    monkeypatch: pytest.MonkeyPatch
    caplog: pytest.LogCaptureFixture
    good_model_path: Path
    model: YOLOv5SegModel
    engine: Any = None

    def seg_model(self, name: str = "m.onnx", **changes: Any) -> Path:
        rows, protos = two_box_rows()
        rows = changes.pop("rows", rows)
        protos = changes.pop("protos", protos)
        return make_constant_seg_onnx(self.tmp / name, rows, protos, **{"names": CLASS_NAMES, **changes})

    def package(self, config: dict | str) -> Path:
        import json

        folder = self.tmp / "package"
        folder.mkdir()
        rows, protos = two_box_rows()
        make_constant_seg_onnx(folder / "weights.onnx", rows, protos)
        (folder / "class_names.txt").write_text("circle\nrectangle\ntriangle\n")
        text = config if isinstance(config, str) else json.dumps(config)
        (folder / "inference_config.json").write_text(text)
        return folder


def with_network_input(**changes: Any) -> dict:
    network = {**LETTERBOX_320_CONFIG["network_input"], **changes}
    return {"network_input": {k: v for k, v in network.items() if v is not _DROP}}


_DROP = object()


@pytest.fixture(scope="module")
def shared_model(two_box_model: Path) -> YOLOv5SegModel:
    """Loaded once; every case must leave it serving."""
    previous = os.environ.pop(settings.MAX_IMAGE_PIXELS.name, None)
    try:
        model = YOLOv5SegModel.from_pretrained(two_box_model)
    finally:
        if previous is not None:
            os.environ[settings.MAX_IMAGE_PIXELS.name] = previous
    assert model.max_image_pixels == settings.MAX_IMAGE_PIXELS.default
    return model


@pytest.fixture(scope="module")
def workflow_engine(two_box_model: Path):  # noqa: ANN201 - the engine
    """One compiled workflow (every parameter from ``$inputs``) whose block cache keeps one loaded model."""
    require_module("roboflow_workflows.execution_engine.core", "the Workflows engine")
    return init_engine(workflow(parameters=INPUT_PARAMETERS))


INPUT_PARAMETERS = {
    "confidence": 0.4,
    "iou_threshold": 0.3,
    "tradeoff_factor": 0.0,
    "max_detections": 300,
    "mask_decode_mode": "accurate",
    "backend": "auto",
    "class_filter": None,
}


def error_text(error: BaseException) -> str:
    """The message plus the engine's inner error (where pydantic names the field) and the causes."""
    parts = [f"{type(error).__name__}: {error}"]
    for attribute in ("inner_error", "__cause__", "__context__"):
        inner = getattr(error, attribute, None)
        if isinstance(inner, BaseException):
            parts.append(f"{type(inner).__name__}: {inner}")
    return "\n".join(parts)


# --- case actions -----------------------------------------------------------------------------------------------------


def load(path: Path | str, **kwargs: Any) -> Callable[[Env], Any]:
    def action(env: Env) -> Any:
        return YOLOv5SegModel.from_pretrained(path(env) if callable(path) else path, **kwargs)(GOOD_IMAGE)

    return action


def on_shared(image: Callable[[], np.ndarray] | np.ndarray, **parameters: Any) -> Callable[[Env], Any]:
    def action(env: Env) -> Any:
        return env.model(image() if callable(image) else image, **parameters)

    return action


def run_workflow(definition: dict | None = None, model: Callable[[Env], str] | None = None, **inputs: Any):
    """Compiles ``definition`` (default: the shared, all-``$inputs`` one) and runs it on GOOD_IMAGE."""

    def action(env: Env) -> Any:
        engine = init_engine(definition) if definition is not None else env.engine
        parameters = {"image": GOOD_IMAGE, "model": model(env) if model else str(env.good_model_path), **inputs}
        return engine.run(runtime_parameters=parameters)[0]["predictions"]

    return action


def run_block(**overrides: Any) -> Callable[[Env], Any]:
    """Calls the block's ``run`` as the engine does for a value from a step output of STRING_KIND."""

    def action(env: Env) -> Any:
        from roboflow_workflows.execution_engine.entities.base import ImageParentMetadata, WorkflowImageData

        from workflows_yolov5_seg.yolov5_instance_segmentation.v1 import YOLOv5InstanceSegmentationBlockV1

        image = WorkflowImageData(parent_metadata=ImageParentMetadata(parent_id="image"), numpy_image=GOOD_IMAGE)
        arguments = {
            "images": [image],
            "model": str(env.good_model_path),
            "api_key": None,
            "class_filter": None,
            "class_agnostic_nms": False,
            **INPUT_PARAMETERS,
            **overrides,
        }
        return YOLOv5InstanceSegmentationBlockV1().run(**arguments)

    return action


def write(name: str, content: bytes) -> Callable[[Env], Path]:
    def path(env: Env) -> Path:
        target = env.tmp / name
        target.write_bytes(content)
        return target

    return path


def truncated_onnx(env: Env) -> Path:
    target = env.tmp / "truncated.onnx"
    target.write_bytes(env.good_model_path.read_bytes()[:300])
    return target


def folder_without_weights(env: Env) -> Path:
    folder = env.tmp / "empty-model"
    folder.mkdir()
    (folder / "class_names.txt").write_text("circle\nrectangle\ntriangle\n")
    return folder


def folder_with_a_pickle(env: Env) -> Path:
    folder = env.tmp / "pt-model"
    folder.mkdir()
    (folder / "best.pt").write_bytes(b"\x80\x04K\x01.")
    return folder


def broken_symlink(env: Env) -> Path:
    link = env.tmp / "model.onnx"
    link.symlink_to(env.tmp / "gone.onnx")
    return link


def names_file(count: int) -> Callable[[Env], Path]:
    def path(env: Env) -> Path:
        model = env.seg_model(names=None)
        (env.tmp / "class_names.txt").write_text("\n".join(f"class{i}" for i in range(count)))
        return model

    return path


def ultralytics_export(
    env: Env, task: str = "segment", end2end: bool = False, names_file: list[str] | None = None
) -> Path:
    """An ONNX with the interface and metadata of an ``ultralytics`` export (3 classes, 320 input)."""
    names = {0: "a", 1: "b", 2: "c"}
    instances = np.zeros((300, 38) if end2end else (39, 2100), np.float32)
    path = make_constant_seg_onnx(
        env.tmp / "u.onnx",
        instances,
        np.zeros((32, 80, 80), np.float32),
        batch=1,
        metadata=ultralytics_metadata(names, task=task, end2end=end2end),
    )
    if names_file is not None:
        (env.tmp / "class_names.txt").write_text("\n".join(names_file))
    return path


def nan_in_instances(env: Env) -> Path:
    rows, _ = two_box_rows()
    rows[0, 4] = np.nan
    return env.seg_model(rows=rows)


def inf_in_protos(env: Env) -> Path:
    _, protos = two_box_rows()
    protos[3, 10, 10] = np.inf
    return env.seg_model(protos=protos)


def roboflow_env(env: Env) -> None:
    # Nothing listens at the API URL: no request may be needed.
    roboflow_environment(env.monkeypatch, "http://127.0.0.1:9", env.tmp / "cache")


def roboflow_without_key(env: Env) -> Any:
    roboflow_env(env)
    return YOLOv5SegModel.from_pretrained("shapes-seg/3")


def make_unwritable(env: Env, folder: Path) -> None:
    """A read-only folder; as root (who may write anyway) creating anything under it is refused instead."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o500)
    env.monkeypatch.setattr(Path, "mkdir", _refusing(Path.mkdir, folder))
    env.monkeypatch.setattr(Path, "touch", _refusing(Path.touch, folder))


def _refusing(method: Callable, folder: Path) -> Callable:
    def refuse(self: Path, *args: Any, **kwargs: Any) -> Any:
        if IS_ROOT and folder in Path(os.path.abspath(self)).parents:
            raise PermissionError(13, "Permission denied", str(self))
        return method(self, *args, **kwargs)

    return refuse


def roboflow_read_only_cache(env: Env) -> Any:
    roboflow_env(env)
    make_unwritable(env, env.tmp / "cache")
    return YOLOv5SegModel.from_pretrained("shapes-seg/3", api_key="rf_SECRET_k3y")


def roboflow_corrupted_cache_is_refetched(env: Env) -> Any:
    """A cached weights file altered in place (same size): the checksum catches it and it is downloaded again."""
    roboflow_env(env)
    package = env.package(LETTERBOX_320_CONFIG)
    fake = FakeRoboflowAPI(api_key="rf_k3y", models={"shapes-seg/3": FakeModel(files=package_files_from(package))})
    with serve(fake):
        env.monkeypatch.setenv(settings.API_URL.name, fake.base_url)
        first = YOLOv5SegModel.from_pretrained("shapes-seg/3", api_key="rf_k3y")(GOOD_IMAGE)[0]
        weights = roboflow.package_dir("shapes-seg/3") / "weights.onnx"
        content = bytearray(weights.read_bytes())
        content[len(content) // 2] ^= 0xFF
        weights.write_bytes(bytes(content))
        again = YOLOv5SegModel.from_pretrained("shapes-seg/3", api_key="rf_k3y")(GOOD_IMAGE)[0]
    assert fake.metadata_requests() == 2, "the corrupted cache was not downloaded again"
    assert weights.read_bytes() == package_files_from(package)["weights.onnx"]
    np.testing.assert_array_equal(first.xyxy, again.xyxy)
    return again


def trt_corrupted_cached_engine(env: Env) -> Any:
    """A cached TensorRT engine that no longer deserializes is deleted and rebuilt (stand-ins for TensorRT/CUDA)."""
    from workflows_yolov5_seg.backends.tensorrt import load_tensorrt_backend
    from workflows_yolov5_seg.model_package import load_model_package

    trt, cuda = FakeTrt(), FakeCuda()
    package = load_model_package(env.good_model_path)
    cache = env.tmp / "engines"
    load_tensorrt_backend(package, cache_dir=cache, trt=trt, cuda=cuda).close()
    [engine] = sorted((cache / "trt").glob("*.engine"))
    engine.write_bytes(b"\x00garbage after a disk error")
    backend = load_tensorrt_backend(package, cache_dir=cache, trt=trt, cuda=cuda)
    assert len(trt.builds) == 2 and engine.read_bytes() != b"\x00garbage after a disk error"
    try:
        return YOLOv5SegModel(package, backend)(GOOD_IMAGE)
    finally:
        backend.close()


def trt_read_only_engine_cache(env: Env) -> Any:
    from workflows_yolov5_seg.backends.tensorrt import load_tensorrt_backend
    from workflows_yolov5_seg.model_package import load_model_package

    trt, cuda = FakeTrt(), FakeCuda()
    cache = env.tmp / "engines"
    make_unwritable(env, cache)
    return load_tensorrt_backend(load_model_package(env.good_model_path), cache_dir=cache, trt=trt, cuda=cuda)


def huge_image_with_the_env_limit(env: Env) -> Any:
    env.monkeypatch.setenv(settings.MAX_IMAGE_PIXELS.name, "10000")
    return YOLOv5SegModel.from_pretrained(env.good_model_path)(np.zeros((200, 200, 3), np.uint8))


def huge_virtual_image() -> np.ndarray:
    """110 megapixels that take no memory (a broadcast view): the limit must refuse it before any copy."""
    return np.broadcast_to(np.zeros((1, 1, 3), np.uint8), (11_000, 10_000, 3))


def read_only(image: np.ndarray) -> np.ndarray:
    image.flags.writeable = False
    return image


# --- checks for the cases that must work ------------------------------------------------------------------------------


def detections_of(result: Any) -> Any:
    """The ``sv.Detections`` of a pipeline call, a workflow run or a block run."""
    if isinstance(result, list):
        result = result[0]
    if isinstance(result, dict):
        result = result["predictions"]
    return result


def image_sized(height: int, width: int, count: int | None = 2) -> Callable[[Any, Env], None]:
    def check(result: Any, env: Env) -> None:
        detections = detections_of(result)
        assert detections.mask.shape[1:] == (height, width)
        if count is not None:
            assert len(detections) == count
        assert np.isfinite(detections.xyxy).all()
        assert (detections.xyxy[:, [0, 2]] <= width).all() and (detections.xyxy[:, [1, 3]] <= height).all()

    return check


def same_as_reference(result: Any, env: Env) -> None:
    np.testing.assert_allclose(detections_of(result).xyxy, REFERENCE_XYXY)


def warns_with_known_classes(result: Any, env: Env) -> None:
    assert len(detections_of(result)) == 0
    message = next(r.getMessage() for r in env.caplog.records if "class_filter" in r.getMessage())
    assert "unicorn" in message and "circle, rectangle, triangle" in message


# --- the matrix -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    id: str
    action: Callable[[Env], Any]
    error: type[BaseException] | str | None = None  # a class, or the name of a Workflows error class
    words: tuple[str, ...] = ()
    check: Callable[[Any, Env], None] | None = None
    needs_engine: bool = False


def workflow_error(name: str) -> type[BaseException]:
    import roboflow_workflows.errors as workflow_errors

    return getattr(workflow_errors, name)


LOAD = [
    Case(
        "truncated-onnx",
        load(truncated_onnx),
        errors.InvalidModelFileError,
        ("truncated.onnx", "could not be loaded as an ONNX model", "export", "check that the file is complete"),
    ),
    Case(
        "not-onnx-text",
        load(write("model.onnx", b"definitely not a protobuf " * 20)),
        errors.InvalidModelFileError,
        (
            "model.onnx",
            "could not be loaded as an ONNX model",
            "yolo export model=best.pt format=onnx",
            "--include onnx",
        ),
    ),
    Case(
        "empty-file",
        load(write("empty.onnx", b"")),
        errors.InvalidModelFileError,
        ("empty.onnx", "could not be loaded", "complete"),
    ),
    Case(
        "detection-only-onnx",
        load(lambda env: make_detection_only_onnx(env.tmp / "det.onnx")),
        errors.NotYOLOv5SegModelError,
        ("det.onnx", "not a YOLO segmentation model", "detection model", "yolo export", "export.py"),
    ),
    Case(
        "classification-onnx",
        load(lambda env: make_classification_onnx(env.tmp / "cls.onnx")),
        errors.NotYOLOv5SegModelError,
        ("cls.onnx", "not a YOLO segmentation model", "classification model", "-seg"),
    ),
    *[
        Case(
            f"ultralytics-{task}-onnx",
            load(lambda env, task=task: ultralytics_export(env, task=task)),
            errors.NotYOLOv5SegModelError,
            ("u.onnx", kind, f"task '{task}'", "not instance segmentation", "yolo export model=yolo11n-seg.pt"),
        )
        for task, kind in [
            ("detect", "a detection model"),
            ("classify", "a classification model"),
            ("pose", "a pose"),
            ("obb", "an oriented-box"),
        ]
    ],
    Case(  # issue 20: an anchor-free export was read as YOLOv5's rows ("2063 classes")
        "anchor-free-export-with-the-wrong-class-names",
        load(lambda env: ultralytics_export(env, names_file=["a", "b"])),
        errors.ClassNamesMismatchError,
        ("predicts 3 classes", r"output0 \[1, 39, 2100\]", r"4 \+ classes \+ 32, N", "2 class names"),
    ),
    Case(  # issue 20: an end-to-end export loaded as a one-class YOLOv5 model
        "end-to-end-export-with-the-wrong-class-names",
        load(lambda env: ultralytics_export(env, end2end=True, names_file=["a"])),
        errors.ClassNamesMismatchError,
        ("names 3 classes in its metadata", "1 class names", "class_names.txt list exactly 3"),
    ),
    Case(
        "fewer-class-names-than-outputs",
        load(names_file(2)),
        errors.ClassNamesMismatchError,
        ("predicts 3 classes", r"output0 \[.batch., 2, 40\]", "2 class names", "class_names.txt list exactly 3"),
    ),
    Case(
        "more-class-names-than-outputs",
        load(names_file(5)),
        errors.ClassNamesMismatchError,
        ("predicts 3 classes", "5 class names", "class_names.txt list exactly 3"),
    ),
    Case(
        "protos-with-16-channels",
        load(lambda env: env.seg_model(protos=np.zeros((16, 80, 80), np.float32))),
        errors.NotYOLOv5SegModelError,
        ("not a YOLO segmentation model", r"output1 \[B, 32, H/4, W/4\]"),
    ),
    Case(
        "protos-of-the-wrong-size",
        load(lambda env: env.seg_model(protos=np.zeros((32, 40, 40), np.float32))),
        errors.InvalidModelOutputError,
        (r"prototypes of shape \(1, 32, 40, 40\)", r"expected \(1, 32, 80, 80\)", "YOLO segmentation export"),
    ),
    Case(
        "nan-in-model-outputs",
        load(nan_in_instances),
        errors.InvalidModelOutputError,
        ("NaN or infinite", "corrupted", "re-export in fp32"),
    ),
    Case(
        "inf-in-prototypes",
        load(inf_in_protos),
        errors.InvalidModelOutputError,
        ("NaN or infinite", "re-export in fp32"),
    ),
    Case(
        "missing-path",
        load(lambda env: env.tmp / "nope.onnx"),
        errors.ModelNotFoundError,
        ("nope.onnx", "does not exist", "give the path of a YOLO segmentation .onnx"),
    ),
    Case(
        "folder-without-weights",
        load(folder_without_weights),
        errors.ModelNotFoundError,
        ("empty-model", "holds no ONNX weights", "weights.onnx or a single"),
    ),
    Case(
        "folder-with-only-a-pickle",
        load(folder_with_a_pickle),
        errors.ModelNotFoundError,
        ("holds no ONNX weights", "best.pt", "export to ONNX"),
    ),
    Case(
        "broken-symlink",
        load(broken_symlink),
        errors.ModelNotFoundError,
        ("model.onnx", "broken symbolic link", "point it at an existing .onnx"),
    ),
    Case(
        "pytorch-pickle-path",
        load(write("best.pt", b"\x80\x04K\x01.")),
        errors.UntrustedModelError,
        (
            "best.pt",
            "pickle",
            "never loaded",
            "yolo export model=best.pt format=onnx",
            "export.py --weights best.pt --include onnx",
        ),
    ),
    Case(
        "package-config-missing-key",
        load(lambda env: env.package({"network-input": {}})),
        errors.InvalidModelPackageError,
        ("inference_config.json", "key 'network_input' is missing", "add it"),
    ),
    Case(
        "package-config-wrong-type",
        load(lambda env: env.package(with_network_input(input_channels="3"))),
        errors.InvalidModelPackageError,
        ("key 'network_input.input_channels'", "invalid value '3'", "integer"),
    ),
    Case(
        "package-config-wrong-value",
        load(lambda env: env.package(with_network_input(resize_mode="fill"))),
        errors.InvalidModelPackageError,
        ("key 'network_input.resize_mode'", "'fill'", "use one of", "'letterbox'"),
    ),
    Case(
        "package-config-not-json",
        load(lambda env: env.package("{network_input: ")),
        errors.InvalidModelPackageError,
        ("inference_config.json", "not valid JSON", "fix or re-download"),
    ),
    Case(
        "invalid-backend-python-api",
        load(lambda env: env.good_model_path, backend="cuda"),
        errors.InvalidParameterError,
        ("backend must be one of auto, onnx, trt", "'cuda'"),
    ),
    Case(
        "roboflow-id-without-api-key",
        roboflow_without_key,
        errors.RoboflowAPIKeyMissingError,
        ("shapes-seg/3", "needs an API key", "'api_key'", "ROBOFLOW_API_KEY"),
    ),
    Case(
        "roboflow-read-only-cache-folder",
        roboflow_read_only_cache,
        errors.CacheNotWritableError,
        ("Cannot write the model cache folder", "cache", "WORKFLOWS_YOLOV5_SEG_CACHE_DIR", "writable"),
    ),
    Case("roboflow-corrupted-cached-download", roboflow_corrupted_cache_is_refetched, check=same_as_reference),
    Case("tensorrt-corrupted-cached-engine", trt_corrupted_cached_engine, check=same_as_reference),
    Case(
        "tensorrt-read-only-engine-cache",
        trt_read_only_engine_cache,
        errors.CacheNotWritableError,
        ("TensorRT engine cache folder", "engines", "WORKFLOWS_YOLOV5_SEG_CACHE_DIR", "writable"),
    ),
]

IMAGES = [
    Case(
        "image-0x0",
        on_shared(np.zeros((0, 0, 3), np.uint8)),
        errors.InvalidImageError,
        (r"shape \(0, 0, 3\) is empty", "at least 1x1"),
    ),
    Case("image-0xN", on_shared(np.zeros((0, 64, 3), np.uint8)), errors.InvalidImageError, ("empty", "at least 1x1")),
    Case("image-1x1", on_shared(np.full((1, 1, 3), 9, np.uint8)), check=image_sized(1, 1, count=None)),
    Case("image-1xN", on_shared(np.full((1, 500, 3), 9, np.uint8)), check=image_sized(1, 500, count=None)),
    Case("image-Nx1", on_shared(np.full((500, 1, 3), 9, np.uint8)), check=image_sized(500, 1, count=None)),
    Case(
        "image-over-default-pixel-limit",
        on_shared(huge_virtual_image),
        errors.InvalidImageError,
        ("10000x11000", f"limit of {settings.MAX_IMAGE_PIXELS.default}", "downscale", settings.MAX_IMAGE_PIXELS.name),
    ),
    Case(
        "image-over-env-pixel-limit",
        huge_image_with_the_env_limit,
        errors.InvalidImageError,
        ("200x200", "limit of 10000", "downscale it or raise the limit", settings.MAX_IMAGE_PIXELS.name),
    ),
    Case("image-grayscale-2d", on_shared(np.zeros((160, 320), np.uint8)), check=same_as_reference),
    Case("image-grayscale-1-channel", on_shared(np.zeros((160, 320, 1), np.uint8)), check=same_as_reference),
    Case("image-bgra", on_shared(np.zeros((160, 320, 4), np.uint8)), check=same_as_reference),
    Case("image-uint16", on_shared(np.full((160, 320, 3), 65535, np.uint16)), check=same_as_reference),
    Case("image-float32-0-1", on_shared(np.full((160, 320, 3), 0.5, np.float32)), check=same_as_reference),
    Case("image-float64-0-255", on_shared(np.full((160, 320, 3), 200.0, np.float64)), check=same_as_reference),
    Case("image-bool", on_shared(np.ones((160, 320), bool)), check=same_as_reference),
    Case("image-non-contiguous", on_shared(np.zeros((320, 640, 3), np.uint8)[::2, ::2]), check=same_as_reference),
    Case(
        "image-fortran-order", on_shared(np.asfortranarray(np.zeros((160, 320, 3), np.uint8))), check=same_as_reference
    ),
    Case("image-read-only", on_shared(lambda: read_only(np.zeros((160, 320, 3), np.uint8))), check=same_as_reference),
    Case(
        "image-nan-pixels",
        on_shared(np.full((16, 16, 3), np.nan, np.float32)),
        errors.InvalidImageError,
        ("NaN or infinite", "finite pixel values"),
    ),
    Case(
        "image-2-channels",
        on_shared(np.zeros((16, 16, 2), np.uint8)),
        errors.InvalidImageError,
        (r"\(16, 16, 2\) is not supported", "C in 1, 3, 4"),
    ),
    Case(
        "image-int32",
        on_shared(np.zeros((16, 16, 3), np.int32)),
        errors.InvalidImageError,
        ("dtype int32 is not supported", "uint8, uint16, float"),
    ),
    Case("image-not-an-array", on_shared(lambda: [[0, 0, 0]]), errors.InvalidImageError, ("numpy array", "list")),
]

PYTHON_PARAMETERS = [
    Case(
        "confidence-above-1",
        on_shared(GOOD_IMAGE, confidence=1.5),
        errors.InvalidParameterError,
        ("confidence must be a number in \\[0, 1\\]", "1.5"),
    ),
    Case(
        "confidence-negative",
        on_shared(GOOD_IMAGE, confidence=-0.1),
        errors.InvalidParameterError,
        ("confidence", r"\[0, 1\]", "-0.1"),
    ),
    Case(
        "confidence-nan",
        on_shared(GOOD_IMAGE, confidence=math.nan),
        errors.InvalidParameterError,
        ("confidence", r"\[0, 1\]", "nan"),
    ),
    Case(
        "iou-above-1",
        on_shared(GOOD_IMAGE, iou_threshold=1.01),
        errors.InvalidParameterError,
        ("iou_threshold must be a number in \\[0, 1\\]", "1.01"),
    ),
    Case(
        "iou-negative",
        on_shared(GOOD_IMAGE, iou_threshold=-0.5),
        errors.InvalidParameterError,
        ("iou_threshold", r"\[0, 1\]"),
    ),
    Case(
        "tradeoff-above-1",
        on_shared(GOOD_IMAGE, tradeoff_factor=2),
        errors.InvalidParameterError,
        ("tradeoff_factor must be a number in \\[0, 1\\]", "2"),
    ),
    Case(
        "tradeoff-negative",
        on_shared(GOOD_IMAGE, tradeoff_factor=-0.5),
        errors.InvalidParameterError,
        ("tradeoff_factor", r"\[0, 1\]"),
    ),
    Case(
        "max-detections-0",
        on_shared(GOOD_IMAGE, max_detections=0),
        errors.InvalidParameterError,
        ("max_detections must be an integer >= 1", "0"),
    ),
    Case(
        "max-detections-negative",
        on_shared(GOOD_IMAGE, max_detections=-3),
        errors.InvalidParameterError,
        ("max_detections must be an integer >= 1", "-3"),
    ),
    Case(
        "max-detections-float",
        on_shared(GOOD_IMAGE, max_detections=2.5),
        errors.InvalidParameterError,
        ("max_detections must be an integer", "2.5"),
    ),
    Case(
        "mask-decode-mode-unknown",
        on_shared(GOOD_IMAGE, mask_decode_mode="exact"),
        errors.InvalidParameterError,
        ("mask_decode_mode must be one of accurate, fast, tradeoff", "'exact'"),
    ),
    Case(
        "class-filter-unknown-python-api",
        on_shared(GOOD_IMAGE, class_filter=("unicorn",)),
        check=warns_with_known_classes,
    ),
]

WORKFLOW = [
    *[
        Case(
            f"literal-{field}-{value}",
            run_workflow(workflow(step={field: value})),
            "WorkflowDefinitionError",
            (field, expected),
            needs_engine=True,
        )
        for field, value, expected in [
            ("confidence", 1.5, "less than or equal to 1"),
            ("confidence", -0.1, "greater than or equal to 0"),
            ("iou_threshold", -0.2, "greater than or equal to 0"),
            ("tradeoff_factor", 3, "less than or equal to 1"),
            ("max_detections", 0, "greater than 0"),
            ("max_detections", -5, "greater than 0"),
            ("mask_decode_mode", "exact", "'accurate', 'tradeoff' or 'fast'"),
            ("backend", "cuda", "'auto', 'onnx' or 'trt'"),
        ]
    ],
    *[
        Case(
            f"inputs-{field}-{value}",
            run_workflow(**{field: value}),
            "RuntimeInputError",
            (f"property {field}", f"input parameter named {field}", expected),
            needs_engine=True,
        )
        for field, value, expected in [
            ("confidence", 1.7, "less than or equal to 1"),
            ("iou_threshold", -0.1, "greater than or equal to 0"),
            ("tradeoff_factor", 1.5, "less than or equal to 1"),
            ("max_detections", 0, "greater than 0"),
            ("max_detections", -1, "greater than 0"),
            ("mask_decode_mode", "exact", "'accurate', 'tradeoff' or 'fast'"),
            ("backend", "cuda", "'auto', 'onnx' or 'trt'"),
        ]
    ],
    Case(
        "step-string-mask-decode-mode",
        run_block(mask_decode_mode="exact"),
        errors.InvalidParameterError,
        ("mask_decode_mode must be one of accurate, fast, tradeoff", "'exact'"),
        needs_engine=True,
    ),
    Case(
        "step-string-backend",
        run_block(backend="cuda"),
        errors.InvalidParameterError,
        ("backend must be one of auto, onnx, trt", "'cuda'"),
        needs_engine=True,
    ),
    Case(
        "inputs-class-filter-unknown",
        run_workflow(class_filter=["unicorn"]),
        check=warns_with_known_classes,
        needs_engine=True,
    ),
    Case(
        "inputs-model-is-a-pickle",
        run_workflow(model=lambda env: str(write("best.pt", b"\x80\x04.")(env))),
        "StepExecutionError",
        ("best.pt", "pickle", "export.py"),
        needs_engine=True,
    ),
    Case(
        "inputs-model-is-missing",
        run_workflow(model=lambda env: str(env.tmp / "gone.onnx")),
        "StepExecutionError",
        ("gone.onnx", "does not exist"),
        needs_engine=True,
    ),
]

# --- API keys for a Roboflow model cached for another key (issue 15) --------------------------------------------------


def cached_for_key_a(then: Callable[[Env], Any]) -> Callable[[Env], Any]:
    """Key A downloads and loads ``shapes-seg/3`` from the fake API (key B is valid, without access); then ``then``."""

    def action(env: Env) -> Any:
        from workflows_yolov5_seg import authorization

        roboflow_env(env)
        env.monkeypatch.setattr(authorization, "ANSWERS", authorization.RememberedAnswers())
        package = env.package(LETTERBOX_320_CONFIG)
        fake = FakeRoboflowAPI(
            api_key="rf_k3y_A", models={"shapes-seg/3": FakeModel(files=package_files_from(package))}
        )
        fake.grant("rf_k3y_B")
        with serve(fake):
            env.monkeypatch.setenv(settings.API_URL.name, fake.base_url)
            YOLOv5SegModel.from_pretrained("shapes-seg/3", api_key="rf_k3y_A")(GOOD_IMAGE)
            return then(env)

    return action


def offline(env: Env) -> Any:
    env.monkeypatch.setenv(settings.OFFLINE_MODE.name, "1")
    return YOLOv5SegModel.from_pretrained("shapes-seg/3", api_key="rf_k3y_B")


ROBOFLOW_KEYS = [
    Case(
        "roboflow-cached-model-unauthorised-key",
        cached_for_key_a(lambda env: YOLOv5SegModel.from_pretrained("shapes-seg/3", api_key="rf_k3y_B")),
        errors.RoboflowUnauthorizedError,
        ("shapes-seg/3", "refused access to the model", "403", "api_key", "ROBOFLOW_API_KEY"),
    ),
    Case(
        "roboflow-cached-model-without-key",
        cached_for_key_a(lambda env: YOLOv5SegModel.from_pretrained("shapes-seg/3")),
        errors.RoboflowAPIKeyMissingError,
        ("shapes-seg/3", "needs an API key", "'api_key'", "ROBOFLOW_API_KEY"),
    ),
    Case(
        "roboflow-offline-unconfirmed-key",
        cached_for_key_a(offline),
        errors.RoboflowKeyNotConfirmedError,
        ("shapes-seg/3", "not been confirmed", "OFFLINE_MODE is on", "with network access", "OFFLINE_CONFIRMATION_TTL"),
    ),
]

# --- special files and served paths (issue 13): refused before anything is read, typed --------------------------------


def fifo(env: Env) -> Path:
    os.mkfifo(env.tmp / "pipe.onnx")  # opening it for reading would block forever
    return env.tmp / "pipe.onnx"


def unix_socket(env: Env) -> Path:
    import socket

    path = env.tmp / "model.sock"
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(path))  # the socket file stays after the socket is closed
    return path


def symlink_loop(env: Env) -> Path:
    (env.tmp / "a.onnx").symlink_to(env.tmp / "b.onnx")
    (env.tmp / "b.onnx").symlink_to(env.tmp / "a.onnx")
    return env.tmp / "a.onnx"


def folder_named_weights(env: Env) -> Path:
    folder = env.package(LETTERBOX_320_CONFIG)
    (folder / "weights.onnx").unlink()
    (folder / "weights.onnx").mkdir()
    return folder


def class_names_from_a_device(env: Env) -> Path:
    folder = env.package(LETTERBOX_320_CONFIG)
    (folder / "class_names.txt").unlink()
    (folder / "class_names.txt").symlink_to("/dev/zero")  # reading it would never end
    return folder


def over_the_size_limit(env: Env) -> Path:
    env.monkeypatch.setenv(settings.MAX_MODEL_FILE_BYTES.name, "1000")
    return env.seg_model("big.onnx")


def served(roots: Callable[[Env], list[Path]] | None, path: Callable[[Env], str]) -> Callable[[Env], Any]:
    """Loads ``path`` as a server would (``WORKFLOWS_YOLOV5_SEG_SERVING=served``), with ``roots`` as model roots."""

    def action(env: Env) -> Any:
        env.monkeypatch.setenv(settings.SERVING.name, "served")
        if roots is None:
            env.monkeypatch.delenv(settings.MODEL_ROOTS.name, raising=False)
        else:
            env.monkeypatch.setenv(settings.MODEL_ROOTS.name, os.pathsep.join(map(str, roots(env))))
        return YOLOv5SegModel.from_pretrained(path(env))(GOOD_IMAGE)

    return action


def tmp_root(env: Env) -> list[Path]:
    (env.tmp / "models").mkdir(exist_ok=True)
    return [env.tmp / "models"]


def model_in_root(env: Env) -> str:
    return str(env.seg_model("models/m.onnx"))


SPECIAL_FILES = [
    Case(
        "device-as-model",
        load("/dev/zero"),
        errors.InvalidModelFileError,
        ("/dev/zero", "is a character device", "not a model file", r"\.onnx file or a package folder"),
    ),
    Case("fifo-as-model", load(fifo), errors.InvalidModelFileError, ("pipe.onnx", "named pipe", "not a model file")),
    Case("socket-as-model", load(unix_socket), errors.InvalidModelFileError, ("model.sock", "a socket", "not a model")),
    Case(
        "symlink-loop",
        load(symlink_loop),
        errors.InvalidModelFileError,
        ("a.onnx", "symbolic link loop", "point the link at a real"),
    ),
    Case(
        "folder-where-weights-belong",
        load(folder_named_weights),
        errors.InvalidModelFileError,
        ("weights.onnx", "is a folder", "not a model file"),
    ),
    Case(
        "class-names-from-a-device",
        load(class_names_from_a_device),
        errors.InvalidModelFileError,
        ("class_names.txt", "character device"),
    ),
    Case(
        "weights-over-the-size-limit",
        load(over_the_size_limit),
        errors.InvalidModelFileError,
        ("big.onnx", "more than the limit of 1000", "WORKFLOWS_YOLOV5_SEG_MAX_MODEL_FILE_BYTES", "raise the limit"),
    ),
    Case(
        "served-without-model-roots",
        served(None, lambda env: str(env.seg_model())),
        errors.ModelPathNotAllowedError,
        ("not allowed on this server", "--model-root DIR", "WORKFLOWS_YOLOV5_SEG_MODEL_ROOTS", "project/version"),
    ),
    Case(
        "served-outside-the-model-roots",
        served(tmp_root, lambda env: "/etc/hostname"),
        errors.ModelPathNotAllowedError,
        ("'/etc/hostname' is outside the allowed model roots", "move the model under one of them"),
    ),
    Case(
        "served-dotdot-out-of-the-model-roots",
        served(tmp_root, lambda env: str(env.tmp / "models" / ".." / "m.onnx")),
        errors.ModelPathNotAllowedError,
        ("outside the allowed model roots",),
    ),
    Case("served-inside-the-model-roots", served(tmp_root, model_in_root), check=image_sized(160, 320)),
]

MATRIX = [*LOAD, *IMAGES, *PYTHON_PARAMETERS, *WORKFLOW, *ROBOFLOW_KEYS, *SPECIAL_FILES]


@pytest.mark.parametrize("existing", ["/etc/hostname", "/etc/passwd", "/root", "/proc/self/environ"])
def test_a_served_refusal_says_nothing_about_the_path(existing: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Served, an existing file, a folder and a missing path outside the roots get the same answer but for the path,
    and nothing of a file's content; so do they with no roots at all."""
    monkeypatch.setenv(settings.SERVING.name, "served")
    missing = existing + "-does-not-exist"
    for roots in ([], [Path("/nonexistent-model-root")]):
        monkeypatch.setenv(settings.MODEL_ROOTS.name, os.pathsep.join(map(str, roots)))
        answers = []
        for path in (existing, missing):
            with pytest.raises(errors.ModelPathNotAllowedError) as caught:
                YOLOv5SegModel.from_pretrained(path)
            answers.append(str(caught.value).replace(path, "PATH"))
        assert answers[0] == answers[1]
        assert "root:" not in answers[0]  # /etc/passwd's first line


def test_the_matrix_is_large_and_ids_are_unique() -> None:
    assert len(MATRIX) >= 30
    assert len({case.id for case in MATRIX}) == len(MATRIX)


@pytest.mark.parametrize("case", MATRIX, ids=[case.id for case in MATRIX])
def test_bad_input(
    case: Case,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    two_box_model: Path,
    shared_model: YOLOv5SegModel,
) -> None:
    caplog.set_level(logging.WARNING)
    engine = request.getfixturevalue("workflow_engine") if case.needs_engine else None
    env = Env(tmp_path, monkeypatch, caplog, two_box_model, shared_model, engine)
    expected = workflow_error(case.error) if isinstance(case.error, str) else case.error

    if expected is None:
        result = case.action(env)
        assert case.check is not None
        case.check(result, env)
    else:
        with pytest.raises(expected) as caught:
            case.action(env)
        text = error_text(caught.value)
        missing = [word for word in case.words if not re.search(word, text, flags=re.IGNORECASE)]
        assert not missing, f"the message lacks {missing}:\n{text}"

    # The same process keeps serving, with the model it had loaded.
    monkeypatch.undo()
    np.testing.assert_allclose(shared_model(GOOD_IMAGE)[0].xyxy, REFERENCE_XYXY)
    assert shared_model.max_image_pixels == settings.MAX_IMAGE_PIXELS.default
    if engine is not None:
        served = engine.run(runtime_parameters={"image": GOOD_IMAGE, "model": str(two_box_model)})[0]["predictions"]
        np.testing.assert_allclose(served.xyxy, REFERENCE_XYXY)
