"""Owner-only files and folders for the caches (downloaded models, TensorRT engines)."""

from __future__ import annotations

import contextlib
import os
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
