"""TensorRT backend logic on stand-ins for tensorrt and CUDA (see support/fake_tensorrt.py): building, caching,
invalidation, profiles, dtypes, package engines, thread safety. No GPU needed. (The build-engine command:
tests/test_cli.py.)

The same code paths on the real libraries are the tests marked ``gpu`` at the end (skipped, with the reason, without a
GPU and tensorrt).
"""

from __future__ import annotations

import inspect
import json
import logging
import stat
import sys
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from onnx import TensorProto

from workflows_yolov5_seg import settings
from workflows_yolov5_seg.backends import tensorrt as trt_backend
from workflows_yolov5_seg.backends.engine_cache import BatchProfile, EngineCache
from workflows_yolov5_seg.backends.onnx import OnnxRuntimeBackend
from workflows_yolov5_seg.backends.tensorrt import (
    CorruptedEngineError,
    CudaRuntime,
    GpuInfo,
    TensorRTBackend,
    get_or_build_engine,
    load_tensorrt_backend,
    parse_cuda_device,
    probe_cuda_device,
)
from workflows_yolov5_seg.errors import (
    BackendUnavailableError,
    CacheNotWritableError,
    InvalidParameterError,
    MissingDependencyError,
)
from workflows_yolov5_seg.model import YOLOv5SegModel
from workflows_yolov5_seg.model_package import load_model_package

from support.fake_tensorrt import FakeCuda, FakeTrt
from support.models import CLASS_NAMES, LETTERBOX_320_CONFIG, make_two_box_model, make_two_box_model_of, two_box_rows
from support.onnx_graphs import make_constant_seg_onnx
from support.paths import DEMO_IMAGE, REPOSITORY
from support.read_only import make_read_only

SECOND_OBJECTNESS = 0.8  # the circle's, so the two detections' scores differ


def make_model(path: Path, batch: int | None = None, input_type: int = TensorProto.FLOAT) -> Path:
    return make_two_box_model(path, SECOND_OBJECTNESS, batch=batch, input_type=input_type)


@pytest.fixture()
def onnx_model(tmp_path: Path) -> Path:
    return make_model(tmp_path / "model" / "model.onnx")


@pytest.fixture()
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def engine_files(cache_dir: Path) -> list[Path]:
    return sorted((cache_dir / "trt").glob("*.engine")) if (cache_dir / "trt").exists() else []


def load(onnx_model: Path, cache_dir: Path, trt: FakeTrt, cuda: FakeCuda | None = None, **options: object):
    package = load_model_package(onnx_model)
    return load_tensorrt_backend(package, cache_dir=cache_dir, trt=trt, cuda=cuda or FakeCuda(), **options)


# ------------------------------------------------------------------------------------------------ build and cache


