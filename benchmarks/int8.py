"""The benchmark's int8 rows (``python -m benchmarks.benchmark --int8``): int8 against fp32 on the CPU, in one run.

At 320 input, the bundled trained model (``shapes-yolov5n-seg-320``), its fp16 variant and its int8 variant (the
shipped ``shapes-yolov5n-seg-320-int8.onnx``, else quantized here with the default options); at 640 input, an
untrained YOLOv5s-seg stand-in (the released ``yolov5s-seg`` architecture with random weights: same forward cost;
``--build-standins --standin-arch s``) and its int8 variant, quantized here once and cached beside it.

Measured, with the same image for every model of a size:

- ``forward``: the raw ONNX Runtime forward pass (``model.backend.infer``), fp32, int8 (and fp16 at 320);
- ``block``: the block end to end through the Workflows ``ExecutionEngine`` (pre-processing, forward,
  post-processing, serialisation), fp32 and int8. At 640 the stand-in's ``output0`` gets 30 injected objects (as the
  benchmark's ``synthetic`` cases: ``output0_network * 0 + rows``, the network still runs) so that both precisions
  decode the same detections; at 320 the trained models' own detections on a generated scene;
- accuracy at 320: COCO box and mask mAP50 / mAP50-95 on the held-out test split (150 images of the bundled model's
  dataset, ``tools.synthetic_shapes`` seed 0) for fp32, fp16 and int8, as ``workflows-yolov5-seg evaluate``.

Stages of a size are timed interleaved (one call of each per round, shuffled every round), ``--int8-repeats``
rounds (default 30, no time budget). Speed-ups are fp32 median / int8 median with a paired 90 % bootstrap interval
(:mod:`benchmarks.stats`); a target is met only when the whole interval meets it.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np

from benchmarks import benchmark
from benchmarks.provenance import DirtyTreeError, provenance, require_clean, write_report
from benchmarks.stats import ratio_interval, verdict

INT8_320 = benchmark.ASSETS / "shapes-yolov5n-seg-320-int8.onnx"
FP16_320 = benchmark.MODEL_VARIANTS / "shapes-yolov5n-seg-320-fp16.onnx"
DATASET_SEED = 0  # the bundled model's dataset (training/README.md)
TEST_IMAGES = 150
CALIBRATION_IMAGES = 200  # the first training images
CALIBRATION_IMAGES_640 = 32  # the stand-in's weights are random: calibration only sets scales, speed is the same
SPEEDUP_TARGET = 1.5  # int8 forward at 640 at least 1.5x faster than fp32
ACCURACY_TARGET_POINTS = 1.0  # int8 mask mAP50-95 at most 1.0 point below fp32
INJECTED_640 = 30


def dataset_dir(args: argparse.Namespace) -> Path:
    """The bundled model's dataset (seed 0): the first training images and the test split, generated once."""
    from tools.synthetic_shapes import write_dataset

    root = args.int8_data or args.standin_dir / f"shapes-seed{DATASET_SEED}"
    marker = root / "annotations" / "instances_test.json"
    if not marker.is_file() or len(list((root / "images" / "train").glob("*"))) < CALIBRATION_IMAGES:
        print(f"generating the dataset into {root} (once) ...", file=sys.stderr, flush=True)
        write_dataset(root, seed=DATASET_SEED, train=CALIBRATION_IMAGES, val=0, test=TEST_IMAGES, size=320)
    return root


def int8_model(source: Path, target: Path, calibration: Path, images: int) -> Path:
    from workflows_yolov5_seg.quantize import QuantizationOptions, quantize_model

    if not target.is_file():
        print(f"quantizing {source.name} -> {target} ...", file=sys.stderr, flush=True)
        quantize_model(str(source), calibration, target, QuantizationOptions(max_images=images))
    return target


