"""Model packages: weights, class names and pre-processing config read from a local file or folder.

Supported layouts (see ``docs/model-sources.md``):

- a bare ``.onnx`` (Ultralytics export): class names from its ``names`` metadata or a ``class_names.txt`` beside it;
  pre-processed as Ultralytics ``predict`` does (letterbox, grey 114 padding, ``round`` sizes, RGB, /255);
- an inference-models package folder: ``weights.onnx``, ``class_names.txt``, ``inference_config.json``, optional
  ``model_config.json``; for TensorRT ``engine.plan`` + ``trt_config.json``. ``inference_config.json`` is
  validated like inference-models' pydantic ``InferenceConfig`` (``models/common/roboflow/model_packages.py``) and
  pre-processed as inference-models does (``int()`` letterbox sizes, padding ``null`` -> 0, fit-longer-edge ->
  letterbox padded with 127);
- a legacy Inference folder: ``*.onnx``, ``environment.json`` (``PREPROCESSING``, ``CLASS_MAP``), optional
  ``class_names.txt`` and ``model_type.json`` (Inference's cache record: ``project_task_type``, ``model_type``
  such as ``yolov8n-seg``, read as the architecture); its pre-processing is run with inference-models'
  implementation too.

The architecture a package names (``yolov5``, ``yolov8``, ``yolov11``, ``yolo26``, ...) and its
``post_processing.fused`` reach :func:`~workflows_yolov5_seg.network.check_io_signature`, which picks the output
layout (:mod:`workflows_yolov5_seg.layouts`).

Every rejected config raises :class:`InvalidModelPackageError` naming the file and the dotted key path.
"""

from __future__ import annotations

import ast
import dataclasses
import errno
import json
import logging
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workflows_yolov5_seg import settings
from workflows_yolov5_seg.errors import (
    ClassNamesMismatchError,
    InvalidModelFileError,
    InvalidModelPackageError,
    ModelNotFoundError,
    NotYOLOSegModelError,
    UntrustedModelError,
)
from workflows_yolov5_seg.layouts import ANCHOR_FREE_ARCHITECTURES, EXPORT_HINT, ONNX_EXPORT_COMMANDS, UltralyticsExport
from workflows_yolov5_seg.network import DEFAULT_STRIDE, IOSignature, check_io_signature
from workflows_yolov5_seg.onnx_file import OnnxFormatError, OnnxHeader, read_onnx_header
from workflows_yolov5_seg.package_layout import (
    CLASS_NAMES_FILE,
    INFERENCE_CONFIG_FILE,
    LEGACY_ENVIRONMENT_FILE,
    LEGACY_MODEL_TYPE_FILE,
    MODEL_CONFIG_FILE,
    PACKAGE_WEIGHTS_FILE,
    TRT_CONFIG_FILE,
    TRT_ENGINE_FILE,
    family_architecture,
)
from workflows_yolov5_seg.preprocessing import CONTRAST_TYPES, RESIZE_MODES, PreprocessingConfig, StaticCrop

logger = logging.getLogger(__name__)

PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".ckpt", ".bin")

DYNAMIC_SPATIAL_SIZE_MODES = ("pad-to-be-divisible", "any-size")
POST_PROCESSING_TYPES = ("nms", "sigmoid", "softmax")
# inference-models' BackendType values, the values model_config.json's 'backend_type' may take.
BACKEND_TYPES = ("torch", "torch-script", "onnx", "trt", "hugging-face", "ultralytics", "custom", "vllm", "coreml")
# Legacy Inference resize formats -> (resize mode, padding value).
LEGACY_RESIZE_FORMATS = {
    "Stretch to": ("stretch", 0),
    "Fit (black edges) in": ("letterbox", 0),
    "Fit (white edges) in": ("letterbox", 255),
    "Fit (grey edges) in": ("letterbox", 114),
}
# Formats the legacy Inference server could not apply and replaced (with a warning) by a black letterbox.
LEGACY_FALLBACK_FORMATS = ("Fit (reflect edges) in", "Fit within", "Fill (with center crop) in")
IMAGE_PRE_PROCESSING_STEPS = ("auto-orient", "static-crop", "contrast", "grayscale")
# Pydantic field names that a model_dump() prints instead of the on-disk aliases; inference-models ignores them.
PRE_PROCESSING_FIELD_NAMES = {"auto_orient": "auto-orient", "static_crop": "static-crop"}


