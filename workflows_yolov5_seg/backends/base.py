"""The contract every inference backend fulfils: one input batch in, the two raw YOLOv5-seg outputs out.

:class:`Backend` is an abstract base class, not a ``Protocol``: each backend subclasses it, implements ``infer`` and
``close``, and inherits ``warmup``; a class that forgets one cannot be instantiated.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from workflows_yolov5_seg.errors import BackendUnavailableError, InvalidParameterError
from workflows_yolov5_seg.layouts import OutputLayout

DEVICE_KINDS = ("cpu", "cuda", "tensorrt")
DEVICE_GRAMMAR = "cpu, cuda[:N] or tensorrt[:N] (ONNX Runtime's TensorRT provider; N: the CUDA device index, default 0)"


def parse_device(device: object) -> tuple[str, int]:
    """Reads a device, the one grammar of every backend: ``cpu``, ``cuda[:N]`` or ``tensorrt[:N]``.

    Letters may be in any case and surrounding spaces are ignored; nothing else is a device (not ``cpu:N``, a bare
    ``N`` or ``gpu``). Which kinds a backend runs on is its own business (``trt``: ``cuda`` only).

    Returns:
        ``(kind, index)``, e.g. ``("cuda", 1)`` for ``cuda:1``; ``index`` is 0 for ``cpu``.

    Raises:
        InvalidParameterError: anything else, naming the grammar.
    """
    kind, colon, index = device.strip().lower().partition(":") if isinstance(device, str) else ("", "", "")
    number = index.isascii() and index.isdigit()
    if kind not in DEVICE_KINDS or (colon and (kind == "cpu" or not number)):
        raise InvalidParameterError(f"device must be {DEVICE_GRAMMAR}, got {device!r}.")
    return kind, int(index) if number else 0


@dataclass(frozen=True)
class BackendInfo:
    """What the pipeline needs to know about the tensors a loaded network takes (its classes and pre-processing are
    the model package's).

    Attributes:
        name: ``onnx`` or ``trt``.
        device: where it runs, e.g. ``cpu`` or ``cuda:0``.
        input_hw: ``(H, W)`` of the network input (the package's signature, or a package engine's own size).
        input_dtype: numpy dtype the input batch must have.
        min_batch_size: the smallest batch the network accepts.
        max_batch_size: the largest batch the network accepts (equal to ``min_batch_size`` for a static batch).
        providers: what actually runs the network, for reporting: the ONNX Runtime execution providers the session
            uses, or ``("TensorRT <version>",)``.
        precision: ``fp32`` / ``fp16`` where known (TensorRT engines), else ``None``.
        layout: the layout of ``output0`` the network was checked against (for an engine without its ONNX, the one
            recognised from the engine's shapes), or ``None`` when the model package's is used.
        dynamic_hw: the network runs on inputs of any height and width (multiples of its stride), not only
            ``input_hw``.
    """

    name: str
    device: str
    input_hw: tuple[int, int]
    input_dtype: np.dtype
    min_batch_size: int
    max_batch_size: int
    providers: tuple[str, ...] = ()
    precision: str | None = None
    layout: OutputLayout | None = None
    dynamic_hw: bool = False

    @property
    def static_batch(self) -> bool:
        return self.min_batch_size == self.max_batch_size

    def as_dict(self) -> dict[str, object]:
        """A JSON-friendly summary, e.g. ``{"name": "trt", "device": "cuda:0", "precision": "fp16", ...}``."""
        return {
            "name": self.name,
            "device": self.device,
            "providers": list(self.providers),
            "precision": self.precision,
            "input_hw": list(self.input_hw),
            "input_dtype": str(np.dtype(self.input_dtype)),
            "min_batch_size": self.min_batch_size,
            "max_batch_size": self.max_batch_size,
        }


class Backend(abc.ABC):
    """Maps a pre-processed batch to YOLOv5-seg's raw outputs; nothing more.

    Subclasses set :attr:`info` and implement :meth:`infer` and :meth:`close`; they inherit :meth:`warmup`.
    """

    info: BackendInfo

    @abc.abstractmethod
    def infer(self, batch: np.ndarray) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """Runs the network.

        Args:
            batch: ``(B, 3, H, W)`` of ``info.input_dtype`` with ``min_batch_size <= B <= max_batch_size``.

        Returns:
            ``(instances, protos)``: ``(B, N, 5 + nc + 32)`` and ``(B, 32, H / 4, W / 4)``, float32.

        Raises:
            BackendUnavailableError: the backend was closed (:meth:`closed_error`, the same for every backend).
        """

    def warmup(self) -> None:
        """Runs one zero batch, so that a device that loads but cannot run fails at load time, not on the first image.

        Raises:
            BackendUnavailableError: the run failed.
        """
        height, width = self.info.input_hw
        zeros = np.zeros((self.info.min_batch_size, 3, height, width), dtype=self.info.input_dtype)
        try:
            self.infer(zeros)
        except Exception as error:
            raise BackendUnavailableError(
                f"{self.info.name} on {self.info.device} ({', '.join(self.info.providers)}) could not run the model: "
                f"{type(error).__name__}: {str(error)[:300]}"
            ) from error

    @abc.abstractmethod
    def close(self) -> None:
        """Releases the network's memory; later ``infer`` calls raise :meth:`closed_error`."""

    def closed_error(self) -> BackendUnavailableError:
        """What ``infer`` raises after :meth:`close`."""
        return BackendUnavailableError(
            f"This {self.info.name} backend on {self.info.device} was closed; load the model again."
        )
