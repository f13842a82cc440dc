"""The server launcher without a server process: the landing-page folders Inference mounts, the working directory,
the missing-Inference message. The real HTTP server is tested end to end in tests/suites/test_serving.py."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from workflows_yolov5_seg import server as server_module
from workflows_yolov5_seg import settings
from workflows_yolov5_seg.errors import InvalidSettingError, MissingDependencyError

from support.required import require_module


def test_workdir_gets_the_folders_inference_mounts(tmp_path: Path) -> None:
    workdir = server_module.prepare_workdir(tmp_path / "server")
    for relative in server_module.LANDING_DIRS:
        assert (workdir / relative).is_dir()
    assert (workdir / "inference/landing/out/index.html").is_file()


def test_workdir_defaults_to_the_server_dir_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(settings.SERVER_DIR.name, str(tmp_path / "configured"))
    assert server_module.prepare_workdir() == (tmp_path / "configured").resolve()
    assert (tmp_path / "configured" / server_module.LANDING_DIRS[0] / "index.html").is_file()


def test_a_changed_index_page_is_rewritten(tmp_path: Path) -> None:
    index = server_module.prepare_workdir(tmp_path) / server_module.LANDING_DIRS[0] / "index.html"
    index.write_text("stale", encoding="utf-8")
    server_module.prepare_workdir(tmp_path)
    assert index.read_text(encoding="utf-8") == server_module.INDEX_HTML


def test_an_unwritable_workdir_falls_back_to_a_temporary_folder(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with caplog.at_level(logging.WARNING):
        workdir = server_module.prepare_workdir(blocker / "server")
    try:
        assert workdir.name.startswith("workflows-yolov5-seg-server-") and not workdir.is_relative_to(tmp_path)
        assert (workdir / server_module.LANDING_DIRS[0] / "index.html").is_file()
        assert f"Cannot write the server folder {blocker / 'server'}" in caplog.text and str(workdir) in caplog.text
    finally:
        shutil.rmtree(workdir)


def test_working_directory_comes_back_even_after_an_error(tmp_path: Path) -> None:
    before = os.getcwd()
    with pytest.raises(RuntimeError), server_module.working_directory(tmp_path):
        assert Path.cwd() == tmp_path.resolve()
        raise RuntimeError("inside")
    assert os.getcwd() == before


@pytest.mark.parametrize(("module", "package"), [("inference", "inference-core[http]"), ("uvicorn", "uvicorn")])
def test_a_missing_server_dependency_names_the_package_and_the_extra(
    monkeypatch: pytest.MonkeyPatch, module: str, package: str
) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == module else real_find_spec(name, *a)
    )
    with pytest.raises(MissingDependencyError, match=rf"needs the Python package '{re.escape(package)}'") as caught:
        server_module.require_inference_server()
    assert caught.value.extra == "inference"


def test_serve_marks_the_process_served_and_adds_the_model_roots(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """With several workers (they import the app factory themselves), so no app is built here."""
    uvicorn = require_module("uvicorn", "uvicorn (the inference extra)")
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "")  # serve sets it (tune_allocator): undone after the test
    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: calls.append((args, kwargs)))
    for setting in (settings.SERVING, settings.MODEL_ROOTS, settings.SERVER_DIR, settings.WORKFLOWS_PLUGINS):
        monkeypatch.setenv(setting.name, "")  # serve writes them; restored after the test
    monkeypatch.setenv(settings.MODEL_ROOTS.name, "/configured")
    server_module.serve(workers=2, workdir=tmp_path / "server", model_roots=[tmp_path / "models"], port=9)
    assert os.environ[settings.SERVING.name] == "served"
    assert os.environ[settings.MODEL_ROOTS.name] == os.pathsep.join(["/configured", str(tmp_path / "models")])
    assert os.environ[settings.SERVER_DIR.name] == str((tmp_path / "server").resolve())
    assert "workflows_yolov5_seg" in os.environ[settings.WORKFLOWS_PLUGINS.name].split(",")
    [(args, kwargs)] = calls
    assert args == ("workflows_yolov5_seg.server:create_app",)
    assert kwargs["factory"] is True and kwargs["workers"] == 2 and kwargs["port"] == 9


# --- serve fixes glibc malloc's mmap threshold (issue 13): freed images, masks and tensors go back to the system.
# Under concurrent requests the server's RSS grew by ~1 GiB while the memory in use stayed flat: glibc's dynamic mmap
# threshold moves large blocks into malloc's heaps, where they stay once freed (docs/reliability.md, "Memory").

GLIBC = sys.platform.startswith("linux") and server_module._glibc_version() is not None
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
    monkeypatch.setattr(server_module, "_glibc_version", lambda: "2.36")
    monkeypatch.setattr(server_module.sys, "platform", "linux")
    assert "dynamic" in server_module.tune_allocator()
    assert "over glibc's maximum" in caplog.text
    assert "MALLOC_MMAP_THRESHOLD_" not in os.environ


def test_not_glibc_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    monkeypatch.setattr(server_module, "_glibc_version", lambda: None)
    assert "not glibc" in server_module.tune_allocator()
    assert "MALLOC_MMAP_THRESHOLD_" not in os.environ


def test_a_bad_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(settings.MMAP_THRESHOLD.name, "lots")
    with pytest.raises(InvalidSettingError, match=settings.MMAP_THRESHOLD.name):
        server_module.tune_allocator()


def test_serve_tunes_before_building_the_app(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    monkeypatch.setattr(server_module, "tune_allocator", lambda: calls.append("tune") or "tuned")
    monkeypatch.setattr(server_module, "create_app", lambda workdir: calls.append("app"))
    monkeypatch.setattr(server_module, "require_inference_server", lambda: None)
    monkeypatch.setitem(sys.modules, "uvicorn", type(sys)("uvicorn"))
    sys.modules["uvicorn"].run = lambda *args, **kwargs: calls.append("run")
    for name in (settings.SERVING.name, settings.WORKFLOWS_PLUGINS.name, settings.MODEL_ROOTS.name):
        monkeypatch.setenv(name, os.environ.get(name, ""))  # restored after the test
    server_module.serve(port=9)
    assert calls == ["tune", "app", "run"]