def models(args: argparse.Namespace, data: Path, workdir: Path, notes: list[str]) -> dict[int, dict[str, Path]]:
    calibration = data / "images" / "train"
    found: dict[int, dict[str, Path]] = {}
    if benchmark.TRAINED_320.is_file():
        int8 = (
            INT8_320
            if INT8_320.is_file()
            else int8_model(benchmark.TRAINED_320, workdir / "shapes-int8-320.onnx", calibration, CALIBRATION_IMAGES)
        )
        found[320] = {"fp32": benchmark.TRAINED_320, "int8": int8}
        if FP16_320.is_file():
            found[320]["fp16"] = FP16_320
        notes.append(f"320: the bundled trained model; int8 = {int8}")
    standin = Path(args.model_640) if args.model_640 else benchmark.standin_path(args.standin_dir, 640, False, "s")
    if standin.is_file():
        cached = standin.with_name(f"{standin.stem}-int8.onnx")
        found[640] = {"fp32": standin, "int8": int8_model(standin, cached, calibration, CALIBRATION_IMAGES_640)}
        notes.append(f"640: {standin.name} (random weights) and its int8 variant {cached.name}")
    else:
        notes.append(
            f"640 not measured: no YOLOv5s-seg stand-in at {standin}; build it with python -m benchmarks.benchmark "
            "--build-standins --standin-arch s --yolov5-python PY (see docs/benchmark.md)"
        )
    return found


def time_size(size: int, paths: dict[str, Path], ctx: benchmark.Context, rng: np.random.Generator) -> dict:
    """Forward and block of every precision of one size, interleaved; returns the detections per block."""
    from workflows_yolov5_seg.model import YOLOv5SegModel

    case = benchmark.Case(f"int8-{size}-1280x720", size, (1280, 720), 12, source="scene")
    images = benchmark.make_images(case, seed=4242)
    loaded = {name: YOLOv5SegModel.from_pretrained(path, backend="onnx", device="cpu") for name, path in paths.items()}
    batch = loaded["fp32"].pre_process(images)
    block_paths = dict(paths)
    if size != 320:  # an untrained network: inject the same detections into both precisions
        _, protos = loaded["fp32"].forward(batch.tensor)
        geometry = batch.geometries[0]
        (pl, pt, pr, pb), (net_h, net_w) = geometry.pad_ltrb, geometry.network_hw
        region = (pl + 2.0, pt + 2.0, net_w - pr - 2.0, net_h - pb - 2.0)
        rows = benchmark.synthetic_rows(rng, size, len(loaded["fp32"].class_names), INJECTED_640, region, protos[0])
        for name in ("fp32", "int8"):
            block_paths[name] = benchmark.inject_rows(paths[name], rows, ctx.workdir / f"{name}-{size}-injected.onnx")
    stages = []
    for name, model in loaded.items():
        tensor = batch.tensor.astype(model.backend.info.input_dtype)
        stages.append(
            benchmark.Stage("forward", name, None, lambda m=model, t=tensor: m.backend.infer(t), memory=False)
        )
    if ctx.engine is not None:
        for name in ("fp32", "int8"):
            stages.append(
                benchmark.Stage(
                    "block",
                    name,
                    "accurate",
                    lambda p=str(block_paths[name]): ctx.engine.run(
                        runtime_parameters={"image": images[0], "model": p}
                    ),
                    count=benchmark.block_count,
                    memory=False,
                )
            )
    benchmark.run_stages(ctx, case, stages)
    for model in loaded.values():
        model.close()
    return {"case": case.name, "image_wh": case.image_wh, "injected_detections": INJECTED_640 if size != 320 else None}


