"""Our errors as the exception types Inference's HTTP server answers with 4xx.

Inference's server turns a step error into an HTTP status by the type of the error the step raised
(``inference/core/interfaces/workflows_step_error_handlers.py``): its own ``InvalidModelIDError`` (400),
``RoboflowAPINotAuthorizedError`` (401), ``PaymentRequiredError`` (402), ``RoboflowAPIForbiddenError`` (403),
``RoboflowAPIUsagePausedError`` (423) and inference-models' ``ModelNotFoundError`` (404); a type it does not know
gives 500. A caller's mistake is re-raised as a subclass of both our error and Inference's type, so a library caller
still catches ours and the server answers 4xx with our message:

- 404: ``ModelNotFoundError`` (a missing path, ``RoboflowModelNotFoundError``);
- 400: ``InvalidImageError``, ``InvalidParameterError``, ``InvalidModelFileError``, ``NotYOLOSegModelError``,
  ``ClassNamesMismatchError``, ``InvalidModelPackageError``, ``UntrustedModelError`` (pickles, paths outside the
  model roots);
- 401: ``RoboflowAPIKeyMissingError``; ``RoboflowUnauthorizedError`` for a refused (401) or malformed key;
- 403: ``RoboflowUnauthorizedError`` for a key refused access to the model (403); ``RoboflowKeyNotConfirmedError``;
- 402, 423: ``RoboflowUnauthorizedError`` for a workspace out of credits or paused.

Server faults (a backend that cannot run, a cache that cannot be written, a setting that does not parse, the
Roboflow API failing for a model not cached) keep their type and stay 5xx.
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
    NotYOLOSegModelError,
    RoboflowAPIKeyMissingError,
    RoboflowKeyNotConfirmedError,
    RoboflowUnauthorizedError,
    UntrustedModelError,
    YOLOv5SegError,
)

BAD_REQUEST_ERRORS = (
    InvalidImageError,
    InvalidParameterError,
    InvalidModelFileError,
    NotYOLOSegModelError,
    ClassNamesMismatchError,
    InvalidModelPackageError,
    UntrustedModelError,
)

try:  # all come with the Workflows engine; without it there is no server to adapt to
    from inference.core.exceptions import InvalidModelIDError as _HostBadRequestError
    from inference.core.exceptions import RoboflowAPIForbiddenError as _HostForbiddenError
    from inference.core.exceptions import RoboflowAPINotAuthorizedError as _HostNotAuthorizedError
    from inference_models.errors import ModelNotFoundError as _HostNotFoundError
except ImportError:  # pragma: no cover
    HOST_AVAILABLE = False
else:
    HOST_AVAILABLE = True
    # Inference 1.1.2 added 402 and 423 (README "Compatibility"); before, a workspace out of credits or paused is 403.
    try:
        from inference.core.exceptions import PaymentRequiredError as _HostPaymentRequiredError
        from inference.core.exceptions import RoboflowAPIUsagePausedError as _HostUsagePausedError
    except ImportError:  # pragma: no cover - Inference < 1.1.2
        _HostPaymentRequiredError = _HostUsagePausedError = _HostForbiddenError


def host_type(error: Exception) -> type[Exception] | None:
    """Inference's exception type that gives ``error`` its 4xx answer, or ``None`` for a server fault."""
    if not HOST_AVAILABLE:  # pragma: no cover
        return None
    if isinstance(error, ModelNotFoundError):
        return _HostNotFoundError
    if isinstance(error, RoboflowAPIKeyMissingError):
        return _HostNotAuthorizedError
    if isinstance(error, RoboflowKeyNotConfirmedError):
        return _HostForbiddenError
    if isinstance(error, RoboflowUnauthorizedError):
        by_status = {403: _HostForbiddenError, 402: _HostPaymentRequiredError, 423: _HostUsagePausedError}
        return by_status.get(error.status, _HostNotAuthorizedError)
    if isinstance(error, BAD_REQUEST_ERRORS):
        return _HostBadRequestError
    return None


class _ServedError:
    """Mixin keeping our message as the text Inference's error handlers report."""

    def __init__(self, message: str) -> None:
        Exception.__init__(self, message)
        self._help_url = None

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


_SERVED_TYPES: dict[tuple[type[Exception], type[Exception]], type[Exception]] = {}


def served_type(error_type: type[Exception], host: type[Exception]) -> type[Exception]:
    """The subclass of ``error_type`` and Inference's ``host`` type (made once per pair)."""
    key = (error_type, host)
    if key not in _SERVED_TYPES:
        _SERVED_TYPES[key] = type(
            f"Served{error_type.__name__}",
            (_ServedError, error_type, host),
            {"__module__": __name__, "__doc__": f":class:`{error_type.__name__}` as Inference's server reports it."},
        )
    return _SERVED_TYPES[key]


def as_served(error: Exception) -> Exception | None:
    """``error`` as the type Inference's server answers 4xx, or ``None`` when it is a server fault or already one."""
    host = host_type(error)
    if host is None or isinstance(error, host):
        return None
    served = served_type(type(error), host)(str(error))
    served.__dict__.update(error.__dict__)  # keeps attributes such as a Roboflow error's status
    return served


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
