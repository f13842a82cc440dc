"""Our caller-mistake errors as the exception types Inference's HTTP server maps to 4xx answers.

Inference's server turns a step error into an HTTP status by the type of the error the step raised
(``inference/core/interfaces/workflows_step_error_handlers.py``): its own ``InvalidModelIDError`` (400),
``RoboflowAPINotAuthorizedError`` (401), ``PaymentRequiredError`` (402), ``RoboflowAPIForbiddenError`` (403),
``RoboflowAPIUsagePausedError`` (423) and inference-models' ``ModelNotFoundError`` (404); anything else is a 500.
Our typed errors for a caller's mistake are re-raised as subclasses of both ours and Inference's type, so a library
caller still catches ours and the server answers 4xx with our message:

| our error | status |
|---|---|
| ``ModelNotFoundError`` (a missing path, ``RoboflowModelNotFoundError``) | 404 |
| ``InvalidImageError``, ``InvalidParameterError`` | 400 |
| ``RoboflowAPIKeyMissingError``; ``RoboflowUnauthorizedError`` for a refused (401) or malformed key | 401 |
| ``RoboflowUnauthorizedError`` for a key refused access to the model (403); ``RoboflowKeyNotConfirmedError`` | 403 |
| ``RoboflowUnauthorizedError`` for a workspace out of credits (402) or paused (423) | 402, 423 |

Server faults (a backend that cannot run, a corrupt engine, the API unreachable for a model not cached) keep their
type and stay 5xx.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

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

try:  # all come with the Workflows engine; without it there is no server to adapt to
    from inference.core.exceptions import InvalidModelIDError as _HostBadRequestError
    from inference.core.exceptions import PaymentRequiredError as _HostPaymentRequiredError
    from inference.core.exceptions import RoboflowAPIForbiddenError as _HostForbiddenError
    from inference.core.exceptions import RoboflowAPINotAuthorizedError as _HostNotAuthorizedError
    from inference.core.exceptions import RoboflowAPIUsagePausedError as _HostUsagePausedError
    from inference_models.errors import ModelNotFoundError as _HostModelNotFoundError
except ImportError:  # pragma: no cover
    _HostModelNotFoundError = None

# RoboflowUnauthorizedError: refused, malformed or unconfirmed keys; workspaces out of credits or paused.
CALLER_ERRORS = (
    ModelNotFoundError,
    InvalidImageError,
    InvalidParameterError,
    RoboflowAPIKeyMissingError,
    RoboflowUnauthorizedError,
)


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

    class ServedRoboflowModelNotFoundError(_ServedError, RoboflowModelNotFoundError, _HostModelNotFoundError):
        """:class:`RoboflowModelNotFoundError` (the API's 404), reported as a 404 step error."""

    class ServedInvalidImageError(_ServedError, InvalidImageError, _HostBadRequestError):
        """:class:`InvalidImageError` that Inference's HTTP server reports as a 400 step error."""

    class ServedInvalidParameterError(_ServedError, InvalidParameterError, _HostBadRequestError):
        """:class:`InvalidParameterError` that Inference's HTTP server reports as a 400 step error."""

    class ServedAPIKeyMissingError(_ServedError, RoboflowAPIKeyMissingError, _HostNotAuthorizedError):
        """:class:`RoboflowAPIKeyMissingError` that Inference's HTTP server reports as a 401 step error."""

    class ServedKeyRefusedError(_ServedError, RoboflowUnauthorizedError, _HostNotAuthorizedError):
        """A key the API refused (401) or that cannot be a key, reported as a 401 step error."""

    class ServedAccessForbiddenError(_ServedError, RoboflowUnauthorizedError, _HostForbiddenError):
        """A key refused access to the model (403), reported as a 403 step error."""

    class ServedKeyNotConfirmedError(_ServedError, RoboflowKeyNotConfirmedError, _HostForbiddenError):
        """:class:`RoboflowKeyNotConfirmedError` (offline, an unconfirmed key), reported as a 403 step error."""

    class ServedPaymentRequiredError(_ServedError, RoboflowUnauthorizedError, _HostPaymentRequiredError):
        """A workspace out of credits (402), reported as a 402 step error."""

    class ServedUsagePausedError(_ServedError, RoboflowUnauthorizedError, _HostUsagePausedError):
        """A workspace whose API usage is paused (423), reported as a 423 step error."""

    def served_type(error: Exception) -> type[Exception] | None:
        """The type the server answers 4xx for ``error``, or ``None`` to keep ``error`` as it is."""
        if isinstance(error, RoboflowModelNotFoundError):
            return ServedRoboflowModelNotFoundError
        if isinstance(error, ModelNotFoundError):
            return ServedModelNotFoundError
        if isinstance(error, InvalidImageError):
            return ServedInvalidImageError
        if isinstance(error, InvalidParameterError):
            return ServedInvalidParameterError
        if isinstance(error, RoboflowAPIKeyMissingError):
            return ServedAPIKeyMissingError
        if isinstance(error, RoboflowKeyNotConfirmedError):
            return ServedKeyNotConfirmedError
        if isinstance(error, RoboflowUnauthorizedError):
            by_status = {403: ServedAccessForbiddenError, 402: ServedPaymentRequiredError, 423: ServedUsagePausedError}
            return by_status.get(error.status, ServedKeyRefusedError)
        return None

else:  # pragma: no cover

    def served_type(error: Exception) -> type[Exception] | None:
        return None


@contextmanager
def caller_errors_as_served_types() -> Iterator[None]:
    """Re-raises the caller's mistakes (missing model, bad image, bad parameter, missing or refused API key) as the
    types the server maps to 4xx; the message, our error class and a Roboflow error's ``status`` stay the same."""
    try:
        yield
    except CALLER_ERRORS as error:
        served = served_type(error)
        if served is None or isinstance(error, served):
            raise
        replacement = served(str(error))
        if isinstance(error, RoboflowAPIError):
            replacement.status = error.status
        raise replacement from error
