"""Model sources: turns the block's ``model`` string into a local :class:`ModelPackage`.

``model`` is either a local path (an ``.onnx`` file or a package folder, see :mod:`.model_package`) or a Roboflow
model id ``project/version``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from workflows_yolov5_seg.errors import ModelNotFoundError, UntrustedModelError
from workflows_yolov5_seg.model_package import ModelPackage, load_model_package

MODEL_ROOTS_ENV = "WORKFLOWS_YOLOV5_SEG_MODEL_ROOTS"
ROBOFLOW_MODEL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[0-9]+$")


def allowed_model_roots() -> list[Path] | None:
    """Folders models may be loaded from (``WORKFLOWS_YOLOV5_SEG_MODEL_ROOTS``, ``os.pathsep``-separated), if set."""
    value = os.environ.get(MODEL_ROOTS_ENV, "").strip()
    if not value:
        return None
    return [Path(root).expanduser().resolve() for root in value.split(os.pathsep) if root.strip()]


def check_allowed(path: Path) -> None:
    """Rejects a path that resolves (through ``..`` and symbolic links) outside the allowed model roots."""
    roots = allowed_model_roots()
    if roots is None:
        return
    real = path.expanduser().resolve()
    if not any(real == root or root in real.parents for root in roots):
        raise UntrustedModelError(
            f"Model path '{path}' is outside the allowed model roots ({MODEL_ROOTS_ENV}); move the model under one "
            "of them or extend the variable."
        )


def is_roboflow_model_id(model: str) -> bool:
    """``project/version`` that is not an existing local path."""
    return bool(ROBOFLOW_MODEL_ID.match(model)) and not Path(model).exists()


def resolve_model(model: str, api_key: str | None = None) -> ModelPackage:
    """Resolves the ``model`` parameter to a local model package.

    Args:
        model: an ``.onnx`` path, a package folder, or a Roboflow ``project/version`` id.
        api_key: Roboflow API key for model ids (else ``ROBOFLOW_API_KEY``).

    Raises:
        ModelNotFoundError: the path does not exist.
        UntrustedModelError: the path is outside the allowed roots or is a pickle.
    """
    model = model.strip()
    if not model:
        raise ModelNotFoundError("No model was given; pass the path of a YOLOv5-seg .onnx file or a model folder.")
    if is_roboflow_model_id(model):
        from workflows_yolov5_seg.roboflow import download_model_package

        return load_model_package(download_model_package(model, api_key=api_key), model_id=model)
    path = Path(model).expanduser()
    check_allowed(path)
    return load_model_package(path, model_id=model)
