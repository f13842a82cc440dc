"""ONNX Runtime backend (CPU, CUDA, TensorRT execution providers)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from workflows_yolov5_seg import settings
from workflows_yolov5_seg.backends.base import Backend, BackendInfo, parse_device
from workflows_yolov5_seg.errors import (
    BackendUnavailableError,
    InvalidModelFileError,
    InvalidParameterError,
    MissingDependencyError,
    check_choice,
)
from workflows_yolov5_seg.model_package import ModelPackage
from workflows_yolov5_seg.private_files import ensure_private_dir

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


GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")
FALLBACK_POLICIES = ("raise", "warn")


def ort_tensorrt_cache_dir(cache_dir: Path | None = None) -> Path:
    """Where ONNX Runtime's TensorRT execution provider keeps its engines: ``<cache>/ort-trt`` (owner-only)."""
    return ensure_private_dir(Path(cache_dir) if cache_dir is not None else settings.cache_root() / "ort-trt")


def execution_providers(
    device: str, cache_dir: Path | None = None, trt_fp16: bool = True
) -> list[str | tuple[str, dict]]:
    """ONNX Runtime providers, best first, for ``device`` (``cpu``, ``cuda[:N]`` or ``tensorrt[:N]``).

    Args:
        device: where to run (:func:`~workflows_yolov5_seg.backends.base.parse_device`).
        cache_dir: for ``tensorrt``: the folder of the TensorRT provider's engine and timing caches (default
            ``<cache>/ort-trt``, see :func:`ort_tensorrt_cache_dir`).
        trt_fp16: let the TensorRT provider build fp16 engines.
    """
    kind, device_id = parse_device(device)
    cpu = "CPUExecutionProvider"
    if kind == "cpu":
        return [cpu]
    cuda = ("CUDAExecutionProvider", {"device_id": device_id})
    if kind == "cuda":
        return [cuda, cpu]
    folder = str(ort_tensorrt_cache_dir(cache_dir))
    trt_options = {
        "device_id": device_id,
        "trt_fp16_enable": bool(trt_fp16),
        "trt_engine_cache_enable": True,
        "trt_engine_cache_path": folder,
        "trt_timing_cache_enable": True,
        "trt_timing_cache_path": folder,
    }
    return [("TensorrtExecutionProvider", trt_options), cuda, cpu]


def provider_name(provider: str | tuple[str, dict]) -> str:
    return provider if isinstance(provider, str) else provider[0]


def check_providers_in_use(
    wanted: str, in_use: list[str], policy: FallbackPolicy, available: list[str] | None = None
) -> bool:
    """Detects ONNX Runtime's silent fallback to CPU when a GPU provider was asked for.

    ONNX Runtime does not fail when a GPU provider cannot load (CUDA / cuDNN libraries missing or of another major
    version, e.g. onnxruntime-gpu built for CUDA 12 on a CUDA-13-only machine): it logs and runs on the CPU. The only
    reliable sign is the provider list the session reports.

    Args:
        wanted: the provider asked for first, e.g. ``CUDAExecutionProvider``.
        in_use: the providers the session reports (``session.get_providers()``).
        policy: ``raise`` (default when a GPU was requested) or ``warn``.
        available: ``onnxruntime.get_available_providers()``, to say why.

    Returns:
        ``True`` when ``wanted`` is in use, ``False`` after a warning (policy ``warn``).

    Raises:
        BackendUnavailableError: ``wanted`` is not in use and the policy is ``raise``.
    """
    if wanted in in_use:
        return True
    check_choice("fallback_policy", policy, FALLBACK_POLICIES)
    if available is not None and wanted not in available:
        cause = (
            f"this onnxruntime build does not include {wanted} (it offers {', '.join(available)}): the CPU package "
            "'onnxruntime' is installed, alone or beside 'onnxruntime-gpu'. Install only the GPU build: pip uninstall "
            "-y onnxruntime onnxruntime-gpu && pip install 'workflows-yolov5-seg[onnx-gpu]'"
        )
    else:
        cause = (
            f"{wanted} is built in but could not load, so ONNX Runtime runs on {', '.join(in_use) or 'nothing'}. "
            "Usually the CUDA / cuDNN libraries are missing or of another major version than the build "
            "(onnxruntime-gpu "
            "1.19+ on PyPI needs CUDA 12 and cuDNN 9; a CUDA-13-only machine falls back). Install them with pip "
            "install 'onnxruntime-gpu[cuda,cudnn]' or use a CUDA 12 image, and check nvidia-smi"
        )
        if wanted == "TensorrtExecutionProvider":
            cause += "; the TensorRT provider also needs the TensorRT libraries (libnvinfer) on the library path"
    message = f"ONNX Runtime was asked for {wanted} but did not use it: {cause}. Or request device='cpu'."
    if policy == "raise":
        raise BackendUnavailableError(message)
    logger.warning("%s Running on the CPU: expect it to be much slower.", message)
    return False


