"""The backend contract: what ``BackendInfo`` reports, and ``warmup`` turning a failed first run into
``BackendUnavailableError`` at load time."""

from __future__ import annotations

import numpy as np
import pytest

from workflows_yolov5_seg.backends import create_backend
from workflows_yolov5_seg.backends.base import Backend, BackendInfo, parse_device
from workflows_yolov5_seg.backends.onnx import OnnxRuntimeBackend, execution_providers
from workflows_yolov5_seg.backends.tensorrt import load_tensorrt_backend, parse_cuda_device
from workflows_yolov5_seg.errors import BackendUnavailableError, InvalidParameterError
from workflows_yolov5_seg.model_package import load_model_package

from support.fake_tensorrt import FakeCuda, FakeTrt
from support.models import make_rectangle_model

INFO = BackendInfo("trt", "cuda:0", (320, 256), np.dtype(np.float16), 2, 8, ("TensorRT 10.8.0",), "fp16")


class Recording(Backend):
    """Records the batches it is given; raises ``error`` if set."""

    def __init__(self, info: BackendInfo, error: Exception | None = None) -> None:
        self.info = info
        self.error = error
        self.batches: list[np.ndarray] = []

    def infer(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.batches.append(batch)
        if self.error is not None:
            raise self.error
        return np.zeros((len(batch), 1, 40), np.float32), np.zeros((len(batch), 32, 80, 64), np.float32)

    def close(self) -> None:
        pass


def test_info_reports_the_batch_range_and_a_json_summary() -> None:
    assert not INFO.static_batch
    assert BackendInfo("onnx", "cpu", (320, 320), np.dtype(np.float32), 4, 4).static_batch
    assert INFO.as_dict() == {
        "name": "trt",
        "device": "cuda:0",
        "providers": ["TensorRT 10.8.0"],
        "precision": "fp16",
        "input_hw": [320, 256],
        "input_dtype": "float16",
        "min_batch_size": 2,
        "max_batch_size": 8,
    }


def test_warmup_runs_one_zero_batch_of_the_smallest_size() -> None:
    backend = Recording(INFO)
    backend.warmup()
    [batch] = backend.batches
    assert batch.shape == (2, 3, 320, 256) and batch.dtype == np.float16 and not batch.any()


def test_a_failed_warmup_says_which_backend_could_not_run() -> None:
    cause = RuntimeError("CUDA error: no kernel image is available " + "x" * 1000)
    with pytest.raises(BackendUnavailableError) as caught:
        Recording(INFO, cause).warmup()
    message = str(caught.value)
    assert message.startswith(
        "trt on cuda:0 (TensorRT 10.8.0) could not run the model: RuntimeError: CUDA error: no kernel image"
    )
    assert len(message) < 400 and caught.value.__cause__ is cause


def test_a_backend_must_implement_infer_and_close() -> None:
    class NoClose(Backend):
        def infer(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            raise NotImplementedError

    with pytest.raises(TypeError, match="close"):
        NoClose()  # type: ignore[abstract]


@pytest.mark.parametrize("name", ["onnx", "trt"])
def test_every_backend_refuses_to_run_once_closed(tmp_path, name: str) -> None:
    package = load_model_package(make_rectangle_model(tmp_path / "m.onnx", names={0: "a", 1: "b", 2: "c"}))
    if name == "onnx":
        backend: Backend = OnnxRuntimeBackend(package, "cpu")
    else:
        backend = load_tensorrt_backend(package, cache_dir=tmp_path / "cache", trt=FakeTrt(), cuda=FakeCuda())
    height, width = backend.info.input_hw
    batch = np.zeros((1, 3, height, width), np.float32)
    backend.infer(batch)
    backend.close()
    with pytest.raises(BackendUnavailableError, match=f"This {name} backend on .* was closed; load the model again"):
        backend.infer(batch)


@pytest.mark.parametrize(
    ("device", "expected"),
    [
        ("cpu", ("cpu", 0)),
        ("cuda", ("cuda", 0)),
        ("cuda:1", ("cuda", 1)),
        (" CUDA:12 ", ("cuda", 12)),  # any case, spaces around
        ("tensorrt", ("tensorrt", 0)),
        ("TensorRT:2", ("tensorrt", 2)),
    ],
)
def test_the_device_grammar(device: str, expected: tuple[str, int]) -> None:
    assert parse_device(device) == expected


@pytest.mark.parametrize(
    "device",
    [
        "cpu:0",  # the CPU has no index
        "cpu:1",
        "0",  # a bare index: cuda:0
        "3",
        "gpu",  # cuda
        "gpu:1",
        "cuda:",
        "cuda:x",
        "cuda:-1",
        "cuda:\u00b2",  # a digit, but not 0-9
        "rocm",
        "",
        None,
        0,
    ],
)
def test_every_entry_point_refuses_the_same_devices_the_same_way(tmp_path, device: object) -> None:
    package = load_model_package(make_rectangle_model(tmp_path / "m.onnx", names={0: "a", 1: "b", 2: "c"}))
    attempts = [lambda: parse_device(device), lambda: execution_providers(device)]  # type: ignore[arg-type]
    if device is not None:  # None means "the default" to create_backend and the TensorRT backend
        attempts += [
            lambda: create_backend(package, "auto", device=device),  # type: ignore[arg-type]
            lambda: create_backend(package, "onnx", device=device),  # type: ignore[arg-type]
            lambda: parse_cuda_device(device),  # type: ignore[arg-type]
        ]
    for attempt in attempts:
        with pytest.raises(InvalidParameterError, match=r"device must be cpu, cuda\[:N\] or tensorrt\[:N\]"):
            attempt()
