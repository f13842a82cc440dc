"""The typed errors: one base class, the built-in types callers already catch, and the messages built here."""

from __future__ import annotations

import inspect

import pytest

from workflows_yolov5_seg import errors


def test_every_error_is_a_yolov5seg_error() -> None:
    classes = [value for value in vars(errors).values() if inspect.isclass(value) and issubclass(value, Exception)]
    assert len(classes) >= 20
    assert all(issubclass(cls, errors.YOLOv5SegError) for cls in classes)


@pytest.mark.parametrize(
    ("error", "bases"),
    [
        (errors.MissingDependencyError, (ImportError,)),
        (errors.ModelNotFoundError, (errors.ModelLoadError, FileNotFoundError)),
        (errors.UntrustedModelError, (errors.ModelLoadError, PermissionError)),
        (errors.ModelPathNotAllowedError, (errors.UntrustedModelError,)),
        (errors.CacheNotWritableError, (errors.ModelLoadError, PermissionError)),
        (errors.InvalidImageError, (ValueError,)),
        (errors.InvalidParameterError, (ValueError,)),
        (errors.InvalidSettingError, (ValueError,)),
        (errors.RoboflowAPIError, (errors.ModelLoadError,)),
        (errors.RoboflowUnauthorizedError, (errors.RoboflowAPIError, PermissionError)),
        (errors.RoboflowKeyNotConfirmedError, (errors.RoboflowUnauthorizedError,)),
        (errors.RoboflowModelNotFoundError, (errors.RoboflowAPIError, errors.ModelNotFoundError)),
        (errors.RoboflowConnectionError, (errors.RoboflowAPIError, ConnectionError)),
        (errors.DownloadIntegrityError, (errors.RoboflowAPIError,)),
    ],
    ids=lambda value: value.__name__ if inspect.isclass(value) else "",
)
def test_errors_are_also_the_builtin_types_callers_catch(error: type, bases: tuple[type, ...]) -> None:
    assert all(issubclass(error, base) for base in bases)


def test_missing_dependency_says_what_to_install() -> None:
    error = errors.MissingDependencyError("pycocotools", "evaluate", "The evaluation command")
    assert str(error) == (
        "The evaluation command needs the Python package 'pycocotools', which is not installed. "
        "Install it with: pip install 'workflows-yolov5-seg[evaluate]'"
    )
    assert (error.package, error.extra) == ("pycocotools", "evaluate")


def test_roboflow_errors_carry_the_status() -> None:
    assert errors.RoboflowAPIError("refused", 429).status == 429
    assert errors.RoboflowConnectionError("unreachable").status is None


def test_check_choice() -> None:
    assert errors.check_choice("backend", "onnx", ("auto", "onnx", "trt")) == "onnx"
    with pytest.raises(errors.InvalidParameterError) as caught:
        errors.check_choice("backend", "cuda", ("auto", "onnx", "trt"))
    assert str(caught.value) == "backend must be one of auto, onnx, trt, got 'cuda'."
    with pytest.raises(errors.InvalidParameterError, match=r"got None\. onnx runs anywhere\.$"):
        errors.check_choice("backend", None, ("auto", "onnx"), hint="onnx runs anywhere.")
