"""Our caller-mistake errors become the status codes Inference's server answers, decided by Inference's own step-error
handler (no server needed; ``tests/test_authorization_http.py`` and ``tests/test_server.py`` check the real one)."""

from __future__ import annotations

import pytest

from workflows_yolov5_seg.errors import (
    InvalidImageError,
    InvalidParameterError,
    ModelNotFoundError,
    RoboflowAPIError,
    RoboflowAPIKeyMissingError,
    RoboflowKeyNotConfirmedError,
    RoboflowModelNotFoundError,
    RoboflowUnauthorizedError,
)
from workflows_yolov5_seg.served_errors import caller_errors_as_served_types

handlers = pytest.importorskip("inference.core.interfaces.workflows_step_error_handlers", reason="needs Inference")


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
        (RoboflowAPIKeyMissingError("needs an API key"), 401),
        (RoboflowUnauthorizedError("refused the API key", 401), 401),
        (RoboflowUnauthorizedError("contains characters an API key cannot have"), 401),
        (RoboflowUnauthorizedError("refused access to the model", 403), 403),
        (RoboflowKeyNotConfirmedError("has not been confirmed"), 403),
        (RoboflowUnauthorizedError("needs credits", 402), 402),
        (RoboflowUnauthorizedError("usage is paused", 423), 423),
        (RoboflowAPIError("Roboflow answered 500", 500), None),  # a server-side failure stays a 500
    ],
)
def test_status_per_error(error: Exception, status: int | None) -> None:
    got, served = served_status(error)
    assert got == status
    assert isinstance(served, type(error))  # library callers still catch ours
    assert str(served) == str(error)
    if isinstance(error, RoboflowAPIError):
        assert served.status == error.status
