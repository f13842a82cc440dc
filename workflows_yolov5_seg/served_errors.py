"""Our errors as the exception types Inference's HTTP server answers with 4xx.

Inference's server turns a step error into an HTTP status by the type of the error the step raised
(``inference/core/interfaces/workflows_step_error_handlers.py``): its own ``InvalidModelIDError`` gives 400 and
inference-models' ``ModelNotFoundError`` 404; a type it does not know gives 500. A caller's mistake is re-raised as
a subclass of both our error and Inference's type, so a library caller still catches ours and the server answers
4xx with our message. Server faults (a backend that cannot run, a cache that cannot be written, a setting that does
not parse, the Roboflow API unreachable) keep their type and stay 5xx.

- 404: ``ModelNotFoundError`` (and subclasses);
- 400: ``InvalidImageError``, ``InvalidParameterError``, ``InvalidModelFileError``, ``NotYOLOv5SegModelError``,
  ``ClassNamesMismatchError``, ``InvalidModelPackageError``, ``UntrustedModelError`` (pickles, paths outside the
  model roots).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from workflows_yolov5_seg.errors import (
    ClassNamesMismatchError,
    InvalidImageError,
    InvalidModelFileError,
    InvalidModelPackageError,
    InvalidParameterError,
    ModelNotFoundError,
    NotYOLOv5SegModelError,
    UntrustedModelError,
    YOLOv5SegError,
)

try:  # both come with the Workflows engine; without it there is no server to adapt to
    from inference.core.exceptions import InvalidModelIDError as _HostBadRequestError
    from inference_models.errors import ModelNotFoundError as _HostNotFoundError
except ImportError:  # pragma: no cover
    HOST_TYPES: tuple[tuple[tuple[type[YOLOv5SegError], ...], type[Exception]], ...] = ()
else:
    # First match wins: a RoboflowModelNotFoundError is a ModelNotFoundError (404) before anything else.
    HOST_TYPES = (
        ((ModelNotFoundError,), _HostNotFoundError),
        (
            (
                InvalidImageError,
                InvalidParameterError,
                InvalidModelFileError,
                NotYOLOv5SegModelError,
                ClassNamesMismatchError,
                InvalidModelPackageError,
                UntrustedModelError,
            ),
            _HostBadRequestError,
        ),
    )


class _ServedError:
    """Mixin keeping our message as the text Inference's error handlers report."""

    def __init__(self, message: str) -> None:
        Exception.__init__(self, message)
        self._help_url = None

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


_SERVED_TYPES: dict[tuple[type[Exception], type[Exception]], type[Exception]] = {}


def served_type(error_type: type[Exception], host_type: type[Exception]) -> type[Exception]:
    """The subclass of ``error_type`` and Inference's ``host_type`` (made once per pair)."""
    key = (error_type, host_type)
    if key not in _SERVED_TYPES:
        _SERVED_TYPES[key] = type(
            f"Served{error_type.__name__}",
            (_ServedError, error_type, host_type),
            {"__module__": __name__, "__doc__": f":class:`{error_type.__name__}` as Inference's server reports it."},
        )
    return _SERVED_TYPES[key]


def as_served(error: Exception) -> Exception | None:
    """``error`` as the type Inference's server answers 4xx, or ``None`` when it is not a caller's mistake."""
    for ours, host_type in HOST_TYPES:
        if isinstance(error, ours):
            if isinstance(error, host_type):
                return None
            served = served_type(type(error), host_type)(str(error))
            served.__dict__.update(error.__dict__)  # keeps attributes such as a status code
            return served
    return None


@contextmanager
def caller_errors_as_served_types() -> Iterator[None]:
    """Re-raises the caller's mistakes as the types the server maps to 4xx; the message and our error class stay."""
    try:
        yield
    except YOLOv5SegError as error:
        served = as_served(error)
        if served is None:
            raise
        raise served from error
