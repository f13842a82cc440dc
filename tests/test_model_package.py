"""Model package parsing: inference-models packages, legacy Inference folders, TensorRT configs, bare files."""

from __future__ import annotations

import copy
import json
import re
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest

from workflows_yolov5_seg.errors import (
    InvalidModelFileError,
    InvalidModelPackageError,
    ModelNotFoundError,
    NotYOLOSegModelError,
    UntrustedModelError,
)
from workflows_yolov5_seg.layouts import ANCHOR_FREE, END_TO_END, YOLOV5, OutputLayout
from workflows_yolov5_seg.model_package import (
    load_model_package,
    parse_inference_config,
    parse_legacy_environment,
    parse_model_config,
    read_inference_config,
)
from workflows_yolov5_seg.preprocessing import PreprocessingConfig, StaticCrop

from support.onnx_graphs import NUM_COEFFICIENTS, make_constant_seg_onnx, ultralytics_metadata
from support.paths import TEST_DATA

# inference-models package configs, copied from the project's reference notes (shared/reference/examples)
EXAMPLES = TEST_DATA / "reference_examples"
LETTERBOX = {
    "image_pre_processing": {
        "auto-orient": {"enabled": True},
        "static-crop": None,
        "contrast": None,
        "grayscale": None,
    },
    "network_input": {
        "training_input_size": {"height": 640, "width": 640},
        "dynamic_spatial_size_supported": False,
        "dynamic_spatial_size_mode": None,
        "color_mode": "rgb",
        "resize_mode": "letterbox",
        "padding_value": 114,
        "input_channels": 3,
        "scaling_factor": 255,
        "normalization": None,
    },
    "forward_pass": {"static_batch_size": 1, "max_dynamic_batch_size": None},
    "post_processing": {"type": "nms", "fused": False, "nms_parameters": None},
    "model_initialization": None,
    "class_names_operations": None,
}
DOCS_EXAMPLE = {
    "image_pre_processing": {
        "auto-orient": {"enabled": True},
        "static-crop": {"enabled": True, "x_min": 10, "y_min": 10, "x_max": 630, "y_max": 470},
        "contrast": {"enabled": False, "type": "Adaptive Equalization"},
        "grayscale": {"enabled": False},
    },
    "network_input": {
        "training_input_size": {"height": 640, "width": 640},
        "dynamic_spatial_size_supported": True,
        "dynamic_spatial_size_mode": {"type": "divisible-padding", "divisor": 32},
        "color_mode": "rgb",
        "resize_mode": "letterbox",
        "padding_value": 114,
        "input_channels": 3,
        "scaling_factor": 255.0,
        "normalization": [[0.485, 0.456, 0.406], [0.229, 0.224, 0.225]],
    },
    "forward_pass": {"static_batch_size": None, "max_dynamic_batch_size": 8},
    "post_processing": {
        "type": "nms",
        "fused": False,
        "nms_parameters": {
            "max_detections": 300,
            "confidence_threshold": 0.25,
            "iou_threshold": 0.45,
            "class_agnostic": 0,
        },
    },
    "class_names_operations": [{"type": "class_name_removal", "class_name": "background"}],
}


def write_json(path: Path, content: object) -> Path:
    path.write_text(json.dumps(content))
    return path


def with_change(base: dict, dotted: str, value: object) -> dict:
    """A deep copy of ``base`` with ``dotted`` (``a.b.c``) set to ``value``, or deleted when ``value`` is ``...``."""
    config = copy.deepcopy(base)
    *parents, last = dotted.split(".")
    node = config
    for key in parents:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    if value is ...:
        node.pop(last, None)
    else:
        node[last] = value
    return config


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "inference_config.yolov5seg_letterbox.json",
            PreprocessingConfig(resize_mode="letterbox", padding_value=114, size_rounding="truncate"),
        ),
        (
            "inference_config.yolov5seg_stretch_staticcrop.json",
            PreprocessingConfig(
                resize_mode="stretch", padding_value=0, static_crop=StaticCrop(10, 5, 90, 95), size_rounding="truncate"
            ),
        ),
        (
            "inference_config.yolov5seg_fit_longer_edge.json",
            PreprocessingConfig(resize_mode="fit-longer-edge", padding_value=0, size_rounding="truncate"),
        ),
    ],
)
def test_reference_examples_parse(name: str, expected: PreprocessingConfig) -> None:
    path = EXAMPLES / name
    assert parse_inference_config(path) == (expected, (640, 640))


