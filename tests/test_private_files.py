"""Owner-only caches: every folder created is 0o700 whatever the umask (existing folders are left alone), files are
written whole or not at all, and a file lock admits one holder at a time."""

from __future__ import annotations

import os
import stat
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

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


def test_interrupted_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "engine.engine"

    def interrupted(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(private_files.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        private_files.write_atomically(target, b"x" * 1000)
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_replaces_whole_file(tmp_path: Path) -> None:
    target = tmp_path / "f.engine"
    private_files.write_atomically(target, b"old")
    private_files.write_atomically(target, b"new content")
    assert target.read_bytes() == b"new content"
    assert [p.name for p in tmp_path.iterdir()] == ["f.engine"]


def test_atomic_writes_are_owner_only_or_as_asked(tmp_path: Path) -> None:
    private_files.write_atomically(tmp_path / "new" / "keys.json", b"{}")
    assert mode(tmp_path / "new") == 0o700 and mode(tmp_path / "new" / "keys.json") == private_files.FILE_MODE == 0o600
    private_files.write_atomically(tmp_path / "shared.json", b"{}", mode=0o644)
    assert mode(tmp_path / "shared.json") == 0o644


def test_the_file_lock_has_one_holder_at_a_time(tmp_path: Path) -> None:
    lock = tmp_path / "locks" / "keys.json.lock"
    holders: list[int] = []
    overlaps: list[int] = []

    def hold(index: int) -> None:
        with private_files.exclusive_file_lock(lock):
            if holders:
                overlaps.append(index)
            holders.append(index)
            time.sleep(0.02)
            holders.remove(index)

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(hold, range(8)))
    assert overlaps == [] and mode(lock) == 0o600 and mode(lock.parent) == 0o700
