"""A folder on read-only storage (a read-only mount, e.g. a volume of pre-built TensorRT engines), for tests.

File permissions cannot stand in for it: the tests may run as root, which ignores them, and a read-only file system
answers ``EROFS`` (a plain ``OSError``), not ``EACCES`` (``PermissionError``). So the file system calls that write are
made to fail as the kernel fails them, for paths inside the folder only; reading is untouched.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


def make_read_only(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """Makes ``folder`` and everything below it read-only for the rest of the test."""
    root = Path(os.path.abspath(folder))

    def inside(path: object) -> bool:
        return isinstance(path, str | os.PathLike) and Path(os.path.abspath(os.fspath(path))).is_relative_to(root)

    def refuse(path: object) -> None:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fspath(path))  # type: ignore[arg-type]

    real_open, real_mkdir, real_unlink, real_replace, real_chmod = os.open, os.mkdir, os.unlink, os.replace, os.chmod

    def open_(path, flags, mode=0o777, *, dir_fd=None):  # noqa: ANN001, ANN202 - os.open's signature
        if flags & WRITE_FLAGS and inside(path):
            refuse(path)
        return real_open(path, flags, mode, dir_fd=dir_fd)

    def mkdir(path, mode=0o777, *, dir_fd=None):  # noqa: ANN001, ANN202
        if inside(path):
            if os.path.isdir(path):
                raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), os.fspath(path))
            refuse(path)
        return real_mkdir(path, mode, dir_fd=dir_fd)

    def unlink(path, *, dir_fd=None):  # noqa: ANN001, ANN202
        if inside(path) and os.path.lexists(path):
            refuse(path)
        return real_unlink(path, dir_fd=dir_fd)

    def replace(source, destination, **kwargs):  # noqa: ANN001, ANN003, ANN202
        if inside(source) or inside(destination):
            refuse(destination)
        return real_replace(source, destination, **kwargs)

    def chmod(path, mode, **kwargs):  # noqa: ANN001, ANN003, ANN202
        if inside(path):
            refuse(path)
        return real_chmod(path, mode, **kwargs)

    for name, stand_in in [
        ("open", open_),
        ("mkdir", mkdir),
        ("unlink", unlink),
        ("remove", unlink),
        ("replace", replace),
        ("chmod", chmod),
    ]:
        monkeypatch.setattr(os, name, stand_in)
