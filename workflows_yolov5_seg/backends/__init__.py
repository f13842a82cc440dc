"""Inference backends. Each maps a pre-processed batch to the two raw YOLOv5-seg outputs; see :mod:`.base`."""

from __future__ import annotations

import logging

from workflows_yolov5_seg.backends.base import Backend, BackendInfo
from workflows_yolov5_seg.errors import BackendUnavailableError, InvalidParameterError
from workflows_yolov5_seg.model_package import ModelPackage

logger = logging.getLogger(__name__)

BACKENDS: tuple[str, ...] = ("auto", "onnx", "trt")

__all__ = ["BACKENDS", "Backend", "BackendInfo", "create_backend"]


def _onnxruntime_has_cuda() -> bool:
    try:
        import onnxruntime
    except ImportError:
        return False
    return "CUDAExecutionProvider" in onnxruntime.get_available_providers()


def create_backend(
    package: ModelPackage, backend: str = "auto", device: str | None = None, **options: object
) -> Backend:
    """Creates the backend for a model package.

    Args:
        package: the resolved model.
        backend: ``onnx`` (ONNX Runtime), ``trt`` (TensorRT) or ``auto``.
        device: ``cpu``, ``cuda[:N]``; ``None`` picks CUDA when ONNX Runtime offers it, else CPU.
        **options: backend-specific options.
    """
    if backend not in BACKENDS:
        raise InvalidParameterError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}.")
    if backend == "trt":
        raise BackendUnavailableError(
            "The TensorRT backend is not available in this build; use backend='onnx' (or 'auto')."
        )
    if package.weights_path is None:
        raise BackendUnavailableError(
            f"'{package.model_id}' ships only a TensorRT engine; the ONNX backend needs weights.onnx in the package."
        )
    from workflows_yolov5_seg.backends.onnx import OnnxRuntimeBackend

    if device is None:
        device = "cuda" if _onnxruntime_has_cuda() else "cpu"
        # A GPU picked automatically may fall back with a warning; one asked for explicitly raises.
        options.setdefault("fallback_policy", "warn")
    chosen = OnnxRuntimeBackend(package.weights_path, device=device, default_input_hw=package.input_hw, **options)
    logger.info("'%s' runs on ONNX Runtime (%s)", package.model_id, ", ".join(chosen.info.providers))
    return chosen
