"""Inference backends. Each maps a pre-processed batch to the two raw YOLOv5-seg outputs; see :mod:`.base`.

- ``onnx``: ONNX Runtime on ``cpu``, ``cuda[:N]`` or ``tensorrt[:N]`` (ONNX Runtime's TensorRT provider);
- ``trt``: TensorRT engines (:mod:`.tensorrt`), built from the ONNX and cached, or a package's ``engine.plan``;
- ``auto``: TensorRT, then ONNX Runtime CUDA, then ONNX Runtime CPU, by what is installed and works here.

The choice is logged once and readable as ``backend.info`` (``YOLOv5SegModel.backend.info.name / .device /
.providers / .precision``, or ``.as_dict()``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from workflows_yolov5_seg.backends.base import Backend, BackendInfo, parse_device
from workflows_yolov5_seg.errors import (
    BackendUnavailableError,
    CacheNotWritableError,
    InvalidModelFileError,
    InvalidParameterError,
    MissingDependencyError,
    check_choice,
)
from workflows_yolov5_seg.model_package import ModelPackage

logger = logging.getLogger(__name__)

BACKENDS: tuple[str, ...] = ("auto", "onnx", "trt")
ONNX_OPTIONS = frozenset(
    {"fallback_policy", "max_dynamic_batch", "intra_op_threads", "cache_dir", "trt_fp16", "preload_dlls"}
)
TRT_OPTIONS = frozenset(
    {
        "precision",
        "batch",
        "cache_dir",
        "allow_engine_host_code",
        "use_package_engine",
        "workspace_bytes",
        "rebuild_engine",
    }
)

# The errors by which backend='auto' learns that a backend cannot run here and tries the next; any other error (a bad
# parameter, a model that is not YOLOv5-seg or whose class names do not match) would fail the same on every backend
# and is raised.
CANNOT_RUN_HERE: tuple[type[Exception], ...] = (
    BackendUnavailableError,  # no usable device or provider, a failed build, a failed first run
    MissingDependencyError,  # the backend's package is not installed
)
# A GPU backend also gives way when its own loader or cache is what fails, where ONNX Runtime may still run the file.
GPU_CANNOT_RUN_HERE: tuple[type[Exception], ...] = (
    *CANNOT_RUN_HERE,
    CacheNotWritableError,  # TensorRT's engine cache cannot be written (e.g. read-only without the engine)
    InvalidModelFileError,  # TensorRT's parser refuses the ONNX, an engine.plan does not load, a GPU session fails
)

__all__ = ["BACKENDS", "Backend", "BackendInfo", "create_backend", "onnxruntime_has_cuda", "tensorrt_usable"]


def onnxruntime_has_cuda() -> bool:
    """Whether the installed onnxruntime offers the CUDA provider (it may still fail to load; see
    :func:`workflows_yolov5_seg.backends.onnx.check_providers_in_use`)."""
    try:
        import onnxruntime
    except ImportError:
        return False
    return "CUDAExecutionProvider" in onnxruntime.get_available_providers()


def tensorrt_usable(device_id: int = 0) -> tuple[bool, str]:
    """Whether the TensorRT backend can run: ``tensorrt`` imports and cuda-python sees CUDA device ``device_id``.

    Returns:
        ``(usable, reason when not)``.
    """
    from workflows_yolov5_seg.backends.tensorrt import probe_cuda_device, probe_tensorrt

    ok, reason = probe_tensorrt()
    if not ok:
        return False, reason
    gpu, reason = probe_cuda_device(device_id)
    return gpu is not None, reason


def _split_options(options: dict[str, Any], allowed: frozenset[str], backend: str) -> dict[str, Any]:
    unknown = sorted(set(options) - ONNX_OPTIONS - TRT_OPTIONS)
    if unknown:
        raise InvalidParameterError(
            f"Unknown backend option(s) {unknown}; ONNX Runtime takes {sorted(ONNX_OPTIONS)}, TensorRT takes "
            f"{sorted(TRT_OPTIONS)}."
        )
    if backend != "auto":
        misplaced = sorted(set(options) - allowed)
        if misplaced:
            raise InvalidParameterError(f"Option(s) {misplaced} do not apply to backend='{backend}'.")
    return {k: v for k, v in options.items() if k in allowed}


def _load_onnx(package: ModelPackage, device: str, options: dict[str, Any]) -> Backend:
    from workflows_yolov5_seg.backends.onnx import OnnxRuntimeBackend

    return OnnxRuntimeBackend(package, device=device, **options)


def _load_trt(package: ModelPackage, device: str | None, options: dict[str, Any]) -> Backend:
    from workflows_yolov5_seg.backends.tensorrt import load_tensorrt_backend

    return load_tensorrt_backend(package, device=device, **options)


def create_backend(package: ModelPackage, backend: str = "auto", device: str | None = None, **options: Any) -> Backend:
    """Creates the backend for a model package.

    Args:
        package: the resolved model.
        backend: ``onnx`` (ONNX Runtime), ``trt`` (TensorRT) or ``auto``.
        device: ``cpu``, ``cuda[:N]``, or ``tensorrt[:N]`` (ONNX Runtime's TensorRT provider; ``onnx`` only); see
            :func:`~workflows_yolov5_seg.backends.base.parse_device`.
            ``None``: ``auto`` picks the best that works; ``onnx`` picks CUDA when ONNX Runtime offers it (falling
            back to the CPU with a warning), ``trt`` uses ``cuda:0``.
        **options: ONNX Runtime options (``fallback_policy``, ``max_dynamic_batch``, ``intra_op_threads``,
            ``cache_dir``, ``trt_fp16``, ``preload_dlls``) and TensorRT options (``precision``, ``batch``,
            ``cache_dir``, ``allow_engine_host_code``, ``use_package_engine``, ``workspace_bytes``,
            ``rebuild_engine``). ``auto`` passes each backend the options it takes.

    Raises:
        InvalidParameterError: unknown backend, device or option.
        BackendUnavailableError: the backend cannot run here (a GPU asked for explicitly is never silently replaced by
            the CPU unless ``fallback_policy='warn'``).
        MissingDependencyError: the backend's package is not installed.
    """
    check_choice("backend", backend, BACKENDS)
    kind, device_id = (None, 0) if device is None else parse_device(device)
    if backend == "trt":
        if kind in ("cpu", "tensorrt"):
            raise InvalidParameterError(
                f"backend='trt' runs on a CUDA device (device='cuda[:N]'), not {device!r}; use backend='onnx' for "
                f"{'the CPU' if kind == 'cpu' else 'ONNX Runtime TensorRT provider'}."
            )
        chosen = _load_trt(package, device, _split_options(options, TRT_OPTIONS, backend))
    elif backend == "onnx":
        onnx_options = _split_options(options, ONNX_OPTIONS, backend)
        if device is None:
            from workflows_yolov5_seg.backends.onnx import import_onnxruntime

            import_onnxruntime()
            device = "cuda" if onnxruntime_has_cuda() else "cpu"
            # A GPU picked automatically may fall back with a warning; one asked for explicitly raises.
            onnx_options.setdefault("fallback_policy", "warn")
        chosen = _load_onnx(package, device, onnx_options)
    else:
        chosen, note = _auto(package, kind, device_id, options)
        logger.info(
            "'%s' runs on backend %s; chosen by backend='auto'%s", package.model_id, describe(chosen.info), note
        )
        return chosen
    logger.info("'%s' runs on backend %s", package.model_id, describe(chosen.info))
    return chosen


def describe(info: BackendInfo) -> str:
    """One line for logs: ``trt on cuda:0 (TensorRT 10.8.0, fp16, batch 1..8)``."""
    details = [", ".join(info.providers)] if info.providers else []
    if info.precision:
        details.append(info.precision)
    details.append(f"batch {info.min_batch_size}..{info.max_batch_size}")
    return f"{info.name} on {info.device} ({', '.join(details)})"


def _auto(package: ModelPackage, kind: str | None, device_id: int, options: dict[str, Any]) -> tuple[Backend, str]:
    """TensorRT, then ONNX Runtime CUDA, then ONNX Runtime CPU; the first that loads and runs wins. A candidate that
    fails with one of :data:`GPU_CANNOT_RUN_HERE` (the CPU: :data:`CANNOT_RUN_HERE`) is logged as a warning and the
    next is tried; any other error is raised.

    Returns:
        ``(backend, note)``: the note says, for the load log line, which GPU backends were not installed.

    A device given explicitly narrows the candidates: ``cpu`` -> ONNX Runtime CPU only; ``cuda[:N]`` -> GPU backends
    only (no CPU fallback unless ``fallback_policy='warn'``); ``tensorrt[:N]`` -> ONNX Runtime's TensorRT provider.
    """
    _split_options(options, ONNX_OPTIONS | TRT_OPTIONS, "auto")
    trt_options = {k: v for k, v in options.items() if k in TRT_OPTIONS}
    onnx_options = {k: v for k, v in options.items() if k in ONNX_OPTIONS}
    user_policy = onnx_options.pop("fallback_policy", None)
    if kind == "cpu":
        return _load_onnx(package, "cpu", onnx_options), " (device='cpu')"
    if kind == "tensorrt":
        tensorrt_options = {**onnx_options, "fallback_policy": user_policy or "raise"}
        return _load_onnx(package, f"tensorrt:{device_id}", tensorrt_options), " (device='tensorrt')"
    cuda_device = f"cuda:{device_id}"
    gpu_required = kind == "cuda" and user_policy != "warn" or user_policy == "raise"
    # (label, loader, the errors on which the next candidate is tried)
    candidates: list[tuple[str, Callable[[], Backend], tuple[type[Exception], ...]]] = []
    skipped: list[str] = []

    usable, reason = tensorrt_usable(device_id)
    if usable and (package.weights_path is not None or package.engine_path is not None):
        candidates.append(("TensorRT", lambda: _load_trt(package, cuda_device, trt_options), GPU_CANNOT_RUN_HERE))
    else:
        skipped.append(f"TensorRT: {reason or 'no weights'}")
    if package.weights_path is not None and onnxruntime_has_cuda():

        def ort_cuda() -> Backend:
            loaded = _load_onnx(package, cuda_device, {**onnx_options, "fallback_policy": "raise"})
            loaded.warmup()
            return loaded

        candidates.append(("ONNX Runtime CUDA", ort_cuda, GPU_CANNOT_RUN_HERE))
    else:
        skipped.append("ONNX Runtime CUDA: onnxruntime-gpu with CUDAExecutionProvider is not installed")
    if not gpu_required:
        # The last resort: a file ONNX Runtime cannot load on the CPU raises its own InvalidModelFileError.
        candidates.append(("ONNX Runtime CPU", lambda: _load_onnx(package, "cpu", onnx_options), CANNOT_RUN_HERE))

    failures: list[str] = []
    for label, load, cannot_run_here in candidates:
        try:
            chosen = load()
        except cannot_run_here as error:
            failures.append(f"{label}: {error}")
            logger.warning(
                "backend='auto': %s is not usable here (%s); trying the next backend.", label, str(error)[:400]
            )
            continue
        if chosen.info.device == "cpu" and failures:
            logger.warning(
                "backend='auto' runs '%s' on the CPU; no GPU backend is usable (%s).",
                package.model_id,
                "; ".join(skipped + [f[:200] for f in failures]),
            )
        note = f" (not installed here: {'; '.join(skipped)})" if skipped else ""
        return chosen, note
    if gpu_required:
        raise BackendUnavailableError(
            f"No GPU backend is usable for '{package.model_id}' and a GPU was requested (device={kind!r}, "
            f"fallback_policy={user_policy!r}): {'; '.join(skipped + failures)[:1200]}. Pass fallback_policy='warn' "
            "to allow the CPU, or fix the GPU install (docs/gpu.md)."
        )
    raise BackendUnavailableError(
        f"No backend is usable for '{package.model_id}': {'; '.join(skipped + failures)[:1200]}. Install one: pip "
        "install 'workflows-yolov5-seg[onnx-cpu]' (or [onnx-gpu]; TensorRT: docs/gpu.md)."
    )