def speedups(results: list[benchmark.Measurement]) -> list[dict]:
    """fp32 / other for every stage and size, with paired bootstrap intervals."""
    rows = []
    for case in dict.fromkeys(r.case for r in results):
        for stage in ("forward", "block"):
            reference = benchmark.find(results, case, stage, "fp32")
            if reference is None:
                continue
            for other in ("int8", "fp16"):
                measured = benchmark.find(results, case, stage, other)
                if measured is None:
                    continue
                interval = ratio_interval(reference.times_ms, measured.times_ms)
                rows.append(
                    {
                        "case": case,
                        "stage": stage,
                        "precision": other,
                        "fp32_median_ms": reference.median_ms,
                        "median_ms": measured.median_ms,
                        "speedup": interval.as_dict(),
                        "detections": [reference.detections, measured.detections],
                    }
                )
    return rows


def evaluate_accuracy(paths: dict[str, Path], data: Path) -> dict[str, dict]:
    from workflows_yolov5_seg.evaluate import evaluate, load_dataset
    from workflows_yolov5_seg.model import InferenceParameters, YOLOv5SegModel

    dataset = load_dataset(data, "test")
    parameters = InferenceParameters(confidence=0.001, iou_threshold=0.6, max_detections=300, multi_label=True)
    accuracy = {}
    for name, path in paths.items():
        print(f"evaluating {name} on the test split ...", file=sys.stderr, flush=True)
        model = YOLOv5SegModel.from_pretrained(path, backend="onnx", device="cpu")
        metrics = evaluate(model, dataset, parameters)
        model.close()
        accuracy[name] = {
            kind: {m: round(metrics[kind][m], 4) for m in ("mAP50", "mAP50-95")} for kind in ("box", "mask")
        } | {"images": metrics["images"]}
    return accuracy


def targets(ratios: list[dict], accuracy: dict[str, dict]) -> list[dict]:
    found = []
    forward_640 = next((r for r in ratios if r["case"].startswith("int8-640") and r["stage"] == "forward"), None)
    name = f"int8 forward >= {SPEEDUP_TARGET}x faster than fp32 at 640 input (YOLOv5s-seg size)"
    if forward_640 and forward_640["precision"] == "int8":
        from benchmarks.stats import RatioInterval

        interval = RatioInterval(**forward_640["speedup"])
        result = verdict(interval, SPEEDUP_TARGET, "at_least")
        found.append(
            {
                "target": name,
                "verdict": result,
                "met": result == "met",
                "measured": f"{forward_640['fp32_median_ms']:.1f} ms / {forward_640['median_ms']:.1f} ms = "
                + interval.text(),
            }
        )
    else:
        found.append({"target": name, "verdict": "not measured", "met": None, "measured": "640 not run"})
    name = f"int8 mask mAP50-95 at most {ACCURACY_TARGET_POINTS:.1f} point below fp32 (test split, 320)"
    if "int8" in accuracy and "fp32" in accuracy:
        drop = (accuracy["fp32"]["mask"]["mAP50-95"] - accuracy["int8"]["mask"]["mAP50-95"]) * 100
        met = drop <= ACCURACY_TARGET_POINTS
        found.append(
            {
                "target": name,
                "verdict": "met" if met else "not met",  # deterministic: no interval
                "met": met,
                "measured": f"{accuracy['int8']['mask']['mAP50-95']:.4f} vs {accuracy['fp32']['mask']['mAP50-95']:.4f}"
                f" ({-drop:+.2f} points)",
            }
        )
    else:
        found.append({"target": name, "verdict": "not measured", "met": None, "measured": "not evaluated"})
    return found


