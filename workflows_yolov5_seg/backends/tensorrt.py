"""TensorRT backend (TensorRT 10 Python API): engines built from the model's ONNX and cached, or a package's
``engine.plan``.

- Memory: device buffers and pinned host buffers from the CUDA runtime through ``cuda-python``
  (``cuda.bindings.runtime``), sized once for the largest batch; no torch, no pycuda.
- Execution: named tensors (``set_input_shape``, ``set_tensor_address``) and ``execute_async_v3`` on a private
  non-blocking CUDA stream; one execution context, forwards serialized by a lock.
- Dtypes: the input batch is cast to the engine's input dtype (an fp16-input engine gets float16 data); outputs are
  returned as float32 whatever the engine's output dtype.
- Engines built here are cached under :class:`~workflows_yolov5_seg.backends.engine_cache.EngineKey`; a cached
  engine that no longer deserializes is deleted and rebuilt. A package's ``engine.plan`` is untrusted: engines with
  host code are refused unless ``allow_engine_host_code=True``.

``tensorrt`` and ``cuda-python`` are imported lazily, so this module imports (and its pure parts are tested) on a
machine without a GPU.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from workflows_yolov5_seg import settings
from workflows_yolov5_seg.backends.base import Backend, BackendInfo, parse_device
from workflows_yolov5_seg.backends.engine_cache import (
    BatchProfile,
    EngineCache,
    EngineKey,
    onnx_content_sha256,
    resolve_precision,
    select_batch_profile,
)
from workflows_yolov5_seg.errors import (
    BackendUnavailableError,
    ClassNamesMismatchError,
    InvalidModelFileError,
    InvalidParameterError,
    MissingDependencyError,
    NotYOLOv5SegModelError,
)
from workflows_yolov5_seg.layouts import OutputLayout
from workflows_yolov5_seg.model_package import ModelPackage
from workflows_yolov5_seg.network import IOSignature, check_io_signature

logger = logging.getLogger(__name__)

TRT_INSTALL_HINT = (
    "TensorRT cannot be installed from PyPI alone (its PyPI packages download the libraries from NVIDIA's index): "
    "pip install --extra-index-url https://pypi.nvidia.com tensorrt-cu12 cuda-python, or use an NVIDIA TensorRT "
    "container (nvcr.io/nvidia/tensorrt). See docs/gpu.md."
)
SUPPORTED_IO_DTYPES = (np.dtype(np.float32), np.dtype(np.float16))
PROGRESS_LOG_INTERVAL_S = 10.0


class CorruptedEngineError(InvalidModelFileError):
    """TensorRT could not deserialize an engine: corrupted, or built for another GPU / TensorRT version, or it
    holds host code that is not allowed."""


# --------------------------------------------------------------------------------------------------------------
# Lazy imports


def import_tensorrt() -> Any:
    """Imports ``tensorrt``, or raises :class:`MissingDependencyError` with the install route that works."""
    try:
        import tensorrt
    except ImportError as error:
        missing = MissingDependencyError("tensorrt", "trt", "The TensorRT backend")
        message = f"{missing.args[0]}. {TRT_INSTALL_HINT}"
        missing.args = (message,)
        missing.msg = message  # ImportError's str() reads msg
        raise missing from error
    return tensorrt


def import_cudart() -> Any:
    """Imports the CUDA runtime bindings of ``cuda-python`` (``cuda.bindings.runtime``, or ``cuda.cudart`` before
    cuda-python 12.6)."""
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart  # type: ignore[no-redef]
        except ImportError as error:
            raise MissingDependencyError("cuda-python", "trt", "The TensorRT backend's GPU memory") from error
    return cudart


# --------------------------------------------------------------------------------------------------------------
# CUDA runtime


@dataclass(frozen=True)
class GpuInfo:
    """A CUDA device.

    Attributes:
        index: CUDA device ordinal.
        name: e.g. ``NVIDIA A10G``.
        compute_capability: e.g. ``(8, 6)``.
    """

    index: int
    name: str
    compute_capability: tuple[int, int]


class CudaRuntime:
    """The few CUDA runtime calls the backend needs, with errors turned into exceptions.

    Streams are passed around as integer handles (what ``execute_async_v3`` takes).
    """

    def __init__(self, cudart: Any | None = None) -> None:
        self._rt = cudart or import_cudart()

    def _call(self, what: str, result: tuple) -> Any:
        error, *values = result
        if int(error) != 0:
            name = self._error_name(error)
            raise BackendUnavailableError(
                f"CUDA {what} failed: {name}. Check the NVIDIA driver (nvidia-smi), that the device exists "
                "(CUDA_VISIBLE_DEVICES) and that it has free memory."
            )
        if not values:
            return None
        return values[0] if len(values) == 1 else tuple(values)

    def _error_name(self, error: Any) -> str:
        try:
            status, name = self._rt.cudaGetErrorName(error)
            return name.decode() if isinstance(name, bytes) else str(name)
        except Exception:  # noqa: BLE001 - best effort for a message
            return str(error)

    def device_count(self) -> int:
        return int(self._call("cudaGetDeviceCount", self._rt.cudaGetDeviceCount()))

    def set_device(self, index: int) -> None:
        self._call(f"cudaSetDevice({index})", self._rt.cudaSetDevice(index))

    def device_info(self, index: int) -> GpuInfo:
        properties = self._call(f"cudaGetDeviceProperties({index})", self._rt.cudaGetDeviceProperties(index))
        name = properties.name
        if isinstance(name, bytes):
            name = name.split(b"\0", 1)[0].decode(errors="replace")
        return GpuInfo(index, str(name).strip(), (int(properties.major), int(properties.minor)))

    def malloc(self, nbytes: int) -> int:
        return int(self._call(f"cudaMalloc({nbytes})", self._rt.cudaMalloc(max(nbytes, 1))))

    def free(self, pointer: int) -> None:
        self._call("cudaFree", self._rt.cudaFree(pointer))

    def malloc_host(self, nbytes: int) -> int:
        return int(self._call(f"cudaMallocHost({nbytes})", self._rt.cudaMallocHost(max(nbytes, 1))))

    def free_host(self, pointer: int) -> None:
        self._call("cudaFreeHost", self._rt.cudaFreeHost(pointer))

    def memcpy_htod_async(self, device: int, host: int, nbytes: int, stream: int) -> None:
        kind = self._rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._call("cudaMemcpyAsync(host to device)", self._rt.cudaMemcpyAsync(device, host, nbytes, kind, stream))

    def memcpy_dtoh_async(self, host: int, device: int, nbytes: int, stream: int) -> None:
        kind = self._rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._call("cudaMemcpyAsync(device to host)", self._rt.cudaMemcpyAsync(host, device, nbytes, kind, stream))

    def stream_create(self) -> int:
        stream = self._call(
            "cudaStreamCreateWithFlags", self._rt.cudaStreamCreateWithFlags(self._rt.cudaStreamNonBlocking)
        )
        return int(stream)

    def stream_synchronize(self, stream: int) -> None:
        self._call("cudaStreamSynchronize", self._rt.cudaStreamSynchronize(stream))

    def stream_destroy(self, stream: int) -> None:
        self._call("cudaStreamDestroy", self._rt.cudaStreamDestroy(stream))


def probe_cuda_device(index: int = 0, cuda: CudaRuntime | None = None) -> tuple[GpuInfo | None, str]:
    """Whether CUDA device ``index`` is visible through cuda-python; never raises.

    Returns:
        ``(gpu, reason)``: the device, or ``None`` and why not.
    """
    try:
        runtime = cuda or CudaRuntime()
        count = runtime.device_count()
        if count <= index:
            return None, f"CUDA device {index} requested but {count} visible"
        return runtime.device_info(index), ""
    except (MissingDependencyError, BackendUnavailableError) as error:
        return None, str(error)
    except Exception as error:  # noqa: BLE001 - a broken driver install raises anything
        return None, f"{type(error).__name__}: {error}"


def probe_tensorrt() -> tuple[bool, str]:
    """Whether ``tensorrt`` imports; never raises. Returns ``(ok, reason)``."""
    try:
        import_tensorrt()
    except Exception as error:  # noqa: BLE001 - missing libraries raise OSError and others
        return False, str(error).split(". ")[0]
    return True, ""


def parse_cuda_device(device: str | None) -> int:
    """The index of a ``cuda[:N]`` device (:func:`~workflows_yolov5_seg.backends.base.parse_device`; ``None``: 0).

    Raises:
        InvalidParameterError: not a device, or not a CUDA one (``cpu``, ``tensorrt[:N]``).
    """
    if device is None:
        return 0
    kind, index = parse_device(device)
    if kind != "cuda":
        raise InvalidParameterError(
            f"The TensorRT backend runs on a CUDA device ('cuda' or 'cuda:N'), not {device!r}; use backend='onnx' for "
            "the CPU or ONNX Runtime's TensorRT provider."
        )
    return index


# --------------------------------------------------------------------------------------------------------------
# TensorRT logger and progress monitor

_TRT_LOGGERS: dict[int, tuple[Any, Any]] = {}
_TRT_LOGGERS_LOCK = threading.Lock()


def get_trt_logger(trt: Any) -> Any:
    """One ``trt.ILogger`` per process (TensorRT expects a single logger), forwarding to Python logging and
    keeping the last errors for exception messages (``.recent_errors()``)."""
    with _TRT_LOGGERS_LOCK:
        existing = _TRT_LOGGERS.get(id(trt))
        if existing is not None and existing[0] is trt:
            return existing[1]
        severity = trt.ILogger.Severity
        levels = {
            severity.INTERNAL_ERROR: logging.ERROR,
            severity.ERROR: logging.ERROR,
            severity.WARNING: logging.WARNING,
            severity.INFO: logging.DEBUG,
            severity.VERBOSE: logging.DEBUG,
        }

        class _Logger(trt.ILogger):  # type: ignore[misc, name-defined]
            def __init__(self) -> None:
                trt.ILogger.__init__(self)
                self._errors: collections.deque[str] = collections.deque(maxlen=20)

            def log(self, level: Any, message: str) -> None:
                python_level = levels.get(level, logging.DEBUG)
                if python_level >= logging.ERROR:
                    self._errors.append(str(message))
                logger.log(python_level, "TensorRT: %s", message)

            def recent_errors(self, clear: bool = True) -> list[str]:
                errors = list(self._errors)
                if clear:
                    self._errors.clear()
                return errors

        created = _Logger()
        _TRT_LOGGERS[id(trt)] = (trt, created)
        return created


def make_progress_monitor(trt: Any, label: str) -> Any | None:
    """A ``trt.IProgressMonitor`` that logs the build's top-level phases (at most every 10 s per phase), or
    ``None`` where this TensorRT has none."""
    if not hasattr(trt, "IProgressMonitor"):
        return None

    class _Monitor(trt.IProgressMonitor):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)
            self._lock = threading.Lock()
            self._phases: dict[str, tuple[str | None, int, float, float]] = {}

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            try:
                now = time.monotonic()
                with self._lock:
                    self._phases[phase_name] = (parent_phase, num_steps, now, now)
                level = logging.INFO if parent_phase is None else logging.DEBUG
                logger.log(level, "TensorRT build of %s: %s started (%d steps)", label, phase_name, num_steps)
            except Exception:  # noqa: BLE001 - never let logging break a build
                pass

        def step_complete(self, phase_name: str, step: int) -> bool:
            try:
                now = time.monotonic()
                with self._lock:
                    phase = self._phases.get(phase_name)
                    if phase is None or phase[0] is not None or now - phase[3] < PROGRESS_LOG_INTERVAL_S:
                        return True
                    self._phases[phase_name] = (phase[0], phase[1], phase[2], now)
                logger.info(
                    "TensorRT build of %s: %s step %d/%d (%.0f s)",
                    label,
                    phase_name,
                    step + 1,
                    phase[1],
                    now - phase[2],
                )
            except Exception:  # noqa: BLE001
                pass
            return True

        def phase_finish(self, phase_name: str) -> None:
            try:
                with self._lock:
                    phase = self._phases.pop(phase_name, None)
                if phase is not None:
                    level = logging.INFO if phase[0] is None else logging.DEBUG
                    logger.log(
                        level, "TensorRT build of %s: %s done in %.1f s", label, phase_name, time.monotonic() - phase[2]
                    )
            except Exception:  # noqa: BLE001
                pass

    return _Monitor()


# --------------------------------------------------------------------------------------------------------------
# Building


def _dims(shape: Any) -> tuple:
    return tuple(int(d) for d in shape)


def _nptype(trt: Any, dtype: Any) -> np.dtype:
    try:
        return np.dtype(trt.nptype(dtype))
    except TypeError as error:
        raise InvalidModelFileError(f"TensorRT tensor type {dtype} has no numpy equivalent.") from error


@dataclass
class ParsedOnnx:
    """An ONNX parsed into a TensorRT network, kept to build from when the cache misses."""

    builder: Any
    network: Any
    parser: Any
    input_name: str
    input_dtype: np.dtype
    signature: IOSignature


def parse_onnx(trt: Any, onnx_path: Path, signature: IOSignature) -> ParsedOnnx:
    """Parses an ONNX with TensorRT's parser, to build an engine from.

    Args:
        trt: the tensorrt module.
        onnx_path: the ONNX file.
        signature: its YOLOv5-seg signature, checked by the model package layer.

    Raises:
        InvalidModelFileError: the parser refused the file.
        NotYOLOv5SegModelError: the input is not float32 / float16.
    """
    trt_logger = get_trt_logger(trt)
    builder = trt.Builder(trt_logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, trt_logger)
    trt_logger.recent_errors()
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)] or trt_logger.recent_errors()
        raise InvalidModelFileError(
            f"TensorRT could not parse '{onnx_path}': {'; '.join(errors)[:600]}. Give a YOLO segmentation ONNX "
            "export (opset 12-17) and check that the file is complete."
        )
    network_input = network.get_input(0)
    input_dtype = _nptype(trt, network_input.dtype)
    if input_dtype not in SUPPORTED_IO_DTYPES:
        raise NotYOLOv5SegModelError(
            f"'{onnx_path}' takes {input_dtype} input; YOLO segmentation exports take float32 or float16."
        )
    return ParsedOnnx(builder, network, parser, network_input.name, input_dtype, signature)


def fp16_builder_flag_available(trt: Any) -> bool:
    """TensorRT 10 builds fp16 from an fp32 network with ``BuilderFlag.FP16``; TensorRT 11 removed the flag."""
    return hasattr(trt.BuilderFlag, "FP16")


def build_serialized_engine(
    trt: Any,
    parsed: ParsedOnnx,
    precision: str,
    batch: BatchProfile,
    label: str,
    workspace_bytes: int | None = None,
) -> bytes:
    """Builds an engine from a parsed network; logs start, progress and duration.

    Args:
        trt: the tensorrt module.
        parsed: from :func:`parse_onnx`.
        precision: ``fp16`` or ``fp32`` (resolved).
        batch: batch profile; used when the network's batch is dynamic.
        label: what is built, for the log.
        workspace_bytes: cap on TensorRT's scratch memory; ``None`` lets TensorRT use what it needs.

    Raises:
        BackendUnavailableError: TensorRT could not build (its errors are in the message).
    """
    trt_logger = get_trt_logger(trt)
    config = parsed.builder.create_builder_config()
    if workspace_bytes:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_bytes))
    if precision == "fp16" and fp16_builder_flag_available(trt):
        config.set_flag(trt.BuilderFlag.FP16)
    input_tensor = parsed.network.get_input(0)
    shape = _dims(input_tensor.shape)
    height, width = parsed.signature.input_hw
    if any(d < 0 for d in shape):
        profile = parsed.builder.create_optimization_profile()
        profile.set_shape(
            parsed.input_name,
            (batch.min, 3, height, width),
            (batch.opt, 3, height, width),
            (batch.max, 3, height, width),
        )
        config.add_optimization_profile(profile)
    monitor = make_progress_monitor(trt, label)
    if monitor is not None:
        try:
            config.progress_monitor = monitor
        except (AttributeError, TypeError):  # a TensorRT without build progress reporting
            monitor = None
    logger.info(
        "Building a TensorRT %s engine for %s (batch %s, %dx%d, TensorRT %s); this can take several minutes and "
        "happens once per GPU model and TensorRT version (pre-build with: workflows-yolov5-seg build-engine "
        "--model MODEL).",
        precision,
        label,
        batch,
        width,
        height,
        trt.__version__,
    )
    trt_logger.recent_errors()
    started = time.monotonic()
    serialized = parsed.builder.build_serialized_network(parsed.network, config)
    duration = time.monotonic() - started
    if serialized is None:
        errors = trt_logger.recent_errors()
        raise BackendUnavailableError(
            f"TensorRT could not build an engine for {label} after {duration:.1f} s: "
            f"{'; '.join(errors)[:800] or 'no error logged'}. "
            "Try precision='fp32', a smaller batch profile, or backend='onnx'."
        )
    engine = bytes(memoryview(serialized))
    logger.info("Built the TensorRT engine for %s in %.1f s (%.1f MiB).", label, duration, len(engine) / 2**20)
    return engine


def engine_key_for(
    trt: Any, parsed: ParsedOnnx, onnx_path: Path, gpu: GpuInfo, precision: str, batch: BatchProfile | None
) -> EngineKey:
    """The cache key of the engine for this ONNX, GPU, TensorRT, precision, batch profile and input size."""
    fp16_possible = fp16_builder_flag_available(trt) or parsed.input_dtype == np.float16
    return EngineKey(
        onnx_sha256=onnx_content_sha256(onnx_path),
        gpu_name=gpu.name,
        compute_capability=gpu.compute_capability,
        trt_version=str(trt.__version__),
        precision=resolve_precision(precision, gpu.compute_capability, fp16_possible),
        batch=select_batch_profile(parsed.signature.batch_size, batch),
        input_hw=parsed.signature.input_hw,
    )


def get_or_build_engine(
    trt: Any,
    onnx_path: Path,
    signature: IOSignature,
    gpu: GpuInfo,
    precision: str = "auto",
    batch: BatchProfile | None = None,
    cache: EngineCache | None = None,
    workspace_bytes: int | None = None,
    rebuild: bool = False,
) -> tuple[EngineKey, bytes, bool]:
    """The serialized engine for an ONNX on a GPU, from the cache or built (then cached).

    The cache is looked up first, without writing anything, so a read-only cache folder serves its engines. Only a
    build takes the file lock, so that concurrent callers (threads or processes) wait for one build; the cache is
    looked up again once the lock is held. ``signature`` is the ONNX's, from its model package.

    Returns:
        ``(key, engine, from_cache)``.

    Raises:
        CacheNotWritableError: the engine is not cached and the cache folder cannot be written (or read).
    """
    cache = cache or EngineCache()
    parsed = parse_onnx(trt, onnx_path, signature)
    key = engine_key_for(trt, parsed, onnx_path, gpu, precision, batch)

    def cached() -> bytes | None:
        engine = None if rebuild else cache.load(key)
        if engine is not None:
            logger.info("Using the cached TensorRT engine %s", cache.engine_path(key))
        return engine

    engine = cached()
    if engine is not None:
        return key, engine, True
    with cache.build_lock(key):
        engine = cached()  # built by another caller while this one waited for the lock
        if engine is not None:
            return key, engine, True
        engine = build_serialized_engine(trt, parsed, key.precision, key.batch, f"'{onnx_path.name}'", workspace_bytes)
        path = cache.store(key, engine)
        logger.info("Cached the TensorRT engine at %s", path)
        return key, engine, False


# --------------------------------------------------------------------------------------------------------------
# Running


class _PinnedBuffer:
    """A pinned host buffer and a device buffer of the same size."""

    def __init__(self, cuda: CudaRuntime, nbytes: int) -> None:
        self.nbytes = nbytes
        self.host = cuda.malloc_host(nbytes)
        try:
            self.device = cuda.malloc(nbytes)
        except BaseException:
            cuda.free_host(self.host)
            raise

    def host_array(self, dtype: np.dtype, shape: Sequence[int]) -> np.ndarray:
        count = int(np.prod(shape)) if len(shape) else 1
        raw = (ctypes.c_uint8 * (count * dtype.itemsize)).from_address(self.host)
        return np.frombuffer(raw, dtype=dtype, count=count).reshape(shape)

    def release(self, cuda: CudaRuntime) -> None:
        with contextlib.suppress(Exception):
            cuda.free(self.device)
        with contextlib.suppress(Exception):
            cuda.free_host(self.host)


class TensorRTBackend(Backend):
    """Runs a deserialized TensorRT engine; see the module docstring. Thread-safe (forwards are serialized)."""

    def __init__(
        self,
        engine: bytes,
        source: str,
        device_id: int = 0,
        allow_host_code: bool = False,
        default_input_hw: tuple[int, int] | None = None,
        expected_batch: tuple[int, int, int] | None = None,
        precision: str | None = None,
        num_classes: int | None = None,
        layout: OutputLayout | None = None,
        architecture: str | None = None,
        fused_nms: bool = False,
        trt: Any | None = None,
        cuda: CudaRuntime | None = None,
    ) -> None:
        """Deserializes an engine and allocates its buffers for the largest batch.

        Args:
            engine: serialized engine bytes.
            source: where it came from (path), for messages.
            device_id: CUDA device ordinal.
            allow_host_code: let engines carrying host code (lean-runtime / version-compatible engines) load.
            default_input_hw: input size when the engine's height and width are dynamic.
            expected_batch: ``(min, opt, max)`` from a package's trt_config.json, checked against the engine.
            precision: the precision the engine was built with, if known, for reporting.
            num_classes: the classes the model package names; an engine predicting another number is refused.
            layout: the ``output0`` layout of the ONNX the engine was built from, if known; else it is recognised
                from the engine's shapes and ``architecture``.
            architecture: the architecture the model package names, if any.
            fused_nms: the model package says its graph runs NMS (``post_processing.fused``).
            trt: the tensorrt module (tests pass a stand-in).
            cuda: the CUDA runtime wrapper (tests pass a stand-in).

        Raises:
            CorruptedEngineError: TensorRT returned no engine.
            NotYOLOv5SegModelError: the engine's tensors are not YOLOv5-seg's.
            ClassNamesMismatchError: the engine predicts another number of classes than ``num_classes``.
        """
        self._trt = trt or import_tensorrt()
        self._cuda = cuda or CudaRuntime()
        self._device_id = device_id
        self._lock = threading.Lock()
        self._buffers: dict[str, _PinnedBuffer] = {}
        self._stream: int | None = None
        self._closed = False
        self._cuda.set_device(device_id)
        trt_logger = get_trt_logger(self._trt)
        self._runtime = self._trt.Runtime(trt_logger)
        self._runtime.engine_host_code_allowed = bool(allow_host_code)
        trt_logger.recent_errors()
        self._engine = self._runtime.deserialize_cuda_engine(engine)
        if self._engine is None:
            errors = trt_logger.recent_errors()
            host_hint = (
                ""
                if allow_host_code
                else " If it is a lean-runtime / version-compatible engine from a source you "
                f"trust, pass allow_engine_host_code=True or set {settings.ALLOW_ENGINE_HOST_CODE.name}=1."
            )
            raise CorruptedEngineError(
                f"TensorRT {self._trt.__version__} could not deserialize the engine '{source}': "
                f"{'; '.join(errors)[:600] or 'no error logged'}. Engines only load on the GPU model and TensorRT "
                f"version that built them; rebuild it from the ONNX.{host_hint}"
            )
        try:
            self._setup(
                source, default_input_hw, expected_batch, precision, num_classes, layout, architecture, fused_nms
            )
        except BaseException:
            self.close()
            raise

    def _setup(
        self,
        source: str,
        default_input_hw: tuple[int, int] | None,
        expected_batch: tuple[int, int, int] | None,
        precision: str | None,
        num_classes: int | None,
        layout: OutputLayout | None,
        architecture: str | None,
        fused_nms: bool,
    ) -> None:
        trt, engine = self._trt, self._engine
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        input_shapes = [_dims(engine.get_tensor_shape(n)) for n in inputs]
        if len(inputs) == 1 and len(input_shapes[0]) == 4 and (input_shapes[0][2] < 0 or input_shapes[0][3] < 0):
            _, opt_shape, _ = (_dims(s) for s in engine.get_tensor_profile_shape(inputs[0], 0))
            default_input_hw = (opt_shape[2], opt_shape[3])
        signature = check_io_signature(
            source,
            list(zip(inputs, input_shapes, strict=True)),
            [(name, _dims(engine.get_tensor_shape(name))) for name in outputs],
            default_input_hw=default_input_hw,
            architecture=architecture,
            fused_nms=fused_nms,
            layout=layout,
        )
        if None not in (signature.num_classes, num_classes) and signature.num_classes != num_classes:
            raise ClassNamesMismatchError(
                f"'{source}' predicts {signature.num_classes} classes but the model package names {num_classes}; "
                "make class_names.txt list the engine's classes in order, or rebuild the engine from the package's "
                "ONNX."
            )
        self._input_name = signature.input_name
        self._output_names = (signature.instances_name, signature.protos_name)
        self._input_dtype = _nptype(trt, engine.get_tensor_dtype(self._input_name))
        self._output_dtypes = {n: _nptype(trt, engine.get_tensor_dtype(n)) for n in self._output_names}
        for name, dtype in [(self._input_name, self._input_dtype), *self._output_dtypes.items()]:
            if dtype not in SUPPORTED_IO_DTYPES:
                raise NotYOLOv5SegModelError(
                    f"'{source}' tensor '{name}' is {dtype}; YOLO segmentation exports use float32/float16."
                )
        # Any dynamic input dimension (batch, or height / width fixed by the profile) needs set_input_shape.
        self._dynamic_input = any(d < 0 for d in input_shapes[0])
        if input_shapes[0][0] < 0:
            low, _, high = (_dims(s) for s in engine.get_tensor_profile_shape(self._input_name, 0))
            min_batch, max_batch = low[0], high[0]
        else:
            min_batch = max_batch = input_shapes[0][0]
        if expected_batch is not None and (expected_batch[0], expected_batch[2]) != (min_batch, max_batch):
            logger.warning(
                "'%s': trt_config.json gives batch sizes %s but the engine takes %d..%d; using the engine's.",
                source,
                expected_batch,
                min_batch,
                max_batch,
            )
        height, width = signature.input_hw
        self._input_shape_max = (max_batch, 3, height, width)
        self._context = engine.create_execution_context()
        if self._context is None:
            raise BackendUnavailableError(
                f"TensorRT could not create an execution context for '{source}' (GPU memory?)."
            )
        if self._dynamic_input and not self._context.set_input_shape(self._input_name, self._input_shape_max):
            raise BackendUnavailableError(f"'{source}' refused input shape {self._input_shape_max}.")
        self._stream = self._cuda.stream_create()
        sizes = {self._input_name: (self._input_shape_max, self._input_dtype)}
        for name in self._output_names:
            shape = _dims(self._context.get_tensor_shape(name))
            if any(d < 0 for d in shape):
                raise NotYOLOv5SegModelError(f"'{source}' output '{name}' has a data-dependent shape {shape}.")
            sizes[name] = (shape, self._output_dtypes[name])
        for name, (shape, dtype) in sizes.items():
            buffer = _PinnedBuffer(self._cuda, int(np.prod(shape)) * dtype.itemsize)
            self._buffers[name] = buffer
            if not self._context.set_tensor_address(name, buffer.device):
                raise BackendUnavailableError(f"TensorRT refused the address of tensor '{name}'.")
        self.info = BackendInfo(
            name="trt",
            device=f"cuda:{self._device_id}",
            input_hw=signature.input_hw,
            input_dtype=self._input_dtype,
            min_batch_size=min_batch,
            max_batch_size=max_batch,
            providers=(f"TensorRT {self._trt.__version__}",),
            precision=precision,
            layout=signature.layout,
        )

    @property
    def input_dtype(self) -> np.dtype:
        return self._input_dtype

    def infer(self, batch: np.ndarray) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """Runs the engine on ``(B, 3, H, W)`` with ``min_batch_size <= B <= max_batch_size``; any float input is cast
        to the engine's input dtype."""
        size = int(batch.shape[0]) if batch.ndim == 4 else -1
        if (
            batch.shape[1:] != self._input_shape_max[1:]
            or not self.info.min_batch_size <= size <= self.info.max_batch_size
        ):
            raise InvalidParameterError(
                f"The TensorRT engine takes ({self.info.min_batch_size}..{self.info.max_batch_size}, "
                f"{', '.join(map(str, self._input_shape_max[1:]))}) input, got {tuple(batch.shape)}."
            )
        with self._lock:
            if self._closed:
                raise self.closed_error()
            cuda, context, stream = self._cuda, self._context, self._stream
            cuda.set_device(self._device_id)
            shape = (size, *self._input_shape_max[1:])
            staging = self._buffers[self._input_name]
            np.copyto(staging.host_array(self._input_dtype, shape), batch, casting="unsafe")
            nbytes = int(np.prod(shape)) * self._input_dtype.itemsize
            cuda.memcpy_htod_async(staging.device, staging.host, nbytes, stream)
            if self._dynamic_input and not context.set_input_shape(self._input_name, shape):
                raise BackendUnavailableError(f"TensorRT refused input shape {shape}.")
            output_shapes = [_dims(context.get_tensor_shape(name)) for name in self._output_names]
            trt_logger = get_trt_logger(self._trt)
            if not context.execute_async_v3(stream):
                raise BackendUnavailableError(
                    f"TensorRT execution failed: {'; '.join(trt_logger.recent_errors())[:600] or 'no error logged'}."
                )
            for name, out_shape in zip(self._output_names, output_shapes, strict=True):
                buffer = self._buffers[name]
                out_bytes = int(np.prod(out_shape)) * self._output_dtypes[name].itemsize
                cuda.memcpy_dtoh_async(buffer.host, buffer.device, out_bytes, stream)
            cuda.stream_synchronize(stream)
            # Copies: the pinned buffers are reused by the next forward.
            instances, protos = (
                np.array(self._buffers[name].host_array(self._output_dtypes[name], out_shape), dtype=np.float32)
                for name, out_shape in zip(self._output_names, output_shapes, strict=True)
            )
        return instances, protos

    def close(self) -> None:
        """Frees the GPU and pinned memory; later ``infer`` calls raise."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._stream is not None:
                with contextlib.suppress(Exception):
                    self._cuda.stream_synchronize(self._stream)
            self._context = None
            for buffer in self._buffers.values():
                buffer.release(self._cuda)
            self._buffers.clear()
            if self._stream is not None:
                with contextlib.suppress(Exception):
                    self._cuda.stream_destroy(self._stream)
                self._stream = None
            self._engine = None
            self._runtime = None

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()


def load_tensorrt_backend(
    package: ModelPackage,
    device: str | None = None,
    precision: str = "auto",
    batch: BatchProfile | str | Sequence[int] | None = None,
    cache_dir: Path | str | None = None,
    allow_engine_host_code: bool | None = None,
    use_package_engine: bool = True,
    workspace_bytes: int | None = None,
    rebuild_engine: bool = False,
    trt: Any | None = None,
    cuda: CudaRuntime | None = None,
) -> TensorRTBackend:
    """The TensorRT backend for a model package.

    A package's ``engine.plan`` is used when present (``use_package_engine``); if it does not load here (another GPU
    or TensorRT version) and the package has ONNX weights, an engine is built from them instead. Otherwise the engine
    is taken from the cache or built from the ONNX and cached.

    Args:
        package: the resolved model.
        device: ``cuda`` / ``cuda:N`` (default ``cuda:0``).
        precision: ``auto`` (fp16 where the GPU has fast fp16), ``fp16`` or ``fp32``.
        batch: batch profile for a dynamic-batch ONNX, e.g. ``"1,4,8"`` (default 1,4,8); a static ONNX keeps its batch.
        cache_dir: engine cache folder (default: the cache root, :func:`workflows_yolov5_seg.settings.cache_root`).
        allow_engine_host_code: let a package engine that carries host code load (only for trusted packages);
            ``None``: the ``ALLOW_ENGINE_HOST_CODE`` setting.
        use_package_engine: use the package's ``engine.plan`` when there is one.
        workspace_bytes: cap on TensorRT's build scratch memory.
        rebuild_engine: ignore a cached engine and build again.
        trt: the tensorrt module (tests).
        cuda: the CUDA runtime wrapper (tests).
    """
    device_id = parse_cuda_device(device)
    trt = trt or import_tensorrt()
    cuda = cuda or CudaRuntime()
    count = cuda.device_count()
    if count <= device_id:
        raise BackendUnavailableError(
            f"CUDA device {device_id} was requested but {count} CUDA device(s) are visible; check nvidia-smi and "
            "CUDA_VISIBLE_DEVICES."
        )
    gpu = cuda.device_info(device_id)
    profile = None if batch is None else BatchProfile.parse(batch)  # type: ignore[arg-type]
    if package.engine_path is not None and use_package_engine:
        try:
            backend = TensorRTBackend(
                package.engine_path.read_bytes(),
                str(package.engine_path),
                device_id=device_id,
                allow_host_code=(
                    settings.ALLOW_ENGINE_HOST_CODE.get() if allow_engine_host_code is None else allow_engine_host_code
                ),
                default_input_hw=package.signature.input_hw if package.signature else package.input_hw,
                expected_batch=package.trt_batch_sizes,
                num_classes=len(package.class_names),
                layout=package.signature.layout if package.signature else None,
                architecture=package.architecture,
                fused_nms=package.fused_nms,
                trt=trt,
                cuda=cuda,
            )
            logger.info(
                "'%s' runs the package's TensorRT engine on %s (%s).", package.model_id, gpu.name, backend.info.device
            )
            return backend
        except CorruptedEngineError as error:
            if package.weights_path is None:
                raise
            logger.warning(
                "'%s': the package's engine.plan does not load on this GPU / TensorRT (%s); building an engine from "
                "the package's ONNX instead.",
                package.model_id,
                str(error)[:300],
            )
    if package.weights_path is None or package.signature is None:
        raise BackendUnavailableError(f"'{package.model_id}' has no ONNX weights to build a TensorRT engine from.")
    weights, signature = package.weights_path, package.signature
    cache = EngineCache(cache_dir)
    cuda.set_device(device_id)
    key, engine, from_cache = get_or_build_engine(
        trt, weights, signature, gpu, precision, profile, cache, workspace_bytes, rebuild_engine
    )
    source = str(cache.engine_path(key))

    def run(engine: bytes) -> TensorRTBackend:
        return TensorRTBackend(
            engine,
            source,
            device_id,
            False,
            signature.input_hw,
            None,
            key.precision,
            layout=signature.layout,
            trt=trt,
            cuda=cuda,
        )

    try:
        backend = run(engine)
    except CorruptedEngineError as error:
        if not from_cache:
            raise
        logger.warning("The cached TensorRT engine %s does not load (%s); deleting and rebuilding it.", source, error)
        cache.remove(key)
        key, engine, _ = get_or_build_engine(
            trt, weights, signature, gpu, precision, profile, cache, workspace_bytes, True
        )
        backend = run(engine)
    logger.info(
        "'%s' runs on TensorRT %s, %s, %s, batch %d..%d, on %s (%s).",
        package.model_id,
        trt.__version__,
        key.precision,
        "x".join(map(str, key.input_hw)),
        backend.info.min_batch_size,
        backend.info.max_batch_size,
        gpu.name,
        backend.info.device,
    )
    return backend


@dataclass(frozen=True)
class PrebuiltEngine:
    """What :func:`prebuild_engine` built or found.

    Attributes:
        path: the cached engine file.
        key: what the engine is valid for.
        from_cache: it was already cached (nothing was built).
        seconds: time spent.
        gpu: the GPU it was built for.
    """

    path: Path
    key: EngineKey
    from_cache: bool
    seconds: float
    gpu: GpuInfo


def prebuild_engine(
    model: str,
    precision: str = "auto",
    batch: str | None = None,
    device: str = "cuda:0",
    cache_dir: Path | str | None = None,
    workspace_bytes: int | None = None,
    force: bool = False,
    trt: Any | None = None,
    cuda: CudaRuntime | None = None,
) -> PrebuiltEngine:
    """Builds (or finds) the cached engine ``backend='trt'`` would build for ``model`` at first use.

    Run it on the machine (GPU model and TensorRT version) that will serve, with the same cache folder.

    Args:
        model: an ``.onnx`` file, a package folder or a Roboflow model id.
        precision: ``auto``, ``fp16`` or ``fp32``.
        batch: ``'MIN,OPT,MAX'`` or ``'N'``; ``None`` for the default profile (a static-batch ONNX keeps its batch).
        device: the CUDA device.
        cache_dir: the engine cache folder (default: the cache root).
        workspace_bytes: cap on TensorRT's build scratch memory.
        force: rebuild even if cached.
        trt: the tensorrt module (tests).
        cuda: the CUDA runtime wrapper (tests).

    Raises:
        YOLOv5SegError: the model cannot be resolved, the GPU or TensorRT is unusable, the build failed.
    """
    from workflows_yolov5_seg.model_source import resolve_model

    package = resolve_model(model)
    if package.weights_path is None or package.signature is None:
        raise BackendUnavailableError(f"'{package.model_id}' has no ONNX weights to build an engine from.")
    device_id = parse_cuda_device(device)
    trt = trt or import_tensorrt()
    cuda = cuda or CudaRuntime()
    if cuda.device_count() <= device_id:
        raise BackendUnavailableError(f"CUDA device {device_id} is not visible; check nvidia-smi.")
    gpu = cuda.device_info(device_id)
    cuda.set_device(device_id)
    cache = EngineCache(cache_dir)
    started = time.monotonic()
    key, _, from_cache = get_or_build_engine(
        trt,
        package.weights_path,
        package.signature,
        gpu,
        precision,
        None if batch is None else BatchProfile.parse(batch),
        cache,
        workspace_bytes,
        force,
    )
    return PrebuiltEngine(cache.engine_path(key), key, from_cache, time.monotonic() - started, gpu)
