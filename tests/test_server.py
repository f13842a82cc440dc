"""The server launcher without a server process: the landing-page folders Inference mounts, the working directory,
the missing-Inference message. The real HTTP server is tested end to end in tests/suites/test_serving.py."""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import shutil
from pathlib import Path

import pytest

from workflows_yolov5_seg import server as server_module
from workflows_yolov5_seg import settings
from workflows_yolov5_seg.errors import MissingDependencyError

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
