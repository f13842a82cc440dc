"""ONNX Runtime backend: providers per device, silent-CPU-fallback detection, the TensorRT provider's cache.

GPU provider lists are simulated (support/ort_fakes.py) because this CI has no GPU; the test marked ``gpu`` at the end
runs the real CUDA provider (skipped, with the reason, without onnxruntime-gpu and a GPU).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnxruntime
import pytest

from workflows_yolov5_seg import settings
from workflows_yolov5_seg.backends.onnx import (
    OnnxRuntimeBackend,
    check_providers_in_use,
    default_session_options,
    execution_providers,
)
from workflows_yolov5_seg.errors import BackendUnavailableError, InvalidParameterError, InvalidSettingError
from workflows_yolov5_seg.model_package import load_model_package

from support.models import make_rectangle_model, make_two_box_model
from support.ort_fakes import CPU_BUILD, GPU_BUILD, ProviderScenario


@pytest.fixture()
def model(tmp_path: Path) -> Path:
    return make_rectangle_model(tmp_path / "m.onnx", names={0: "a", 1: "b", 2: "c"})


# ------------------------------------------------------------------------------------------------ pure functions


def test_check_providers_in_use_passes_when_used() -> None:
    assert check_providers_in_use("CUDAExecutionProvider", ["CUDAExecutionProvider", "CPUExecutionProvider"], "raise")


def test_check_providers_in_use_raises_on_silent_fallback() -> None:
    with pytest.raises(BackendUnavailableError, match="could not load") as error:
        check_providers_in_use("CUDAExecutionProvider", ["CPUExecutionProvider"], "raise", GPU_BUILD)
    assert "CUDA 12" in str(error.value) and "device='cpu'" in str(error.value)


def test_check_providers_in_use_explains_cpu_build() -> None:
    with pytest.raises(BackendUnavailableError, match="does not include CUDAExecutionProvider"):
        check_providers_in_use("CUDAExecutionProvider", ["CPUExecutionProvider"], "raise", CPU_BUILD)


def test_check_providers_in_use_warns_loudly(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert not check_providers_in_use("CUDAExecutionProvider", ["CPUExecutionProvider"], "warn", GPU_BUILD)
    [record] = caplog.records
    assert record.levelno == logging.WARNING and "much slower" in record.message


def test_check_providers_in_use_tensorrt_falls_to_cuda() -> None:
    with pytest.raises(BackendUnavailableError, match="libnvinfer"):
        check_providers_in_use(
            "TensorrtExecutionProvider", ["CUDAExecutionProvider", "CPUExecutionProvider"], "raise", GPU_BUILD
        )


def test_check_providers_in_use_rejects_bad_policy() -> None:
    with pytest.raises(InvalidParameterError):
        check_providers_in_use("CUDAExecutionProvider", ["CPUExecutionProvider"], "ignore")  # type: ignore[arg-type]


def test_execution_providers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert execution_providers("cpu") == ["CPUExecutionProvider"]
    assert execution_providers("cuda:1") == [("CUDAExecutionProvider", {"device_id": 1}), "CPUExecutionProvider"]
    monkeypatch.setenv(settings.CACHE_DIR.name, str(tmp_path / "cache"))
    trt, cuda, cpu = execution_providers("tensorrt:0", trt_fp16=False)
    assert (
        trt[0] == "TensorrtExecutionProvider" and cuda[0] == "CUDAExecutionProvider" and cpu == "CPUExecutionProvider"
    )
    options = trt[1]
    assert options["trt_engine_cache_enable"] and options["trt_timing_cache_enable"]
    assert options["trt_engine_cache_path"] == str(tmp_path / "cache" / "ort-trt") == options["trt_timing_cache_path"]
    assert options["trt_fp16_enable"] is False
    assert (tmp_path / "cache" / "ort-trt").stat().st_mode & 0o777 == 0o700
    explicit = execution_providers("tensorrt:0", cache_dir=tmp_path / "mine")[0][1]
    assert explicit["trt_engine_cache_path"] == str(tmp_path / "mine")


# ------------------------------------------------------------------------------------------------ sessions


def test_cpu_session(model: Path) -> None:
    backend = OnnxRuntimeBackend(load_model_package(model), device="cpu")
    assert backend.info.name == "onnx" and backend.info.device == "cpu"
    assert "CPUExecutionProvider" in backend.info.providers
    instances, protos = backend.infer(np.zeros((2, 3, 320, 320), np.float32))
    assert instances.shape == (2, 1, 40) and protos.shape == (2, 32, 80, 80)
    backend.warmup()


def test_cuda_session_reports_gpu(model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scenario = ProviderScenario(GPU_BUILD).install(monkeypatch)
    backend = OnnxRuntimeBackend(load_model_package(model), device="cuda:1")
    assert scenario.requested == [[("CUDAExecutionProvider", {"device_id": 1}), "CPUExecutionProvider"]]
    assert backend.info.device == "cuda:1" and backend.info.providers[0] == "CUDAExecutionProvider"
    assert scenario.preloads == 1
    assert backend.info.as_dict()["providers"] == ["CUDAExecutionProvider", "CPUExecutionProvider"]


def test_cuda_silent_fallback_raises_by_default(model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ProviderScenario(GPU_BUILD, reported=["CPUExecutionProvider"]).install(monkeypatch)
    with pytest.raises(BackendUnavailableError, match="CUDAExecutionProvider is built in but could not load"):
        OnnxRuntimeBackend(load_model_package(model), device="cuda")


def test_cuda_silent_fallback_can_warn(
    model: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    ProviderScenario(GPU_BUILD, reported=["CPUExecutionProvider"]).install(monkeypatch)
    backend = OnnxRuntimeBackend(load_model_package(model), device="cuda", fallback_policy="warn")
    assert backend.info.device == "cpu" and backend.info.providers == ("CPUExecutionProvider",)
    assert any(r.levelno == logging.WARNING and "did not use it" in r.message for r in caplog.records)


def test_cpu_only_onnxruntime_with_cuda_requested(model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scenario = ProviderScenario(CPU_BUILD).install(monkeypatch)
    with pytest.raises(BackendUnavailableError, match="does not include CUDAExecutionProvider"):
        OnnxRuntimeBackend(load_model_package(model), device="cuda")
    assert scenario.requested == [["CPUExecutionProvider"]]


def test_tensorrt_provider_session(model: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    scenario = ProviderScenario(GPU_BUILD).install(monkeypatch)
    backend = OnnxRuntimeBackend(load_model_package(model), device="tensorrt", cache_dir=tmp_path / "ort-trt")
    requested = scenario.requested[0]
    assert [p if isinstance(p, str) else p[0] for p in requested] == GPU_BUILD
    assert requested[0][1]["trt_engine_cache_path"] == str(tmp_path / "ort-trt")
    assert backend.info.device == "cuda:0" and backend.info.providers[0] == "TensorrtExecutionProvider"


def test_cpu_device_never_preloads_cuda(model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scenario = ProviderScenario(GPU_BUILD).install(monkeypatch)
    OnnxRuntimeBackend(load_model_package(model), device="cpu")
    assert scenario.preloads == 0 and scenario.requested == [["CPUExecutionProvider"]]


def test_infer_casts_to_the_model_dtype(tmp_path: Path) -> None:
    from onnx import TensorProto

    path = make_rectangle_model(tmp_path / "h.onnx", names=None, input_type=TensorProto.FLOAT16)
    backend = OnnxRuntimeBackend(load_model_package(path))
    assert backend.info.input_dtype == np.float16
    instances, protos_out = backend.infer(np.zeros((1, 3, 320, 320), np.float32))
    assert instances.dtype == np.float32 and protos_out.dtype == np.float32


@pytest.mark.parametrize("options", [{"fallback_policy": "ignore"}, {"max_dynamic_batch": 0}])
def test_rejects_bad_options(model: Path, options: dict) -> None:
    with pytest.raises(InvalidParameterError):
        OnnxRuntimeBackend(load_model_package(model), **options)


# ------------------------------------------------------------------------------------------------ real CUDA (gpu)


@pytest.fixture(scope="module")
def ort_cuda() -> None:
    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        pytest.skip(
            "onnxruntime has no CUDAExecutionProvider (install onnxruntime-gpu, alone); providers: "
            f"{onnxruntime.get_available_providers()}"
        )


@pytest.mark.gpu
def test_onnxruntime_cuda_really_runs_on_the_gpu(ort_cuda: None, tmp_path: Path) -> None:
    model = make_two_box_model(tmp_path / "m.onnx", second_objectness=0.8, names={0: "a", 1: "b", 2: "c"})
    gpu = OnnxRuntimeBackend(load_model_package(model), device="cuda")  # raises if ONNX Runtime fell back to the CPU
    assert gpu.info.device == "cuda:0" and gpu.info.providers[0] == "CUDAExecutionProvider"
    batch = np.random.default_rng(0).random((2, 3, 320, 320), dtype=np.float32)
    for got, expected in zip(gpu.infer(batch), OnnxRuntimeBackend(load_model_package(model)).infer(batch), strict=True):
        np.testing.assert_allclose(got, expected, atol=1e-5)


# --- ONNX Runtime session settings of the hot path (default_session_options): defaults, environment overrides,
# explicit arguments, bad values.

VARIABLES = (
    settings.ORT_THREADS,
    settings.ORT_GRAPH_OPTIMIZATION,
    settings.ORT_EXECUTION_MODE,
    settings.ORT_INTER_OP_THREADS,
    settings.ORT_MEMORY_ARENA,
    settings.ORT_SPINNING,
)


@pytest.fixture
def unset(monkeypatch: pytest.MonkeyPatch) -> None:
    """No session setting in the environment: each test sets what it checks."""
    for setting in VARIABLES:
        monkeypatch.delenv(setting.name, raising=False)


def spinning(options: onnxruntime.SessionOptions) -> str:
    return options.get_session_config_entry("session.intra_op.allow_spinning")


@pytest.mark.usefixtures("unset")
def test_defaults_chosen_from_the_measurements() -> None:
    options = default_session_options(onnxruntime)
    assert options.graph_optimization_level == onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert options.execution_mode == onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    assert options.intra_op_num_threads == 0 and options.inter_op_num_threads == 0
    assert options.enable_cpu_mem_arena and options.enable_mem_pattern
    assert spinning(options) == "0"  # spinning threads cost 1.4-2.3x on the shared 2-core machine


@pytest.mark.parametrize(
    ("variable", "value", "check"),
    [
        ("WORKFLOWS_YOLOV5_SEG_ORT_THREADS", "1", lambda o: o.intra_op_num_threads == 1),
        (
            "WORKFLOWS_YOLOV5_SEG_ORT_GRAPH_OPTIMIZATION",
            "Extended",
            lambda o: o.graph_optimization_level == onnxruntime.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        ),
        (
            "WORKFLOWS_YOLOV5_SEG_ORT_GRAPH_OPTIMIZATION",
            "disable",
            lambda o: o.graph_optimization_level == onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL,
        ),
        (
            "WORKFLOWS_YOLOV5_SEG_ORT_EXECUTION_MODE",
            "parallel",
            lambda o: o.execution_mode == onnxruntime.ExecutionMode.ORT_PARALLEL,
        ),
        ("WORKFLOWS_YOLOV5_SEG_ORT_INTER_OP_THREADS", "2", lambda o: o.inter_op_num_threads == 2),
        ("WORKFLOWS_YOLOV5_SEG_ORT_MEMORY_ARENA", "false", lambda o: not o.enable_cpu_mem_arena),
        ("WORKFLOWS_YOLOV5_SEG_ORT_SPINNING", "yes", lambda o: spinning(o) == "1"),
    ],
)
@pytest.mark.usefixtures("unset")
def test_each_setting_overrides_its_default(variable: str, value: str, check, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv(variable, value)
    assert check(default_session_options(onnxruntime))


@pytest.mark.usefixtures("unset")
def test_arguments_win_over_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(settings.ORT_SPINNING.name, "true")
    monkeypatch.setenv(settings.ORT_GRAPH_OPTIMIZATION.name, "basic")
    options = default_session_options(onnxruntime, 1, spinning=False, graph_optimization="all")
    assert spinning(options) == "0" and options.intra_op_num_threads == 1
    assert options.graph_optimization_level == onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("WORKFLOWS_YOLOV5_SEG_ORT_GRAPH_OPTIMIZATION", "max"),  # not a level
        ("WORKFLOWS_YOLOV5_SEG_ORT_EXECUTION_MODE", "async"),  # not a mode
        ("WORKFLOWS_YOLOV5_SEG_ORT_INTER_OP_THREADS", "-1"),  # negative
        ("WORKFLOWS_YOLOV5_SEG_ORT_MEMORY_ARENA", "maybe"),  # not a boolean
    ],
)
@pytest.mark.usefixtures("unset")
def test_bad_values_name_the_variable(variable: str, value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(InvalidSettingError, match=variable):
        default_session_options(onnxruntime)


@pytest.mark.usefixtures("unset")
def test_bad_argument() -> None:
    with pytest.raises(InvalidParameterError, match="graph_optimization"):
        default_session_options(onnxruntime, graph_optimization="max")


@pytest.mark.usefixtures("unset")
def test_the_backend_runs_with_every_level(trained_model, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    import numpy as np

    from workflows_yolov5_seg.model_package import load_model_package

    package = load_model_package(trained_model)
    outputs = []
    for level in ("disable", "basic", "all"):
        monkeypatch.setenv(settings.ORT_GRAPH_OPTIMIZATION.name, level)
        backend = OnnxRuntimeBackend(package)
        outputs.append(backend.infer(np.full((1, 3, 320, 320), 0.5, np.float32))[0])
    np.testing.assert_allclose(outputs[0], outputs[2], rtol=1e-3, atol=1e-2)
