"""ONNX Runtime session settings of the hot path (``default_session_options``): defaults, environment overrides,
explicit arguments, bad values."""

from __future__ import annotations

import onnxruntime
import pytest

from workflows_yolov5_seg import settings
from workflows_yolov5_seg.backends.onnx import OnnxRuntimeBackend, default_session_options
from workflows_yolov5_seg.errors import InvalidParameterError, InvalidSettingError

VARIABLES = (
    settings.ORT_THREADS,
    settings.ORT_GRAPH_OPTIMIZATION,
    settings.ORT_EXECUTION_MODE,
    settings.ORT_INTER_OP_THREADS,
    settings.ORT_MEMORY_ARENA,
    settings.ORT_SPINNING,
)


@pytest.fixture(autouse=True)
def unset(monkeypatch: pytest.MonkeyPatch) -> None:
    for setting in VARIABLES:
        monkeypatch.delenv(setting.name, raising=False)


def spinning(options: onnxruntime.SessionOptions) -> str:
    return options.get_session_config_entry("session.intra_op.allow_spinning")


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
def test_each_setting_overrides_its_default(variable: str, value: str, check, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv(variable, value)
    assert check(default_session_options(onnxruntime))


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
def test_bad_values_name_the_variable(variable: str, value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(InvalidSettingError, match=variable):
        default_session_options(onnxruntime)


def test_bad_argument() -> None:
    with pytest.raises(InvalidParameterError, match="graph_optimization"):
        default_session_options(onnxruntime, graph_optimization="max")


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