def test_docs_example_does_not_parse_and_the_error_names_the_key(tmp_path: Path) -> None:
    """The upstream docs' "Complete Example" fails in inference-models 0.39 too (its pydantic discriminator)."""
    path = write_json(tmp_path / "inference_config.json", DOCS_EXAMPLE)
    with pytest.raises(
        InvalidModelPackageError, match=r"'network_input\.dynamic_spatial_size_mode\.type' is 'divisible-padding'"
    ):
        parse_inference_config(path)
    fixed = with_change(
        DOCS_EXAMPLE, "network_input.dynamic_spatial_size_mode", {"type": "pad-to-be-divisible", "value": 32}
    )
    with pytest.raises(InvalidModelPackageError, match=r"'image_pre_processing\.static-crop'.*look like pixels"):
        parse_inference_config(write_json(tmp_path / "inference_config.json", fixed))


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("network_input.padding_value", None, {"padding_value": 0}),  # null -> black, as inference-models
        ("network_input.padding_value", 127, {"padding_value": 127}),
        ("network_input.color_mode", "bgr", {"color_order": "bgr"}),
        ("network_input.resize_mode", "center-crop", {"resize_mode": "center-crop"}),
        ("network_input.resize_mode", "letterbox-reflect-edges", {"resize_mode": "letterbox-reflect-edges"}),
        ("network_input.scaling_factor", None, {"scaling_factor": 1.0}),  # inference-models does not scale then
        ("network_input.normalization", [[0.5], [0.25]], {"normalization": ((0.5,), (0.25,))}),
        ("image_pre_processing.grayscale", {"enabled": True}, {"grayscale": True}),
        (
            "image_pre_processing.contrast",
            {"enabled": True, "type": "Contrast Stretching"},
            {"contrast": "Contrast Stretching"},
        ),
        ("image_pre_processing.contrast", {"enabled": False, "type": "Contrast Stretching"}, {}),
        (
            "image_pre_processing.static-crop",
            {"enabled": True, "x_min": 1, "y_min": 2, "x_max": 98, "y_max": 99.0},
            {"static_crop": StaticCrop(1, 2, 98, 99)},
        ),
        ("image_pre_processing", None, {}),
        ("image_pre_processing.future-step", {"enabled": False}, {}),
        ("forward_pass", None, {}),
        ("post_processing", {"type": "softmax", "fused": True}, {}),
        ("class_names_operations", [{"type": "class_name_removal", "class_name": "bg"}], {}),
        ("some_future_top_level_key", {"x": 1}, {}),
    ],
)
def test_inference_config_values(tmp_path: Path, key: str, value: object, expected: dict) -> None:
    path = write_json(tmp_path / "inference_config.json", with_change(LETTERBOX, key, value))
    preprocessing, input_hw = parse_inference_config(path)
    base = PreprocessingConfig(resize_mode="letterbox", padding_value=114, size_rounding="truncate")
    assert preprocessing == PreprocessingConfig(**{**base.__dict__, **expected})
    assert input_hw == (640, 640)


