"""Stand-ins for ``tensorrt`` and the CUDA runtime, for the TensorRT backend's tests on machines without a GPU.

They implement only the TensorRT 10 Python API the backend calls, with the same names and return conventions
(``None`` from a failed build or deserialization, ``bool`` from ``set_input_shape`` / ``execute_async_v3``), and
they *run* the engine: a fake engine executes its ONNX with ONNX Runtime on the CPU, reading its input from and
writing its outputs to the "device" addresses bound with ``set_tensor_address``. "Device" memory is host memory
here; every copy is bounds-checked against the allocations, so a wrong size or address fails the test.

What this cannot check: that the real TensorRT and CUDA behave as these stand-ins do. The GPU tests
(``@pytest.mark.gpu``) run the same paths on the real libraries.
"""

from __future__ import annotations

import ctypes
import enum
import json
import threading
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest

from workflows_yolov5_seg.backends import tensorrt as trt_backend
from workflows_yolov5_seg.backends.tensorrt import GpuInfo

MAGIC = b"FAKETRT1"


class Severity(enum.IntEnum):
    INTERNAL_ERROR = 0
    ERROR = 1
    WARNING = 2
    INFO = 3
    VERBOSE = 4


class DataType(enum.Enum):
    FLOAT = "float32"
    HALF = "float16"
    INT32 = "int32"
    INT64 = "int64"


class TensorIOMode(enum.Enum):
    INPUT = 1
    OUTPUT = 2


_ONNX_TYPES = {
    onnx.TensorProto.FLOAT: DataType.FLOAT,
    onnx.TensorProto.FLOAT16: DataType.HALF,
    onnx.TensorProto.INT32: DataType.INT32,
    onnx.TensorProto.INT64: DataType.INT64,
}


class FakeTensor:
    def __init__(self, name: str, shape: tuple[int, ...], dtype: DataType) -> None:
        self.name, self.shape, self.dtype = name, shape, dtype


class FakeNetwork:
    def __init__(self) -> None:
        self.path: str | None = None
        self.inputs: list[FakeTensor] = []
        self.outputs: list[FakeTensor] = []

    def get_input(self, index: int) -> FakeTensor:
        return self.inputs[index]


def _tensors(values: list) -> list[FakeTensor]:
    tensors = []
    for value in values:
        tensor_type = value.type.tensor_type
        shape = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in tensor_type.shape.dim)
        tensors.append(FakeTensor(value.name, shape, _ONNX_TYPES[tensor_type.elem_type]))
    return tensors