def ratios_table(ratios: list[dict]) -> str:
    lines = [
        "| case | stage | precision | fp32 median ms | median ms | speed-up vs fp32 [90 % interval] | rounds | dets |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in ratios:
        s = r["speedup"]
        dets = "" if r["detections"][0] is None else f"{r['detections'][0]} / {r['detections'][1]}"
        lines.append(
            f"| {r['case']} | {r['stage']} | {r['precision']} | {r['fp32_median_ms']:.1f} | {r['median_ms']:.1f} | "
            f"{s['estimate']:.2f}x [{s['low']:.2f}, {s['high']:.2f}] | {s['numerator_n']} | {dets} |"
        )
    return "\n".join(lines)


def delta_cell(value: float, base: float | None) -> str:
    """``0.6542 (-1.46)``: a metric and its difference from fp32 in points (``base`` ``None``: the value alone)."""
    return f"{value:.4f}" if base is None else f"{value:.4f} ({(value - base) * 100:+.2f})"


def accuracy_table(accuracy: dict[str, dict]) -> str:
    lines = ["| model | box mAP50 | box mAP50-95 | mask mAP50 | mask mAP50-95 |", "|---|---|---|---|---|"]
    base = accuracy.get("fp32")
    for name, metrics in accuracy.items():
        cells = [
            delta_cell(metrics[kind][metric], None if base is None or name == "fp32" else base[kind][metric])
            for kind in ("box", "mask")
            for metric in ("mAP50", "mAP50-95")
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run(args: argparse.Namespace, argv: list[str]) -> int:
    """The ``--int8`` benchmark (see the module docstring)."""
    state = provenance()
    if args.require_clean:
        try:
            require_clean(state["git"])
        except DirtyTreeError as error:
            print(error, file=sys.stderr)
            return 2
    rng = np.random.default_rng(args.seed)
    notes: list[str] = []
    data = dataset_dir(args)
    run_args = argparse.Namespace(**vars(args))
    run_args.repeats, run_args.budget, run_args.no_memory = args.int8_repeats, math.inf, True
    with tempfile.TemporaryDirectory(prefix="yolov5seg-bench-int8-") as tmp:
        ctx = benchmark.Context(args=run_args, workdir=Path(tmp), progress=benchmark.Progress(0, enabled=False))
        found = models(args, data, ctx.workdir, notes)
        if not args.no_engine:
            try:
                ctx.engine = benchmark.make_engine()
            except ImportError as error:
                notes.append(f"Workflows ExecutionEngine not importable ({error}): block not measured")
        ctx.progress = benchmark.Progress(sum(len(p) + 2 for p in found.values()), enabled=not args.no_progress)
        cases = [time_size(size, paths, ctx, rng) for size, paths in sorted(found.items())]
        ctx.progress.close()
        accuracy = {} if args.no_eval or 320 not in found else evaluate_accuracy(found[320], data)
        model_files = [path for paths in found.values() for path in paths.values()]
        report = {
            "command": "python -m benchmarks.benchmark " + " ".join(argv),
            "provenance": provenance(model_files) | {"git": state["git"]},
            "settings": {
                "load_average_start": state["load_average"],  # the timed rounds run first; "provenance" is at the end
                "rounds": args.int8_repeats,
                "warmup": args.warmup,
                "confidence": benchmark.CONFIDENCE,
                "iou_threshold": benchmark.IOU,
                "interval": "90 % percentile bootstrap of the ratio of medians, rounds resampled in pairs",
                "dataset": {"root": str(data), "seed": DATASET_SEED, "test_images": TEST_IMAGES},
                "evaluation": "confidence 0.001, IoU 0.6, 300 detections, multi-label (Ultralytics val)",
            },
            "models": {str(size): {k: str(v) for k, v in paths.items()} for size, paths in found.items()},
            "cases": cases,
            "notes": notes,
            "results": [asdict(r) for r in ctx.results],
            "speedups": speedups(ctx.results),
            "accuracy_320": accuracy,
        }
    report["targets"] = targets(report["speedups"], accuracy)
    if state["git"]["dirty"]:
        notes.append("the checkout was dirty (see provenance.git.changed): not a clean record")
    print(ratios_table(report["speedups"]))
    if accuracy:
        print()
        print(accuracy_table(accuracy))
    print()
    print("Targets:")
    print(benchmark.targets_text(report["targets"]))
    for note in notes:
        print(f"note: {note}")
    write_report(args.out, report)
    return 0