@pytest.mark.parametrize(
    ("key", "value", "named"),
    [
        ("network_input", ..., "network_input"),
        ("network_input.resize_mode", "fill", "network_input.resize_mode"),
        ("network_input.resize_mode", ..., "network_input.resize_mode"),
        ("network_input.color_mode", "gray", "network_input.color_mode"),
        ("network_input.input_channels", 1, "network_input.input_channels"),
        ("network_input.input_channels", ..., "network_input.input_channels"),
        ("network_input.dynamic_spatial_size_supported", ..., "network_input.dynamic_spatial_size_supported"),
        ("network_input.dynamic_spatial_size_supported", "no", "network_input.dynamic_spatial_size_supported"),
        ("network_input.training_input_size", ..., "network_input.training_input_size"),
        ("network_input.training_input_size", {"height": 640}, "network_input.training_input_size.width"),
        ("network_input.training_input_size", {"height": 640, "width": 0}, "network_input.training_input_size"),
        ("network_input.padding_value", 300, "network_input.padding_value"),
        ("network_input.padding_value", 1.5, "network_input.padding_value"),
        ("network_input.scaling_factor", "255", "network_input.scaling_factor"),
        ("network_input.normalization", [[0.5, 0.5]], "network_input.normalization"),
        (
            "network_input.dynamic_spatial_size_mode",
            {"type": "pad-to-be-divisible"},
            "network_input.dynamic_spatial_size_mode.value",
        ),
        ("image_pre_processing.static-crop", {"enabled": False}, "image_pre_processing.static-crop.x_min"),
        (
            "image_pre_processing.static-crop",
            {"enabled": True, "x_min": 50, "y_min": 0, "x_max": 40, "y_max": 100},
            "image_pre_processing.static-crop",
        ),
        (
            "image_pre_processing.static-crop",
            {"enabled": True, "x_min": 0.5, "y_min": 0, "x_max": 40, "y_max": 100},
            "image_pre_processing.static-crop.x_min",
        ),
        ("image_pre_processing.contrast", {"enabled": True, "type": "Sharpen"}, "image_pre_processing.contrast.type"),
        ("image_pre_processing.contrast", {"enabled": False}, "image_pre_processing.contrast.type"),
        ("image_pre_processing.grayscale", {"enabled": "yes"}, "image_pre_processing.grayscale.enabled"),
        ("image_pre_processing.grayscale", True, "image_pre_processing.grayscale"),
        ("image_pre_processing.static_crop", {"enabled": True}, "image_pre_processing.static_crop"),
        ("image_pre_processing.blur", {"enabled": True}, "image_pre_processing.blur"),
        ("post_processing", {"type": "argmax", "fused": False}, "post_processing.type"),
        ("post_processing", {"type": "nms"}, "post_processing.fused"),
        ("class_names_operations", [{"type": "rename"}], "class_names_operations[0].type"),
        ("forward_pass", {"static_batch_size": "one"}, "forward_pass.static_batch_size"),
    ],
)
def test_invalid_inference_config_names_the_key(tmp_path: Path, key: str, value: object, named: str) -> None:
    path = write_json(tmp_path / "inference_config.json", with_change(LETTERBOX, key, value))
    with pytest.raises(InvalidModelPackageError, match=re.escape(f"'{named}'")) as caught:
        parse_inference_config(path)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", ""])
def test_unreadable_inference_config(tmp_path: Path, content: str) -> None:
    path = tmp_path / "inference_config.json"
    path.write_text(content)
    with pytest.raises(InvalidModelPackageError, match="inference_config.json"):
        parse_inference_config(path)


def test_accepts_what_inference_models_accepts(tmp_path: Path) -> None:
    """Cross-check against inference-models' own pydantic parser (skipped without inference-models)."""
    pytest.importorskip("torch")
    packages = pytest.importorskip("inference_models.models.common.roboflow.model_packages")
    variants = {
        "letterbox": LETTERBOX,
        "docs": DOCS_EXAMPLE,
        "no-training-size": with_change(LETTERBOX, "network_input.training_input_size", ...),
        "bad-mode-type": with_change(LETTERBOX, "network_input.dynamic_spatial_size_mode", {"type": "x"}),
        "contrast-no-type": with_change(LETTERBOX, "image_pre_processing.contrast", {"enabled": False}),
        "crop-disabled-no-coords": with_change(LETTERBOX, "image_pre_processing.static-crop", {"enabled": False}),
        "null-pre-processing": with_change(LETTERBOX, "image_pre_processing", None),
        "post-softmax": with_change(LETTERBOX, "post_processing", {"type": "softmax", "fused": True}),
        "post-bad": with_change(LETTERBOX, "post_processing", {"type": "argmax", "fused": True}),
        "missing-channels": with_change(LETTERBOX, "network_input.input_channels", ...),
        "extra-key": with_change(LETTERBOX, "network_input.something_new", 1),
    }
    for name, config in variants.items():
        path = write_json(tmp_path / f"{name}.json", config)
        try:
            packages.InferenceConfig.model_validate(config)
            theirs = True
        except Exception:  # noqa: BLE001 - pydantic's ValidationError
            theirs = False
        try:
            parse_inference_config(path)
            ours = True
        except InvalidModelPackageError:
            ours = False
        assert ours == theirs, name


