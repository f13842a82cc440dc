"""Typed errors. Every message names the cause and the fix."""

from __future__ import annotations


class YOLOv5SegError(Exception):
    """Base class of every error this package raises on purpose."""


class MissingDependencyError(YOLOv5SegError, ImportError):
    """An optional dependency (backend, Workflows engine) is not installed."""

    def __init__(self, package: str, extra: str, purpose: str) -> None:
        super().__init__(
            f"{purpose} needs the Python package '{package}', which is not installed. "
            f"Install it with: pip install 'workflows-yolov5-seg[{extra}]'"
        )
        self.package = package
        self.extra = extra


class ModelLoadError(YOLOv5SegError):
    """The model could not be resolved or loaded."""


class ModelNotFoundError(ModelLoadError, FileNotFoundError):
    """The model path does not exist or holds no weights."""


class InvalidModelFileError(ModelLoadError):
    """The weights file is not a loadable ONNX / TensorRT file."""


class NotYOLOSegModelError(ModelLoadError):
    """The model is not a YOLO instance segmentation model this block runs: its inputs or outputs are not those of
    a YOLOv5 / YOLOv8 / v9 / 11 / 12 / 26-seg export, its metadata names another task, or its package or Roboflow
    metadata names another architecture."""


# The name before the block ran the whole family; the same class, so ``except NotYOLOv5SegModelError`` still works.
NotYOLOv5SegModelError = NotYOLOSegModelError


class ClassNamesMismatchError(ModelLoadError):
    """The number of class names differs from the number of classes the model predicts."""


class InvalidModelPackageError(ModelLoadError):
    """A model package config file is missing a key or has a wrong value."""


class UntrustedModelError(ModelLoadError, PermissionError):
    """The model file type or location is not allowed (pickles, paths outside the allow-list)."""


class ModelPathNotAllowedError(UntrustedModelError):
    """A local model path that this process may not open: outside the model roots, or any local path on a server
    without model roots. The answer is the same whether the path exists or not."""


class CacheNotWritableError(ModelLoadError, PermissionError):
    """A cache folder (downloads, TensorRT engines) cannot be created or written."""


class BackendUnavailableError(YOLOv5SegError):
    """The requested backend or device cannot run here."""


class InvalidImageError(YOLOv5SegError, ValueError):
    """An input image cannot be processed (empty, wrong channels, unsupported dtype, too large)."""


class InvalidParameterError(YOLOv5SegError, ValueError):
    """A block / pipeline parameter is out of range or of the wrong type."""


class InvalidSettingError(YOLOv5SegError, ValueError):
    """An environment variable of :mod:`workflows_yolov5_seg.settings` holds a value that does not parse."""


class CalibrationDataError(YOLOv5SegError, ValueError):
    """The calibration images for ``quantize`` are missing or unreadable."""


class InvalidModelOutputError(YOLOv5SegError):
    """The model returned tensors that cannot be decoded (wrong shape, NaN, inf)."""


class RoboflowAPIError(ModelLoadError):
    """Roboflow's model API or file hosting answered with an error, or a download failed (issue 5).

    Attributes:
        status: the HTTP status code, if the API answered.
    """

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class RoboflowAPIKeyMissingError(RoboflowAPIError):
    """A Roboflow model id was given without an API key (block ``api_key`` or ``ROBOFLOW_API_KEY``)."""


class RoboflowUnauthorizedError(RoboflowAPIError, PermissionError):
    """The API refused the API key (401) or its access to the model (403)."""


class RoboflowKeyNotConfirmedError(RoboflowUnauthorizedError):
    """A cached Roboflow model was asked for with a key that the API cannot confirm now (``OFFLINE_MODE``, or the API
    unreachable) and that was not confirmed for it recently enough before (issue 15)."""


class RoboflowModelNotFoundError(RoboflowAPIError, ModelNotFoundError):
    """The API does not know the model id (404)."""


class RoboflowConnectionError(RoboflowAPIError, ConnectionError):
    """The API or file host could not be reached (no network, refused, timed out)."""


class DownloadIntegrityError(RoboflowAPIError):
    """A downloaded file is shorter than announced or its checksum differs."""


def check_choice(name: str, value: object, choices: tuple[str, ...], hint: str = "") -> str:
    """Returns ``value`` when it is one of ``choices``.

    Raises:
        InvalidParameterError: naming the parameter, the choices and the value (and ``hint``, a sentence on which
            choice does what).
    """
    if value not in choices:
        raise InvalidParameterError(
            f"{name} must be one of {', '.join(choices)}, got {value!r}.{' ' + hint if hint else ''}"
        )
    return str(value)
