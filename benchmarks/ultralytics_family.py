"""The YOLO family's benchmark: this package against Ultralytics' ``predict`` pipeline, and the block against the
raw forward, on an Ultralytics segmentation export.

Two parts, each in the environment that has what it compares::

    # 1. ours vs Ultralytics, in the Ultralytics venv (torch + ultralytics; training/README.md), repository on the path
    PYTHONPATH=. ../ul-venv/bin/python -m benchmarks.ultralytics_family ultralytics \\
        --model models/shapes-yolov8n-seg-640-dynamic.onnx --out docs/results/benchmark-family-ultralytics.json
    # 2. the block (Workflows Execution Engine) vs the raw forward, in the package's venv
    .venv/bin/python -m benchmarks.ultralytics_family block \\
        --model models/shapes-yolov8n-seg-640-dynamic.onnx --out docs/results/benchmark-family-block.json

**Part 1.** One 1280x720 scene of the synthetic shapes, one ONNX forward (this package's), and then, interleaved
round by round on the same ``output0`` / ``output1``:

- **ours**: ``model.pre_process`` + ``model.post_process`` (letterbox; scoring, NMS, masks decoded inside their boxes
  at the original resolution, ``sv.Detections``);
- **ultralytics**: ``predictor.preprocess`` + ``predictor.postprocess`` of the ``SegmentationPredictor`` that
  ``YOLO(model).predict(retina_masks=True)`` builds (``LetterBox``, ``non_max_suppression``,
  ``process_mask_native``, ``Results``), the exact calls ``predict`` makes around its forward.

Both run with the same confidence, IoU and ``max_det``; the detection counts are recorded and must be equal. The
forward alone is timed too (ONNX Runtime, same session options for both: the one this package creates), so the
record also gives the pipeline / forward ratio of both. The ratio ultralytics / ours is reported with its 90 %
bootstrap interval (``benchmarks.stats``) and a verdict against the target (>= 10x).

**Part 2.** On the same kind of scene, interleaved round by round: the raw forward (``model.backend.infer``), the
pipeline (``model.infer``: pre-processing, forward, post-processing) and the block (one step of
``workflows_yolov5_seg/yolov5_instance_segmentation@v1`` through the Execution Engine, dense masks), all three on the
one model instance the block uses (the process' model cache), with ``--threads`` ONNX Runtime threads. block / forward
is reported with its 90 % interval against the target (<= 1.2x, as for YOLOv5: docs/benchmark.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.provenance import REPOSITORY, cpu_description, git_state, package_versions, write_report
from benchmarks.stats import ratio_interval, verdict
from tools.synthetic_shapes import generate_scene
from workflows_yolov5_seg.model import InferenceParameters, YOLOv5SegModel

TARGET_SPEEDUP = 10.0
TARGET_BLOCK_OVERHEAD = 1.2
SCENE_WH = (1280, 720)


def find_scene(model: YOLOv5SegModel, parameters: InferenceParameters, min_detections: int, seeds: int) -> tuple:
    """The first generated 1280x720 scene on which the model finds at least ``min_detections`` objects."""
    best = (-1, None, 0)
    for seed in range(seeds):
        image, _ = generate_scene(seed, SCENE_WH, num_shapes=(40, 60))
        count = len(model.infer(image, parameters)[0])
        if count >= min_detections:
            return seed, image, count
        best = max(best, (count, seed, image), key=lambda item: item[0])
    raise SystemExit(
        f"no scene among {seeds} seeds gives {min_detections} detections (best: {best[0]} with seed {best[1]}); "
        "lower --confidence or --min-detections"
    )


def ultralytics_pipeline(model_path: Path, image: np.ndarray, imgsz: int, parameters: InferenceParameters) -> Any:  # noqa: ANN401
    """The ``SegmentationPredictor`` that ``YOLO(model).predict`` sets up, after one real ``predict`` call."""
    from ultralytics import YOLO

    yolo = YOLO(str(model_path), task="segment")
    yolo.predict(
        image,
        imgsz=imgsz,
        conf=parameters.confidence,
        iou=parameters.iou_threshold,
        max_det=parameters.max_detections,
        retina_masks=True,
        verbose=False,
    )
    return yolo.predictor


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return (time.perf_counter() - start) * 1000.0, result


def run_ultralytics(args: argparse.Namespace) -> dict:
    sys.path.insert(0, str(REPOSITORY / "training"))
    from train_ultralytics import setup_offline

    setup_offline()  # offline, and torchvision::nms for the CPU torch, before torch and ultralytics are imported
    import torch

    torch.set_num_threads(args.threads)
    parameters = InferenceParameters(
        confidence=args.confidence, iou_threshold=args.iou, max_detections=300, mask_decode_mode="accurate"
    )
    model = YOLOv5SegModel.from_pretrained(args.model, backend="onnx", intra_op_threads=args.threads)
    seed, image, count = find_scene(model, parameters, args.min_detections, args.seeds)
    predictor = ultralytics_pipeline(Path(args.model), image, args.imgsz, parameters)
    predictor.batch = ([str(args.model)], [image], [""])

    batch = model.pre_process(image)
    instances, protos = model.forward(batch.tensor)
    raw = [torch.from_numpy(instances), torch.from_numpy(protos)]

    def ours() -> int:
        prepared = model.pre_process(image)
        return len(model.post_process(instances, protos, prepared.geometries, parameters)[0])

    def theirs() -> int:
        tensor = predictor.preprocess([image])
        return len(predictor.postprocess(raw, tensor, [image])[0])

    ours_count, theirs_count = ours(), theirs()
    if ours_count != theirs_count:
        raise SystemExit(f"detection counts differ: ours {ours_count}, Ultralytics {theirs_count}")
    for _ in range(args.warmup):
        ours(), theirs(), model.forward(batch.tensor)
    samples: dict[str, list[float]] = {"ours": [], "ultralytics": [], "forward": []}
    for _ in range(args.rounds):  # interleaved: a load change hits every stage of the round
        samples["ours"].append(timed(ours)[0])
        samples["ultralytics"].append(timed(theirs)[0])
        samples["forward"].append(timed(lambda: model.forward(batch.tensor))[0])
    speedup = ratio_interval(samples["ultralytics"], samples["ours"])
    medians = {name: float(np.median(values)) for name, values in samples.items()}
    return {
        "model": str(args.model),
        "imgsz": args.imgsz,
        "input_hw": list(batch.tensor.shape[2:]),  # the minimum rectangle for a dynamic export, as Ultralytics'
        "layout": model.layout.name,
        "scene": {"generator": "tools.synthetic_shapes.generate_scene", "seed": seed, "size_wh": list(SCENE_WH)},
        "parameters": {"confidence": args.confidence, "iou": args.iou, "max_det": 300, "retina_masks": True},
        "detections": ours_count,
        "threads": args.threads,
        "rounds": args.rounds,
        "median_ms": medians,
        "per_detection_ms": {
            "ours": medians["ours"] / max(ours_count, 1),
            "ultralytics": medians["ultralytics"] / max(ours_count, 1),
        },
        "speedup_ultralytics_over_ours": speedup.as_dict(),
        "speedup_text": speedup.text(),
        "target": {"speedup_at_least": TARGET_SPEEDUP, "verdict": verdict(speedup, TARGET_SPEEDUP, "at_least")},
        "pipeline_over_forward": {
            "ours": (medians["ours"] + medians["forward"]) / medians["forward"],
            "ultralytics": (medians["ultralytics"] + medians["forward"]) / medians["forward"],
        },
        "samples_ms": samples,
        "machine": {**cpu_description(), "python": platform.python_version()},
        "git": git_state(),
        "versions": package_versions(["ultralytics", "torch", "onnxruntime", "numpy", "supervision", "opencv-python"]),
    }


def run_block(args: argparse.Namespace) -> dict:
    from benchmarks.benchmark import WORKFLOW, make_engine
    from workflows_yolov5_seg import settings
    from workflows_yolov5_seg.model_cache import get_model

    # One model instance for the three stages: the one the block gets from the process' model cache, with the same
    # ONNX Runtime threads as the other part of the benchmark.
    os.environ[settings.ORT_THREADS.name] = str(args.threads)
    parameters = InferenceParameters(confidence=args.confidence, iou_threshold=args.iou, max_detections=300)
    model = get_model(str(args.model), "onnx", None)
    seed, image, count = find_scene(model, parameters, args.min_detections, args.seeds)
    definition = json.loads(json.dumps(WORKFLOW))
    definition["steps"][0].update(confidence=args.confidence, iou_threshold=args.iou)
    engine = make_engine(definition)
    tensor = model.pre_process(image).tensor
    runtime = {"image": image, "model": str(args.model)}

    def block() -> int:
        return len(engine.run(runtime_parameters=runtime)[0]["predictions"])

    block_count = block()
    if block_count != count:
        raise SystemExit(f"the block found {block_count} detections, the pipeline {count}")
    stages = {
        "forward": lambda: model.backend.infer(tensor),
        "pipeline": lambda: model.infer(image, parameters),
        "block": block,
    }
    for _ in range(args.warmup):
        for stage in stages.values():
            stage()
    samples: dict[str, list[float]] = {name: [] for name in stages}
    for _ in range(args.rounds):
        for name, stage in stages.items():
            samples[name].append(timed(stage)[0])
    overhead = ratio_interval(samples["block"], samples["forward"])
    return {
        "model": str(args.model),
        "layout": model.layout.name,
        "input_hw": list(tensor.shape[2:]),  # the minimum rectangle for a dynamic export
        "scene": {"generator": "tools.synthetic_shapes.generate_scene", "seed": seed, "size_wh": list(SCENE_WH)},
        "parameters": {"confidence": args.confidence, "iou": args.iou, "max_det": 300, "masks": "dense"},
        "detections": count,
        "threads": args.threads,
        "rounds": args.rounds,
        "median_ms": {name: float(np.median(values)) for name, values in samples.items()},
        "block_over_forward": overhead.as_dict(),
        "block_over_forward_text": overhead.text(),
        "pipeline_over_forward_text": ratio_interval(samples["pipeline"], samples["forward"]).text(),
        "target": {
            "block_over_forward_at_most": TARGET_BLOCK_OVERHEAD,
            "verdict": verdict(overhead, TARGET_BLOCK_OVERHEAD, "at_most"),
        },
        "samples_ms": samples,
        "machine": {**cpu_description(), "python": platform.python_version()},
        "git": git_state(),
        "versions": package_versions(["onnxruntime", "numpy", "supervision", "inference-core", "roboflow-workflows"]),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=("ultralytics", "block"), help="what to compare (see above)")
    parser.add_argument("--model", required=True, help="an Ultralytics segmentation ONNX export")
    parser.add_argument("--imgsz", type=int, default=640, help="the export's input size (ultralytics part)")
    parser.add_argument("--confidence", type=float, default=0.25, help="as predict's conf (default 0.25)")
    parser.add_argument("--iou", type=float, default=0.7, help="as predict's iou (default 0.7)")
    parser.add_argument("--min-detections", type=int, default=30, help="the scene must give at least this many")
    parser.add_argument("--seeds", type=int, default=50, help="scenes tried to find one with enough detections")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch and ONNX Runtime threads (default 1)")
    parser.add_argument("--out", type=Path, help="write the JSON record here")
    args = parser.parse_args(argv)
    if args.part == "ultralytics":
        report = run_ultralytics(args)
        print(
            f"{report['detections']} detections on a {SCENE_WH[0]}x{SCENE_WH[1]} scene: pre+post ours "
            f"{report['median_ms']['ours']:.1f} ms, Ultralytics {report['median_ms']['ultralytics']:.1f} ms "
            f"(forward {report['median_ms']['forward']:.1f} ms); Ultralytics / ours {report['speedup_text']}: "
            f"{report['target']['verdict']} (target >= {TARGET_SPEEDUP:g}x)"
        )
    else:
        report = run_block(args)
        print(
            f"{report['detections']} detections on a {SCENE_WH[0]}x{SCENE_WH[1]} scene: forward "
            f"{report['median_ms']['forward']:.1f} ms, pipeline {report['median_ms']['pipeline']:.1f} ms, block "
            f"{report['median_ms']['block']:.1f} ms; block / forward {report['block_over_forward_text']}: "
            f"{report['target']['verdict']} (target <= {TARGET_BLOCK_OVERHEAD:g}x)"
        )
    write_report(args.out, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