@pytest.mark.parametrize(
    ("content", "error"),
    [
        ({"model_architecture": "yolov5", "task_type": "instance-segmentation", "backend_type": "onnx"}, None),
        ({"model_architecture": "yolov5", "task_type": "instance-segmentation", "backend_type": "trt"}, None),
        ({"model_architecture": "yolov8", "backend_type": "onnx"}, None),
        ({"model_architecture": "yolo26", "backend_type": "onnx"}, None),
        ({"model_architecture": "yolov11", "task_type": "instance-segmentation", "backend_type": "onnx"}, None),
        ({"model_architecture": "yolov8n-seg", "backend_type": "onnx"}, None),  # Inference's model type spelling
        ({"model_architecture": "yolo11", "backend_type": "onnx"}, None),  # Ultralytics' spelling of the generation
        ({"model_architecture": "rfdetr", "backend_type": "onnx"}, "'model_architecture'.*YOLOv5, YOLOv8.*'yolov11'"),
        ({"model_architecture": "yolov7", "backend_type": "onnx"}, "'model_architecture' is 'yolov7'"),
        ({"model_architecture": "yolov8n-pose", "backend_type": "onnx"}, "'model_architecture' is 'yolov8n-pose'"),
        ({"model_architecture": "yolov5", "task_type": "object-detection"}, "'task_type'"),
        ({"model_architecture": "yolov5", "backend": "onnx"}, "'backend'.*'backend_type'"),
        ({"model_architecture": "yolov5", "backend_type": "tensorflow"}, "'backend_type'"),
    ],
)
def test_model_config(tmp_path: Path, content: dict, error: str | None) -> None:
    path = write_json(tmp_path / "model_config.json", content)
    if error is None:
        assert parse_model_config(path)["model_architecture"] == content["model_architecture"]
    else:
        with pytest.raises(InvalidModelPackageError, match=error):
            parse_model_config(path)


@pytest.mark.parametrize(
    ("preprocessing", "expected", "input_hw"),
    [
        (
            {"resize": {"enabled": True, "width": 320, "height": 256, "format": "Fit (grey edges) in"}},
            PreprocessingConfig(resize_mode="letterbox", padding_value=114, size_rounding="truncate"),
            (256, 320),
        ),
        (
            {"resize": {"enabled": True, "width": 320, "height": 320, "format": "Fit (white edges) in"}},
            PreprocessingConfig(resize_mode="letterbox", padding_value=255, size_rounding="truncate"),
            (320, 320),
        ),
        (
            {"resize": {"enabled": True, "width": 320, "height": 320, "format": "Stretch to"}},
            PreprocessingConfig(resize_mode="stretch", padding_value=0, size_rounding="truncate"),
            (320, 320),
        ),
        (
            {"resize": {"enabled": True, "format": "Fill (with center crop) in"}},  # the legacy server's fallback
            PreprocessingConfig(resize_mode="letterbox", padding_value=0, size_rounding="truncate"),
            None,
        ),
        (
            json.dumps(
                {
                    "resize": {"enabled": True, "width": 320, "height": 320, "format": "Fit (black edges) in"},
                    "static-crop": {"enabled": True, "x_min": 10, "y_min": 5, "x_max": 90, "y_max": 95},
                    "grayscale": {"enabled": True},
                    "contrast": {"enabled": True, "type": "Histogram Equalization"},
                    "auto-orient": {"enabled": True},
                }
            ),  # PREPROCESSING as a JSON string
            PreprocessingConfig(
                resize_mode="letterbox",
                padding_value=0,
                static_crop=StaticCrop(10, 5, 90, 95),
                grayscale=True,
                contrast="Histogram Equalization",
                size_rounding="truncate",
            ),
            (320, 320),
        ),
        (
            {"static-crop": {"enabled": False}, "contrast": {"enabled": False}},  # disabled steps need no values
            PreprocessingConfig(resize_mode="stretch", padding_value=0, size_rounding="truncate"),
            None,
        ),
    ],
)
def test_legacy_environment(tmp_path: Path, preprocessing, expected, input_hw) -> None:
    path = write_json(
        tmp_path / "environment.json", {"PREPROCESSING": preprocessing, "CLASS_MAP": {"1": "b", "0": "a"}}
    )
    assert parse_legacy_environment(path) == (expected, input_hw, ("a", "b"))


