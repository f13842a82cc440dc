"""A caller's mistakes leave the block as the exception types Inference's HTTP server answers with 4xx (a missing model
404, a bad image or parameter 400), still our error classes with our messages; other errors pass unchanged (5xx).
Over real HTTP: tests/suites/test_serving.py."""

from __future__ import annotations

import pytest

from workflows_yolov5_seg.errors import (
    BackendUnavailableError,
    InvalidImageError,
    InvalidModelFileError,
    InvalidParameterError,
    ModelNotFoundError,
    RoboflowModelNotFoundError,
)

host_exceptions = pytest.importorskip("inference.core.exceptions", reason="needs the inference extra")
host_models_errors = pytest.importorskip("inference_models.errors", reason="needs the inference extra")

from workflows_yolov5_seg import served_errors  # noqa: E402 - its host types come with the inference extra


@pytest.mark.parametrize(
    ("error", "ours", "status", "served_type"),
    [
        (ModelNotFoundError("'m.onnx' does not exist."), ModelNotFoundError, 404, "Model"),
        (RoboflowModelNotFoundError("Model p/1 not found.", 404), ModelNotFoundError, 404, "Model"),
        (InvalidImageError("The image is empty."), InvalidImageError, 400, "Image"),
        (InvalidParameterError("confidence must be ..."), InvalidParameterError, 400, "Parameter"),
    ],
    ids=["model-not-found", "roboflow-model-not-found", "invalid-image", "invalid-parameter"],
)
def test_caller_mistakes_get_the_hosts_4xx_type(error: Exception, ours: type, status: int, served_type: str) -> None:
    # The types Inference's server maps to these statuses.
    host = {404: host_models_errors.ModelNotFoundError, 400: host_exceptions.InvalidModelIDError}[status]
    served_class = {
        "Model": served_errors.ServedModelNotFoundError,
        "Image": served_errors.ServedInvalidImageError,
        "Parameter": served_errors.ServedInvalidParameterError,
    }[served_type]
    with pytest.raises(served_class) as caught:
        with served_errors.caller_errors_as_served_types():
            raise error
    served = caught.value
    assert isinstance(served, host) and isinstance(served, ours) and served.__cause__ is error
    assert str(served) == str(error) and served._help_url is None


@pytest.mark.parametrize(
    "error",
    [BackendUnavailableError("no GPU"), InvalidModelFileError("not ONNX"), ValueError("a bug"), KeyError("k")],
    ids=["backend-unavailable", "invalid-model-file", "value-error", "key-error"],
)
def test_other_errors_pass_unchanged(error: Exception) -> None:
    with pytest.raises(type(error)) as caught:
        with served_errors.caller_errors_as_served_types():
            raise error
    assert caught.value is error


def test_an_error_already_served_passes_unchanged() -> None:
    served = served_errors.ServedInvalidImageError("The image is empty.")
    with pytest.raises(served_errors.ServedInvalidImageError) as caught:
        with served_errors.caller_errors_as_served_types():
            raise served
    assert caught.value is served and caught.value.__cause__ is None


def test_every_mapping_is_to_a_subclass_of_ours() -> None:
    assert [ours for ours, _ in served_errors.SERVED_ERRORS] == [
        ModelNotFoundError,
        InvalidImageError,
        InvalidParameterError,
    ]
    for ours, served in served_errors.SERVED_ERRORS:
        assert issubclass(served, ours)
    with served_errors.caller_errors_as_served_types():
        pass  # no error: nothing happens