@dataclass(frozen=True)
class ModelPackage:
    """Everything needed to build the pipeline for one model, read once whichever backend runs it.

    Attributes:
        model_id: how the user named the model (path or ``project/version``), reported in outputs.
        weights_path: the ONNX file, or ``None`` for a package that ships only a TensorRT engine.
        class_names: the model's class names, in class-id order.
        preprocessing: how images are pre-processed.
        input_hw: training input size from the package config, used when the network's input size is dynamic.
        engine_path: a pre-built TensorRT engine shipped in the package, if any.
        trt_batch_sizes: ``(min, opt, max)`` batch sizes of that engine (``trt_config.json``).
        signature: the ONNX's inputs and outputs, with its output layout (``None`` without ONNX weights).
        stride: the network's largest stride (Ultralytics' ``stride`` metadata, else 32).
        architecture: the architecture the package's config names (``yolov5``, ``yolov8``, ``yolo26``, ...), or a
            legacy package's model type (``yolov8n-seg``), if any.
        fused_nms: the package's ``inference_config.json`` says ``post_processing.fused``: NMS is in the graph.
    """

    model_id: str
    weights_path: Path | None
    class_names: tuple[str, ...]
    preprocessing: PreprocessingConfig
    input_hw: tuple[int, int] | None = None
    engine_path: Path | None = None
    trt_batch_sizes: tuple[int, int, int] | None = None
    signature: IOSignature | None = None
    stride: int = DEFAULT_STRIDE
    architecture: str | None = None
    fused_nms: bool = False


CONFIG_FILE_MAX_BYTES = 16 * 2**20  # configs and class names are a few KB; refuse to read anything large
SPECIAL_FILE_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISSOCK, "a socket"),
)


def file_kind(info: os.stat_result) -> str:
    """``a regular file``, ``a folder``, ``a character device``, ... for messages."""
    return next((kind for test, kind in SPECIAL_FILE_KINDS if test(info.st_mode)), "a regular file")


def stat_model_path(path: Path) -> os.stat_result:
    """``stat`` of a model path (symbolic links followed), before anything is read from it.

    Raises:
        ModelNotFoundError: nothing there (or a broken symbolic link).
        InvalidModelFileError: a symbolic link loop.
    """
    try:
        return path.stat()
    except FileNotFoundError:
        if path.is_symlink():
            message = f"'{path}' is a broken symbolic link; point it at an existing .onnx file."
            raise ModelNotFoundError(message) from None
        raise ModelNotFoundError(
            f"Model '{path}' does not exist; give the path of a YOLO segmentation .onnx file (YOLOv5, YOLOv8 ... "
            "YOLO26) or of a model package folder."
        ) from None
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise InvalidModelFileError(
                f"'{path}' is a symbolic link loop; point the link at a real .onnx file or package folder."
            ) from None
        raise InvalidModelFileError(f"'{path}' cannot be read ({error.strerror or error}).") from None


def check_regular_file(path: Path, max_bytes: int, limit_name: str) -> None:
    """Refuses, before reading it, anything but a regular file of at most ``max_bytes``.

    Raises:
        ModelNotFoundError: nothing there.
        InvalidModelFileError: a folder, device, FIFO, socket, symbolic link loop, or a file over the limit.
    """
    info = stat_model_path(path)
    if not stat.S_ISREG(info.st_mode):
        raise InvalidModelFileError(
            f"'{path}' is {file_kind(info)}, not a model file; give a YOLO segmentation .onnx file or a package folder."
        )
    if info.st_size > max_bytes:
        raise InvalidModelFileError(
            f"'{path}' has {info.st_size} bytes, more than the limit of {max_bytes} ({limit_name}); give the right "
            "file or raise the limit."
        )


def _check_model_file(path: Path) -> None:
    check_regular_file(path, settings.MAX_MODEL_FILE_BYTES.get(), settings.MAX_MODEL_FILE_BYTES.name)


def _check_config_file(path: Path) -> None:
    check_regular_file(path, CONFIG_FILE_MAX_BYTES, f"{CONFIG_FILE_MAX_BYTES // 2**20} MiB for configs")


def _present(path: Path) -> bool:
    """Something is at ``path`` (a dangling or looping symbolic link counts: reading it gives the error)."""
    return path.is_symlink() or path.exists()


