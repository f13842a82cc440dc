"""Model sources: turns the block's ``model`` string into a local :class:`ModelPackage`, in one place.

Four sources (see ``docs/model-sources.md``):

- ``onnx``: a local ``.onnx`` file (Ultralytics export; names from its metadata or a ``class_names.txt`` beside it);
- ``package``: a folder in inference-models' layout (``weights.onnx`` or ``engine.plan``, ``class_names.txt``,
  ``inference_config.json``);
- ``legacy``: a folder in the legacy Inference layout (``*.onnx``, ``environment.json``);
- ``roboflow``: a Roboflow model id ``project/version``, downloaded once into the cache (:mod:`.roboflow`) with the
  ``api_key`` given or ``ROBOFLOW_API_KEY``, then read as a ``package``; every caller's key must be one the API
  confirmed can read it (:mod:`.authorization`).

An existing local path always wins over a model id of the same spelling.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from workflows_yolov5_seg import settings
from workflows_yolov5_seg.errors import ModelNotFoundError, UntrustedModelError
from workflows_yolov5_seg.model_package import ModelPackage, load_model_package
from workflows_yolov5_seg.package_layout import CLASS_NAMES_FILE, INFERENCE_CONFIG_FILE, LEGACY_ENVIRONMENT_FILE
from workflows_yolov5_seg.roboflow import MODEL_ID_PATTERN, authorize, download_model_package


def check_allowed(path: Path) -> None:
    """Rejects a path that resolves (through ``..`` and symbolic links) outside the allowed model roots."""
    roots = settings.MODEL_ROOTS.get()
    if roots is None:
        return
    real = path.expanduser().resolve()
    if not any(real == root or root in real.parents for root in roots):
        via = f" (it resolves to '{real}')" if real != path.expanduser().absolute() else ""
        raise UntrustedModelError(
            f"Model path '{path}'{via} is outside the allowed model roots ({settings.MODEL_ROOTS.name}); move the "
            "model under one of them or extend the variable."
        )


def check_allowed_package(path: Path) -> None:
    """:func:`check_allowed` for a model path and every file the loader may read with it.

    For a folder, that is each of its entries (weights, engine, configs, class names); for a file, the file and the
    ``class_names.txt`` beside it. A symbolic link inside an allowed root that points outside it is refused before
    anything is read through it (a linked ``class_names.txt`` would otherwise put a foreign file's lines into the
    outputs).
    """
    if settings.MODEL_ROOTS.get() is None:
        return
    check_allowed(path)
    path = path.expanduser()
    if path.is_dir():
        for entry in sorted(path.iterdir()):
            check_allowed(entry)
    else:
        beside = path.with_name(CLASS_NAMES_FILE)
        if beside.exists() or beside.is_symlink():
            check_allowed(beside)


def is_roboflow_model_id(model: str) -> bool:
    """``project/version`` that is not an existing local path."""
    return bool(MODEL_ID_PATTERN.match(model)) and not Path(model).exists()


ModelSourceKind = Literal["onnx", "package", "legacy", "folder", "roboflow"]


def model_source_kind(model: str) -> ModelSourceKind:
    """Which source ``model`` names, without loading anything.

    ``folder`` is a folder with weights but no config (pre-processed like a bare ``.onnx``); a path that does not
    exist and is not a model id is reported as ``onnx`` (loading it raises :class:`ModelNotFoundError`).
    """
    model = model.strip()
    if is_roboflow_model_id(model):
        return "roboflow"
    path = Path(model).expanduser()
    if path.is_dir():
        if (path / INFERENCE_CONFIG_FILE).is_file():
            return "package"
        if (path / LEGACY_ENVIRONMENT_FILE).is_file():
            return "legacy"
        return "folder"
    return "onnx"


def authorize_model(model: str, api_key: str | None = None) -> None:
    """For a Roboflow model id, checks that ``api_key`` (else ``ROBOFLOW_API_KEY``) may read it; local paths need
    nothing. Run before a model loaded for another caller is handed out (cheap when the answer is remembered).

    Raises:
        RoboflowAPIError: the key is missing or refused, or cannot be confirmed (see
            :func:`workflows_yolov5_seg.roboflow.download_model_package`).
    """
    model = model.strip()
    if is_roboflow_model_id(model):
        authorize(model, api_key or None)


def resolve_model(model: str, api_key: str | None = None) -> ModelPackage:
    """Resolves the ``model`` parameter to a local model package.

    Args:
        model: an ``.onnx`` path, a package folder, or a Roboflow ``project/version`` id.
        api_key: Roboflow API key for model ids (else ``ROBOFLOW_API_KEY``), cached or not (unless
            ``WORKFLOWS_YOLOV5_SEG_AUTHORIZE_ROBOFLOW_KEYS`` is off).

    Raises:
        ModelNotFoundError: the path does not exist.
        UntrustedModelError: the path is outside the allowed roots or is a pickle.
        InvalidModelPackageError: a package config is invalid (the message names the key).
        RoboflowAPIError: a model id could not be downloaded or the key may not read it (subclasses for a missing
            key, 401/403, a key not confirmed offline, 404, no network, a corrupted download).
    """
    model = model.strip()
    if not model:
        raise ModelNotFoundError("No model was given; pass the path of a YOLOv5-seg .onnx file or a model folder.")
    if is_roboflow_model_id(model):
        return load_model_package(download_model_package(model, api_key=api_key or None), model_id=model)
    path = Path(model).expanduser()
    check_allowed_package(path)
    return load_model_package(path, model_id=model)