class FakeTrt:
    """A ``tensorrt``-like module. ``fp16_flag=False`` emulates TensorRT 11 (no ``BuilderFlag.FP16``)."""

    Severity = Severity
    DataType = DataType
    TensorIOMode = TensorIOMode

    class MemoryPoolType(enum.Enum):
        WORKSPACE = 0

    def __init__(self, version: str = "10.99.0", fp16_flag: bool = True, fail_build: bool = False) -> None:
        self.__version__ = version
        self.fail_build = fail_build
        self.builds: list[dict] = []  # one entry per build_serialized_network call
        self.build_hook = None  # called inside build_serialized_network (e.g. to raise KeyboardInterrupt)
        self.runtimes: list = []
        self.engines: list = []
        fake = self
        self.BuilderFlag = type("BuilderFlag", (), {"FP16": "FP16", "TF32": "TF32"} if fp16_flag else {"TF32": "TF32"})

        class ILogger:
            Severity = Severity

            def __init__(self) -> None:
                pass

        class IProgressMonitor:
            def __init__(self) -> None:
                pass

        class OnnxParser:
            def __init__(self, network: FakeNetwork, logger: ILogger) -> None:
                self.network, self.logger, self.errors = network, logger, []

            def parse_from_file(self, path: str) -> bool:
                try:
                    model = onnx.load(path)
                except Exception as error:  # noqa: BLE001
                    self.errors.append(f"ModelImporter: failed to parse {path}: {type(error).__name__}")
                    return False
                self.network.path = path
                initializers = {i.name for i in model.graph.initializer}
                self.network.inputs = _tensors([i for i in model.graph.input if i.name not in initializers])
                self.network.outputs = _tensors(list(model.graph.output))
                return True

            @property
            def num_errors(self) -> int:
                return len(self.errors)

            def get_error(self, index: int) -> str:
                return self.errors[index]

        class OptimizationProfile:
            def __init__(self) -> None:
                self.shapes: dict[str, tuple] = {}

            def set_shape(self, name: str, minimum: tuple, optimum: tuple, maximum: tuple) -> None:
                self.shapes[name] = (tuple(minimum), tuple(optimum), tuple(maximum))

        class BuilderConfig:
            def __init__(self) -> None:
                self.flags: set[str] = set()
                self.pools: dict = {}
                self.profiles: list[OptimizationProfile] = []
                self.progress_monitor = None

            def set_flag(self, flag: str) -> None:
                self.flags.add(flag)

            def set_memory_pool_limit(self, pool: object, size: int) -> None:
                self.pools[pool] = size

            def add_optimization_profile(self, profile: OptimizationProfile) -> int:
                self.profiles.append(profile)
                return len(self.profiles) - 1

        class Builder:
            def __init__(self, logger: ILogger) -> None:
                self.logger = logger

            def create_network(self, flags: int = 0) -> FakeNetwork:
                return FakeNetwork()

            def create_builder_config(self) -> BuilderConfig:
                return BuilderConfig()

            def create_optimization_profile(self) -> OptimizationProfile:
                return OptimizationProfile()

            def build_serialized_network(self, network: FakeNetwork, config: BuilderConfig) -> bytes | None:
                record = {"flags": set(config.flags), "pools": dict(config.pools), "profiles": config.profiles}
                fake.builds.append(record)
                monitor = config.progress_monitor
                if monitor is not None:
                    monitor.phase_start("Building engine", None, 2)
                    monitor.phase_start("Tactic selection", "Building engine", 3)
                    for step in range(3):
                        monitor.step_complete("Tactic selection", step)
                    monitor.phase_finish("Tactic selection")
                    monitor.step_complete("Building engine", 0)
                    monitor.step_complete("Building engine", 1)
                    monitor.phase_finish("Building engine")
                if fake.build_hook is not None:
                    fake.build_hook()
                if fake.fail_build:
                    self.logger.log(Severity.ERROR, "fake builder: out of memory")
                    return None
                input_tensor = network.inputs[0]
                profile = None
                if any(d < 0 for d in input_tensor.shape):
                    if not config.profiles:
                        self.logger.log(
                            Severity.ERROR, "Network has dynamic or shape inputs, but no optimization profile"
                        )
                        return None
                    profile = [list(s) for s in config.profiles[0].shapes[input_tensor.name]]
                payload = {
                    "onnx": network.path,
                    "trt_version": fake.__version__,
                    "fp16": "FP16" in config.flags,
                    "profile": profile,
                    "host_code": False,
                    "output_dtype": DataType.FLOAT.name,
                }
                return MAGIC + json.dumps(payload).encode()

        class Runtime:
            def __init__(self, logger: ILogger) -> None:
                self.logger = logger
                self.engine_host_code_allowed = False
                fake.runtimes.append(self)

            def deserialize_cuda_engine(self, data: bytes) -> FakeEngine | None:
                data = bytes(data)
                if not data.startswith(MAGIC):
                    self.logger.log(Severity.ERROR, "IRuntime::deserializeCudaEngine: Error Code 1: Serialization")
                    return None
                try:
                    payload = json.loads(data[len(MAGIC) :])
                except ValueError:
                    self.logger.log(Severity.ERROR, "IRuntime::deserializeCudaEngine: truncated engine")
                    return None
                if payload["trt_version"] != fake.__version__:
                    self.logger.log(Severity.ERROR, "The engine plan file is not compatible with this version")
                    return None
                if payload.get("host_code") and not self.engine_host_code_allowed:
                    self.logger.log(Severity.ERROR, "Engine has host code but engine_host_code_allowed is false")
                    return None
                engine = FakeEngine(fake, payload)
                fake.engines.append(engine)
                return engine

        self.ILogger = ILogger
        self.IProgressMonitor = IProgressMonitor
        self.OnnxParser = OnnxParser
        self.Builder = Builder
        self.Runtime = Runtime

    @staticmethod
    def nptype(dtype: DataType) -> type:
        if dtype not in (DataType.FLOAT, DataType.HALF, DataType.INT32):
            raise TypeError(f"no numpy type for {dtype}")
        return np.dtype(dtype.value).type

    def package_engine(self, onnx_path: Path, **overrides: object) -> bytes:
        """Serialized bytes of an engine as a model package would ship it (e.g. ``host_code=True``)."""
        model = onnx.load(str(onnx_path))
        shape = _tensors(list(model.graph.input))[0].shape
        payload = {
            "onnx": str(onnx_path),
            "trt_version": self.__version__,
            "fp16": True,
            "profile": None if shape[0] > 0 else [[1, *shape[1:]], [2, *shape[1:]], [4, *shape[1:]]],
            "host_code": False,
            "output_dtype": DataType.FLOAT.name,
        }
        payload.update(overrides)
        return MAGIC + json.dumps(payload).encode()


