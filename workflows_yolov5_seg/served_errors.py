"""Our caller-mistake errors as the exception types Inference's HTTP server maps to 4xx answers.

Inference's server turns a step error into an HTTP status by the type of the error the step raised: its own
``InvalidModelIDError`` (400) and inference-models' ``ModelNotFoundError`` (404); anything else is a 500. Our typed
errors for a caller's mistake (a missing model, a bad image, a bad parameter) are re-raised as subclasses of both
ours and Inference's type, so a library caller still catches ours and the server answers 4xx with our message.
Server faults (a backend that cannot run, a corrupt engine) keep their type and stay 5xx.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from workflows_yolov5_seg.errors import InvalidImageError, InvalidParameterError, ModelNotFoundError

try:  # both come with the Workflows engine; without it there is no server to adapt to
    from inference.core.exceptions import InvalidModelIDError as _HostBadRequestError
    from inference_models.errors import ModelNotFoundError as _HostModelNotFoundError
except ImportError:  # pragma: no cover
    _HostModelNotFoundError = _HostBadRequestError = None


class _ServedError:
    """Mixin keeping our message as the text Inference's error handlers report."""

    def __init__(self, message: str) -> None:
        Exception.__init__(self, message)
        self._help_url = None

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


if _HostModelNotFoundError is not None:

    class ServedModelNotFoundError(_ServedError, ModelNotFoundError, _HostModelNotFoundError):
        """:class:`ModelNotFoundError` that Inference's HTTP server reports as a 404 (not a 500) step error."""

    class ServedInvalidImageError(_ServedError, InvalidImageError, _HostBadRequestError):
        """:class:`InvalidImageError` that Inference's HTTP server reports as a 400 step error."""

    class ServedInvalidParameterError(_ServedError, InvalidParameterError, _HostBadRequestError):
        """:class:`InvalidParameterError` that Inference's HTTP server reports as a 400 step error."""

    SERVED_ERRORS: tuple[tuple[type[Exception], type[Exception]], ...] = (
        (ModelNotFoundError, ServedModelNotFoundError),
        (InvalidImageError, ServedInvalidImageError),
        (InvalidParameterError, ServedInvalidParameterError),
    )
else:  # pragma: no cover
    SERVED_ERRORS = ()


@contextmanager
def caller_errors_as_served_types() -> Iterator[None]:
    """Re-raises the caller's mistakes (missing model, bad image, bad parameter) as the types the server maps to
    4xx; the message and our error class stay the same."""
    try:
        yield
    except (ModelNotFoundError, InvalidImageError, InvalidParameterError) as error:
        for ours, served in SERVED_ERRORS:
            if isinstance(error, ours) and not isinstance(error, served):
                raise served(str(error)) from error
        raise
