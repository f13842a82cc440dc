"""Owner-only cache folders: every folder created is 0o700 whatever the umask; existing folders are left alone."""

from __future__ import annotations

import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from workflows_yolov5_seg import private_files


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_private_dir_mode(tmp_path: Path) -> None:
    created = private_files.ensure_private_dir(tmp_path / "a")
    assert mode(created) == 0o700
    nested = private_files.ensure_private_dir(tmp_path / "b" / "c" / "d")
    assert [mode(tmp_path / p) for p in ("b", "b/c", "b/c/d")] == [0o700] * 3
    assert nested.is_dir()
    os.chmod(created, 0o755)  # an existing folder is left as the user set it
    private_files.ensure_private_dir(created)
    assert mode(created) == 0o755


def test_a_restrictive_umask_does_not_lock_the_owner_out(tmp_path: Path) -> None:
    previous = os.umask(0o277)  # mkdir alone would give 0o500: no writing into the new folder
    try:
        folder = private_files.ensure_private_dir(tmp_path / "cache" / "trt")
    finally:
        os.umask(previous)
    assert mode(folder) == mode(folder.parent) == private_files.DIR_MODE == 0o700
    (folder / "engine").write_bytes(b"x")


def test_concurrent_creation_of_the_same_folders(tmp_path: Path) -> None:
    target = tmp_path / "x" / "y" / "z"
    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(lambda _: private_files.ensure_private_dir(target), range(8))) == [target] * 8
    assert mode(target) == mode(target.parent) == 0o700
