"""Model packages: weights, class names and pre-processing config read from a local file or folder.

Supported layouts (see the README's "Model sources"):

- a bare ``.onnx`` (Ultralytics export): class names from its ``names`` metadata or a ``class_names.txt`` beside it;
  pre-processed as Ultralytics ``predict`` does (letterbox, grey 114 padding, RGB, /255);
- an inference-models package folder: ``weights.onnx``, ``class_names.txt``, ``inference_config.json``, optional
  ``model_config.json``; for TensorRT ``engine.plan`` + ``trt_config.json``;
- a legacy Inference folder: ``*.onnx``, ``environment.json`` (``PREPROCESSING``, ``CLASS_MAP``), optional
  ``class_names.txt``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workflows_yolov5_seg.errors import InvalidModelPackageError, ModelNotFoundError, UntrustedModelError
from workflows_yolov5_seg.preprocessing import CONTRAST_TYPES, PreprocessingConfig, StaticCrop

logger = logging.getLogger(__name__)

CLASS_NAMES_FILE = "class_names.txt"
INFERENCE_CONFIG_FILE = "inference_config.json"
LEGACY_ENVIRONMENT_FILE = "environment.json"
PACKAGE_WEIGHTS_FILE = "weights.onnx"
TRT_ENGINE_FILE = "engine.plan"
TRT_CONFIG_FILE = "trt_config.json"
PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".ckpt", ".bin")

# inference-models' resize modes; "letterbox-reflect-edges" is padded like letterbox there too.
PACKAGE_RESIZE_MODES = ("stretch", "letterbox", "center-crop", "fit-longer-edge", "letterbox-reflect-edges")
# Legacy Inference resize formats -> (resize mode, padding value).
LEGACY_RESIZE_FORMATS = {
    "Stretch to": ("stretch", 0),
    "Fit (black edges) in": ("letterbox", 0),
    "Fit (white edges) in": ("letterbox", 255),
    "Fit (grey edges) in": ("letterbox", 114),
}


@dataclass(frozen=True)
class ModelPackage:
    """Everything needed to build the pipeline for one model.

    Attributes:
        model_id: how the user named the model (path or ``project/version``), reported in outputs.
        weights_path: the ONNX file.
        class_names: names from the package, or ``None`` to read them from the ONNX metadata.
        preprocessing: how images are pre-processed.
        input_hw: training input size from the package config, used when the ONNX input size is dynamic.
        engine_path: a pre-built TensorRT engine shipped in the package, if any.
        trt_batch_sizes: ``(min, opt, max)`` batch sizes of that engine (``trt_config.json``).
    """

    model_id: str
    weights_path: Path | None
    class_names: tuple[str, ...] | None
    preprocessing: PreprocessingConfig
    input_hw: tuple[int, int] | None = None
    engine_path: Path | None = None
    trt_batch_sizes: tuple[int, int, int] | None = None


def read_class_names(path: Path) -> tuple[str, ...]:
    """Reads ``class_names.txt``: one name per line, stripped, blank lines skipped."""
    names = tuple(line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    if not names:
        raise InvalidModelPackageError(f"'{path}' lists no class names; write one class name per line.")
    return names


def _read_json(path: Path) -> dict[str, Any]:
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise InvalidModelPackageError(f"'{path}' is not valid JSON ({error}); fix or re-download it.") from error
    if not isinstance(content, dict):
        raise InvalidModelPackageError(f"'{path}' must hold a JSON object, not {type(content).__name__}.")
    return content


def _require(mapping: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in mapping:
        raise InvalidModelPackageError(f"{where} has no key '{key}'; add it (see the README's model packages).")
    value = mapping[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind in (int, float, (int, float)):
        raise InvalidModelPackageError(f"{where} key '{key}' has the invalid value {value!r}.")
    return value


def _enabled(step: Any) -> bool:
    return isinstance(step, dict) and bool(step.get("enabled", False))


def _static_crop(step: Any, where: str) -> StaticCrop | None:
    if not _enabled(step):
        return None
    values = [_require(step, key, (int, float), f"{where} 'static-crop'") for key in ("x_min", "y_min", "x_max", "y_max")]
    if not (0 <= values[0] < values[2] <= 100 and 0 <= values[1] < values[3] <= 100):
        raise InvalidModelPackageError(
            f"{where} 'static-crop' {dict(zip(('x_min', 'y_min', 'x_max', 'y_max'), values))} must be percentages "
            "with 0 <= min < max <= 100."
        )
    return StaticCrop(*values)


def _contrast(step: Any, where: str) -> str | None:
    if not _enabled(step):
        return None
    kind = _require(step, "type", str, f"{where} 'contrast'")
    if kind not in CONTRAST_TYPES:
        raise InvalidModelPackageError(f"{where} 'contrast' key 'type' is {kind!r}; use one of {CONTRAST_TYPES}.")
    return kind


def parse_inference_config(path: Path) -> tuple[PreprocessingConfig, tuple[int, int] | None]:
    """Parses an inference-models ``inference_config.json``.

    Returns:
        ``(preprocessing, training_input_hw)``.
    """
    config = _read_json(path)
    where = f"'{path}'"
    network = _require(config, "network_input", dict, where)
    where_network = f"{where} 'network_input'"
    resize_mode = _require(network, "resize_mode", str, where_network)
    if resize_mode not in PACKAGE_RESIZE_MODES:
        raise InvalidModelPackageError(
            f"{where_network} key 'resize_mode' is {resize_mode!r}; use one of {PACKAGE_RESIZE_MODES}."
        )
    color_mode = _require(network, "color_mode", str, where_network)
    if color_mode not in ("rgb", "bgr"):
        raise InvalidModelPackageError(f"{where_network} key 'color_mode' is {color_mode!r}; use 'rgb' or 'bgr'.")
    if network.get("input_channels", 3) != 3:
        raise InvalidModelPackageError(f"{where_network} key 'input_channels' must be 3 for YOLOv5-seg.")
    if network.get("normalization") is not None:
        raise InvalidModelPackageError(f"{where_network} key 'normalization' must be null for YOLOv5-seg.")
    padding = network.get("padding_value")
    scaling = network.get("scaling_factor")
    training_size = network.get("training_input_size")
    input_hw = None
    if training_size is not None:
        size_where = f"{where_network} 'training_input_size'"
        input_hw = (_require(training_size, "height", int, size_where), _require(training_size, "width", int, size_where))
    steps = config.get("image_pre_processing") or {}
    if not isinstance(steps, dict):
        raise InvalidModelPackageError(f"{where} key 'image_pre_processing' must be an object or null.")
    preprocessing = PreprocessingConfig(
        resize_mode=resize_mode,
        padding_value=0 if padding is None else padding,
        color_order=color_mode,
        scaling_factor=255.0 if scaling is None else float(scaling),
        static_crop=_static_crop(steps.get("static-crop"), where),
        grayscale=_enabled(steps.get("grayscale")),
        contrast=_contrast(steps.get("contrast"), where),
    )
    return preprocessing, input_hw


def parse_legacy_environment(path: Path) -> tuple[PreprocessingConfig, tuple[int, int] | None, tuple[str, ...] | None]:
    """Parses a legacy Inference ``environment.json``.

    Returns:
        ``(preprocessing, resize_hw, class_names_from_CLASS_MAP)``.
    """
    environment = _read_json(path)
    where = f"'{path}'"
    steps = environment.get("PREPROCESSING", {})
    if isinstance(steps, str):
        try:
            steps = json.loads(steps)
        except json.JSONDecodeError as error:
            raise InvalidModelPackageError(f"{where} key 'PREPROCESSING' is not valid JSON ({error}).") from error
    if not isinstance(steps, dict):
        raise InvalidModelPackageError(f"{where} key 'PREPROCESSING' must be an object.")
    resize = steps.get("resize") or {}
    resize_mode, padding = "stretch", 0
    input_hw = None
    if _enabled(resize):
        resize_format = _require(resize, "format", str, f"{where} 'PREPROCESSING.resize'")
        if resize_format not in LEGACY_RESIZE_FORMATS:
            raise InvalidModelPackageError(
                f"{where} 'PREPROCESSING.resize' key 'format' is {resize_format!r}; "
                f"supported: {', '.join(LEGACY_RESIZE_FORMATS)}."
            )
        resize_mode, padding = LEGACY_RESIZE_FORMATS[resize_format]
        if "height" in resize and "width" in resize:
            input_hw = (int(resize["height"]), int(resize["width"]))
    class_map = environment.get("CLASS_MAP")
    class_names = None
    if class_map:
        if not isinstance(class_map, dict):
            raise InvalidModelPackageError(f"{where} key 'CLASS_MAP' must map class ids to names.")
        class_names = tuple(str(class_map[key]) for key in sorted(class_map, key=int))
    preprocessing = PreprocessingConfig(
        resize_mode=resize_mode,
        padding_value=padding,
        static_crop=_static_crop(steps.get("static-crop"), where),
        grayscale=_enabled(steps.get("grayscale")),
        contrast=_contrast(steps.get("contrast"), where),
    )
    return preprocessing, input_hw, class_names


def _parse_trt_config(path: Path) -> tuple[int, int, int]:
    config = _read_json(path)
    where = f"'{path}'"
    if config.get("static_batch_size") is not None:
        size = _require(config, "static_batch_size", int, where)
        if size <= 0:
            raise InvalidModelPackageError(f"{where} key 'static_batch_size' must be positive, got {size}.")
        return size, size, size
    sizes = tuple(_require(config, f"dynamic_batch_size_{k}", int, where) for k in ("min", "opt", "max"))
    if not 0 < sizes[0] <= sizes[1] <= sizes[2]:
        raise InvalidModelPackageError(f"{where} dynamic batch sizes must satisfy 0 < min <= opt <= max, got {sizes}.")
    return sizes


def _reject_pickle(path: Path) -> None:
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise UntrustedModelError(
            f"'{path}' is a PyTorch pickle; pickles can run arbitrary code and are never loaded. Export it to ONNX "
            "first: python export.py --weights your.pt --include onnx (YOLOv5), then pass the .onnx file."
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
    """
    model_id = model_id or str(path)
    _reject_pickle(path)
    if path.is_symlink() and not path.exists():
        raise ModelNotFoundError(f"'{path}' is a broken symbolic link; point it at an existing .onnx file.")
    if not path.exists():
        raise ModelNotFoundError(
            f"Model '{path}' does not exist; give the path of a YOLOv5-seg .onnx file or of a model package folder."
        )
    if path.is_file():
        names_file = path.with_name(CLASS_NAMES_FILE)
        class_names = read_class_names(names_file) if names_file.is_file() else None
        return ModelPackage(model_id, path, class_names, PreprocessingConfig())
    return _load_folder(path, model_id)


