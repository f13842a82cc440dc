"""ONNX Runtime backend (CPU, CUDA, TensorRT execution providers)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from workflows_yolov5_seg.backends.base import BackendInfo, check_io_signature
from workflows_yolov5_seg.errors import BackendUnavailableError, InvalidModelFileError, MissingDependencyError

logger = logging.getLogger(__name__)

ONNX_DTYPES = {"tensor(float)": np.dtype(np.float32), "tensor(float16)": np.dtype(np.float16)}
DEFAULT_MAX_DYNAMIC_BATCH = 16
FallbackPolicy = Literal["raise", "warn"]


def import_onnxruntime():  # noqa: ANN201 - the module
    """Imports onnxruntime, or raises an error naming the extra to install."""
    try:
        import onnxruntime
    except ImportError as error:
        raise MissingDependencyError("onnxruntime", "onnx-cpu", "The ONNX Runtime backend") from error
    return onnxruntime


def execution_providers(device: str, cache_dir: Path | None = None) -> list[str | tuple[str, dict]]:
    """ONNX Runtime providers, best first, for ``device`` (``cpu``, ``cuda``, ``cuda:N`` or ``tensorrt:N``)."""
    kind, _, index = device.partition(":")
    device_id = int(index or 0)
    cpu = "CPUExecutionProvider"
    if kind == "cpu":
        return [cpu]
    cuda = ("CUDAExecutionProvider", {"device_id": device_id})
    if kind == "cuda":
        return [cuda, cpu]
    if kind == "tensorrt":
        trt_options = {"device_id": device_id, "trt_fp16_enable": True, "trt_engine_cache_enable": True}
        if cache_dir is not None:
            trt_options["trt_engine_cache_path"] = str(cache_dir)
        return [("TensorrtExecutionProvider", trt_options), cuda, cpu]
    raise BackendUnavailableError(f"Unknown device '{device}' for ONNX Runtime; use cpu, cuda[:N] or tensorrt[:N].")


def provider_name(provider: str | tuple[str, dict]) -> str:
    return provider if isinstance(provider, str) else provider[0]


def check_providers_in_use(wanted: str, in_use: list[str], policy: FallbackPolicy) -> None:
    """Detects ONNX Runtime's silent fallback to CPU when a GPU provider was asked for.

    Args:
        wanted: the provider asked for first, e.g. ``CUDAExecutionProvider``.
        in_use: the providers the session reports (``session.get_providers()``).
        policy: ``raise`` (default when a GPU was requested) or ``warn``.
    """
    if wanted in in_use:
        return
    message = (
        f"ONNX Runtime could not use {wanted} and fell back to {in_use}. Install onnxruntime-gpu built for this "
        "machine's CUDA/cuDNN (pip install 'workflows-yolov5-seg[onnx-gpu]', and only one onnxruntime package), "
        "or request device='cpu'."
    )
    if policy == "raise":
        raise BackendUnavailableError(message)
    logger.warning(message)


def default_session_options(onnxruntime, intra_op_threads: int | None = None):  # noqa: ANN001, ANN201
    """Session options: full graph optimisation; thread count from the argument or the environment."""
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    threads = intra_op_threads or int(os.environ.get("WORKFLOWS_YOLOV5_SEG_ORT_THREADS", "0"))
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    return options


class OnnxRuntimeBackend:
    """Runs a YOLOv5-seg ONNX export with ONNX Runtime."""

    def __init__(
        self,
        weights_path: Path,
        device: str = "cpu",
        fallback_policy: FallbackPolicy = "raise",
        max_dynamic_batch: int = DEFAULT_MAX_DYNAMIC_BATCH,
        intra_op_threads: int | None = None,
        default_input_hw: tuple[int, int] | None = None,
        cache_dir: Path | None = None,
    ) -> None:
        onnxruntime = import_onnxruntime()
        providers = execution_providers(device, cache_dir)
        available = set(onnxruntime.get_available_providers())
        usable = [p for p in providers if provider_name(p) in available] or ["CPUExecutionProvider"]
        try:
            self._session = onnxruntime.InferenceSession(
                str(weights_path),
                sess_options=default_session_options(onnxruntime, intra_op_threads),
                providers=usable,
            )
        except Exception as error:  # ORT raises its own pybind error types for bad files
            raise InvalidModelFileError(
                f"'{weights_path}' could not be loaded as an ONNX model ({type(error).__name__}: "
                f"{str(error)[:300]}). Give a YOLOv5-seg ONNX export (yolov5 export.py --include onnx) and check "
                "that the file is complete."
            ) from error
        check_providers_in_use(provider_name(providers[0]), self._session.get_providers(), fallback_policy)
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        signature = check_io_signature(
            source=str(weights_path),
            input_shapes=[tuple(i.shape) for i in inputs],
            output_names=[o.name for o in outputs],
            output_shapes=[tuple(o.shape) for o in outputs],
            default_input_hw=default_input_hw,
        )
        self._input_name = inputs[0].name
        self._output_names = [outputs[signature.instances_index].name, outputs[signature.protos_index].name]
        input_dtype = ONNX_DTYPES.get(inputs[0].type)
        if input_dtype is None:
            raise InvalidModelFileError(
                f"'{weights_path}' takes input of type {inputs[0].type}; YOLOv5-seg takes float32 or float16 images."
            )
        batch = signature.batch_size
        self.metadata: dict[str, str] = dict(self._session.get_modelmeta().custom_metadata_map)
        self.info = BackendInfo(
            name="onnx",
            device=device if self._session.get_providers()[0] != "CPUExecutionProvider" else "cpu",
            input_hw=signature.input_hw,
            input_dtype=input_dtype,
            min_batch_size=batch or 1,
            max_batch_size=batch or max_dynamic_batch,
            num_classes=signature.num_classes,
            providers=tuple(self._session.get_providers()),
        )

    def infer(self, batch: np.ndarray) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        instances, protos = self._session.run(self._output_names, {self._input_name: batch})
        return instances.astype(np.float32, copy=False), protos.astype(np.float32, copy=False)

    def close(self) -> None:
        self._session = None
