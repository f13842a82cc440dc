"""Engine cache: keys, invalidation, owner-only files, profiles and precision (no GPU needed; the atomic writes it
uses: tests/test_private_files.py)."""

from __future__ import annotations

import dataclasses
import stat
import threading
import time
from pathlib import Path

import pytest

from workflows_yolov5_seg import settings
from workflows_yolov5_seg.backends.engine_cache import (
    DEFAULT_BATCH_PROFILE,
    BatchProfile,
    EngineCache,
    EngineKey,
    has_fast_fp16,
    onnx_content_sha256,
    resolve_precision,
    select_batch_profile,
)
from workflows_yolov5_seg.errors import CacheNotWritableError, InvalidParameterError

from support.read_only import make_read_only

KEY = EngineKey(
    onnx_sha256="ab" * 32,
    gpu_name="NVIDIA A10G",
    compute_capability=(8, 6),
    trt_version="10.8.0.43",
    precision="fp16",
    batch=BatchProfile(1, 4, 8),
    input_hw=(320, 320),
)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize(
    "change",
    [
        {"onnx_sha256": "cd" * 32},
        {"gpu_name": "NVIDIA L4"},
        {"compute_capability": (8, 9)},
        {"trt_version": "10.9.0.34"},
        {"precision": "fp32"},
        {"batch": BatchProfile(1, 4, 16)},
        {"batch": BatchProfile.static(4)},
        {"input_hw": (640, 640)},
    ],
)
def test_every_key_field_changes_the_file(change: dict) -> None:
    other = dataclasses.replace(KEY, **change)
    assert other.digest() != KEY.digest()
    assert other.file_stem() != KEY.file_stem()
    cache = EngineCache("/tmp/x")
    assert cache.engine_path(other) != cache.engine_path(KEY)


def test_key_is_stable_and_readable() -> None:
    same = EngineKey(**{f.name: getattr(KEY, f.name) for f in dataclasses.fields(KEY)})
    assert same.digest() == KEY.digest()
    stem = KEY.file_stem()
    assert stem.startswith("yolov5seg-abababababab-nvidia-a10g-sm86-trt10-8-0-43-fp16-b1-4-8-320x320-")
    assert "/" not in stem and " " not in stem and len(stem) < 200


def test_file_names_cannot_escape_the_cache(tmp_path: Path) -> None:
    key = dataclasses.replace(KEY, gpu_name="GPU/../../etc/passwd", trt_version="10.8/../x")
    path = EngineCache(tmp_path).engine_path(key)
    assert path.parent == tmp_path / "trt"
    assert ".." not in path.name and "/" not in path.name


def test_store_and_load_round_trip_owner_only(tmp_path: Path) -> None:
    cache = EngineCache(tmp_path / "cache")
    assert cache.load(KEY) is None
    path = cache.store(KEY, b"engine-bytes")
    assert cache.load(KEY) == b"engine-bytes"
    assert mode(path) == 0o600
    description = path.with_suffix(".json")
    assert mode(description) == 0o600
    assert '"gpu_name": "NVIDIA A10G"' in description.read_text()
    assert mode(path.parent) == 0o700
    cache.remove(KEY)
    assert cache.load(KEY) is None and not description.exists()


def enter_build_lock(cache: EngineCache, key: EngineKey) -> None:
    with cache.build_lock(key):
        pass


@pytest.mark.parametrize(
    "write",
    [
        lambda cache: cache.store(dataclasses.replace(KEY, precision="fp32"), b"other"),  # a new engine
        lambda cache: cache.remove(KEY),  # a stale engine
        lambda cache: enter_build_lock(cache, KEY),  # the lock file of a build
    ],
    ids=["store", "remove", "build_lock"],
)
def test_read_only_cache_serves_its_engines_and_types_write_failures(tmp_path: Path, monkeypatch, write) -> None:
    cache = EngineCache(tmp_path / "cache")
    cache.store(KEY, b"engine-bytes")
    make_read_only(monkeypatch, tmp_path / "cache")
    assert cache.load(KEY) == b"engine-bytes"
    assert cache.load(dataclasses.replace(KEY, precision="fp32")) is None
    with pytest.raises(CacheNotWritableError, match="Cannot write the TensorRT engine cache folder .*Read-only"):
        write(cache)