def preload_cuda_libraries(onnxruntime) -> None:  # noqa: ANN001
    """Lets onnxruntime-gpu (1.21+) load CUDA / cuDNN from the nvidia-* pip packages; best effort."""
    preload = getattr(onnxruntime, "preload_dlls", None)
    if preload is None:
        return
    try:
        preload()
    except Exception as error:  # noqa: BLE001 - only an aid; the provider check reports the outcome
        logger.debug("onnxruntime.preload_dlls() failed: %s", error)


GRAPH_OPTIMIZATION_LEVELS = {
    "disable": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",
}


def default_session_options(  # noqa: ANN201
    onnxruntime,  # noqa: ANN001
    intra_op_threads: int | None = None,
    *,
    graph_optimization: str | None = None,
    execution_mode: str | None = None,
    inter_op_threads: int | None = None,
    memory_arena: bool | None = None,
    spinning: bool | None = None,
):
    """Session options for the hot path; each argument left ``None`` comes from its setting.

    The defaults (full graph optimisation, sequential execution, ONNX Runtime's thread count, memory arena on, no
    spinning: 7-19 % slower than spinning on idle cores, up to 2.3x faster on contended ones) were chosen from
    measurements on a shared 2-core CPU (``docs/quantization.md``, "Session settings";
    ``benchmarks/session_settings.py``).

    Args:
        onnxruntime: the imported module.
        intra_op_threads: threads per operator (``ORT_THREADS``; 0: one per core).
        graph_optimization: ``disable`` / ``basic`` / ``extended`` / ``all`` (``ORT_GRAPH_OPTIMIZATION``).
        execution_mode: ``sequential`` / ``parallel`` (``ORT_EXECUTION_MODE``).
        inter_op_threads: threads across operators in parallel mode (``ORT_INTER_OP_THREADS``).
        memory_arena: CPU memory arena and memory pattern (``ORT_MEMORY_ARENA``).
        spinning: intra-op threads busy-wait between operators (``ORT_SPINNING``).
    """
    options = onnxruntime.SessionOptions()
    level = graph_optimization if graph_optimization is not None else settings.ORT_GRAPH_OPTIMIZATION.get()
    check_choice("graph_optimization", level, tuple(GRAPH_OPTIMIZATION_LEVELS))
    options.graph_optimization_level = getattr(onnxruntime.GraphOptimizationLevel, GRAPH_OPTIMIZATION_LEVELS[level])
    options.intra_op_num_threads = intra_op_threads or settings.ORT_THREADS.get()
    mode = execution_mode if execution_mode is not None else settings.ORT_EXECUTION_MODE.get()
    check_choice("execution_mode", mode, ("sequential", "parallel"))
    options.execution_mode = (
        onnxruntime.ExecutionMode.ORT_PARALLEL if mode == "parallel" else onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    )
    options.inter_op_num_threads = (
        inter_op_threads if inter_op_threads is not None else settings.ORT_INTER_OP_THREADS.get()
    )
    arena = memory_arena if memory_arena is not None else settings.ORT_MEMORY_ARENA.get()
    options.enable_cpu_mem_arena = bool(arena)
    options.enable_mem_pattern = bool(arena)
    spin = spinning if spinning is not None else settings.ORT_SPINNING.get()
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "1" if spin else "0")
    options.log_severity_level = 3
    return options


