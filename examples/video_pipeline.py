"""Runs a workflow with the YOLOv5-seg block on every frame of a video file and writes an annotated video.

Inference's ``InferencePipeline.init_with_workflow`` decodes the video, runs the workflow (here
``examples/video_mask_visualization.json``: the block, then Roboflow's mask visualisation) on each frame in order, and
hands each frame's outputs to a sink, which writes the ``visualization`` output to ``annotated.mp4`` and a summary of
the detections to ``predictions.jsonl``.

From the repository root, with the ``inference`` extra installed::

    python examples/video_pipeline.py --out video-output            # generates a 48-frame shapes video first
    python examples/video_pipeline.py --video my.mp4 --model /models/yolov5s-seg.onnx --out video-output

Offline: the workflow is given inline (no workspace / workflow id), so no API key is needed and nothing is sent to
Roboflow (usage is only reported for calls with an API key); Inference's release check at import is turned off here
with ``DISABLE_VERSION_CHECK`` unless already set.

The same run without this script, with Inference's own CLI (it writes
``source_0_output_visualization_preview.mp4`` and ``workflow_results_source_0.jsonl``)::

    python -m tools.synthetic_video --out shapes.avi
    WORKFLOWS_PLUGINS=workflows_yolov5_seg inference workflows process-video --video_path shapes.avi \\
        --output_dir video-output --workflow_spec examples/video_mask_visualization.json --output_file_type jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2

EXAMPLES = Path(__file__).resolve().parent
REPOSITORY = EXAMPLES.parent
WORKFLOW = EXAMPLES / "video_mask_visualization.json"
BUNDLED_MODEL = REPOSITORY / "workflows_yolov5_seg" / "assets" / "shapes-yolov5n-seg-320.onnx"

FrameHandler = Callable[[dict, Any], None]  # (workflow outputs of one frame, inference's VideoFrame)


def prepare_environment() -> None:
    """Registers the plugin and turns off Inference's release check; both must happen before Inference's import."""
    from workflows_yolov5_seg import settings

    settings.register_plugin()
    os.environ.setdefault("DISABLE_VERSION_CHECK", "True")


def generate_video(path: Path, frames: int = 48, size: tuple[int, int] = (320, 320), seed: int = 0) -> Path:
    """A lossless video of shapes panning by (``tools.synthetic_video``; needs the repository checkout)."""
    if str(REPOSITORY) not in sys.path:
        sys.path.insert(0, str(REPOSITORY))
    from tools.synthetic_video import pan_video, write_video

    images, _ = pan_video(seed=seed, size=size, frames=frames)
    return write_video(path, images)


def run_workflow_on_video(
    video: str | Path,
    definition: dict,
    parameters: dict[str, Any],
    on_frame: FrameHandler,
    serialize_results: bool = False,
    max_fps: float | None = None,
) -> dict[str, Any]:
    """Runs ``definition`` on every frame of ``video`` with ``InferencePipeline.init_with_workflow`` and calls
    ``on_frame(outputs, video_frame)`` for each, in frame order; raises if the pipeline reported an error.

    Returns timings: ``frames``, ``wall_s`` (pipeline built, started and joined), ``steady_fps`` (frames per second
    between the first and the last frame's outputs, so without start-up and the first frame's model load)."""
    prepare_environment()
    from inference import InferencePipeline
    from inference.core.interfaces.camera.entities import UpdateSeverity

    errors: list[Any] = []
    stamps: list[float] = []

    def on_status(update: Any) -> None:  # noqa: ANN401 - inference's StatusUpdate
        if update.severity is UpdateSeverity.ERROR:
            errors.append(update.payload)

    def sink(outputs: dict, video_frame: Any) -> None:  # noqa: ANN401
        stamps.append(time.perf_counter())
        on_frame(outputs, video_frame)

    start = time.perf_counter()
    pipeline = InferencePipeline.init_with_workflow(
        video_reference=str(video),
        workflow_specification=definition,
        workflows_parameters=parameters,
        on_prediction=sink,
        status_update_handlers=[on_status],
        serialize_results=serialize_results,
        max_fps=max_fps,
    )
    pipeline.start()
    pipeline.join()
    wall_s = time.perf_counter() - start
    if errors:
        raise RuntimeError(f"the pipeline reported {len(errors)} error(s); first: {errors[0]}")
    steady = (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 and stamps[-1] > stamps[0] else None
    return {"frames": len(stamps), "wall_s": wall_s, "steady_fps": steady}


def detections_summary(detections: Any) -> list[dict[str, Any]]:  # noqa: ANN401 - sv.Detections
    """One dict per detection: class, confidence, box (x1, y1, x2, y2) and mask area in pixels."""
    names = detections.data.get("class_name", [None] * len(detections))
    areas = detections.mask.sum(axis=(1, 2)) if detections.mask is not None else [None] * len(detections)
    return [
        {
            "class": str(name),
            "confidence": round(float(confidence), 4),
            "box": [round(float(v), 1) for v in box],
            "mask_pixels": None if area is None else int(area),
        }
        for name, confidence, box, area in zip(names, detections.confidence, detections.xyxy, areas, strict=True)
    ]


def annotate_video(
    video: Path, out_dir: Path, model: str, workflow: Path = WORKFLOW, confidence: float = 0.4
) -> dict[str, Any]:
    """Runs the workflow on ``video`` and writes ``annotated.mp4`` and ``predictions.jsonl`` into ``out_dir``."""
    capture = cv2.VideoCapture(str(video))
    fps = capture.get(cv2.CAP_PROP_FPS) or 10.0
    capture.release()
    out_dir.mkdir(parents=True, exist_ok=True)
    annotated_path, predictions_path = out_dir / "annotated.mp4", out_dir / "predictions.jsonl"
    writer: cv2.VideoWriter | None = None
    lines: list[str] = []

    def on_frame(outputs: dict, video_frame: Any) -> None:  # noqa: ANN401
        nonlocal writer
        image = outputs["visualization"].numpy_image
        if writer is None:
            height, width = image.shape[:2]
            writer = cv2.VideoWriter(str(annotated_path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
        writer.write(image)
        record = {"frame_id": video_frame.frame_id, "predictions": detections_summary(outputs["predictions"])}
        lines.append(json.dumps(record))

    definition = json.loads(workflow.read_text(encoding="utf-8"))
    try:
        timing = run_workflow_on_video(video, definition, {"model": model, "confidence": confidence}, on_frame)
    finally:
        if writer is not None:
            writer.release()
    predictions_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {**timing, "annotated": annotated_path, "predictions": predictions_path}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("video-output"), help="output folder")
    parser.add_argument("--video", type=Path, help="video file (default: generate OUT/input.avi)")
    parser.add_argument("--model", default=str(BUNDLED_MODEL), help="model for the block (default: bundled)")
    parser.add_argument("--workflow", type=Path, default=WORKFLOW)
    parser.add_argument("--confidence", type=float, default=0.4)
    parser.add_argument("--frames", type=int, default=48, help="frames of the generated video")
    args = parser.parse_args(argv)
    video = args.video
    if video is None:
        args.out.mkdir(parents=True, exist_ok=True)
        video = generate_video(args.out / "input.avi", frames=args.frames)
    result = annotate_video(video, args.out, args.model, args.workflow, args.confidence)
    fps = f"{result['steady_fps']:.1f}" if result["steady_fps"] else "n/a"
    print(f"{result['frames']} frames in {result['wall_s']:.1f} s ({fps} frames/s after the first)")
    print(f"wrote {result['annotated']} and {result['predictions']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