def _load_folder(folder: Path, model_id: str) -> ModelPackage:
    names_file = folder / CLASS_NAMES_FILE
    class_names = read_class_names(names_file) if names_file.is_file() else None
    engine = folder / TRT_ENGINE_FILE
    engine_path = engine if engine.is_file() else None
    trt_batch_sizes = _parse_trt_config(folder / TRT_CONFIG_FILE) if (folder / TRT_CONFIG_FILE).is_file() else None
    if (folder / INFERENCE_CONFIG_FILE).is_file():
        preprocessing, input_hw = parse_inference_config(folder / INFERENCE_CONFIG_FILE)
        weights = folder / PACKAGE_WEIGHTS_FILE
    elif (folder / LEGACY_ENVIRONMENT_FILE).is_file():
        preprocessing, input_hw, mapped_names = parse_legacy_environment(folder / LEGACY_ENVIRONMENT_FILE)
        class_names = class_names or mapped_names
        weights = _single_onnx(folder)
    else:
        preprocessing, input_hw = PreprocessingConfig(), None
        weights = _single_onnx(folder)
    if weights is None or not weights.is_file():
        if engine_path is None:
            pickles = [p.name for p in folder.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES]
            hint = f" It holds {pickles}: export to ONNX first." if pickles else ""
            raise ModelNotFoundError(
                f"Model folder '{folder}' holds no ONNX weights (expected {PACKAGE_WEIGHTS_FILE} or a single "
                f"*.onnx file).{hint}"
            )
        weights = None
    return ModelPackage(model_id, weights, class_names, preprocessing, input_hw, engine_path, trt_batch_sizes)


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