def test_builds_at_first_use_then_loads_from_cache(
    onnx_model: Path, cache_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    trt = FakeTrt()
    with caplog.at_level(logging.INFO):
        backend = load(onnx_model, cache_dir, trt)
    assert len(trt.builds) == 1
    assert "Building a TensorRT fp16 engine" in caplog.text
    assert "Tactic selection" not in caplog.text.split("Building engine started")[0]  # nested phases at DEBUG
    assert "Building engine started" in caplog.text and "Building engine done in" in caplog.text
    assert "Built the TensorRT engine" in caplog.text and " s (" in caplog.text
    [engine] = engine_files(cache_dir)
    assert stat.S_IMODE(engine.stat().st_mode) == 0o600
    description = json.loads(engine.with_suffix(".json").read_text())
    assert description["precision"] == "fp16" and description["batch"] == {"min": 1, "opt": 4, "max": 8}
    assert str(onnx_model.parent) not in engine.name and "model" not in engine.name
    assert backend.info.name == "trt" and backend.info.device == "cuda:0" and backend.info.precision == "fp16"
    assert (backend.info.min_batch_size, backend.info.max_batch_size) == (1, 8)
    assert backend.info.providers == ("TensorRT 10.99.0",)
    backend.close()

    caplog.clear()
    with caplog.at_level(logging.INFO):
        again = load(onnx_model, cache_dir, trt)
    assert len(trt.builds) == 1, "the cached engine must be reused"
    assert "Using the cached TensorRT engine" in caplog.text
    again.close()


def test_build_sets_profile_flag_and_workspace(onnx_model: Path, cache_dir: Path) -> None:
    trt = FakeTrt()
    load(onnx_model, cache_dir, trt, batch="2,3,5", workspace_bytes=256 << 20).close()
    [build] = trt.builds
    assert build["flags"] == {"FP16"}
    assert list(build["pools"].values()) == [256 << 20]
    assert build["profiles"][0].shapes["images"] == ((2, 3, 320, 320), (3, 3, 320, 320), (5, 3, 320, 320))


@pytest.mark.parametrize(
    ("gpu", "version"),
    [(GpuInfo(0, "NVIDIA L4", (8, 9)), "10.99.0"), (GpuInfo(0, "NVIDIA Fake A10G", (8, 6)), "10.100.0")],
)
def test_other_gpu_or_tensorrt_version_rebuilds(onnx_model: Path, cache_dir: Path, gpu: GpuInfo, version: str) -> None:
    first = FakeTrt()
    load(onnx_model, cache_dir, first).close()
    second = FakeTrt(version=version)
    load(onnx_model, cache_dir, second, FakeCuda([gpu])).close()
    assert len(second.builds) == 1
    assert len(engine_files(cache_dir)) == 2


def test_changed_onnx_or_options_rebuild(onnx_model: Path, cache_dir: Path) -> None:
    trt = FakeTrt()
    load(onnx_model, cache_dir, trt).close()
    load(onnx_model, cache_dir, trt, precision="fp32").close()
    load(onnx_model, cache_dir, trt, batch="1,2,4").close()
    rows, protos = two_box_rows(SECOND_OBJECTNESS)
    make_constant_seg_onnx(onnx_model, rows * 0.5, protos, names=CLASS_NAMES)
    load(onnx_model, cache_dir, trt).close()
    assert len(trt.builds) == 4 and len(engine_files(cache_dir)) == 4
    load(onnx_model, cache_dir, trt, rebuild_engine=True).close()
    assert len(trt.builds) == 5 and len(engine_files(cache_dir)) == 4


def test_corrupted_cached_engine_is_deleted_and_rebuilt(
    onnx_model: Path, cache_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    trt = FakeTrt()
    load(onnx_model, cache_dir, trt).close()
    [engine] = engine_files(cache_dir)
    engine.write_bytes(b"\x00garbage, e.g. a disk error")
    backend = load(onnx_model, cache_dir, trt)
    assert "does not load" in caplog.text and "deleting and rebuilding" in caplog.text
    assert len(trt.builds) == 2
    assert engine.read_bytes().startswith(b"FAKETRT1")
    instances, _ = backend.infer(np.zeros((1, 3, 320, 320), np.float32))
    assert instances.shape == (1, 2, 40)
    backend.close()


def test_read_only_cache_holding_the_engine_loads_it(
    onnx_model: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The Docker recipe's way to ship engines: a cache folder of pre-built engines, mounted read-only."""
    trt = FakeTrt()
    load(onnx_model, cache_dir, trt).close()
    for lock in (cache_dir / "trt").glob("*.lock"):
        lock.unlink()  # what a copy of the engines alone holds
    make_read_only(monkeypatch, cache_dir)
    with caplog.at_level(logging.INFO):
        backend = load(onnx_model, cache_dir, trt)
    assert len(trt.builds) == 1 and "Using the cached TensorRT engine" in caplog.text
    assert backend.infer(np.zeros((1, 3, 320, 320), np.float32))[0].shape == (1, 2, 40)
    backend.close()


def test_read_only_cache_without_the_engine_says_so(
    onnx_model: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (cache_dir / "trt").mkdir(parents=True)
    make_read_only(monkeypatch, cache_dir)
    with pytest.raises(CacheNotWritableError, match="Cannot write the TensorRT engine cache folder") as caught:
        load(onnx_model, cache_dir, FakeTrt())
    assert settings.CACHE_DIR.name in str(caught.value)


def test_interrupted_build_leaves_no_file(onnx_model: Path, cache_dir: Path) -> None:
    trt = FakeTrt()

    def interrupt() -> None:
        raise KeyboardInterrupt

    trt.build_hook = interrupt
    with pytest.raises(KeyboardInterrupt):
        load(onnx_model, cache_dir, trt)
    leftovers = [p.name for p in (cache_dir / "trt").iterdir() if not p.name.endswith(".lock")]
    assert leftovers == []


def test_failed_build_reports_tensorrt_errors(onnx_model: Path, cache_dir: Path) -> None:
    with pytest.raises(BackendUnavailableError, match="out of memory"):
        load(onnx_model, cache_dir, FakeTrt(fail_build=True))
    assert engine_files(cache_dir) == []


def test_concurrent_first_loads_build_once(onnx_model: Path, cache_dir: Path) -> None:
    trt = FakeTrt()
    gpu = FakeCuda().gpus[0]
    signature = load_model_package(onnx_model).signature
    results: list = []

    def build() -> None:
        results.append(get_or_build_engine(trt, onnx_model, signature, gpu, cache=EngineCache(cache_dir)))

    threads = [threading.Thread(target=build) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(trt.builds) == 1
    assert sorted(from_cache for _, _, from_cache in results) == [False, True, True]


# ------------------------------------------------------------------------------------------------ precision


@pytest.mark.parametrize(
    ("cc", "requested", "flags", "precision"),
    [
        ((8, 6), "auto", {"FP16"}, "fp16"),
        ((6, 1), "auto", set(), "fp32"),
        ((8, 6), "fp32", set(), "fp32"),
        ((6, 1), "fp16", {"FP16"}, "fp16"),
    ],
)
def test_precision(onnx_model: Path, cache_dir: Path, cc, requested, flags, precision) -> None:
    trt = FakeTrt()
    backend = load(onnx_model, cache_dir, trt, FakeCuda([GpuInfo(0, "gpu", cc)]), precision=requested)
    assert trt.builds[0]["flags"] == flags
    assert backend.info.precision == precision
    backend.close()


def test_tensorrt_11_has_no_fp16_flag(onnx_model: Path, cache_dir: Path) -> None:
    trt = FakeTrt(version="11.3.0", fp16_flag=False)
    backend = load(onnx_model, cache_dir, trt)
    assert backend.info.precision == "fp32" and trt.builds[0]["flags"] == set()
    backend.close()
    with pytest.raises(InvalidParameterError, match="TensorRT 11"):
        load(onnx_model, cache_dir, trt, precision="fp16")


# ------------------------------------------------------------------------------------------------ profiles, chunks


def test_static_batch_onnx_gets_a_static_engine(tmp_path: Path, cache_dir: Path) -> None:
    model = make_model(tmp_path / "static.onnx", batch=2)
    trt = FakeTrt()
    backend = load(model, cache_dir, trt)
    assert trt.builds[0]["profiles"] == []
    assert (backend.info.min_batch_size, backend.info.max_batch_size) == (2, 2) and backend.info.static_batch
    backend.close()
    with pytest.raises(InvalidParameterError, match="static batch of 2"):
        load(model, cache_dir, trt, batch="1,4,8")


@pytest.mark.parametrize(
    ("batch", "images", "executed"),
    [("1,2,3", 7, [3, 3, 1]), ("1,4,8", 5, [5]), ("4", 5, [4, 4]), ("2,2,4", 5, [4, 2])],
)
def test_pipeline_chunks_by_profile(
    onnx_model: Path, tmp_path: Path, cache_dir: Path, batch: str, images: int, executed: list[int]
) -> None:
    if BatchProfile.parse(batch).is_static:
        onnx_model = make_model(tmp_path / "static.onnx", batch=BatchProfile.parse(batch).min)
        batch_option = None
    else:
        batch_option = batch
    trt = FakeTrt()
    package = load_model_package(onnx_model)
    backend = load_tensorrt_backend(package, cache_dir=cache_dir, trt=trt, cuda=FakeCuda(), batch=batch_option)
    model = YOLOv5SegModel(package, backend)
    image = np.full((240, 320, 3), 90, np.uint8)
    detections = model([image] * images)
    assert len(detections) == images and all(len(d) == 2 for d in detections)
    context = trt.engines[-1].contexts[0]
    assert [shape[0] for _, shape in context.executions] == executed
    model.close()


# ------------------------------------------------------------------------------------------------ dtypes and parity


def test_outputs_match_onnx_runtime(onnx_model: Path, cache_dir: Path) -> None:
    backend = load(onnx_model, cache_dir, FakeTrt())
    reference = OnnxRuntimeBackend(load_model_package(onnx_model))
    batch = np.random.default_rng(0).random((3, 3, 320, 320), dtype=np.float32)
    for got, expected in zip(backend.infer(batch), reference.infer(batch), strict=True):
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, expected)
    backend.close()


def test_fp16_input_engine_receives_float16(tmp_path: Path, cache_dir: Path) -> None:
    model = make_model(tmp_path / "half.onnx", input_type=TensorProto.FLOAT16)
    trt = FakeTrt()
    backend = load(model, cache_dir, trt)
    assert backend.info.input_dtype == np.float16
    instances, protos = backend.infer(np.ones((2, 3, 320, 320), np.float32))  # float32 in: cast by the backend
    dtype, shape = trt.engines[-1].contexts[0].executions[-1]
    assert dtype == np.float16 and shape == (2, 3, 320, 320)
    assert instances.dtype == np.float32 and protos.dtype == np.float32
    # The pipeline pre-processes straight to float16 for such an engine.
    yolo = YOLOv5SegModel(load_model_package(model), backend)
    assert yolo.pre_process(np.zeros((100, 100, 3), np.uint8)).tensor.dtype == np.float16
    backend.close()


def test_fp16_output_engine_is_read_as_float32(tmp_path: Path, onnx_model: Path) -> None:
    trt = FakeTrt()
    engine = trt.package_engine(onnx_model, output_dtype="HALF")
    backend = TensorRTBackend(engine, "engine.plan", trt=trt, cuda=FakeCuda())
    reference = OnnxRuntimeBackend(load_model_package(onnx_model))
    batch = np.zeros((2, 3, 320, 320), np.float32)
    for got, expected in zip(backend.infer(batch), reference.infer(batch), strict=True):
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-2)
    backend.close()


def test_bad_batch_is_refused(onnx_model: Path, cache_dir: Path) -> None:
    backend = load(onnx_model, cache_dir, FakeTrt(), batch="1,2,3")
    with pytest.raises(InvalidParameterError):
        backend.infer(np.zeros((4, 3, 320, 320), np.float32))
    with pytest.raises(InvalidParameterError):
        backend.infer(np.zeros((1, 3, 640, 640), np.float32))
    backend.close()


# ------------------------------------------------------------------------------------------------ package engines


def make_package(folder: Path, engine: bytes, with_onnx: Path | None, trt_config: dict | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "engine.plan").write_bytes(engine)
    (folder / "class_names.txt").write_text("circle\nrectangle\ntriangle\n")
    (folder / "trt_config.json").write_text(
        json.dumps(
            trt_config or {"dynamic_batch_size_min": 1, "dynamic_batch_size_opt": 2, "dynamic_batch_size_max": 4}
        )
    )
    if with_onnx is not None:
        (folder / "model.onnx").write_bytes(with_onnx.read_bytes())
    return folder


def test_package_engine_is_used_without_building(onnx_model: Path, tmp_path: Path, cache_dir: Path) -> None:
    trt = FakeTrt()
    folder = make_package(tmp_path / "pkg", trt.package_engine(onnx_model), None)
    package = load_model_package(folder)
    backend = load_tensorrt_backend(package, cache_dir=cache_dir, trt=trt, cuda=FakeCuda())
    assert trt.builds == [] and (backend.info.min_batch_size, backend.info.max_batch_size) == (1, 4)
    assert trt.runtimes[-1].engine_host_code_allowed is False
    backend.close()


def test_package_engine_host_code_needs_opt_in(
    onnx_model: Path, tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trt = FakeTrt()
    folder = make_package(tmp_path / "pkg", trt.package_engine(onnx_model, host_code=True), None)
    package = load_model_package(folder)
    monkeypatch.delenv(settings.ALLOW_ENGINE_HOST_CODE.name, raising=False)
    with pytest.raises(CorruptedEngineError, match="allow_engine_host_code=True"):
        load_tensorrt_backend(package, cache_dir=cache_dir, trt=trt, cuda=FakeCuda())
    backend = load_tensorrt_backend(package, cache_dir=cache_dir, trt=trt, cuda=FakeCuda(), allow_engine_host_code=True)
    assert trt.runtimes[-1].engine_host_code_allowed is True
    backend.close()
    # The setting opts in where no argument can be passed (the block, a server).
    monkeypatch.setenv(settings.ALLOW_ENGINE_HOST_CODE.name, "true")
    load_tensorrt_backend(package, cache_dir=cache_dir, trt=trt, cuda=FakeCuda()).close()
    assert trt.runtimes[-1].engine_host_code_allowed is True


def test_package_engines_run_no_host_code_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """The opt-in defaults to off everywhere a package engine can be loaded (behaviour: the tests above): the
    argument defaults to the setting, and the setting to false."""
    assert inspect.signature(load_tensorrt_backend).parameters["allow_engine_host_code"].default is None
    monkeypatch.delenv(settings.ALLOW_ENGINE_HOST_CODE.name, raising=False)
    assert settings.ALLOW_ENGINE_HOST_CODE.get() is False
    monkeypatch.setenv(settings.ALLOW_ENGINE_HOST_CODE.name, "1")
    assert settings.ALLOW_ENGINE_HOST_CODE.get() is True


def test_foreign_package_engine_falls_back_to_building_from_onnx(
    onnx_model: Path, tmp_path: Path, cache_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    trt = FakeTrt()
    foreign = FakeTrt(version="10.1.0").package_engine(onnx_model)
    folder = make_package(tmp_path / "pkg", foreign, onnx_model)
    backend = load_tensorrt_backend(load_model_package(folder), cache_dir=cache_dir, trt=trt, cuda=FakeCuda())
    assert "does not load on this GPU" in caplog.text and len(trt.builds) == 1
    backend.close()


def test_trt_config_mismatch_warns(onnx_model: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    trt = FakeTrt()
    config = {"dynamic_batch_size_min": 1, "dynamic_batch_size_opt": 8, "dynamic_batch_size_max": 16}
    folder = make_package(tmp_path / "pkg", trt.package_engine(onnx_model), None, config)
    backend = load_tensorrt_backend(load_model_package(folder), trt=trt, cuda=FakeCuda())
    assert "using the engine's" in caplog.text and backend.info.max_batch_size == 4
    backend.close()


# ------------------------------------------------------------------------------------------------ lifecycle


def test_concurrent_forwards_are_serialized(onnx_model: Path, cache_dir: Path) -> None:
    backend = load(onnx_model, cache_dir, FakeTrt())
    reference = OnnxRuntimeBackend(load_model_package(onnx_model)).infer(np.zeros((1, 3, 320, 320), np.float32))[0]
    errors: list[BaseException] = []

    def run() -> None:
        try:
            for size in (1, 3, 8, 2):
                instances, _ = backend.infer(np.zeros((size, 3, 320, 320), np.float32))
                np.testing.assert_array_equal(instances, np.repeat(reference, size, axis=0))
        except BaseException as error:  # noqa: BLE001
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    backend.close()


def test_close_frees_everything(onnx_model: Path, cache_dir: Path) -> None:
    cuda = FakeCuda()
    backend = load(onnx_model, cache_dir, FakeTrt(), cuda)
    assert len(cuda.device_allocations) == 3 and len(cuda.host_allocations) == 3 and len(cuda.streams) == 1
    backend.close()
    assert cuda.device_allocations == set() and cuda.host_allocations == set() and cuda.streams == set()
    backend.close()  # idempotent
    with pytest.raises(BackendUnavailableError, match="closed"):
        backend.infer(np.zeros((1, 3, 320, 320), np.float32))


def test_missing_device(onnx_model: Path, cache_dir: Path) -> None:
    with pytest.raises(BackendUnavailableError, match="0 CUDA device"):
        load(onnx_model, cache_dir, FakeTrt(), FakeCuda([]))
    with pytest.raises(BackendUnavailableError, match="CUDA device 1"):
        load(onnx_model, cache_dir, FakeTrt(), device="cuda:1")


@pytest.mark.parametrize(("device", "index"), [(None, 0), ("cuda", 0), ("cuda:1", 1), ("CUDA:2", 2)])
def test_parse_cuda_device(device: str | None, index: int) -> None:
    assert parse_cuda_device(device) == index


@pytest.mark.parametrize("device", ["cpu", "cuda:x", "tensorrt:0", "mps", "3", "gpu"])
def test_parse_cuda_device_rejects(device: str) -> None:
    with pytest.raises(InvalidParameterError):
        parse_cuda_device(device)


def test_detection_model_is_refused_before_tensorrt_parses_it(tmp_path: Path, cache_dir: Path) -> None:
    from workflows_yolov5_seg.errors import NotYOLOv5SegModelError

    from support.onnx_graphs import make_detection_only_onnx

    trt = FakeTrt()
    with pytest.raises(NotYOLOv5SegModelError, match="detection model"):
        load(make_detection_only_onnx(tmp_path / "det.onnx"), cache_dir, trt)
    assert trt.builds == []


# ------------------------------------------------------------------------------------------------ CUDA wrapper


class FakeCudart:
    """The shape of cuda.bindings.runtime's answers: tuples led by a cudaError_t."""

    class cudaMemcpyKind:  # noqa: N801
        cudaMemcpyHostToDevice = 1
        cudaMemcpyDeviceToHost = 2

    cudaStreamNonBlocking = 1

    def __init__(self, error: int = 0) -> None:
        self.error = error
        self.calls: list[tuple] = []

    def cudaGetErrorName(self, error: int) -> tuple:  # noqa: N802
        return 0, b"cudaErrorInsufficientDriver"

    def cudaGetDeviceCount(self) -> tuple:  # noqa: N802
        return (self.error, None if self.error else 2)

    def cudaGetDeviceProperties(self, index: int) -> tuple:  # noqa: N802
        class Properties:
            name = b"NVIDIA A10G\x00\x00garbage"
            major, minor = 8, 6

        return 0, Properties()

    def cudaMemcpyAsync(self, *args: object) -> tuple:  # noqa: N802
        self.calls.append(args)
        return (0,)

    def cudaStreamCreateWithFlags(self, flags: int) -> tuple:  # noqa: N802
        return 0, 77


def test_cuda_runtime_wrapper() -> None:
    cudart = FakeCudart()
    cuda = CudaRuntime(cudart)
    assert cuda.device_count() == 2
    assert cuda.device_info(1) == GpuInfo(1, "NVIDIA A10G", (8, 6))
    assert cuda.stream_create() == 77
    cuda.memcpy_htod_async(10, 20, 30, 77)
    cuda.memcpy_dtoh_async(40, 50, 60, 77)
    assert cudart.calls == [(10, 20, 30, 1, 77), (40, 50, 60, 2, 77)]
    with pytest.raises(BackendUnavailableError, match="cudaErrorInsufficientDriver"):
        CudaRuntime(FakeCudart(error=35)).device_count()
    gpu, reason = trt_backend.probe_cuda_device(0, CudaRuntime(FakeCudart(error=35)))
    assert gpu is None and "cudaErrorInsufficientDriver" in reason


def test_missing_tensorrt_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(MissingDependencyError, match="pypi.nvidia.com"):
        trt_backend.import_tensorrt()
    ok, reason = trt_backend.probe_tensorrt()
    assert not ok and "tensorrt" in reason


# ------------------------------------------------------------------------------------------------ metadata, shapes


def test_class_names_come_from_the_onnx_metadata(onnx_model: Path, cache_dir: Path) -> None:
    package = load_model_package(onnx_model)
    backend = load_tensorrt_backend(package, cache_dir=cache_dir, trt=FakeTrt(), cuda=FakeCuda())
    assert YOLOv5SegModel(package, backend).class_names == ("circle", "rectangle", "triangle")
    backend.close()


def test_static_batch_with_dynamic_height_width(tmp_path: Path, cache_dir: Path) -> None:
    import dataclasses

    import onnx

    path = make_model(tmp_path / "hw.onnx", batch=2)
    model = onnx.load(str(path))
    for index, name in ((2, "height"), (3, "width")):
        model.graph.input[0].type.tensor_type.shape.dim[index].dim_param = name
    onnx.save(model, str(path))
    loaded = load_model_package(path)  # a dynamic height and width with no config: 640x640, set to 320 here
    package = dataclasses.replace(loaded, signature=dataclasses.replace(loaded.signature, input_hw=(320, 320)))
    trt = FakeTrt()
    backend = load_tensorrt_backend(package, cache_dir=cache_dir, trt=trt, cuda=FakeCuda())
    assert trt.builds[0]["profiles"][0].shapes["images"] == ((2, 3, 320, 320),) * 3
    assert (backend.info.min_batch_size, backend.info.max_batch_size, backend.info.input_hw) == (2, 2, (320, 320))
    instances, _ = backend.infer(np.zeros((2, 3, 320, 320), np.float32))
    assert instances.shape == (2, 2, 40)
    backend.close()


def test_static_profile_from_a_dynamic_onnx(onnx_model: Path, cache_dir: Path) -> None:
    trt = FakeTrt()
    package = load_model_package(onnx_model)
    backend = load_tensorrt_backend(package, cache_dir=cache_dir, trt=trt, cuda=FakeCuda(), batch="4")
    assert backend.info.static_batch and backend.info.min_batch_size == 4
    model = YOLOv5SegModel(package, backend)
    assert len(model([np.zeros((50, 60, 3), np.uint8)] * 5)) == 5
    assert [shape[0] for _, shape in trt.engines[-1].contexts[0].executions] == [4, 4]
    model.close()


# ------------------------------------------------------------------------------------------------ real TensorRT (gpu)

TRT_INSTALL = "pip install --extra-index-url https://pypi.nvidia.com tensorrt-cu12"


@pytest.fixture(scope="module")
def cuda_device() -> None:
    gpu, reason = probe_cuda_device(0)
    if gpu is None:
        pytest.skip(f"no CUDA device visible through cuda-python: {reason}")


@pytest.fixture(scope="module")
def real_tensorrt(cuda_device: None):  # noqa: ANN201
    return pytest.importorskip("tensorrt", reason=f"tensorrt is not installed ({TRT_INSTALL})")


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_tensorrt_builds_caches_and_runs(
    real_tensorrt, tmp_path: Path, precision: str, caplog: pytest.LogCaptureFixture
) -> None:
    model = make_model(tmp_path / "m.onnx")
    package = load_model_package(model)
    cache = tmp_path / "cache"
    with caplog.at_level(logging.INFO):
        backend = load_tensorrt_backend(package, precision=precision, batch="1,2,4", cache_dir=cache)
    assert "Built the TensorRT engine" in caplog.text
    assert backend.info.name == "trt" and backend.info.precision == precision and backend.info.max_batch_size == 4
    [engine] = (cache / "trt").glob("*.engine")
    assert engine.stat().st_mode & 0o777 == 0o600
    batch = np.random.default_rng(0).random((3, 3, 320, 320), dtype=np.float32)
    for got, expected in zip(
        backend.infer(batch), OnnxRuntimeBackend(load_model_package(model)).infer(batch), strict=True
    ):
        assert got.dtype == np.float32
        # fp16 keeps ~3 significant digits: box coordinates of ~300 px are within ~0.2 px.
        tolerance = {"rtol": 2e-3, "atol": 1e-2} if precision == "fp16" else {"rtol": 1e-6, "atol": 1e-5}
        np.testing.assert_allclose(got, expected, **tolerance)
    backend.close()
    caplog.clear()
    with caplog.at_level(logging.INFO):
        load_tensorrt_backend(package, precision=precision, batch="1,2,4", cache_dir=cache).close()
    assert "Using the cached TensorRT engine" in caplog.text and "Built the TensorRT engine" not in caplog.text


@pytest.mark.gpu
def test_tensorrt_rebuilds_a_corrupted_cache(real_tensorrt, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    package = load_model_package(make_model(tmp_path / "m.onnx"))
    cache = tmp_path / "cache"
    load_tensorrt_backend(package, precision="fp32", cache_dir=cache).close()
    [engine] = (cache / "trt").glob("*.engine")
    engine.write_bytes(engine.read_bytes()[:1000])  # truncated, as after a crash of a non-atomic writer
    backend = load_tensorrt_backend(package, precision="fp32", cache_dir=cache)
    assert "deleting and rebuilding" in caplog.text
    backend.infer(np.zeros((1, 3, 320, 320), np.float32))
    backend.close()


@pytest.mark.gpu
def test_tensorrt_fp16_input_engine(real_tensorrt, tmp_path: Path) -> None:
    model = make_model(tmp_path / "h.onnx", input_type=TensorProto.FLOAT16)
    backend = load_tensorrt_backend(load_model_package(model), cache_dir=tmp_path / "cache")
    assert backend.info.input_dtype == np.float16
    instances, protos = backend.infer(np.zeros((1, 3, 320, 320), np.float32))
    assert instances.dtype == np.float32 and protos.dtype == np.float32
    backend.close()


@pytest.mark.gpu
def test_tensorrt_concurrent_forwards(real_tensorrt, tmp_path: Path) -> None:
    model = make_model(tmp_path / "m.onnx")
    backend = load_tensorrt_backend(load_model_package(model), precision="fp32", cache_dir=tmp_path / "cache")
    expected = OnnxRuntimeBackend(load_model_package(model)).infer(np.zeros((1, 3, 320, 320), np.float32))[0]
    errors: list[BaseException] = []

    def run() -> None:
        try:
            for size in (1, 4, 2, 8):
                got = backend.infer(np.zeros((size, 3, 320, 320), np.float32))[0]
                np.testing.assert_allclose(got, np.repeat(expected, size, axis=0), atol=1e-5)
        except BaseException as error:  # noqa: BLE001
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    backend.close()
    assert errors == []


# ------------------------------------------------------------------------------------------------ model generations


@pytest.mark.parametrize("layout", ["anchor-free", "end2end"])
def test_engines_of_every_layout_give_onnx_runtimes_detections(tmp_path: Path, cache_dir: Path, layout: str) -> None:
    onnx_path = make_two_box_model_of(layout, tmp_path / "model.onnx")
    package = load_model_package(onnx_path)
    backend = load_tensorrt_backend(package, cache_dir=cache_dir, trt=FakeTrt(), cuda=FakeCuda())
    assert backend.info.layout is package.signature.layout
    image = np.zeros((160, 320, 3), np.uint8)
    on_trt = YOLOv5SegModel(package, backend)(image)[0]
    on_ort = YOLOv5SegModel.from_pretrained(onnx_path, backend="onnx")(image)[0]
    assert on_trt.class_id.tolist() == on_ort.class_id.tolist() == [1, 0]
    np.testing.assert_allclose(on_trt.xyxy, on_ort.xyxy)
    np.testing.assert_array_equal(on_trt.mask, on_ort.mask)
    backend.close()


@pytest.mark.parametrize(
    ("layout", "architecture", "fused"),
    [
        ("anchor-free", None, False),
        ("anchor-free", "yolo11", False),
        ("end2end", "yolo26", False),
        ("end2end", "yolov8", True),  # inference-models' post_processing.fused: NMS in the graph
    ],
)
def test_an_engine_only_package_of_a_later_generation(
    tmp_path: Path, cache_dir: Path, layout: str, architecture: str | None, fused: bool
) -> None:
    """Without an ONNX to read, the layout comes from the engine's shapes (the anchor count) and the package's
    declared architecture."""
    trt = FakeTrt()
    folder = make_package(
        tmp_path / "pkg", trt.package_engine(make_two_box_model_of(layout, tmp_path / "m.onnx")), None
    )
    if architecture is not None:
        (folder / "model_config.json").write_text(json.dumps({"model_architecture": architecture}))
    if fused:
        config = json.loads(json.dumps(LETTERBOX_320_CONFIG))
        config["post_processing"] = {"type": "nms", "fused": True}
        (folder / "inference_config.json").write_text(json.dumps(config))
    package = load_model_package(folder)
    assert package.signature is None and package.architecture == architecture and package.fused_nms is fused
    model = YOLOv5SegModel(package, load_tensorrt_backend(package, cache_dir=cache_dir, trt=trt, cuda=FakeCuda()))
    assert model.layout.name == layout
    found = model(np.zeros((160, 320, 3), np.uint8))[0]
    assert found.data["class_name"].tolist() == ["rectangle", "circle"]
    np.testing.assert_allclose(found.confidence, [0.95, 0.9], rtol=1e-6)
    model.close()


@pytest.mark.gpu
@pytest.mark.parametrize(
    "export",
    ["shapes-yolov8n-seg-320.onnx", "shapes-yolov8n-seg-320-e2e.onnx", "shapes-yolo26n-seg-320-e2e.onnx"],
)
def test_tensorrt_runs_the_trained_family_exports_as_onnx_runtime(real_tensorrt, tmp_path: Path, export: str) -> None:
    """Real TensorRT (fp32) on the trained exports of each later layout: the pipeline's detections equal ONNX
    Runtime's (the in-graph NMS and top-k of the end-to-end exports run in TensorRT too)."""
    source = REPOSITORY / "models" / export
    package = load_model_package(source)
    backend = load_tensorrt_backend(package, precision="fp32", cache_dir=tmp_path / "cache")
    scene = cv2.imread(str(DEMO_IMAGE))
    on_trt = YOLOv5SegModel(package, backend)(scene, confidence=0.25)[0]
    on_ort = YOLOv5SegModel.from_pretrained(source, backend="onnx")(scene, confidence=0.25)[0]
    assert len(on_ort) > 0 and on_trt.class_id.tolist() == on_ort.class_id.tolist()
    np.testing.assert_allclose(on_trt.xyxy, on_ort.xyxy, atol=0.5)
    np.testing.assert_allclose(on_trt.confidence, on_ort.confidence, atol=1e-3)
    backend.close()
