"""The command line: its commands and arguments, the handlers' output and exit codes (errors: one line, exit 1; bad
arguments: exit 2). The commands' work is tested where it is done (demo, describe, backends/tensorrt, server)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from workflows_yolov5_seg import __version__, cli
from workflows_yolov5_seg.backends.tensorrt import load_tensorrt_backend
from workflows_yolov5_seg.model_package import load_model_package

from support.fake_tensorrt import FakeCuda, FakeTrt, install_fakes
from support.models import make_two_box_model
from support.paths import REPOSITORY
from support.required import require_file


def test_every_command_is_a_subcommand_with_its_help(capsys: pytest.CaptureFixture[str]) -> None:
    names = [command.name for command in cli.COMMANDS]
    assert names == ["serve", "demo", "generate", "build-engine", "evaluate", "quantize"]
    with pytest.raises(SystemExit) as exit_info:
        cli.build_parser().parse_args(["--help"])
    assert exit_info.value.code == 0
    printed = " ".join(capsys.readouterr().out.split())  # argparse wraps the help lines
    for command in cli.COMMANDS:
        assert command.name in printed and command.help in printed


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"workflows-yolov5-seg {__version__}"


def test_a_command_is_required() -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main([])
    assert exit_info.value.code == 2


def test_cli_has_serve_and_generate() -> None:
    from workflows_yolov5_seg.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["serve", "--host", "0.0.0.0", "--port", "9002"])
    assert (args.command, args.host, args.port, args.workers) == ("serve", "0.0.0.0", 9002, 1)
    assert parser.parse_args(["generate", "--check"]).check is True


def test_serve_takes_model_roots() -> None:
    parser = cli.build_parser()
    assert parser.parse_args(["serve"]).model_roots == []
    args = parser.parse_args(["serve", "--model-root", "models", "--model-root", "/srv/more"])
    assert args.model_roots == [Path("models"), Path("/srv/more")]


def test_serve_refuses_fewer_than_one_worker(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["serve", "--workers", "0"]) == 2
    assert "--workers must be >= 1" in capsys.readouterr().err


def test_serve_without_inference_says_what_to_install(monkeypatch: pytest.MonkeyPatch, capsys) -> None:  # noqa: ANN001
    import importlib.util

    from workflows_yolov5_seg import cli

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "inference" else real_find_spec(name, *a)
    )
    assert cli.main(["serve", "--port", "9"]) == 1
    assert "pip install 'workflows-yolov5-seg[inference]'" in capsys.readouterr().err


def test_demo_prints_what_it_found_and_wrote(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from workflows_yolov5_seg import demo

    calls = []

    def run_demo(output_dir: Path, image_path: Path | None, model: str | None, int8: bool) -> dict:
        calls.append((output_dir, image_path, model, int8))
        return {"predictions": {"predictions": [{"class": "ring"}, {"class": "blob"}, {"class": "ring"}]}}

    monkeypatch.setattr(demo, "run_demo", run_demo)
    out = tmp_path / "out"
    assert cli.main(["demo", "--out", str(out), "--int8"]) == 0
    capsys.readouterr()
    assert cli.main(["demo", "--out", str(out), "--image", "scene.png", "--model", "m.onnx"]) == 0
    assert calls == [(out, None, None, True), (out, Path("scene.png"), "m.onnx", False)]
    assert capsys.readouterr().out.strip() == (
        f"Found 1 blob, 2 ring. Wrote {out / 'annotated.jpg'} and {out / 'result.json'}."
    )


# --- build-engine (on the stand-ins for TensorRT and CUDA) ---------------------------------------------------------


@pytest.fixture
def fake_gpu(monkeypatch: pytest.MonkeyPatch) -> tuple[FakeTrt, FakeCuda]:
    """``tensorrt`` and the CUDA runtime replaced by the fakes, for code that imports them itself (the CLI)."""
    return install_fakes(monkeypatch)


def engine_files(cache_dir: Path) -> list[Path]:
    return sorted((cache_dir / "trt").glob("*.engine")) if (cache_dir / "trt").exists() else []


def test_build_engine_command(
    tmp_path: Path, fake_gpu: tuple[FakeTrt, FakeCuda], capsys: pytest.CaptureFixture[str]
) -> None:
    trt, cuda = fake_gpu
    onnx_model = make_two_box_model(tmp_path / "model" / "model.onnx", second_objectness=0.8)
    cache_dir = tmp_path / "cache"
    argv = ["build-engine", "--model", str(onnx_model), "--precision", "fp16", "--batch", "1,4,8"]
    argv += ["--cache-dir", str(cache_dir)]
    assert cli.main(argv) == 0
    first = capsys.readouterr().out
    [engine] = engine_files(cache_dir)
    assert str(engine) in first and "built in" in first and "fp16, batch 1,4,8" in first
    assert cli.main(argv) == 0
    assert "already cached" in capsys.readouterr().out and len(trt.builds) == 1
    # The backend then loads the pre-built engine without building.
    package = load_model_package(onnx_model)
    backend = load_tensorrt_backend(package, cache_dir=cache_dir, trt=trt, cuda=cuda, precision="fp16", batch="1,4,8")
    assert len(trt.builds) == 1
    backend.close()
    assert cli.main([*argv, "--force"]) == 0 and len(trt.builds) == 2


def test_build_engine_command_errors(
    tmp_path: Path, fake_gpu: tuple[FakeTrt, FakeCuda], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["build-engine", "--model", str(tmp_path / "missing.onnx")]) == 1
    assert "workflows-yolov5-seg build-engine: Model" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["build-engine", "--model", "x", "--precision", "int8"])
    assert exit_info.value.code == 2


def test_build_engine_help_runs() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "workflows_yolov5_seg.cli", "build-engine", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and "--precision" in result.stdout and "--batch" in result.stdout


@pytest.mark.parametrize("export", ["shapes-yolo11n-seg-320.onnx", "shapes-yolo26n-seg-320-e2e.onnx"])
def test_build_engine_command_on_a_later_generation(
    tmp_path: Path, fake_gpu: tuple[FakeTrt, FakeCuda], capsys: pytest.CaptureFixture[str], export: str
) -> None:
    """The trained family exports build (static batch 1, their own) like YOLOv5's, raw and end-to-end."""
    trt, _ = fake_gpu
    source = require_file(REPOSITORY / "models" / export, "a trained family export")
    cache_dir = tmp_path / "cache"
    assert cli.main(["build-engine", "--model", str(source), "--cache-dir", str(cache_dir)]) == 0
    assert len(engine_files(cache_dir)) == 1 and len(trt.builds) == 1
    assert "built in" in capsys.readouterr().out