class FakeEngine:
    def __init__(self, fake: FakeTrt, payload: dict) -> None:
        self.fake, self.payload = fake, payload
        self.session = onnxruntime.InferenceSession(payload["onnx"], providers=["CPUExecutionProvider"])
        model = onnx.load(payload["onnx"])
        self.inputs = _tensors(list(model.graph.input))[:1]
        self.outputs = _tensors(list(model.graph.output))
        if payload.get("input_dtype"):
            self.inputs[0].dtype = DataType[payload["input_dtype"]]
        for tensor in self.outputs:
            tensor.dtype = DataType[payload["output_dtype"]]
        self.contexts: list[FakeContext] = []

    @property
    def num_io_tensors(self) -> int:
        return len(self.inputs) + len(self.outputs)

    def _all(self) -> list[FakeTensor]:
        return self.inputs + self.outputs

    def _tensor(self, name: str) -> FakeTensor:
        return next(t for t in self._all() if t.name == name)

    def get_tensor_name(self, index: int) -> str:
        return self._all()[index].name

    def get_tensor_mode(self, name: str) -> TensorIOMode:
        return TensorIOMode.INPUT if name == self.inputs[0].name else TensorIOMode.OUTPUT

    def get_tensor_dtype(self, name: str) -> DataType:
        return self._tensor(name).dtype

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        return self._tensor(name).shape

    def get_tensor_profile_shape(self, name: str, profile_index: int) -> list[tuple[int, ...]]:
        assert name == self.inputs[0].name and profile_index == 0
        return [tuple(s) for s in self.payload["profile"]]

    def create_execution_context(self) -> FakeContext:
        context = FakeContext(self)
        self.contexts.append(context)
        return context


class FakeContext:
    def __init__(self, engine: FakeEngine) -> None:
        self.engine = engine
        self.input_shape: tuple[int, ...] | None = None if engine.payload["profile"] else engine.inputs[0].shape
        self.addresses: dict[str, int] = {}
        self.executions: list[tuple[np.dtype, tuple[int, ...]]] = []
        self._running = False
        self._guard = threading.Lock()

    def set_input_shape(self, name: str, shape: tuple[int, ...]) -> bool:
        shape = tuple(int(d) for d in shape)
        profile = self.engine.payload["profile"]
        if name != self.engine.inputs[0].name or profile is None:
            return False
        low, _, high = profile
        if len(shape) != len(low) or any(not lo <= d <= hi for lo, d, hi in zip(low, shape, high, strict=True)):
            return False
        self.input_shape = shape
        return True

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        if name == self.engine.inputs[0].name:
            return self.input_shape if self.input_shape is not None else self.engine.inputs[0].shape
        batch = self.input_shape[0] if self.input_shape is not None else -1
        return tuple(batch if d < 0 else d for d in self.engine._tensor(name).shape)

    def set_tensor_address(self, name: str, address: int) -> bool:
        self.addresses[name] = int(address)
        return True

    def execute_async_v3(self, stream_handle: int) -> bool:
        with self._guard:
            if self._running:
                raise AssertionError("execute_async_v3 entered concurrently on one execution context")
            self._running = True
        try:
            engine = self.engine
            spec = engine.inputs[0]
            dtype = np.dtype(FakeTrt.nptype(spec.dtype))
            shape = self.input_shape
            assert shape is not None and all(d > 0 for d in shape), "input shape not set"
            nbytes = int(np.prod(shape)) * dtype.itemsize
            CUDA_MEMORY.check(self.addresses[spec.name], nbytes)
            batch = np.frombuffer(ctypes.string_at(self.addresses[spec.name], nbytes), dtype=dtype).reshape(shape)
            self.executions.append((dtype, shape))
            session_input = engine.session.get_inputs()[0]
            feed_dtype = np.float16 if session_input.type == "tensor(float16)" else np.float32
            results = engine.session.run(None, {session_input.name: batch.astype(feed_dtype)})
            for tensor, value in zip(engine.outputs, results, strict=True):
                out = np.ascontiguousarray(value.astype(FakeTrt.nptype(tensor.dtype)))
                assert out.shape == self.get_tensor_shape(tensor.name), (out.shape, self.get_tensor_shape(tensor.name))
                CUDA_MEMORY.check(self.addresses[tensor.name], out.nbytes)
                ctypes.memmove(self.addresses[tensor.name], out.ctypes.data, out.nbytes)
            return True
        finally:
            self._running = False