@pytest.mark.parametrize(
    ("environment", "named"),
    [
        ({"PREPROCESSING": "{broken"}, "'PREPROCESSING'"),
        ({"PREPROCESSING": [1]}, "'PREPROCESSING'"),
        ({"PREPROCESSING": {"resize": {"enabled": True, "format": "Squash"}}}, "'PREPROCESSING.resize.format'"),
        ({"PREPROCESSING": {"resize": {"enabled": True}}}, "'PREPROCESSING.resize.format'"),
        ({"PREPROCESSING": {"contrast": {"enabled": True, "type": "x"}}}, "'PREPROCESSING.contrast.type'"),
        ({"PREPROCESSING": {"static-crop": {"enabled": True, "x_min": 1}}}, "'PREPROCESSING.static-crop.y_min'"),
        ({"CLASS_MAP": ["a"]}, "'CLASS_MAP'"),
        ({"CLASS_MAP": {"a": "b"}}, "'CLASS_MAP'"),
    ],
)
def test_invalid_legacy_environment_names_the_key(tmp_path: Path, environment: dict, named: str) -> None:
    with pytest.raises(InvalidModelPackageError, match=named):
        parse_legacy_environment(write_json(tmp_path / "environment.json", environment))


def seg_onnx(path: Path, num_classes: int = 2) -> Path:
    """A 320x320 YOLOv5-seg ONNX predicting ``num_classes`` classes (no detections), without names metadata."""
    protos = np.zeros((NUM_COEFFICIENTS, 80, 80), np.float32)
    return make_constant_seg_onnx(path, np.zeros((1, 5 + num_classes + NUM_COEFFICIENTS), np.float32), protos)


def make_package(folder: Path, weights: Path, config: dict | None = LETTERBOX, names: str = "a\nb\n") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(weights, folder / "weights.onnx")
    (folder / "class_names.txt").write_text(names)
    if config is not None:
        write_json(folder / "inference_config.json", config)
    return folder


def test_inference_models_folder(tmp_path: Path) -> None:
    folder = make_package(tmp_path / "pkg", seg_onnx(tmp_path / "w.onnx"))
    write_json(
        folder / "model_config.json",
        {"model_architecture": "yolov5", "task_type": "instance-segmentation", "backend_type": "onnx"},
    )
    package = load_model_package(folder, model_id="mine")
    assert package.model_id == "mine"
    assert package.weights_path == folder / "weights.onnx"
    assert package.class_names == ("a", "b")
    assert package.input_hw == (640, 640)  # the config's training size; the ONNX's own is 320x320
    assert package.signature is not None and package.signature.input_hw == (320, 320)
    assert package.preprocessing.size_rounding == "truncate"
    assert package.engine_path is None and package.trt_batch_sizes is None


@pytest.mark.parametrize(
    ("trt_config", "expected"),
    [
        ({"static_batch_size": 1}, (1, 1, 1)),
        ({"dynamic_batch_size_min": 1, "dynamic_batch_size_opt": 8, "dynamic_batch_size_max": 16}, (1, 8, 16)),
    ],
)
def test_tensorrt_package(tmp_path: Path, trt_config: dict, expected: tuple[int, int, int]) -> None:
    folder = tmp_path / "trt"
    folder.mkdir()
    (folder / "engine.plan").write_bytes(b"plan")
    (folder / "class_names.txt").write_text("a\n")
    write_json(folder / "inference_config.json", LETTERBOX)
    write_json(folder / "trt_config.json", trt_config)
    package = load_model_package(folder)
    assert package.weights_path is None
    assert package.engine_path == folder / "engine.plan"
    assert package.trt_batch_sizes == expected


@pytest.mark.parametrize(
    ("trt_config", "named"),
    [
        (
            {"dynamic_batch_size_min": 1, "dynamic_batch_size_max": 16},
            "dynamic_batch_size_opt",
        ),  # examples/…missing_opt
        ({"static_batch_size": 0}, "static_batch_size"),
        ({"dynamic_batch_size_min": 4, "dynamic_batch_size_opt": 2, "dynamic_batch_size_max": 16}, "min <= opt"),
    ],
)
def test_invalid_trt_config(tmp_path: Path, trt_config: dict, named: str) -> None:
    folder = tmp_path / "trt"
    folder.mkdir()
    (folder / "engine.plan").write_bytes(b"plan")
    write_json(folder / "trt_config.json", trt_config)
    with pytest.raises(InvalidModelPackageError, match=named):
        load_model_package(folder)


