"""Frames per second of a workflow on a video file (Inference's ``InferencePipeline``) against the raw forward pass.

On one generated, losslessly encoded video (``tools.synthetic_video``: shapes panning by) and one model instance,
frame by frame, each measured as frames per second over the whole video (a pass), median of ``--repeats`` passes:

- ``decode``: OpenCV decoding the file alone (what the pipeline's video source does);
- ``forward``: ``model.backend.infer(tensor)`` on each frame's pre-processed tensor (the floor);
- ``model``: ``model.infer(frame)`` (pre-processing + forward + post-processing, dense masks);
- ``engine``: ``ExecutionEngine.run`` of a one-step workflow (the block alone) on each frame;
- ``pipeline``: ``InferencePipeline.init_with_workflow`` on the file with the same one-step workflow: frames per
  second between the first and the last frame's outputs (``steady``; without start-up and the first frame), and
  over the whole run from building the pipeline to its end (``wall``);
- ``pipeline+masks``: the same with ``examples/video_mask_visualization.json`` (the block, then Roboflow's mask
  visualisation), the video example's workflow.

Ratios are each row's frames per second divided by ``forward``'s. The model is the process-wide instance the block
uses (``model_cache.get_model``), so all rows share one ONNX Runtime session; one pass of every row runs first,
untimed (model load, workflow compilation). Offline: no API key, Inference's release check off.

    python -m benchmarks.video --out docs/results/video.json      # 48 frames of 320x320, 5 repeats (~2 min)
    python -m benchmarks.video --quick                            # 12 frames, 2 repeats
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchmarks.provenance import installed_versions
from workflows_yolov5_seg.backends.engine_cache import file_sha256

REPOSITORY = Path(__file__).resolve().parents[1]
MODEL = REPOSITORY / "workflows_yolov5_seg" / "assets" / "shapes-yolov5n-seg-320.onnx"
VIDEO_WORKFLOW = REPOSITORY / "examples" / "video_mask_visualization.json"
BLOCK_TYPE = "workflows_yolov5_seg/yolov5_instance_segmentation@v1"
BLOCK_WORKFLOW = {
    "version": "1.0",
    "inputs": [{"type": "WorkflowImage", "name": "image"}, {"type": "WorkflowParameter", "name": "model"}],
    "steps": [{"type": BLOCK_TYPE, "name": "segmentation", "images": "$inputs.image", "model": "$inputs.model"}],
    "outputs": [{"type": "JsonField", "name": "predictions", "selector": "$steps.segmentation.predictions"}],
}
PACKAGES = (
    "inference-core",
    "roboflow-workflows",
    "streamvision",
    "inference-sdk",
    "onnxruntime",
    "numpy",
    "supervision",
    "opencv-python",
    "opencv-python-headless",
)


def prepare_environment() -> None:
    """Before Inference's import: the plugin registered, Inference's release check off."""
    from workflows_yolov5_seg import settings

    settings.register_plugin()
    os.environ.setdefault("DISABLE_VERSION_CHECK", "True")


def display_path(path: Path) -> str:
    return str(path.relative_to(REPOSITORY)) if path.is_relative_to(REPOSITORY) else str(path)


def git_commit() -> str | None:
    try:
        return subprocess.run(
            ["git", "-C", str(REPOSITORY), "describe", "--always", "--dirty", "--abbrev=12"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def timed_fps(frames: int, run: Callable[[], Any]) -> float:
    start = time.perf_counter()
    run()
    return frames / (time.perf_counter() - start)


def pipeline_pass(video: Path, definition: dict, parameters: dict[str, Any]) -> dict[str, float]:
    """One ``InferencePipeline`` run over the file: steady and wall frames per second."""
    from inference import InferencePipeline
    from inference.core.interfaces.camera.entities import UpdateSeverity

    stamps: list[float] = []
    errors: list[Any] = []

    def on_status(update: Any) -> None:  # noqa: ANN401 - inference's StatusUpdate
        if update.severity is UpdateSeverity.ERROR:
            errors.append(update.payload)

    start = time.perf_counter()
    pipeline = InferencePipeline.init_with_workflow(
        video_reference=str(video),
        workflow_specification=definition,
        workflows_parameters=parameters,
        on_prediction=lambda outputs, frame: stamps.append(time.perf_counter()),
        status_update_handlers=[on_status],
    )
    pipeline.start()
    pipeline.join()
    wall = time.perf_counter() - start
    if errors or len(stamps) < 2:
        raise RuntimeError(f"the pipeline gave {len(stamps)} frames and {len(errors)} errors: {errors[:1]}")
    steady = (len(stamps) - 1) / (stamps[-1] - stamps[0])
    return {"frames": len(stamps), "steady_fps": steady, "wall_fps": len(stamps) / wall}


def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="video-benchmark-") as folder:
        return measure(args, Path(folder))


def measure(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    prepare_environment()
    sys.path.insert(0, str(REPOSITORY))
    from roboflow_workflows.execution_engine.core import ExecutionEngine

    from tools.synthetic_video import pan_video, read_video, write_video
    from workflows_yolov5_seg.model_cache import get_model

    video = write_video(workdir / "shapes.avi", pan_video(args.seed, args.size, args.frames, args.step)[0])
    frames = read_video(video)
    count = len(frames)
    model_file = Path(args.model).resolve()
    model_path = str(model_file)
    model = get_model(model_path, "auto", None)  # the instance the block uses
    tensors = [model.pre_process(frame).tensor for frame in frames]
    engine = ExecutionEngine.init(
        workflow_definition=BLOCK_WORKFLOW,
        init_parameters={"workflows_core.model_manager": None, "workflows_core.api_key": None},
    )
    video_workflow = json.loads(VIDEO_WORKFLOW.read_text(encoding="utf-8"))
    parameters = {"model": model_path}

    rows: dict[str, Callable[[], dict[str, float]]] = {
        "decode": lambda: {"fps": timed_fps(count, lambda: read_video(video))},
        "forward": lambda: {"fps": timed_fps(count, lambda: [model.backend.infer(t) for t in tensors])},
        "model": lambda: {"fps": timed_fps(count, lambda: [model.infer(f) for f in frames])},
        "engine": lambda: {
            "fps": timed_fps(count, lambda: [engine.run(runtime_parameters={"image": f, **parameters}) for f in frames])
        },
        "pipeline": lambda: pipeline_pass(video, BLOCK_WORKFLOW, parameters),
        "pipeline+masks": lambda: pipeline_pass(video, video_workflow, parameters),
    }
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in rows}
    load_before = list(os.getloadavg())
    started = time.perf_counter()
    for name, measure in rows.items():  # warm-up pass
        measure()
        print(f"warm-up: {name}", file=sys.stderr, flush=True)
    for repeat in range(args.repeats):  # interleaved, so load drifts hit every row alike
        for name, measure in rows.items():
            samples[name].append(measure())
        print(f"repeat {repeat + 1}/{args.repeats}", file=sys.stderr, flush=True)
    duration = time.perf_counter() - started

    forward_fps = statistics.median(s["fps"] for s in samples["forward"])
    summary = {}
    for name, values in samples.items():
        key = "steady_fps" if name.startswith("pipeline") else "fps"
        fps = statistics.median(v[key] for v in values)
        entry = {"fps": fps, "ratio_to_forward": fps / forward_fps, "ms_per_frame": 1000 / fps}
        if name.startswith("pipeline"):
            entry["wall_fps"] = statistics.median(v["wall_fps"] for v in values)
        summary[name] = entry
    return {
        "command": "python -m benchmarks.video " + " ".join(args.argv),
        "machine": {
            "cpu": cpu_name(),
            "cpu_count": os.cpu_count(),
            "load_average_before": load_before,
            "load_average_after": list(os.getloadavg()),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        },
        "git": git_commit(),
        "versions": installed_versions(PACKAGES),
        "model": {
            "path": display_path(model_file),
            "sha256": file_sha256(model_file),
            "backend": model.backend.info.as_dict(),
        },
        "video": {"frames": count, "size": list(args.size), "step": args.step, "seed": args.seed, "codec": "FFV1"},
        "settings": {"repeats": args.repeats, "statistic": "median of passes", "duration_s": round(duration, 1)},
        "summary": summary,
        "samples": samples,
    }


def table(result: dict[str, Any]) -> str:
    lines = ["| row | frames/s | ms/frame | / forward | wall frames/s |", "|---|---:|---:|---:|---:|"]
    for name, entry in result["summary"].items():
        wall = f"{entry['wall_fps']:.1f}" if "wall_fps" in entry else ""
        lines.append(
            f"| {name} | {entry['fps']:.1f} | {entry['ms_per_frame']:.1f} | {entry['ratio_to_forward']:.2f} | {wall} |"
        )
    return "\n".join(lines)


def parse_size(text: str) -> tuple[int, int]:
    width, _, height = text.lower().partition("x")
    return int(width), int(height)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--size", type=parse_size, default=(320, 320), help="WIDTHxHEIGHT (default 320x320)")
    parser.add_argument("--step", type=int, default=8, help="pan in pixels per frame")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default=str(MODEL))
    parser.add_argument("--quick", action="store_true", help="12 frames, 2 repeats (a smoke run)")
    args = parser.parse_args(argv)
    args.argv = argv
    if args.quick:
        args.frames, args.repeats = 12, 2
    result = run(args)
    print(table(result))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