def test_cache_dir_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(settings.CACHE_DIR.name, str(tmp_path / "custom"))
    assert EngineCache().directory == tmp_path / "custom"
    monkeypatch.delenv(settings.CACHE_DIR.name)
    monkeypatch.delenv("MODEL_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert EngineCache().directory == tmp_path / "xdg" / "workflows-yolov5-seg"


def test_onnx_hash_follows_content_and_external_data(tmp_path: Path) -> None:
    model = tmp_path / "m.onnx"
    model.write_bytes(b"graph-1")
    first = onnx_content_sha256(model)
    model.write_bytes(b"graph-2")
    second = onnx_content_sha256(model)
    (tmp_path / "m.onnx.data").write_bytes(b"weights")
    third = onnx_content_sha256(model)
    assert len({first, second, third}) == 3


def test_build_lock_serializes(tmp_path: Path) -> None:
    cache = EngineCache(tmp_path)
    inside, overlaps = [], []

    def work() -> None:
        with cache.build_lock(KEY):
            if inside:
                overlaps.append(True)
            inside.append(1)
            time.sleep(0.05)
            inside.pop()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert overlaps == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("8", BatchProfile(8, 8, 8)),
        ("1,8", BatchProfile(1, 8, 8)),
        ("1,4,8", BatchProfile(1, 4, 8)),
        (" 2 , 3 , 5 ", BatchProfile(2, 3, 5)),
        (4, BatchProfile(4, 4, 4)),
        ((1, 2, 3), BatchProfile(1, 2, 3)),
    ],
)
def test_batch_profile_parse(text: object, expected: BatchProfile) -> None:
    assert BatchProfile.parse(text) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["", "0", "4,2", "1,8,4", "a,b", "1,2,3,4", "-1,2,3"])
def test_batch_profile_rejects(text: str) -> None:
    with pytest.raises(InvalidParameterError):
        BatchProfile.parse(text)


def test_batch_profile_selection() -> None:
    assert select_batch_profile(None, None) == DEFAULT_BATCH_PROFILE == BatchProfile(1, 4, 8)
    assert select_batch_profile(None, BatchProfile(2, 2, 6)) == BatchProfile(2, 2, 6)
    assert select_batch_profile(4, None) == BatchProfile.static(4)
    assert select_batch_profile(4, BatchProfile.static(4)) == BatchProfile.static(4)
    with pytest.raises(InvalidParameterError, match="static batch of 1"):
        select_batch_profile(1, BatchProfile(1, 4, 8))


@pytest.mark.parametrize(
    ("cc", "fast"),
    [
        ((5, 2), False),
        ((5, 3), True),
        ((6, 0), True),
        ((6, 1), False),
        ((6, 2), True),
        ((7, 0), True),
        ((7, 5), True),
        ((8, 6), True),
        ((8, 7), True),
        ((9, 0), True),
        ((12, 0), True),
    ],
)
def test_fast_fp16_table(cc: tuple[int, int], fast: bool) -> None:
    assert has_fast_fp16(cc) is fast


def test_precision_resolution(caplog: pytest.LogCaptureFixture) -> None:
    assert resolve_precision("auto", (8, 6)) == "fp16"
    assert resolve_precision("auto", (6, 1)) == "fp32"
    assert resolve_precision("auto", (8, 6), fp16_supported=False) == "fp32"
    assert resolve_precision("fp32", (8, 6)) == "fp32"
    assert resolve_precision("fp16", (6, 1)) == "fp16"
    assert "runs fp16 slowly" in caplog.text
    with pytest.raises(InvalidParameterError, match="TensorRT 11"):
        resolve_precision("fp16", (8, 6), fp16_supported=False)
    with pytest.raises(InvalidParameterError):
        resolve_precision("int8", (8, 6))