def test_legacy_folder(tmp_path: Path) -> None:
    folder = tmp_path / "legacy"
    folder.mkdir()
    seg_onnx(folder / "yolov5s_weights.onnx", num_classes=1)
    write_json(
        folder / "environment.json",
        {
            "PREPROCESSING": {"resize": {"enabled": True, "width": 320, "height": 320, "format": "Stretch to"}},
            "CLASS_MAP": {"0": "x"},
        },
    )
    package = load_model_package(folder)
    assert package.weights_path == folder / "yolov5s_weights.onnx"
    assert package.class_names == ("x",)  # from CLASS_MAP when class_names.txt is absent
    (folder / "class_names.txt").write_text("y\n")
    assert load_model_package(folder).class_names == ("y",)


@pytest.mark.parametrize(
    ("files", "error", "match"),
    [
        ({}, ModelNotFoundError, "holds no ONNX weights"),
        ({"a.onnx": b"", "b.onnx": b""}, InvalidModelPackageError, "several ONNX files"),
        ({"best.pt": b""}, ModelNotFoundError, "export to ONNX first"),
        ({"weights.onnx": b"", "class_names.txt": b"\n\n"}, InvalidModelPackageError, "lists no class names"),
        ({"weights.onnx": b"", "class_names.txt": b"\xff\xfe"}, InvalidModelPackageError, "UTF-8"),
        ({"weights.onnx": b"not an onnx file"}, InvalidModelFileError, "could not be loaded as an ONNX model"),
    ],
)
def test_invalid_folders(tmp_path: Path, files: dict[str, bytes], error: type, match: str) -> None:
    folder = tmp_path / "f"
    folder.mkdir()
    for name, content in files.items():
        (folder / name).write_bytes(content)
    with pytest.raises(error, match=match):
        load_model_package(folder)


def test_pickles_are_refused(tmp_path: Path) -> None:
    (tmp_path / "best.pt").write_bytes(b"")
    with pytest.raises(UntrustedModelError, match="export.py"):
        load_model_package(tmp_path / "best.pt")


def test_bare_onnx_uses_ultralytics_defaults_and_class_names_beside_it(tmp_path: Path) -> None:
    package = load_model_package(seg_onnx(tmp_path / "m.onnx", num_classes=2))
    assert package.preprocessing == PreprocessingConfig(
        resize_mode="letterbox", padding_value=114, size_rounding="round"
    )
    assert package.class_names == ("0", "1")  # no names anywhere: by index, with a warning
    (tmp_path / "class_names.txt").write_text(" cat \n\n dog\n")
    assert load_model_package(tmp_path / "m.onnx").class_names == ("cat", "dog")


# --- Every package source of the family: what a package declares picks the output layout ---------------------------

FAMILY_CLASSES = {0: "a", 1: "b", 2: "c"}
# post_processing of an inference-models package whose graph runs NMS (inference-models' YOLOv8 / YOLOv11 classes
# then only filter by confidence: post_process_nms_fused_model_output)
FUSED_NMS = {
    "type": "nms",
    "fused": True,
    "nms_parameters": {"max_detections": 300, "confidence_threshold": 0.25, "iou_threshold": 0.7, "class_agnostic": 0},
}
LETTERBOX_320 = with_change(LETTERBOX, "network_input.training_input_size", {"height": 320, "width": 320})
LEGACY_ENVIRONMENT = {
    "PREPROCESSING": {"resize": {"enabled": True, "width": 320, "height": 320, "format": "Fit (grey edges) in"}},
    "CLASS_MAP": {str(k): v for k, v in FAMILY_CLASSES.items()},
}


def family_output0(layout: str) -> np.ndarray:
    """``output0`` of one image of a 320x320, 3-class network without detections, in the layout of a generation."""
    shapes = {
        "yolov5": (3 * 2100, 5 + 3 + NUM_COEFFICIENTS),  # 3 anchors per cell of the 40x40, 20x20, 10x10 grids
        "anchor-free": (4 + 3 + NUM_COEFFICIENTS, 2100),  # YOLOv8 ... YOLO26 raw exports
        "end2end": (300, 6 + NUM_COEFFICIENTS),  # nms=True or YOLO26 end-to-end exports
    }
    return np.zeros(shapes[layout], np.float32)


