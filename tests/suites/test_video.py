"""Video: Inference's ``InferencePipeline.init_with_workflow`` on a video file runs the block on every frame.

A generated, losslessly encoded video (``tools.synthetic_video``: shapes panning by) goes through the pipeline with
``examples/video_mask_visualization.json``; every frame's outputs must equal the same workflow run by the
Execution Engine on that frame alone. The example script (``examples/video_pipeline.py``) and Inference's own
``inference workflows process-video`` command run on it too. Nothing leaves the machine: no API key, no Roboflow
call (checked on the sockets the pipeline opens).
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import json
import socket
from pathlib import Path
from types import ModuleType
from typing import Any

import cv2
import numpy as np
import pytest

from benchmarks.loadtest import without_volatile
from tools.synthetic_video import pan_video, read_video, write_video

from support.paths import REPOSITORY
from support.required import require_module

EXAMPLES = REPOSITORY / "examples"
VIDEO_WORKFLOW = EXAMPLES / "video_mask_visualization.json"
VIDEO_SCRIPT = EXAMPLES / "video_pipeline.py"
FRAMES, SIZE, SEED = 24, (320, 320), 0
INIT_PARAMETERS = {"workflows_core.model_manager": None, "workflows_core.api_key": None}


def require(module: str, reason: str) -> ModuleType:
    """The module; a missing one skips the tests locally and fails them in CI (``CI=true``: support.required)."""
    return require_module(module, reason.removeprefix("needs "))


@pytest.fixture(scope="module")
def engine_module() -> ModuleType:
    return require("roboflow_workflows.execution_engine.core", "needs the Workflows engine (the inference extra)")


@pytest.fixture(scope="module")
def shapes_video(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[np.ndarray], list[list]]:
    frames, truths = pan_video(seed=SEED, size=SIZE, frames=FRAMES)
    path = write_video(tmp_path_factory.mktemp("video") / "shapes.avi", frames)
    return path, frames, truths


@pytest.fixture(scope="module")
def video_example() -> ModuleType:
    require("inference", "needs Inference (the inference extra)")
    spec = importlib.util.spec_from_file_location("video_pipeline_example", VIDEO_SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class OutboundConnections:
    """Records every socket connection to an address outside the loopback range (and every name lookup)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.outside: list[Any] = []
        real_connect, real_getaddrinfo = socket.socket.connect, socket.getaddrinfo

        def connect(sock: socket.socket, address: Any) -> Any:  # noqa: ANN401
            if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address[0]):
                self.outside.append(address)
            return real_connect(sock, address)

        def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: ANN401
            if host is not None and not _is_loopback(str(host)):
                self.outside.append(("lookup", host))
            return real_getaddrinfo(host, *args, **kwargs)

        monkeypatch.setattr(socket.socket, "connect", connect)
        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def _is_loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


def run_one_by_one(engine_module: ModuleType, definition: dict, frames: list[np.ndarray], **parameters: Any) -> list:
    """The workflow on each frame alone, through one ExecutionEngine, serialised and as plain JSON."""
    engine = engine_module.ExecutionEngine.init(workflow_definition=definition, init_parameters=INIT_PARAMETERS)
    results = []
    for frame in frames:
        result = engine.run(runtime_parameters={"image": frame, **parameters}, serialize_results=True)
        assert len(result) == 1
        results.append(json.loads(json.dumps(result[0], default=str)))
    return results


def comparable(predictions: dict) -> dict:
    """Serialised detections without per-run ids and without the video metadata that only the pipeline's frames
    carry (source, frame number, fps)."""
    predictions = copy.deepcopy(without_volatile(predictions))
    for prediction in predictions["predictions"]:
        prediction.pop("video_metadata", None)
    predictions.pop("video_metadata", None)
    return predictions


def test_the_video_decodes_to_the_generated_frames(shapes_video: tuple[Path, list[np.ndarray], list]) -> None:
    path, frames, truths = shapes_video
    decoded = read_video(path)
    assert len(decoded) == FRAMES
    for index, (ours, theirs) in enumerate(zip(decoded, frames, strict=True)):
        np.testing.assert_array_equal(ours, theirs, err_msg=f"frame {index}: the codec is not lossless here")
    assert all(truths), "every frame shows shapes"


