"""Owner-only files and folders for the caches (downloaded models, confirmed keys, TensorRT engines)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

FILE_MODE = 0o600
DIR_MODE = 0o700


def ensure_private_dir(path: Path) -> Path:
    """Creates ``path`` (and missing parents) if needed; every folder this creates is owner-only (0o700).
    Existing folders keep their permissions."""
    missing = []
    current = path
    while not current.is_dir() and current != current.parent:
        missing.append(current)
        current = current.parent
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):
            folder.mkdir(mode=DIR_MODE)
            with contextlib.suppress(OSError):
                os.chmod(folder, DIR_MODE)  # mkdir's mode is reduced by the umask
    return path


def write_atomically(path: Path, data: bytes, mode: int = FILE_MODE) -> None:
    """Writes ``data`` to ``path`` so that readers see the old file or the whole new one, never a part.

    The temporary file is created owner-only in the destination folder (``os.replace`` is atomic only within a file
    system) and removed if anything fails, including ``KeyboardInterrupt``.
    """
    ensure_private_dir(path.parent)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            os.fchmod(stream.fileno(), mode)
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


@contextlib.contextmanager
def exclusive_file_lock(path: Path) -> Iterator[None]:
    """Holds ``fcntl.flock`` on ``path`` (created owner-only): one holder at a time across processes and threads.

    Meant for short critical sections (a read-modify-write of a small file); it waits without a time-out. Where
    ``fcntl`` does not exist (Windows) it does not lock.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    ensure_private_dir(path.parent)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        with contextlib.suppress(OSError):
            fcntl.flock(descriptor, fcntl.LOCK_UN)
        os.close(descriptor)