def family_package(folder: Path, kind: str, weights: Path, architecture: str | None, fused: bool) -> Path:
    """An inference-models package (``model_config.json`` naming ``architecture``, ``post_processing`` fused or
    not) or a legacy Inference folder (``model_type.json`` as Inference caches it, naming ``architecture``)."""
    folder.mkdir(parents=True)
    if kind == "package":
        shutil.copy(weights, folder / "weights.onnx")
        (folder / "class_names.txt").write_text("a\nb\nc\n")
        config = with_change(LETTERBOX_320, "post_processing", FUSED_NMS) if fused else LETTERBOX_320
        write_json(folder / "inference_config.json", config)
        if architecture is not None:
            write_json(
                folder / "model_config.json",
                {"model_architecture": architecture, "task_type": "instance-segmentation", "backend_type": "onnx"},
            )
    else:
        shutil.copy(weights, folder / "weights.onnx")
        write_json(folder / "environment.json", LEGACY_ENVIRONMENT)
        if architecture is not None:
            write_json(
                folder / "model_type.json",
                {"project_task_type": "instance-segmentation", "model_type": architecture, "model_id": "shapes/3"},
            )
    return folder


RAW_SEGMENT = ultralytics_metadata(FAMILY_CLASSES)
END2END = ultralytics_metadata(FAMILY_CLASSES, end2end=True)


@pytest.mark.parametrize(
    ("kind", "architecture", "fused", "output0", "metadata", "expected"),
    [
        # inference-models packages: model_architecture as its registry names them, post_processing.fused
        ("package", "yolov5", False, "yolov5", None, YOLOV5),
        ("package", "yolov8", False, "anchor-free", None, ANCHOR_FREE),
        ("package", "yolov11", False, "anchor-free", None, ANCHOR_FREE),
        ("package", "yolov8", True, "end2end", None, END_TO_END),  # fused: NMS in the graph, as inference-models
        ("package", "yolov11", True, "end2end", None, END_TO_END),
        ("package", "yolo26", False, "end2end", None, END_TO_END),  # inference-models' YOLO26 is always end-to-end
        ("package", "yolo26", False, "anchor-free", None, ANCHOR_FREE),  # unless the outputs say otherwise
        ("package", "yolov8", True, "anchor-free", None, ANCHOR_FREE),  # fused, but [B, 39, 2100] is no K x 38
        ("package", "yolo26", False, "anchor-free", RAW_SEGMENT, ANCHOR_FREE),  # the export's metadata wins
        ("package", "yolov8", False, "end2end", END2END, END_TO_END),
        ("package", None, False, "end2end", END2END, END_TO_END),  # no model_config.json: the metadata tells
        ("package", None, False, "anchor-free", None, ANCHOR_FREE),  # nor metadata: 2100 points at 320x320
        # a yolov8 package that does not say fused, on end-to-end rows without metadata: [1, 300, 38] cannot be the
        # anchor-free head's (2100 points at 320x320), so the rows are read as end-to-end ones
        ("package", "yolov8", False, "end2end", None, END_TO_END),
        # legacy Inference folders: the model type Inference cached in model_type.json
        ("legacy", "yolov5s-seg", False, "yolov5", None, YOLOV5),
        ("legacy", "yolov8n-seg", False, "anchor-free", None, ANCHOR_FREE),
        ("legacy", "yolov8", False, "anchor-free", None, ANCHOR_FREE),
        ("legacy", "yolov11s-seg", False, "anchor-free", None, ANCHOR_FREE),
        ("legacy", "yolo26n-seg", False, "end2end", None, END_TO_END),
        ("legacy", "yolo26m", False, "end2end", None, END_TO_END),
        ("legacy", None, False, "end2end", END2END, END_TO_END),  # no model_type.json: the metadata tells
        ("legacy", "yolov7-seg", False, "yolov5", None, (NotYOLOSegModelError, "legacy Inference 'yolov7-seg'")),
        ("legacy", "rfdetr-seg-nano", False, "yolov5", None, (NotYOLOSegModelError, "runs YOLOv5, YOLOv8")),
    ],
)
def test_what_a_package_declares_picks_the_layout(
    tmp_path: Path,
    kind: str,
    architecture: str | None,
    fused: bool,
    output0: str,
    metadata: dict[str, str] | None,
    expected: OutputLayout | tuple[type[Exception], str],
) -> None:
    protos = np.zeros((NUM_COEFFICIENTS, 80, 80), np.float32)
    weights = make_constant_seg_onnx(tmp_path / "w.onnx", family_output0(output0), protos, metadata=metadata)
    folder = family_package(tmp_path / "pkg", kind, weights, architecture, fused)
    if isinstance(expected, tuple):
        with pytest.raises(expected[0], match=expected[1]):
            load_model_package(folder)
        return
    package = load_model_package(folder)
    assert package.signature is not None and package.signature.layout is expected
    assert package.architecture == architecture
    assert package.fused_nms is fused
    assert package.class_names == ("a", "b", "c")