def test_pipeline_results_equal_the_same_frames_run_one_by_one(
    shapes_video: tuple[Path, list[np.ndarray], list[list]],
    trained_model: Path,
    engine_module: ModuleType,
    video_example: ModuleType,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path, frames, truths = shapes_video
    definition = json.loads(VIDEO_WORKFLOW.read_text(encoding="utf-8"))
    parameters = {"model": str(trained_model), "mask_format": "rle"}
    seen: list[tuple[int, np.ndarray, dict]] = []
    connections = OutboundConnections(monkeypatch)
    timing = video_example.run_workflow_on_video(
        path,
        definition,
        parameters,
        on_frame=lambda outputs, frame: seen.append((frame.frame_id, np.array(frame.image), outputs)),
        serialize_results=True,
    )
    assert connections.outside == [], "the pipeline reached out beyond the loopback"
    assert timing["frames"] == FRAMES
    assert [frame_id for frame_id, _, _ in seen] == list(range(1, FRAMES + 1)), "every frame, once, in order"
    for index, (_, image, _) in enumerate(seen):
        np.testing.assert_array_equal(image, frames[index], err_msg=f"frame {index + 1} as the pipeline saw it")

    one_by_one = run_one_by_one(engine_module, definition, [image for _, image, _ in seen], **parameters)
    detected = 0
    for (frame_id, _, outputs), alone, truth in zip(seen, one_by_one, truths, strict=True):
        outputs = json.loads(json.dumps(outputs, default=str))
        assert set(outputs) == {"predictions", "visualization"}
        assert comparable(outputs["predictions"]) == comparable(alone["predictions"]), f"frame {frame_id}"
        assert outputs["visualization"]["value"] == alone["visualization"]["value"], f"frame {frame_id}"
        predictions = outputs["predictions"]["predictions"]
        assert all("rle_mask" in p for p in predictions)
        if any(mask.sum() >= 1500 for _, mask in truth):
            assert predictions, f"frame {frame_id} shows a large shape and nothing was found"
        detected += len(predictions)
    assert detected >= FRAMES * 3, f"only {detected} detections in {FRAMES} frames"


def test_video_example_writes_an_annotated_video(
    tmp_path: Path, trained_model: Path, video_example: ModuleType
) -> None:
    video = video_example.generate_video(tmp_path / "input.avi", frames=8, size=SIZE, seed=SEED)
    result = video_example.annotate_video(video, tmp_path / "out", str(trained_model))
    assert result["frames"] == 8
    annotated = read_video(result["annotated"])
    assert len(annotated) == 8 and all(frame.shape == (*SIZE[::-1], 3) for frame in annotated)
    records = [json.loads(line) for line in result["predictions"].read_text(encoding="utf-8").splitlines()]
    assert [r["frame_id"] for r in records] == list(range(1, 9))
    assert all(r["predictions"] for r in records)
    # the masks are drawn: the annotated frames differ from the input far beyond the mp4 codec's loss
    source = read_video(video)
    for ours, theirs, record in zip(annotated, source, records, strict=True):
        changed = np.abs(ours.astype(np.int16) - theirs).max(axis=2) > 40
        assert changed.sum() > 0.2 * sum(p["mask_pixels"] for p in record["predictions"])


def test_inference_cli_process_video_runs_the_example_workflow_file(
    tmp_path: Path,
    trained_model: Path,
    engine_module: ModuleType,
    shapes_video: tuple[Path, list[np.ndarray], list],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``inference workflows process-video --workflow_spec examples/video_mask_visualization.json`` (Inference's
    CLI, in this process): its per-frame JSON lines equal the frames run one by one, and it writes the video."""
    require("inference_cli.main", "needs Inference's CLI (the inference extra)")
    from inference_cli.main import app
    from typer.testing import CliRunner

    monkeypatch.delenv("ENABLE_FRAME_DROP_ON_VIDEO_FILE_RATE_LIMITING", raising=False)  # the command sets it
    _, frames, _ = shapes_video
    video = write_video(tmp_path / "short.avi", frames[:6])
    out = tmp_path / "out"
    arguments = [
        "workflows", "process-video", "--video_path", str(video), "--output_dir", str(out),
        "--workflow_spec", str(VIDEO_WORKFLOW), "--output_file_type", "jsonl", "--debug_mode",
        "--model", str(trained_model), "--mask_format", "rle",
    ]  # fmt: skip
    connections = OutboundConnections(monkeypatch)
    outcome = CliRunner().invoke(app, arguments, catch_exceptions=False)
    assert outcome.exit_code == 0, outcome.output
    assert connections.outside == []
    lines = (out / "workflow_results_source_0.jsonl").read_text(encoding="utf-8").splitlines()
    results = [json.loads(line) for line in lines]
    definition = json.loads(VIDEO_WORKFLOW.read_text(encoding="utf-8"))
    alone = run_one_by_one(engine_module, definition, frames[:6], model=str(trained_model), mask_format="rle")
    assert len(results) == len(alone) == 6
    for index, (ours, theirs) in enumerate(zip(results, alone, strict=True)):
        assert ours["visualization"] == "<deducted_image>"
        assert comparable(ours["predictions"]) == comparable(theirs["predictions"]), f"frame {index + 1}"
    preview = read_video(out / "source_0_output_visualization_preview.mp4")
    assert len(preview) == 6 and preview[0].shape == (*SIZE[::-1], 3)
    assert cv2.absdiff(preview[0], frames[0]).max() > 40, "the preview shows the masks"


def test_video_benchmark_smoke_run(tmp_path: Path, engine_module: ModuleType, video_example: ModuleType) -> None:
    """``python -m benchmarks.video`` runs every row and records what the results need (commit, model hash)."""
    from benchmarks import video as video_benchmark

    out = tmp_path / "video.json"
    assert video_benchmark.main(["--frames", "3", "--repeats", "1", "--out", str(out)]) == 0
    result = json.loads(out.read_text(encoding="utf-8"))
    assert set(result["summary"]) == {"decode", "forward", "model", "engine", "pipeline", "pipeline+masks"}
    assert all(entry["fps"] > 0 for entry in result["summary"].values())
    assert result["summary"]["forward"]["ratio_to_forward"] == 1.0
    assert len(result["model"]["sha256"]) == 64 and result["git"]
    assert result["versions"]["inference-core"] and result["video"]["frames"] == 3
