"""Model sources: turns the block's ``model`` string into a local :class:`ModelPackage`, in one place.

Four sources (see ``docs/model-sources.md``):

- ``onnx``: a local ``.onnx`` file (an export of the YOLOv5 repository or of the ``ultralytics`` package, YOLOv8 to
  YOLO26; names from its metadata or a ``class_names.txt`` beside it);
- ``package``: a folder in inference-models' layout (``weights.onnx`` or ``engine.plan``, ``class_names.txt``,
  ``inference_config.json``, ``model_config.json`` naming the architecture: ``yolov5``, ``yolov8``, ``yolov11``,
  ``yolo26``);
- ``legacy``: a folder in the legacy Inference layout (``*.onnx``, ``environment.json``, Inference's
  ``model_type.json`` naming the model type, e.g. ``yolov8n-seg``);
- ``roboflow``: a Roboflow model id ``project/version`` of one of those architectures, downloaded once into the
  cache (:mod:`.roboflow`) with the
  ``api_key`` given or ``ROBOFLOW_API_KEY``, then read as a ``package``; every caller's key must be one the API
  confirmed can read it (:mod:`.authorization`).

An existing local path always wins over a model id of the same spelling.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from workflows_yolov5_seg import settings
from workflows_yolov5_seg.errors import InvalidModelFileError, ModelNotFoundError, ModelPathNotAllowedError
from workflows_yolov5_seg.model_package import ModelPackage, load_model_package
from workflows_yolov5_seg.package_layout import CLASS_NAMES_FILE, INFERENCE_CONFIG_FILE, LEGACY_ENVIRONMENT_FILE
from workflows_yolov5_seg.roboflow import MODEL_ID_PATTERN, authorize, download_model_package


def check_allowed(path: Path) -> None:
    """Rejects a path that resolves (through ``..`` and symbolic links) outside the allowed model roots.

    Served (:func:`workflows_yolov5_seg.settings.is_served`), a refusal says nothing about the path: not whether it
    exists, nor where it leads.

    Raises:
        ModelPathNotAllowedError: outside the roots, or any local path on a server without roots.
    """
    roots = settings.MODEL_ROOTS.get()
    served = settings.is_served()
    if roots is None:
        if served:
            raise ModelPathNotAllowedError(
                f"Local model paths are not allowed on this server ('{path}'); no model roots are configured. Load a "
                "Roboflow model id ('project/version'), or allow a folder: start the server with "
                f"'workflows-yolov5-seg serve --model-root DIR' or set {settings.MODEL_ROOTS.name}=DIR "
                f"('{os.pathsep}'-separated) and put the model under it."
            )
        return
    refused = ModelPathNotAllowedError(
        f"Model path '{path}' is outside the allowed model roots ({settings.MODEL_ROOTS.name}); move the model under "
        "one of them or extend the variable."
    )
    real_roots = [root.resolve() for root in roots]
    lexical = Path(os.path.normpath(path.expanduser().absolute()))
    # Served, a path must lie in a root before anything of it is resolved: the answer then never depends on what
    # exists (or where links lead) outside the roots.
    if served and not (_inside(lexical, roots) or _inside(lexical, real_roots)):
        raise refused
    try:
        real = path.expanduser().resolve()
    except (OSError, RuntimeError) as error:  # Python < 3.13 raises RuntimeError for a symbolic link loop
        raise InvalidModelFileError(
            f"'{path}' cannot be resolved ({error}); a symbolic link loop? Point it at a real model file or folder."
        ) from None
    if not _inside(real, real_roots):
        if not served and real != lexical:
            raise ModelPathNotAllowedError(f"{refused} (It resolves to '{real}'.)")
        raise refused


def _inside(path: Path, roots: list[Path] | tuple[Path, ...]) -> bool:
    return any(path == root or root in path.parents for root in roots)


def check_allowed_package(path: Path) -> None:
    """:func:`check_allowed` for a model path and every file the loader may read with it.

    For a folder, that is each of its entries (weights, engine, configs, class names); for a file, the file and the
    ``class_names.txt`` beside it. A symbolic link inside an allowed root that points outside it is refused before
    anything is read through it (a linked ``class_names.txt`` would otherwise put a foreign file's lines into the
    outputs).
    """
    if settings.MODEL_ROOTS.get() is None and not settings.is_served():
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
    """``project/version``: a Roboflow model id, unless it is an existing local path in library use (served, the
    answer must not depend on which server files exist)."""
    return bool(MODEL_ID_PATTERN.match(model)) and (settings.is_served() or not Path(model).exists())


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
        raise ModelNotFoundError(
            "No model was given; pass the path of a YOLO segmentation .onnx file (YOLOv5, YOLOv8 ... YOLO26), a "
            "model folder or a Roboflow model id."
        )
    if is_roboflow_model_id(model):
        return load_model_package(download_model_package(model, api_key=api_key or None), model_id=model)
    path = Path(model).expanduser()
    check_allowed_package(path)
    return load_model_package(path, model_id=model)