class OnnxRuntimeBackend(Backend):
    """Runs a YOLOv5-seg ONNX export with ONNX Runtime on the CPU, CUDA or ONNX Runtime's TensorRT provider."""

    def __init__(
        self,
        package: ModelPackage,
        device: str = "cpu",
        fallback_policy: FallbackPolicy = "raise",
        max_dynamic_batch: int = DEFAULT_MAX_DYNAMIC_BATCH,
        intra_op_threads: int | None = None,
        cache_dir: Path | None = None,
        trt_fp16: bool = True,
        preload_dlls: bool = True,
    ) -> None:
        """Creates the session and checks it runs where it was asked to.

        Args:
            package: the model; its ONNX weights and their checked signature (input and output names, input size).
            device: ``cpu``, ``cuda[:N]`` or ``tensorrt[:N]``.
            fallback_policy: when a GPU provider was asked for but ONNX Runtime fell back to the CPU: ``raise``
                (:class:`BackendUnavailableError`) or ``warn`` and run on the CPU.
            max_dynamic_batch: the largest batch sent at once to a dynamic-batch model.
            intra_op_threads: CPU threads (default: the ``ORT_THREADS`` setting, else ONNX Runtime's choice).
            cache_dir: engine cache folder of the TensorRT provider (``tensorrt`` devices).
            trt_fp16: let the TensorRT provider use fp16.
            preload_dlls: on GPU devices, let onnxruntime-gpu load CUDA / cuDNN from the nvidia-* pip packages.
        """
        check_choice("fallback_policy", fallback_policy, FALLBACK_POLICIES)
        if isinstance(max_dynamic_batch, bool) or not isinstance(max_dynamic_batch, int) or max_dynamic_batch < 1:
            raise InvalidParameterError(f"max_dynamic_batch must be an integer >= 1, got {max_dynamic_batch!r}.")
        if package.weights_path is None or package.signature is None:
            raise BackendUnavailableError(
                f"'{package.model_id}' ships only a TensorRT engine; the ONNX backend needs weights.onnx in the "
                "package."
            )
        weights_path, signature = package.weights_path, package.signature
        onnxruntime = import_onnxruntime()
        kind, device_id = parse_device(device)
        if kind != "cpu" and preload_dlls:
            preload_cuda_libraries(onnxruntime)
        providers = execution_providers(device, cache_dir, trt_fp16)
        available = list(onnxruntime.get_available_providers())
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
                f"{str(error)[:300]}). Give a YOLO segmentation ONNX export (`yolo export model=best.pt format=onnx` "
                "for Ultralytics YOLOv8 ... YOLO26, `python export.py --weights best.pt --include onnx` in the YOLOv5 "
                "repository) and check that the file is complete."
            ) from error
        in_use = list(self._session.get_providers())
        check_providers_in_use(provider_name(providers[0]), in_use, fallback_policy, available)
        self._input_name = signature.input_name
        self._output_names = [signature.instances_name, signature.protos_name]
        batch = signature.batch_size
        on_gpu = bool(in_use) and in_use[0] in GPU_PROVIDERS
        self.info = BackendInfo(
            name="onnx",
            device=f"cuda:{device_id}" if on_gpu else "cpu",
            input_hw=signature.input_hw,
            input_dtype=ONNX_DTYPES[self._session.get_inputs()[0].type],
            min_batch_size=batch or 1,
            max_batch_size=batch or max_dynamic_batch,
            providers=tuple(in_use),
            dynamic_hw=signature.dynamic_hw,
        )

    def infer(self, batch: np.ndarray) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        session = self._session
        if session is None:
            raise self.closed_error()
        batch = batch.astype(self.info.input_dtype, copy=False)
        instances, protos = session.run(self._output_names, {self._input_name: batch})
        return instances.astype(np.float32, copy=False), protos.astype(np.float32, copy=False)

    def close(self) -> None:
        self._session = None