def read_class_names(path: Path) -> tuple[str, ...]:
    """Reads ``class_names.txt``: one name per line, stripped, blank lines skipped (as inference-models)."""
    _check_config_file(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise InvalidModelPackageError(f"'{path}' is not UTF-8 text; write one class name per line.") from error
    names = tuple(line.strip() for line in text.splitlines() if line.strip())
    if not names:
        raise InvalidModelPackageError(f"'{path}' lists no class names; write one class name per line.")
    return names


def _read_json(path: Path) -> dict[str, Any]:
    _check_config_file(path)
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InvalidModelPackageError(f"'{path}' is not valid JSON ({error}); fix or re-download it.") from error
    if not isinstance(content, dict):
        raise InvalidModelPackageError(f"'{path}' must hold a JSON object, not {type(content).__name__}.")
    return content


class _Section:
    """A JSON object being validated, remembering the file and the dotted key path for error messages."""

    def __init__(self, mapping: Mapping[str, Any], path: Path, prefix: str = "") -> None:
        self.mapping = mapping
        self.path = path
        self.prefix = prefix

    def key(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def fail(self, name: str, problem: str) -> InvalidModelPackageError:
        return InvalidModelPackageError(f"'{self.path}' key '{self.key(name)}' {problem}")

    def child(self, name: str, *, required: bool = False) -> _Section | None:
        """The object under ``name``; ``None`` when absent or null (an error when ``required``)."""
        value = self.mapping.get(name)
        if value is None:
            if required:
                raise self.fail(name, "is missing; add it (see docs/model-sources.md).")
            return None
        if not isinstance(value, dict):
            raise self.fail(name, f"must be a JSON object, not {value!r}.")
        return _Section(value, self.path, f"{self.key(name)}.")

    def value(self, name: str, kind: str, *, required: bool = False, choices: tuple[str, ...] = ()) -> Any:
        """A scalar under ``name`` checked like pydantic's lax mode for ``kind`` (``bool``, ``int``, ``number``,
        ``str``); ``None`` when absent or null (an error when ``required``)."""
        if name not in self.mapping or self.mapping[name] is None:
            if required:
                raise self.fail(name, "is missing; add it (see docs/model-sources.md).")
            return None
        value = self.mapping[name]
        if kind == "bool":
            ok = isinstance(value, bool)
        elif kind == "int":
            ok = not isinstance(value, bool) and (
                isinstance(value, int) or isinstance(value, float) and value.is_integer()
            )
            value = int(value) if ok else value
        elif kind == "number":
            ok = not isinstance(value, bool) and isinstance(value, (int, float))
        else:
            ok = isinstance(value, str)
        if not ok:
            raise self.fail(
                name, f"has the invalid value {value!r}; expected {'an integer' if kind == 'int' else kind}."
            )
        if choices and value not in choices:
            raise self.fail(name, f"is {value!r}; use one of {', '.join(repr(c) for c in choices)}.")
        return value


def _parse_static_crop(step: _Section | None, strict: bool = True) -> StaticCrop | None:
    """``strict``: every key is required even when disabled (inference-models' pydantic model); the legacy
    server reads the coordinates only of an enabled crop."""
    if step is None:
        return None
    enabled = step.value("enabled", "bool", required=strict)
    if not enabled and not strict:
        return None
    values = [step.value(name, "int", required=True) for name in ("x_min", "y_min", "x_max", "y_max")]
    if not enabled:
        return None
    x_min, y_min, x_max, y_max = values
    if not (0 <= x_min < x_max <= 100 and 0 <= y_min < y_max <= 100):
        raise InvalidModelPackageError(
            f"'{step.path}' key '{step.prefix.rstrip('.')}' {dict(x_min=x_min, y_min=y_min, x_max=x_max, y_max=y_max)}"
            " must be percentages of the image with 0 <= min < max <= 100 (inference-models crops "
            "int(pct / 100 * size) pixels; values such as 630 look like pixels)."
        )
    return StaticCrop(x_min, y_min, x_max, y_max)


def _parse_contrast(step: _Section | None, strict: bool = True) -> str | None:
    if step is None:
        return None
    enabled = step.value("enabled", "bool", required=strict)
    if not enabled and not strict:
        return None
    kind = step.value("type", "str", required=True, choices=CONTRAST_TYPES)
    return kind if enabled else None


def _parse_toggle(step: _Section | None, strict: bool = True) -> bool:
    return step is not None and bool(step.value("enabled", "bool", required=strict))


def _parse_image_pre_processing(config: _Section) -> tuple[StaticCrop | None, bool, str | None]:
    steps = config.child("image_pre_processing")
    if steps is None:
        return None, False, None
    for name, value in steps.mapping.items():
        if name in PRE_PROCESSING_FIELD_NAMES:
            raise steps.fail(
                name,
                f"is a Python field name that inference-models ignores on disk; name it "
                f"'{PRE_PROCESSING_FIELD_NAMES[name]}'.",
            )
        if name not in IMAGE_PRE_PROCESSING_STEPS:
            if isinstance(value, dict) and value.get("enabled"):
                raise steps.fail(
                    name,
                    f"is a pre-processing step this block does not know; supported: "
                    f"{', '.join(IMAGE_PRE_PROCESSING_STEPS)}.",
                )
            logger.warning("'%s': ignoring unknown disabled pre-processing step '%s'.", config.path, steps.key(name))
    _parse_toggle(steps.child("auto-orient"))  # validated; arrays carry no EXIF, as in inference-models
    static_crop = _parse_static_crop(steps.child("static-crop"))
    contrast = _parse_contrast(steps.child("contrast"))
    grayscale = _parse_toggle(steps.child("grayscale"))
    return static_crop, grayscale, contrast


def _parse_size(section: _Section | None) -> tuple[int, int] | None:
    if section is None:
        return None
    height, width = section.value("height", "int", required=True), section.value("width", "int", required=True)
    if height <= 0 or width <= 0:
        raise InvalidModelPackageError(
            f"'{section.path}' key '{section.prefix.rstrip('.')}' must have a positive height and width, got "
            f"{height}x{width}."
        )
    return height, width


def _parse_normalization(network: _Section) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    value = network.mapping.get("normalization")
    if value is None:
        return None
    valid = (
        isinstance(value, (list, tuple))
        and len(value) == 2
        and all(isinstance(part, list) and len(part) in (1, 3) for part in value)
        and all(not isinstance(x, bool) and isinstance(x, (int, float)) for part in value for x in part)
        and all(x != 0 for x in value[1])
    )
    if not valid:
        raise network.fail(
            "normalization",
            f"has the invalid value {value!r}; expected null or [[mean...], [std...]] with 1 or 3 "
            "numbers each (no zero std).",
        )
    return tuple(float(x) for x in value[0]), tuple(float(x) for x in value[1])


def _parse_network_input(config: _Section) -> tuple[dict[str, Any], tuple[int, int] | None]:
    network = config.child("network_input", required=True)
    assert network is not None
    input_hw = _parse_size(network.child("training_input_size"))
    _parse_size(network.child("dataset_version_resize_dimensions"))
    dynamic = network.value("dynamic_spatial_size_supported", "bool", required=True)
    mode = network.child("dynamic_spatial_size_mode")
    any_size = False
    if mode is not None:
        kind = mode.value("type", "str", required=True, choices=DYNAMIC_SPATIAL_SIZE_MODES)
        if kind == "pad-to-be-divisible":
            mode.value("value", "int", required=True)
        any_size = kind == "any-size"
    if input_hw is None and not (dynamic and any_size):
        raise network.fail(
            "training_input_size",
            "is missing; it may only be omitted for models that accept any input size "
            "(dynamic_spatial_size_supported with an 'any-size' dynamic_spatial_size_mode).",
        )
    color_mode = network.value("color_mode", "str", required=True, choices=("rgb", "bgr"))
    resize_mode = network.value("resize_mode", "str", required=True, choices=RESIZE_MODES)
    padding = network.value("padding_value", "int")
    if padding is not None and not 0 <= padding <= 255:
        raise network.fail("padding_value", f"is {padding}; use a value in 0..255 or null (black).")
    channels = network.value("input_channels", "int", required=True)
    if channels != 3:
        raise network.fail("input_channels", f"is {channels}; YOLO segmentation models (and inference-models) need 3.")
    scaling = network.value("scaling_factor", "number")
    if scaling is not None and scaling <= 0:
        raise network.fail("scaling_factor", f"is {scaling}; use a positive number (255 for YOLO exports) or null.")
    if scaling is None:
        logger.warning(
            "'%s' key 'network_input.scaling_factor' is null: pixels are fed unscaled (0..255), as inference-models "
            "does. YOLO exports expect 255.",
            config.path,
        )
    fields = {
        "resize_mode": resize_mode,
        "padding_value": 0 if padding is None else padding,
        "color_order": color_mode,
        "scaling_factor": 1.0 if scaling is None else float(scaling),
        "normalization": _parse_normalization(network),
    }
    return fields, input_hw


def _parse_other_sections(config: _Section) -> bool:
    """Validates the sections the pipeline does not need, and returns ``post_processing.fused``.

    As in inference-models, ``post_processing.nms_parameters`` and ``class_names_operations`` are validated but not
    used by YOLO models (the block's parameters choose the thresholds; inference-models applies class name
    operations to RF-DETR only); ``fused`` says the graph selects its detections itself (inference-models' YOLOv8
    / YOLOv11 classes then only filter by confidence).
    """
    fused = False
    forward = config.child("forward_pass")
    if forward is not None:
        forward.value("static_batch_size", "int")
        forward.value("max_dynamic_batch_size", "int")
    post = config.child("post_processing")
    if post is not None:
        kind = post.value("type", "str", required=True, choices=POST_PROCESSING_TYPES)
        fused = bool(post.value("fused", "bool", required=True)) and kind == "nms"
        nms = post.child("nms_parameters") if kind == "nms" else None
        if nms is not None:
            nms.value("max_detections", "int", required=True)
            nms.value("confidence_threshold", "number", required=True)
            nms.value("iou_threshold", "number", required=True)
            nms.value("class_agnostic", "int", required=True)
    if config.mapping.get("model_initialization") is not None:
        config.child("model_initialization")
    operations = config.mapping.get("class_names_operations")
    if operations is not None:
        if not isinstance(operations, list):
            raise config.fail("class_names_operations", f"must be a list or null, not {operations!r}.")
        for index, operation in enumerate(operations):
            if not isinstance(operation, dict):
                raise config.fail(f"class_names_operations[{index}]", f"must be an object, not {operation!r}.")
            item = _Section(operation, config.path, f"class_names_operations[{index}].")
            item.value("type", "str", required=True, choices=("class_name_removal",))
            item.value("class_name", "str", required=True)
        if operations:
            logger.info(
                "'%s': class_names_operations are not applied to YOLO models (inference-models applies them to "
                "RF-DETR only).",
                config.path,
            )
    return fused


def parse_inference_config(path: Path) -> tuple[PreprocessingConfig, tuple[int, int] | None]:
    """Parses an inference-models ``inference_config.json``: :func:`read_inference_config` without ``fused``.

    Returns:
        ``(preprocessing, training_input_hw)``.
    """
    preprocessing, input_hw, _ = read_inference_config(path)
    return preprocessing, input_hw


def read_inference_config(path: Path) -> tuple[PreprocessingConfig, tuple[int, int] | None, bool]:
    """Parses an inference-models ``inference_config.json``.

    Accepts what inference-models 0.39's ``InferenceConfig`` accepts (with stricter scalar types: numbers given as
    strings are refused), plus two checks inference-models' YOLO classes make at run time (``input_channels`` 3,
    percentages for ``static-crop``). The same file serves every generation: inference-models' YOLOv5, YOLOv8,
    YOLOv11 and YOLO26 segmentation classes read it alike, YOLOv8 / YOLOv11 also ``post_processing.fused``.

    Note: the "Complete Example" of inference-models' docs ("Understanding Model Packages Trained on Roboflow
    Platform") does not parse, here nor in inference-models: its ``dynamic_spatial_size_mode`` is
    ``{"type": "divisible-padding", "divisor": 32}`` while the code knows ``pad-to-be-divisible`` / ``value``.

    Returns:
        ``(preprocessing, training_input_hw, fused_nms)``.

    Raises:
        InvalidModelPackageError: naming the key that is missing or invalid.
    """
    config = _Section(_read_json(path), path)
    fields, input_hw = _parse_network_input(config)
    fused_nms = _parse_other_sections(config)
    static_crop, grayscale, contrast = _parse_image_pre_processing(config)
    if fields["resize_mode"] == "fit-longer-edge":
        logger.warning(
            "'%s' uses resize_mode 'fit-longer-edge', which a fixed-size export cannot apply; letterboxing with "
            "padding 127 instead, as inference-models does.",
            path,
        )
    preprocessing = PreprocessingConfig(
        static_crop=static_crop,
        grayscale=grayscale,
        contrast=contrast,
        size_rounding="truncate",
        **fields,
    )
    return preprocessing, input_hw, fused_nms


SEGMENTATION_ARCHITECTURES = ("yolov5", *ANCHOR_FREE_ARCHITECTURES)
SUPPORTED_ARCHITECTURES_TEXT = (
    "YOLOv5, YOLOv8, YOLOv9, YOLO11, YOLO12 and YOLO26 instance segmentation (inference-models names them "
    "'yolov5', 'yolov8', 'yolov11', 'yolo26'; Inference's model types add a size and '-seg', e.g. 'yolov8n-seg')"
)


def parse_model_config(path: Path) -> dict[str, Any]:
    """Checks an inference-models ``model_config.json`` describes a YOLO instance-segmentation package.

    Raises:
        InvalidModelPackageError: naming the key (e.g. the docs' ``backend``, which inference-models does not
            read: the key is ``backend_type``).
    """
    config = _Section(_read_json(path), path)
    if "backend" in config.mapping and "backend_type" not in config.mapping:
        raise config.fail("backend", "is not read by inference-models; name it 'backend_type'.")
    architecture = config.value("model_architecture", "str")
    if architecture is not None and family_architecture(architecture) is None:
        raise config.fail("model_architecture", f"is {architecture!r}; this block runs {SUPPORTED_ARCHITECTURES_TEXT}.")
    task = config.value("task_type", "str")
    if task is not None and task != "instance-segmentation":
        raise config.fail("task_type", f"is {task!r}; this block needs 'instance-segmentation'.")
    config.value("backend_type", "str", choices=BACKEND_TYPES)
    return dict(config.mapping)


def parse_legacy_environment(path: Path) -> tuple[PreprocessingConfig, tuple[int, int] | None, tuple[str, ...] | None]:
    """Parses a legacy Inference ``environment.json``.

    Returns:
        ``(preprocessing, resize_hw, class_names_from_CLASS_MAP)``.
    """
    environment = _Section(_read_json(path), path)
    steps = environment.mapping.get("PREPROCESSING") or {}
    if isinstance(steps, str):
        try:
            steps = json.loads(steps)
        except json.JSONDecodeError as error:
            raise environment.fail("PREPROCESSING", f"is not valid JSON ({error}).") from error
    if not isinstance(steps, dict):
        raise environment.fail("PREPROCESSING", "must be an object (or a JSON string of one).")
    preprocessing_section = _Section(steps, path, "PREPROCESSING.")
    resize = preprocessing_section.child("resize")
    resize_mode, padding = "stretch", 0
    input_hw = None
    if resize is not None and resize.value("enabled", "bool"):
        resize_format = resize.value("format", "str", required=True)
        if resize_format in LEGACY_FALLBACK_FORMATS:
            logger.warning(
                "'%s' resize format %r is applied as 'Fit (black edges) in', as the legacy Inference server does.",
                path,
                resize_format,
            )
            resize_mode, padding = "letterbox", 0
        elif resize_format in LEGACY_RESIZE_FORMATS:
            resize_mode, padding = LEGACY_RESIZE_FORMATS[resize_format]
        else:
            raise resize.fail(
                "format",
                f"is {resize_format!r}; supported: "
                f"{', '.join(repr(f) for f in (*LEGACY_RESIZE_FORMATS, *LEGACY_FALLBACK_FORMATS))}.",
            )
        if resize.mapping.get("height") is not None and resize.mapping.get("width") is not None:
            input_hw = (resize.value("height", "int"), resize.value("width", "int"))
    class_map = environment.mapping.get("CLASS_MAP")
    class_names = None
    if class_map:
        if not isinstance(class_map, dict):
            raise environment.fail("CLASS_MAP", "must map class ids to names.")
        try:
            class_names = tuple(str(class_map[key]) for key in sorted(class_map, key=int))
        except ValueError as error:
            raise environment.fail("CLASS_MAP", f"must have integer class ids as keys ({error}).") from error
    preprocessing = PreprocessingConfig(
        resize_mode=resize_mode,
        padding_value=padding,
        static_crop=_parse_static_crop(preprocessing_section.child("static-crop"), strict=False),
        grayscale=_parse_toggle(preprocessing_section.child("grayscale"), strict=False),
        contrast=_parse_contrast(preprocessing_section.child("contrast"), strict=False),
        size_rounding="truncate",
    )
    return preprocessing, input_hw, class_names


def parse_legacy_model_type(path: Path) -> str:
    """Reads the model type of a legacy Inference package from Inference's ``model_type.json`` cache record.

    Inference writes ``{"project_task_type": "instance-segmentation", "model_type": "yolov8n-seg", ...}`` beside the
    weights it caches (``inference/core/registries/roboflow.py``, ``save_model_metadata_in_cache``); its model
    types for this family are ``yolov5-seg`` / ``yolov5n-seg`` ..., ``yolov8`` / ``yolov8n`` / ``yolov8n-seg``
    ..., ``yolov11n`` / ``yolov11n-seg`` ... and ``yolo26`` / ``yolo26n`` / ``yolo26n-seg`` ...
    (``inference/models/utils.py``).

    Returns:
        the model type, passed on as the package's architecture.

    Raises:
        InvalidModelPackageError: the file is invalid or names no model type.
        NotYOLOSegModelError: the package is of another task or architecture.
    """
    record = _Section(_read_json(path), path)
    task = record.value("project_task_type", "str")
    model_type = record.value("model_type", "str", required=True)
    if (task is not None and task != "instance-segmentation") or family_architecture(model_type) is None:
        raise NotYOLOSegModelError(
            f"'{path.parent}' holds a legacy Inference '{model_type}' {task or ''} model ('{path.name}'); this block "
            f"runs {SUPPORTED_ARCHITECTURES_TEXT}. {EXPORT_HINT}"
        )
    return model_type


def _parse_trt_config(path: Path) -> tuple[int, int, int]:
    config = _Section(_read_json(path), path)
    static = config.value("static_batch_size", "int")
    if static is not None:
        if static <= 0:
            raise config.fail("static_batch_size", f"must be positive, got {static}.")
        return static, static, static
    sizes = tuple(config.value(f"dynamic_batch_size_{k}", "int", required=True) for k in ("min", "opt", "max"))
    if not 0 < sizes[0] <= sizes[1] <= sizes[2]:
        raise InvalidModelPackageError(f"'{path}' dynamic batch sizes must satisfy 0 < min <= opt <= max, got {sizes}.")
    return sizes  # type: ignore[return-value]


def _reject_pickle(path: Path) -> None:
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise UntrustedModelError(
            f"'{path}' is a PyTorch pickle; pickles can run arbitrary code and are never loaded. Export it to ONNX "
            f"first ({ONNX_EXPORT_COMMANDS}), then pass the .onnx file."
        )


def load_model_package(path: Path, model_id: str | None = None) -> ModelPackage:
    """Reads a local model: an ``.onnx`` file or a package folder.

    Args:
        path: the ``.onnx`` file or the package folder.
        model_id: the id to report; defaults to the path.

    Raises:
        ModelNotFoundError: nothing at ``path`` or no weights in the folder.
        UntrustedModelError: a pickle was given.
        InvalidModelPackageError: a config file is invalid.
        InvalidModelFileError: a file that is not a regular file (device, FIFO, socket, folder, symbolic link loop)
            or is over its size limit, checked before anything is read; weights that are not ONNX.
    """
    model_id = model_id or str(path)
    _reject_pickle(path)
    if stat.S_ISDIR(stat_model_path(path).st_mode):
        return _load_folder(path, model_id)
    names_file = path.with_name(CLASS_NAMES_FILE)
    class_names = read_class_names(names_file) if _present(names_file) else None
    return _with_network(model_id, path, class_names, PreprocessingConfig(), bare=True)


def _load_folder(folder: Path, model_id: str) -> ModelPackage:
    names_file = folder / CLASS_NAMES_FILE
    class_names = read_class_names(names_file) if _present(names_file) else None
    engine_path = folder / TRT_ENGINE_FILE if _present(folder / TRT_ENGINE_FILE) else None
    if engine_path is not None:
        _check_model_file(engine_path)
    trt_batch_sizes = _parse_trt_config(folder / TRT_CONFIG_FILE) if _present(folder / TRT_CONFIG_FILE) else None
    architecture = None
    fused_nms = False
    if _present(folder / MODEL_CONFIG_FILE):
        architecture = parse_model_config(folder / MODEL_CONFIG_FILE).get("model_architecture")
    if _present(folder / INFERENCE_CONFIG_FILE):
        preprocessing, input_hw, fused_nms = read_inference_config(folder / INFERENCE_CONFIG_FILE)
        weights = folder / PACKAGE_WEIGHTS_FILE
    elif _present(folder / LEGACY_ENVIRONMENT_FILE):
        preprocessing, input_hw, mapped_names = parse_legacy_environment(folder / LEGACY_ENVIRONMENT_FILE)
        class_names = class_names or mapped_names
        weights = _single_onnx(folder)
        if architecture is None and _present(folder / LEGACY_MODEL_TYPE_FILE):
            architecture = parse_legacy_model_type(folder / LEGACY_MODEL_TYPE_FILE)
    else:
        preprocessing, input_hw = PreprocessingConfig(), None
        weights = _single_onnx(folder)
    if weights is None or not _present(weights):
        if engine_path is None:
            pickles = [p.name for p in folder.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES]
            hint = f" It holds {pickles}: export to ONNX first." if pickles else ""
            raise ModelNotFoundError(
                f"Model folder '{folder}' holds no ONNX weights (expected {PACKAGE_WEIGHTS_FILE} or a single "
                f"*.onnx file).{hint}"
            )
        weights = None
    return _with_network(
        model_id, weights, class_names, preprocessing, input_hw, engine_path, trt_batch_sizes, architecture, fused_nms
    )


def _with_network(
    model_id: str,
    weights: Path | None,
    class_names: tuple[str, ...] | None,
    preprocessing: PreprocessingConfig,
    input_hw: tuple[int, int] | None = None,
    engine_path: Path | None = None,
    trt_batch_sizes: tuple[int, int, int] | None = None,
    architecture: str | None = None,
    fused_nms: bool = False,
    bare: bool = False,
) -> ModelPackage:
    """The package, with what the pipeline needs from its ONNX: the checked signature (and so the output layout,
    recognised from the ONNX's metadata, ``fused_nms``, the architecture and the shapes), class names and stride.

    A ``bare`` ``ultralytics`` export of dynamic size (``dynamic=True``) is letterboxed as its ``predict`` does:
    into the smallest stride multiple around the image (:attr:`PreprocessingConfig.minimum_rectangle`).
    """
    if weights is None:  # an engine-only package: its class_names.txt names the classes
        names = resolve_class_names(model_id, class_names, None)
        return ModelPackage(
            model_id,
            None,
            names,
            preprocessing,
            input_hw,
            engine_path,
            trt_batch_sizes,
            architecture=architecture,
            fused_nms=fused_nms,
        )
    header = read_weights_header(weights)
    stride = stride_from_metadata(header.metadata)
    signature = check_io_signature(
        str(weights),
        [(spec.name, spec.shape) for spec in header.inputs],
        [(spec.name, spec.shape) for spec in header.outputs],
        default_input_hw=input_hw or input_hw_from_metadata(header.metadata),
        stride=stride,
        metadata=header.metadata,
        architecture=architecture,
        fused_nms=fused_nms,
    )
    if header.inputs[0].dtype is None:
        raise InvalidModelFileError(
            f"'{weights}' takes input of type {header.inputs[0].type_name}; YOLO segmentation exports take float32 or "
            "float16 images."
        )
    metadata_names = class_names_from_metadata(header.metadata)
    if class_names is not None and metadata_names is not None and signature.num_classes is None:
        _check_names_against_metadata(model_id, class_names, metadata_names, signature)
    names = resolve_class_names(model_id, class_names or metadata_names, signature)
    if bare and signature.dynamic_hw and UltralyticsExport.from_metadata(header.metadata).task is not None:
        preprocessing = dataclasses.replace(preprocessing, minimum_rectangle=True)
    return ModelPackage(
        model_id,
        weights,
        names,
        preprocessing,
        input_hw,
        engine_path,
        trt_batch_sizes,
        signature,
        stride,
        architecture,
        fused_nms,
    )


def read_weights_header(weights: Path) -> OnnxHeader:
    """The ONNX's inputs, outputs and metadata.

    Raises:
        InvalidModelFileError: the file is not an ONNX model (or cannot be read).
    """
    _check_model_file(weights)
    try:
        return read_onnx_header(weights)
    except (OnnxFormatError, OSError) as error:
        cause = f"protobuf parsing failed: {error}" if isinstance(error, OnnxFormatError) else str(error)
        raise InvalidModelFileError(
            f"'{weights}' could not be loaded as an ONNX model ({cause[:300]}). Give a YOLO segmentation ONNX export "
            f"({ONNX_EXPORT_COMMANDS}) and check that the file is complete."
        ) from error


def class_names_from_metadata(metadata: dict[str, str]) -> tuple[str, ...] | None:
    """Reads Ultralytics' ``names`` ONNX metadata (a Python dict or list literal, parsed without evaluation)."""
    raw = metadata.get("names")
    if not raw:
        return None
    try:
        names = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return None
    if isinstance(names, dict):
        return tuple(str(names[key]) for key in sorted(names))
    if isinstance(names, (list, tuple)):
        return tuple(str(name) for name in names)
    return None


def input_hw_from_metadata(metadata: dict[str, str]) -> tuple[int, int] | None:
    """Ultralytics' ``imgsz`` metadata (``[320, 320]``, or one int), the export's input size, else ``None``."""
    try:
        value = ast.literal_eval(metadata.get("imgsz", ""))
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    sizes = [value, value] if isinstance(value, int) else list(value) if isinstance(value, (list, tuple)) else []
    if len(sizes) == 2 and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in sizes):
        return int(sizes[0]), int(sizes[1])
    return None


def stride_from_metadata(metadata: dict[str, str]) -> int:
    """Ultralytics' ``stride`` metadata (``32``, or ``[8, 16, 32]``-like lists: the largest), else 32."""
    try:
        value = ast.literal_eval(metadata.get("stride", ""))
    except (ValueError, SyntaxError):
        return DEFAULT_STRIDE
    values = value if isinstance(value, (list, tuple)) else [value]
    strides = [int(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0]
    return max(strides) if strides else DEFAULT_STRIDE


def _check_names_against_metadata(
    model_id: str, names: tuple[str, ...], metadata_names: tuple[str, ...], signature: IOSignature
) -> None:
    """A network whose output0 does not tell its class count (end-to-end rows carry a class index) is checked
    against the class names its export wrote in its metadata."""
    if len(names) != len(metadata_names):
        raise ClassNamesMismatchError(
            f"'{model_id}' names {len(metadata_names)} classes in its metadata (its {signature.layout.title} output0 "
            f"gives a class index per detection) but {len(names)} class names were given; make class_names.txt list "
            f"exactly {len(metadata_names)} names, in the model's class order, or remove it to use the export's names."
        )


def resolve_class_names(model_id: str, names: tuple[str, ...] | None, signature: IOSignature | None) -> tuple[str, ...]:
    """The class names, checked against the number of classes the network predicts.

    Raises:
        ClassNamesMismatchError: the count differs from the output width, or there are no names and the width is
            dynamic.
    """
    expected = signature.num_classes if signature is not None else None
    if names is None:
        if expected is None:
            raise ClassNamesMismatchError(
                f"'{model_id}' has no class names and a dynamic output width; add a class_names.txt "
                "(one name per line) beside the weights."
            )
        logger.warning(
            "'%s' carries no class names; naming its %d classes by index. Add a class_names.txt beside the "
            "weights to name them.",
            model_id,
            expected,
        )
        return tuple(str(index) for index in range(expected))
    if expected is not None and signature is not None and len(names) != expected:
        raise ClassNamesMismatchError(
            f"'{model_id}' predicts {expected} classes (its {signature.layout.title} output0 "
            f"{list(signature.instances_shape)} is {signature.layout.shape_text}) but {len(names)} class names were "
            f"given; make class_names.txt list exactly {expected} names, in the model's class order."
        )
    return names


def _single_onnx(folder: Path) -> Path | None:
    candidates = sorted(folder.glob("*.onnx"))
    if (folder / PACKAGE_WEIGHTS_FILE) in candidates:
        return folder / PACKAGE_WEIGHTS_FILE
    if len(candidates) > 1:
        raise InvalidModelPackageError(
            f"Model folder '{folder}' holds several ONNX files {[c.name for c in candidates]}; keep one or "
            f"name the weights {PACKAGE_WEIGHTS_FILE}."
        )
    return candidates[0] if candidates else None