@pytest.mark.parametrize(
    ("record", "error", "pattern"),
    [
        ({"project_task_type": "object-detection", "model_type": "yolov8n"}, NotYOLOSegModelError, "object-detection"),
        ({"project_task_type": "instance-segmentation"}, InvalidModelPackageError, "'model_type' is missing"),
        ({"model_type": 8}, InvalidModelPackageError, "'model_type' has the invalid value 8"),
        ([], InvalidModelPackageError, "must hold a JSON object"),
    ],
)
def test_invalid_legacy_model_type_records(tmp_path: Path, record: object, error: type, pattern: str) -> None:
    protos = np.zeros((NUM_COEFFICIENTS, 80, 80), np.float32)
    weights = make_constant_seg_onnx(tmp_path / "w.onnx", family_output0("anchor-free"), protos)
    folder = family_package(tmp_path / "pkg", "legacy", weights, None, False)
    write_json(folder / "model_type.json", record)
    with pytest.raises(error, match=pattern):
        load_model_package(folder)


@pytest.mark.parametrize(
    ("post_processing", "fused"),
    [
        (None, False),
        ({"type": "nms", "fused": False}, False),
        (FUSED_NMS, True),
        ({"type": "sigmoid", "fused": True}, False),  # only fused NMS puts the detections' selection in the graph
    ],
)
def test_inference_config_says_whether_nms_is_fused(tmp_path: Path, post_processing: dict | None, fused: bool) -> None:
    config = LETTERBOX if post_processing is None else with_change(LETTERBOX, "post_processing", post_processing)
    path = write_json(tmp_path / "inference_config.json", config)
    preprocessing, input_hw, fused_nms = read_inference_config(path)
    assert fused_nms is fused
    assert parse_inference_config(path) == (preprocessing, input_hw)


@pytest.mark.parametrize(
    ("dims", "output0", "metadata", "expected"),
    [
        # yolo export dynamic=True
        (("batch", 3, "height", "width"), "anchor-free", ultralytics_metadata(FAMILY_CLASSES), True),
        ((1, 3, 320, 320), "anchor-free", ultralytics_metadata(FAMILY_CLASSES), False),  # a static export
        # YOLOv5's export.py --dynamic
        (("batch", 3, "height", "width"), "yolov5", {"stride": "32", "names": "{0: 'a', 1: 'b', 2: 'c'}"}, False),
    ],
)
def test_bare_dynamic_ultralytics_exports_letterbox_like_their_predict(
    tmp_path: Path, dims: tuple, output0: str, metadata: dict[str, str], expected: bool
) -> None:
    """Ultralytics' predict letterboxes a dynamic-size export into the minimum rectangle; YOLOv5's predict into the
    square input size."""
    weights = make_constant_seg_onnx(
        tmp_path / "w.onnx", family_output0(output0), np.zeros((32, 80, 80), np.float32), metadata=metadata
    )
    model = onnx.load(str(weights))
    for tensor, dim in zip(model.graph.input[0].type.tensor_type.shape.dim, dims, strict=True):
        if isinstance(dim, str):
            tensor.dim_param = dim
    onnx.save(model, str(weights))
    package = load_model_package(weights)
    assert package.signature.dynamic_hw is isinstance(dims[2], str)
    assert package.preprocessing.minimum_rectangle is expected
