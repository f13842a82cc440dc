"""``serve`` fixes glibc malloc's mmap threshold (issue 13): freed images, masks and tensors go back to the system.

Under concurrent requests the server's RSS grew by ~1 GiB while the memory in use stayed flat: glibc's dynamic mmap
threshold moves large blocks into malloc's heaps, where they stay once freed (docs/reliability.md, "Memory").
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from workflows_yolov5_seg import server, settings
from workflows_yolov5_seg.errors import InvalidSettingError

GLIBC = sys.platform.startswith("linux") and server._glibc_version() is not None
needs_glibc = pytest.mark.skipif(not GLIBC, reason="the mmap threshold is a glibc malloc setting")

# Allocates and frees a 4 MiB block (glibc maps it; freeing it raises a dynamic threshold to 4 MiB), then allocates
# another and reports whether it is mapped (mallinfo2's hblkhd) or came from malloc's heap.
PROBE = textwrap.dedent(
    """
    import ctypes, json, os, sys
    from workflows_yolov5_seg import server

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = MallInfo2
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, (ctypes.c_size_t,)
    libc.free.restype, libc.free.argtypes = None, (ctypes.c_void_p,)
    done = server.tune_allocator() if sys.argv[1] == "tune" else "untouched"
    size = 4 * 1024 * 1024
    first = libc.malloc(size)
    libc.free(first)
    mapped_before = libc.mallinfo2().hblkhd
    second = libc.malloc(size)
    mapped = libc.mallinfo2().hblkhd - mapped_before >= size
    libc.free(second)
    print(json.dumps({"done": done, "second_block_mapped": mapped, "env": os.environ.get("MALLOC_MMAP_THRESHOLD_")}))
    """
)


def probe(mode: str, **environment: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("MALLOC_MMAP_THRESHOLD_", settings.MMAP_THRESHOLD.name)}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, mode],
        env={**env, **environment},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


@needs_glibc
def test_without_tuning_glibc_moves_large_blocks_into_its_heap() -> None:
    """The mechanism behind the growth: after one 4 MiB block is freed, the next comes from malloc's heap."""
    assert probe("plain")["second_block_mapped"] is False


@needs_glibc
def test_tuned_large_blocks_stay_mapped_and_workers_inherit_it() -> None:
    result = probe("tune")
    assert result["second_block_mapped"] is True
    assert result["done"] == f"mmap threshold 262144 bytes ({settings.MMAP_THRESHOLD.name})"
    assert result["env"] == "262144", "uvicorn's worker processes inherit the threshold through the environment"


@needs_glibc
def test_zero_keeps_glibcs_dynamic_threshold() -> None:
    result = probe("tune", **{settings.MMAP_THRESHOLD.name: "0"})
    assert result["second_block_mapped"] is False
    assert "dynamic" in result["done"] and result["env"] is None


@needs_glibc
def test_the_glibc_variable_wins() -> None:
    """A MALLOC_MMAP_THRESHOLD_ the operator set was applied by glibc at start; serve leaves it."""
    result = probe("tune", MALLOC_MMAP_THRESHOLD_="8388608")
    assert result["done"] == "mmap threshold from MALLOC_MMAP_THRESHOLD_=8388608"
    assert result["env"] == "8388608"


def test_over_glibcs_maximum_is_left_alone(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    monkeypatch.setenv(settings.MMAP_THRESHOLD.name, str(64 * 1024 * 1024))
    monkeypatch.setattr(server, "_glibc_version", lambda: "2.36")
    monkeypatch.setattr(server.sys, "platform", "linux")
    assert "dynamic" in server.tune_allocator()
    assert "over glibc's maximum" in caplog.text
    assert "MALLOC_MMAP_THRESHOLD_" not in os.environ


def test_not_glibc_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    monkeypatch.setattr(server, "_glibc_version", lambda: None)
    assert "not glibc" in server.tune_allocator()
    assert "MALLOC_MMAP_THRESHOLD_" not in os.environ


def test_a_bad_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(settings.MMAP_THRESHOLD.name, "lots")
    with pytest.raises(InvalidSettingError, match=settings.MMAP_THRESHOLD.name):
        server.tune_allocator()


def test_serve_tunes_before_building_the_app(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    monkeypatch.setattr(server, "tune_allocator", lambda: calls.append("tune") or "tuned")
    monkeypatch.setattr(server, "create_app", lambda workdir: calls.append("app"))
    monkeypatch.setattr(server, "require_inference_server", lambda: None)
    monkeypatch.setitem(sys.modules, "uvicorn", type(sys)("uvicorn"))
    sys.modules["uvicorn"].run = lambda *args, **kwargs: calls.append("run")
    for name in (settings.SERVING.name, settings.WORKFLOWS_PLUGINS.name, settings.MODEL_ROOTS.name):
        monkeypatch.setenv(name, os.environ.get(name, ""))  # restored after the test
    server.serve(port=9)
    assert calls == ["tune", "app", "run"]
