"""Our caller-mistake errors become the status codes Inference's server answers, decided by Inference's own step-error
handler (no server needed; ``tests/suites/test_authorization_http.py`` and ``tests/suites/test_serving.py`` check the
real one): still our error classes, with our messages and attributes; server faults pass unchanged (a 500)."""

from __future__ import annotations

import pytest

from workflows_yolov5_seg.errors import (
    BackendUnavailableError,
    CacheNotWritableError,
    ClassNamesMismatchError,
    InvalidImageError,
    InvalidModelFileError,
    InvalidModelPackageError,
    InvalidParameterError,
    InvalidSettingError,
    ModelNotFoundError,
    ModelPathNotAllowedError,
    NotYOLOv5SegModelError,
    RoboflowAPIError,
    RoboflowAPIKeyMissingError,
    RoboflowConnectionError,
    RoboflowKeyNotConfirmedError,
    RoboflowModelNotFoundError,
    RoboflowUnauthorizedError,
    UntrustedModelError,
)
from workflows_yolov5_seg.served_errors import as_served, caller_errors_as_served_types, host_type, served_type

from support.required import require_module

handlers = require_module("inference.core.interfaces.workflows_step_error_handlers", "Inference (the inference extra)")


def served_status(error: Exception) -> tuple[int | None, Exception]:
    """The HTTP status Inference's default step-error handler gives ``error`` once adapted (``None``: a 500)."""
    with pytest.raises(Exception) as raised:  # noqa: PT011 - whatever comes out is what the server sees
        with caller_errors_as_served_types():
            raise error
    served = raised.value
    try:
        handlers.resolve_step_error_handler()("seg", served)
    except Exception as handled:  # noqa: BLE001 - the handler raises the step error that carries the status
        return getattr(handled, "status_code", None), served
    return None, served


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (ModelNotFoundError("no such model"), 404),
        (RoboflowModelNotFoundError("unknown id", 404), 404),
        (InvalidImageError("bad image"), 400),
        (InvalidParameterError("bad parameter"), 400),
        (InvalidModelFileError("could not be loaded as an ONNX model"), 400),
        (NotYOLOv5SegModelError("not a YOLOv5-seg model"), 400),
        (ClassNamesMismatchError("predicts 3 classes but 2 class names"), 400),
        (InvalidModelPackageError("key 'network_input' is missing"), 400),
        (UntrustedModelError("a pickle is never loaded"), 400),
        (ModelPathNotAllowedError("local model paths are not allowed here"), 400),
        (RoboflowAPIKeyMissingError("needs an API key"), 401),
        (RoboflowUnauthorizedError("refused the API key", 401), 401),
        (RoboflowUnauthorizedError("contains characters an API key cannot have"), 401),
        (RoboflowUnauthorizedError("refused access to the model", 403), 403),
        (RoboflowKeyNotConfirmedError("has not been confirmed"), 403),
        (RoboflowUnauthorizedError("needs credits", 402), 402),
        (RoboflowUnauthorizedError("usage is paused", 423), 423),
        (RoboflowAPIError("Roboflow answered 500", 500), None),  # a server-side failure stays a 500
        (RoboflowConnectionError("unreachable"), None),
        (BackendUnavailableError("no GPU"), None),
        (CacheNotWritableError("cannot write the cache"), None),
        (InvalidSettingError("WORKFLOWS_YOLOV5_SEG_MAX_LOADED_MODELS='x' is not a valid value"), None),
    ],
)
def test_status_per_error(error: Exception, status: int | None) -> None:
    got, served = served_status(error)
    assert got == status
    assert isinstance(served, type(error))  # library callers still catch ours
    assert str(served) == str(error)
    if isinstance(error, RoboflowAPIError):
        assert served.status == error.status
    if status is None:  # a server fault keeps its very object
        assert served is error and host_type(error) is None and as_served(error) is None
    else:
        assert served.__cause__ is error and type(served) is served_type(type(error), host_type(error))


def test_served_types_are_made_once_per_pair() -> None:
    first, second = as_served(InvalidImageError("a")), as_served(InvalidImageError("b"))
    assert type(first) is type(second) and type(first).__name__ == "ServedInvalidImageError"
    assert first._help_url is None and str(second) == "b"


def test_an_error_already_served_or_not_ours_passes_unchanged() -> None:
    served = as_served(InvalidImageError("The image is empty."))
    assert served is not None and as_served(served) is None
    for error in (served, ValueError("a bug")):
        with pytest.raises(type(error)) as caught:
            with caller_errors_as_served_types():
                raise error
        assert caught.value is error and caught.value.__cause__ is None
    with caller_errors_as_served_types():
        pass  # no error: nothing happens
