"""create_backend: backend='auto' order (TensorRT, ONNX Runtime CUDA, ONNX Runtime CPU), explicit backends and
devices, option routing, and the reported choice. What is installed / present is simulated by monkeypatching the
probes (no GPU here)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

import workflows_yolov5_seg.backends as backends
from workflows_yolov5_seg.backends import create_backend, describe
from workflows_yolov5_seg.backends.tensorrt import CorruptedEngineError
from workflows_yolov5_seg.errors import (
    BackendUnavailableError,
    CacheNotWritableError,
    ClassNamesMismatchError,
    InvalidModelFileError,
    InvalidParameterError,
    MissingDependencyError,
    NotYOLOv5SegModelError,
)
from workflows_yolov5_seg.model import YOLOv5SegModel
from workflows_yolov5_seg.model_package import load_model_package

from support.fake_tensorrt import FakeTrt, install_fakes
from support.models import make_rectangle_model
from support.ort_fakes import CPU_BUILD, GPU_BUILD, ProviderScenario
from support.read_only import make_read_only


@pytest.fixture()
def package(tmp_path: Path):
    path = make_rectangle_model(tmp_path / "m.onnx", names={0: "a", 1: "b", 2: "c"})
    return load_model_package(path)


@pytest.fixture()
def no_tensorrt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backends, "tensorrt_usable", lambda device_id=0: (False, "tensorrt is not installed"))


@pytest.fixture()
def fake_tensorrt(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeTrt:
    """TensorRT importable and a CUDA device visible; the TensorRT backend runs on the stand-ins."""
    trt, _ = install_fakes(monkeypatch)
    monkeypatch.setattr(backends, "tensorrt_usable", lambda device_id=0: (True, ""))
    monkeypatch.setenv("WORKFLOWS_YOLOV5_SEG_CACHE_DIR", str(tmp_path / "cache"))
    return trt


def test_auto_on_a_cpu_machine(package, no_tensorrt, monkeypatch, caplog) -> None:
    ProviderScenario(CPU_BUILD).install(monkeypatch)
    with caplog.at_level(logging.INFO):
        backend = create_backend(package, "auto")
    assert (backend.info.name, backend.info.device) == ("onnx", "cpu")
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], "nothing GPU installed: no warning"
    assert sum("runs on backend onnx on cpu" in r.message for r in caplog.records) == 1


def test_auto_prefers_tensorrt(package, fake_tensorrt, monkeypatch, caplog) -> None:
    ProviderScenario(GPU_BUILD).install(monkeypatch)
    with caplog.at_level(logging.INFO):
        backend = create_backend(package, "auto", precision="fp32", batch="1,2,2", intra_op_threads=1)
    assert (backend.info.name, backend.info.device, backend.info.precision) == ("trt", "cuda:0", "fp32")
    assert backend.info.max_batch_size == 2
    assert any(
        "runs on backend trt on cuda:0 (TensorRT 10.99.0, fp32, batch 1..2)" in r.message for r in caplog.records
    )
    backend.close()


def test_auto_falls_from_tensorrt_to_onnxruntime_cuda(package, fake_tensorrt, monkeypatch, caplog) -> None:
    fake_tensorrt.fail_build = True
    ProviderScenario(GPU_BUILD).install(monkeypatch)
    backend = create_backend(package, "auto")
    assert (backend.info.name, backend.info.device) == ("onnx", "cuda:0")
    assert backend.info.providers[0] == "CUDAExecutionProvider"
    assert any("TensorRT is not usable here" in r.message for r in caplog.records)


@pytest.mark.parametrize(
    ("build", "device"),
    [(GPU_BUILD, "cuda:0"), (CPU_BUILD, "cpu")],  # onnxruntime-gpu, then onnxruntime alone: the CPU, loudly
)
def test_auto_falls_back_when_the_engine_cache_cannot_be_written(
    package, fake_tensorrt, tmp_path, monkeypatch, caplog, build, device
) -> None:
    make_read_only(monkeypatch, tmp_path / "cache")  # the engine cache folder, empty
    ProviderScenario(build).install(monkeypatch)
    backend = create_backend(package, "auto")
    assert (backend.info.name, backend.info.device) == ("onnx", device)
    warnings = [r.message for r in caplog.records if r.levelno == logging.WARNING]
    assert any("TensorRT is not usable here" in m and "Cannot write the TensorRT engine cache" in m for m in warnings)
    assert (device == "cpu") == any("no GPU backend is usable" in m for m in warnings)


def test_auto_falls_back_when_tensorrt_refuses_the_onnx(package, fake_tensorrt, monkeypatch, caplog) -> None:
    def refuse(parser, path: str) -> bool:  # noqa: ANN001
        parser.errors.append("onnx2trt: unsupported operator")
        return False

    monkeypatch.setattr(fake_tensorrt.OnnxParser, "parse_from_file", refuse)
    ProviderScenario(GPU_BUILD).install(monkeypatch)
    backend = create_backend(package, "auto")
    assert (backend.info.name, backend.info.device) == ("onnx", "cuda:0")
    warnings = [r.message for r in caplog.records if r.levelno == logging.WARNING]
    assert any("TensorRT is not usable here" in m and "unsupported operator" in m for m in warnings)


@pytest.mark.parametrize(
    ("error", "falls_back"),
    [
        (BackendUnavailableError("no CUDA device"), True),
        (MissingDependencyError("tensorrt", "trt", "The TensorRT backend"), True),
        (CacheNotWritableError("Cannot write the TensorRT engine cache folder"), True),
        (InvalidModelFileError("TensorRT could not parse the ONNX"), True),
        (CorruptedEngineError("the package's engine.plan was built for another GPU"), True),
        (InvalidParameterError("precision must be one of auto, fp16, fp32"), False),  # the same on every backend
        (NotYOLOv5SegModelError("not a YOLOv5-seg model"), False),  # the model, not the backend
        (ClassNamesMismatchError("3 class names for 80 classes"), False),  # the model package
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else str(value),
)
def test_auto_falls_back_on_exactly_the_errors_that_mean_cannot_run_here(
    package, fake_tensorrt, monkeypatch, error: Exception, falls_back: bool
) -> None:
    def fail(*args: object) -> None:
        raise error

    monkeypatch.setattr(backends, "_load_trt", fail)
    ProviderScenario(CPU_BUILD).install(monkeypatch)
    if falls_back:
        assert create_backend(package, "auto").info.device == "cpu"
    else:
        with pytest.raises(type(error)):
            create_backend(package, "auto")


def test_auto_raises_a_file_the_cpu_cannot_load_as_it_is(package, no_tensorrt, monkeypatch) -> None:
    def fail(*args: object) -> None:
        raise InvalidModelFileError("could not be loaded as an ONNX model")

    monkeypatch.setattr(backends, "_load_onnx", fail)
    ProviderScenario(CPU_BUILD).install(monkeypatch)
    with pytest.raises(InvalidModelFileError):
        create_backend(package, "auto")


def test_auto_uses_onnxruntime_cuda_without_tensorrt(package, no_tensorrt, monkeypatch) -> None:
    ProviderScenario(GPU_BUILD).install(monkeypatch)
    backend = create_backend(package, "auto")
    assert (backend.info.name, backend.info.device) == ("onnx", "cuda:0")


def test_auto_catches_silent_cpu_fallback_and_says_so(package, no_tensorrt, monkeypatch, caplog) -> None:
    ProviderScenario(GPU_BUILD, reported=["CPUExecutionProvider"]).install(monkeypatch)
    backend = create_backend(package, "auto")
    assert (backend.info.name, backend.info.device) == ("onnx", "cpu")
    warnings = [r.message for r in caplog.records if r.levelno == logging.WARNING]
    assert any("ONNX Runtime CUDA is not usable" in m and "could not load" in m for m in warnings)
    assert any("runs 'm.onnx'" in m or "on the CPU" in m for m in warnings)


def test_auto_with_cuda_device_never_falls_to_cpu(package, no_tensorrt, monkeypatch) -> None:
    ProviderScenario(GPU_BUILD, reported=["CPUExecutionProvider"]).install(monkeypatch)
    with pytest.raises(BackendUnavailableError, match="a GPU was requested"):
        create_backend(package, "auto", device="cuda")
    backend = create_backend(package, "auto", device="cuda", fallback_policy="warn")
    assert backend.info.device == "cpu"


def test_auto_with_raise_policy_needs_a_gpu(package, no_tensorrt, monkeypatch) -> None:
    ProviderScenario(CPU_BUILD).install(monkeypatch)
    with pytest.raises(BackendUnavailableError, match="tensorrt is not installed"):
        create_backend(package, "auto", fallback_policy="raise")


def test_auto_cpu_device_skips_gpu_backends(package, fake_tensorrt, monkeypatch) -> None:
    ProviderScenario(GPU_BUILD).install(monkeypatch)
    backend = create_backend(package, "auto", device="cpu")
    assert (backend.info.name, backend.info.device) == ("onnx", "cpu") and fake_tensorrt.builds == []


def test_auto_tensorrt_device_uses_the_ort_tensorrt_provider(package, no_tensorrt, monkeypatch) -> None:
    ProviderScenario(GPU_BUILD).install(monkeypatch)
    backend = create_backend(package, "auto", device="tensorrt:0")
    assert backend.info.providers[0] == "TensorrtExecutionProvider"


def test_onnx_default_device_picks_cuda_and_warns_on_fallback(package, monkeypatch, caplog) -> None:
    ProviderScenario(GPU_BUILD).install(monkeypatch)
    assert create_backend(package, "onnx").info.device == "cuda:0"
    ProviderScenario(GPU_BUILD, reported=["CPUExecutionProvider"]).install(monkeypatch)
    assert create_backend(package, "onnx").info.device == "cpu"
    assert any(r.levelno == logging.WARNING and "did not use it" in r.message for r in caplog.records)


def test_onnx_explicit_cuda_raises_on_fallback(package, monkeypatch) -> None:
    ProviderScenario(GPU_BUILD, reported=["CPUExecutionProvider"]).install(monkeypatch)
    with pytest.raises(BackendUnavailableError):
        create_backend(package, "onnx", device="cuda")


def test_trt_backend_explicit(package, fake_tensorrt) -> None:
    backend = create_backend(package, "trt", device="cuda:0", batch="1,1,4")
    assert backend.info.name == "trt" and backend.info.max_batch_size == 4
    backend.close()


def test_trt_backend_without_tensorrt_explains(package, monkeypatch) -> None:
    from workflows_yolov5_seg.errors import MissingDependencyError

    monkeypatch.setitem(__import__("sys").modules, "tensorrt", None)
    with pytest.raises(MissingDependencyError, match="pypi.nvidia.com"):
        create_backend(package, "trt")


@pytest.mark.parametrize(
    ("backend", "device", "options", "match"),
    [
        ("tflite", None, {}, "backend must be one of"),
        ("trt", "cpu", {}, "CUDA device"),
        ("trt", "tensorrt:0", {}, "CUDA device"),
        ("onnx", "cpu", {"precision": "fp16"}, "do not apply to backend='onnx'"),
        ("trt", None, {"intra_op_threads": 2}, "do not apply to backend='trt'"),
        ("auto", None, {"colour": "red"}, "Unknown backend option"),
        ("auto", "npu", {}, "device must be"),
    ],
)
def test_invalid_requests(package, backend, device, options, match) -> None:
    with pytest.raises(InvalidParameterError, match=match):
        create_backend(package, backend, device=device, **options)


def test_choice_is_readable_on_the_model(package, no_tensorrt, monkeypatch) -> None:
    ProviderScenario(CPU_BUILD).install(monkeypatch)
    model = YOLOv5SegModel(package, create_backend(package, "auto"))
    info = model.backend.info
    assert info.name == "onnx" and info.device == "cpu" and "CPUExecutionProvider" in info.providers
    assert info.as_dict()["name"] == "onnx" and info.as_dict()["input_dtype"] == "float32"
    assert describe(info).startswith("onnx on cpu (")


def test_from_pretrained_auto_runs_here(package) -> None:
    """On this machine (whatever it has), auto loads something and says what."""
    model = YOLOv5SegModel.from_pretrained(str(package.weights_path), backend="auto")
    assert model.backend.info.name in ("trt", "onnx")
    assert len(model(np.zeros((64, 64, 3), np.uint8))) == 1
    model.close()