class _Memory:
    """Allocations by address, for bounds checks."""

    def __init__(self) -> None:
        self.blocks: dict[int, ctypes.Array] = {}
        self.lock = threading.Lock()

    def allocate(self, nbytes: int) -> int:
        block = ctypes.create_string_buffer(nbytes)
        address = ctypes.addressof(block)
        with self.lock:
            self.blocks[address] = block
        return address

    def release(self, address: int) -> None:
        with self.lock:
            del self.blocks[address]

    def check(self, address: int, nbytes: int) -> None:
        with self.lock:
            for start, block in self.blocks.items():
                if start <= address and address + nbytes <= start + ctypes.sizeof(block):
                    return
        raise AssertionError(f"access of {nbytes} bytes at {address:#x} is outside every allocation")


CUDA_MEMORY = _Memory()


class FakeCuda:
    """The :class:`~workflows_yolov5_seg.backends.tensorrt.CudaRuntime` interface over host memory."""

    def __init__(self, gpus: list[GpuInfo] | None = None) -> None:
        self.gpus = gpus if gpus is not None else [GpuInfo(0, "NVIDIA Fake A10G", (8, 6))]
        self.device_allocations: set[int] = set()
        self.host_allocations: set[int] = set()
        self.streams: set[int] = set()
        self.copies: list[tuple[str, int]] = []
        self._next_stream = 1000

    def device_count(self) -> int:
        return len(self.gpus)

    def set_device(self, index: int) -> None:
        assert 0 <= index < len(self.gpus), index

    def device_info(self, index: int) -> GpuInfo:
        return self.gpus[index]

    def malloc(self, nbytes: int) -> int:
        address = CUDA_MEMORY.allocate(nbytes)
        self.device_allocations.add(address)
        return address

    def free(self, address: int) -> None:
        self.device_allocations.remove(address)
        CUDA_MEMORY.release(address)

    def malloc_host(self, nbytes: int) -> int:
        address = CUDA_MEMORY.allocate(nbytes)
        self.host_allocations.add(address)
        return address

    def free_host(self, address: int) -> None:
        self.host_allocations.remove(address)
        CUDA_MEMORY.release(address)

    def _copy(self, kind: str, destination: int, source: int, nbytes: int, stream: int) -> None:
        assert stream in self.streams, "copy on an unknown stream"
        CUDA_MEMORY.check(destination, nbytes)
        CUDA_MEMORY.check(source, nbytes)
        ctypes.memmove(destination, source, nbytes)
        self.copies.append((kind, nbytes))

    def memcpy_htod_async(self, device: int, host: int, nbytes: int, stream: int) -> None:
        assert device in self.device_allocations and host in self.host_allocations
        self._copy("htod", device, host, nbytes, stream)

    def memcpy_dtoh_async(self, host: int, device: int, nbytes: int, stream: int) -> None:
        assert device in self.device_allocations and host in self.host_allocations
        self._copy("dtoh", host, device, nbytes, stream)

    def stream_create(self) -> int:
        self._next_stream += 1
        self.streams.add(self._next_stream)
        return self._next_stream

    def stream_synchronize(self, stream: int) -> None:
        assert stream in self.streams

    def stream_destroy(self, stream: int) -> None:
        self.streams.remove(stream)


def install_fakes(monkeypatch: pytest.MonkeyPatch) -> tuple[FakeTrt, FakeCuda]:
    """Makes the TensorRT backend import these stand-ins instead of ``tensorrt`` and the CUDA runtime, for code that
    imports them itself (``create_backend``, the ``build-engine`` command); returns them."""
    trt, cuda = FakeTrt(), FakeCuda()
    monkeypatch.setattr(trt_backend, "import_tensorrt", lambda: trt)
    monkeypatch.setattr(trt_backend, "CudaRuntime", lambda: cuda)
    return trt, cuda
