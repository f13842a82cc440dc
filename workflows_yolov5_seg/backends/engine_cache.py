"""On-disk cache of built TensorRT engines, and the pure decisions around them (no GPU, no TensorRT needed).

An engine is only valid for the ONNX it was built from, the GPU model (compute capability) and the TensorRT
version that built it, its precision, its batch profile and its input size. All of these are in the
:class:`EngineKey`; the key's digest names the file, so a different GPU or TensorRT version finds no file and
rebuilds instead of failing on a foreign engine.

Files are written atomically (a temporary file in the same folder, then ``os.replace``) with owner-only
permissions, so an interrupted build leaves nothing half-written. File names hold only hashes, versions and sizes:
never a path, a model id or a key.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from workflows_yolov5_seg import settings
from workflows_yolov5_seg.errors import CacheNotWritableError, InvalidParameterError, check_choice
from workflows_yolov5_seg.private_files import exclusive_file_lock, write_atomically

logger = logging.getLogger(__name__)

ENGINE_SUFFIX = ".engine"
KEY_SUFFIX = ".json"
LOCK_SUFFIX = ".lock"
PRECISIONS = ("auto", "fp16", "fp32")
# Serialization format of the key; bump it when the meaning of a key field changes.
KEY_SCHEMA = 1


def file_sha256(path: Path, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's content."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def onnx_content_sha256(path: Path) -> str:
    """Hash of an ONNX model's content, including external-data files beside it (``*.onnx.data`` etc.)."""
    digest = hashlib.sha256(file_sha256(path).encode())
    for sidecar in sorted(path.parent.glob(path.name + ".*")):
        if sidecar.is_file() and sidecar.suffix not in (ENGINE_SUFFIX, KEY_SUFFIX, LOCK_SUFFIX):
            digest.update(sidecar.name.encode() + file_sha256(sidecar).encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class BatchProfile:
    """The batch sizes of a TensorRT optimisation profile.

    Attributes:
        min: the smallest batch the engine accepts.
        opt: the batch TensorRT tunes kernels for.
        max: the largest batch the engine accepts.
    """

    min: int
    opt: int
    max: int

    def __post_init__(self) -> None:
        values = (self.min, self.opt, self.max)
        if (
            any(isinstance(v, bool) or not isinstance(v, int) for v in values)
            or not 0 < self.min <= self.opt <= self.max
        ):
            raise InvalidParameterError(
                f"A batch profile needs integers with 0 < min <= opt <= max, got min={self.min!r}, opt={self.opt!r}, "
                f"max={self.max!r}."
            )

    @classmethod
    def static(cls, size: int) -> BatchProfile:
        return cls(size, size, size)

    @classmethod
    def parse(cls, text: str | int | tuple[int, ...] | list[int] | BatchProfile) -> BatchProfile:
        """Reads ``"8"`` (static), ``"1,8"`` (min, max; opt = max) or ``"1,4,8"`` (min, opt, max)."""
        if isinstance(text, BatchProfile):
            return text
        if isinstance(text, int) and not isinstance(text, bool):
            return cls.static(text)
        parts: list[object]
        if isinstance(text, str):
            parts = [p.strip() for p in text.replace(":", ",").split(",") if p.strip()]
        else:
            parts = list(text)
        try:
            sizes = [int(p) for p in parts]  # type: ignore[call-overload]
        except (TypeError, ValueError):
            sizes = []
        if len(sizes) == 1:
            return cls.static(sizes[0])
        if len(sizes) == 2:
            return cls(sizes[0], sizes[1], sizes[1])
        if len(sizes) == 3:
            return cls(*sizes)
        raise InvalidParameterError(
            f"A batch profile is 'N' (static), 'MIN,MAX' or 'MIN,OPT,MAX' with positive integers, got {text!r}."
        )

    @property
    def is_static(self) -> bool:
        return self.min == self.max

    def __str__(self) -> str:
        return f"{self.min}" if self.is_static else f"{self.min},{self.opt},{self.max}"


DEFAULT_BATCH_PROFILE = BatchProfile(1, 4, 8)


def select_batch_profile(onnx_batch: int | None, requested: BatchProfile | None) -> BatchProfile:
    """The profile to build: an ONNX with a static batch gets exactly that batch; a dynamic one gets ``requested``.

    Raises:
        InvalidParameterError: a profile other than the ONNX's static batch was requested.
    """
    if onnx_batch is not None:
        if requested is not None and requested != BatchProfile.static(onnx_batch):
            raise InvalidParameterError(
                f"The ONNX has a static batch of {onnx_batch}; it cannot be built with batch profile {requested}. "
                f"Use batch {onnx_batch}, or export the ONNX with a dynamic batch (`yolo export ... dynamic=True`, or "
                "`python export.py --dynamic` for YOLOv5)."
            )
        return BatchProfile.static(onnx_batch)
    return requested or DEFAULT_BATCH_PROFILE


def has_fast_fp16(compute_capability: tuple[int, int]) -> bool:
    """Whether a GPU of this compute capability runs fp16 at (at least) fp32 speed.

    Fast: sm_53 (Jetson TX1), sm_60 (P100), sm_62 (Jetson TX2) and every GPU from Volta (sm_70) on. Slow: Maxwell
    desktop parts and consumer Pascal (sm_61: GTX 10xx, P4, P40), where fp16 arithmetic runs at a fraction of fp32.
    """
    return compute_capability in ((5, 3), (6, 0), (6, 2)) or compute_capability >= (7, 0)


def resolve_precision(requested: str, compute_capability: tuple[int, int], fp16_supported: bool = True) -> str:
    """``fp16`` or ``fp32`` for a requested ``auto`` / ``fp16`` / ``fp32``.

    ``auto`` is fp16 where the GPU has fast fp16 and this TensorRT can build fp16 from an fp32 ONNX
    (``fp16_supported``; TensorRT 11 removed that builder flag), else fp32. An explicit ``fp16`` on a GPU without
    fast fp16 is honoured with a warning.

    Raises:
        InvalidParameterError: unknown precision, or ``fp16`` requested where it cannot be built.
    """
    check_choice("precision", requested, PRECISIONS)
    fast = has_fast_fp16(compute_capability)
    if requested == "auto":
        return "fp16" if fast and fp16_supported else "fp32"
    if requested == "fp16":
        if not fp16_supported:
            raise InvalidParameterError(
                "This TensorRT cannot build fp16 engines from an fp32 ONNX (TensorRT 11 removed the FP16 builder "
                "flag). Use precision='fp32', export an fp16 ONNX (`yolo export ... half=True`, or "
                "`python export.py --half` for YOLOv5), or install "
                "tensorrt-cu12<11."
            )
        if not fast:
            logger.warning(
                "fp16 was requested on a GPU of compute capability %d.%d, which runs fp16 slowly; fp32 is likely "
                "faster there.",
                *compute_capability,
            )
    return requested


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "gpu"


@dataclass(frozen=True)
class EngineKey:
    """Everything a built engine depends on.

    Attributes:
        onnx_sha256: hash of the ONNX content (see :func:`onnx_content_sha256`).
        gpu_name: e.g. ``NVIDIA A10G``.
        compute_capability: e.g. ``(8, 6)``.
        trt_version: ``tensorrt.__version__``.
        precision: ``fp16`` or ``fp32`` (resolved, never ``auto``).
        batch: the optimisation profile's batch sizes.
        input_hw: ``(H, W)`` of the network input.
    """

    onnx_sha256: str
    gpu_name: str
    compute_capability: tuple[int, int]
    trt_version: str
    precision: str
    batch: BatchProfile
    input_hw: tuple[int, int]

    def as_dict(self) -> dict[str, object]:
        content = asdict(self)
        content["compute_capability"] = list(self.compute_capability)
        content["input_hw"] = list(self.input_hw)
        content["schema"] = KEY_SCHEMA
        return content

    def digest(self) -> str:
        """SHA-256 of the canonical JSON of every field."""
        canonical = json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def file_stem(self) -> str:
        """A readable, secret-free file name: ONNX hash prefix, GPU, TensorRT, precision, batch, size, digest."""
        major, minor = self.compute_capability
        height, width = self.input_hw
        batch = f"b{self.batch.min}-{self.batch.opt}-{self.batch.max}"
        return (
            f"yolov5seg-{self.onnx_sha256[:12]}-{_slug(self.gpu_name)}-sm{major}{minor}-"
            f"trt{_slug(self.trt_version)}-{self.precision}-{batch}-{height}x{width}-{self.digest()[:16]}"
        )


class EngineCache:
    """A folder of ``<stem>.engine`` files, each with a ``<stem>.json`` describing its key."""

    def __init__(self, directory: Path | str | None = None) -> None:
        self.directory = Path(directory).expanduser() if directory is not None else settings.cache_root()

    def engine_path(self, key: EngineKey) -> Path:
        return self.directory / "trt" / f"{key.file_stem()}{ENGINE_SUFFIX}"

    def load(self, key: EngineKey) -> bytes | None:
        """The cached engine's bytes, or ``None`` when there is none. Reads only: a read-only cache folder (e.g.
        one mounted with pre-built engines) serves its engines.

        Raises:
            CacheNotWritableError: the engine file exists but cannot be read.
        """
        path = self.engine_path(key)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as error:
            raise self.not_usable(path.parent, error, "read") from None

    def not_usable(self, folder: Path, error: OSError, action: str = "write") -> CacheNotWritableError:
        """The error for a cache folder that cannot be written (``action='write'``) or read (``'read'``)."""
        able = "readable" if action == "read" else "writable"
        return CacheNotWritableError(
            f"Cannot {action} the TensorRT engine cache folder '{folder}' ({error.strerror or error}). Make it "
            f"{able}, or set {settings.CACHE_DIR.name} (or pass cache_dir) to a writable folder."
        )

    def store(self, key: EngineKey, engine: bytes) -> Path:
        """Writes the engine and its key description atomically; returns the engine's path.

        Raises:
            CacheNotWritableError: the cache folder cannot be written.
        """
        path = self.engine_path(key)
        try:
            write_atomically(path, bytes(engine))
            description = {**key.as_dict(), "engine_sha256": hashlib.sha256(bytes(engine)).hexdigest()}
            write_atomically(path.with_suffix(KEY_SUFFIX), json.dumps(description, indent=2).encode())
        except OSError as error:  # permissions, a read-only file system (EROFS), a full disk
            raise self.not_usable(path.parent, error) from None
        return path

    def remove(self, key: EngineKey) -> None:
        """Deletes a cached engine (e.g. one that no longer deserializes)."""
        path = self.engine_path(key)
        for stale in (path, path.with_suffix(KEY_SUFFIX)):
            try:
                stale.unlink()
            except FileNotFoundError:
                pass
            except OSError as error:
                raise self.not_usable(path.parent, error) from None

    @contextlib.contextmanager
    def build_lock(self, key: EngineKey) -> Iterator[None]:
        """Holds an exclusive lock on ``key`` across processes, so that concurrent first loads build once.

        Only a build needs it (it creates a lock file): look the engine up with :meth:`load` first.
        Uses ``fcntl.flock`` where available (Linux, macOS); elsewhere it does not lock across processes.

        Raises:
            CacheNotWritableError: the lock file cannot be created (a read-only or foreign folder).
        """
        path = self.engine_path(key).with_suffix(LOCK_SUFFIX)
        with contextlib.ExitStack() as held:
            try:
                held.enter_context(exclusive_file_lock(path))
            except OSError as error:  # permissions, or a read-only file system (EROFS)
                raise self.not_usable(path.parent, error) from None
            yield
