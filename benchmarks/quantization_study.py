"""Which parts of YOLOv5-seg to keep in float, and which calibration to use: the measurements behind
``workflows_yolov5_seg.quantize``'s defaults (``docs/quantization.md``).

Run from the repository root (the dataset: ``python -m tools.synthetic_shapes --out DATA --seed 0 --train 300 --val 0
--test 150 --size 320``, i.e. the first 300 training images and the held-out test split of the bundled model's
dataset)::

    python -m benchmarks.quantization_study --data DATA --out docs/results/quantization-study.json

For each variant (parts kept in float x calibration method x weight options) it quantizes the bundled trained model
(``shapes-yolov5n-seg-320``) with calibration images from ``DATA/images/train``, evaluates it on the test split
(COCO box and mask mAP50 / mAP50-95 through the pipeline, Ultralytics' val settings, as ``workflows-yolov5-seg
evaluate``), and times its forward pass against the float32 model in interleaved rounds (ratio of medians with a
90 % bootstrap interval, :mod:`benchmarks.stats`). With ``--model-640`` (an untrained YOLOv5s-seg stand-in, see
``python -m benchmarks.benchmark --build-standins --standin-arch s``), each parts variant is also quantized at 640
(calibrated on a few images: its weights are random, only its speed means something) and timed there.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.provenance import provenance, write_report
from benchmarks.stats import ratio_interval

REPOSITORY = Path(__file__).resolve().parents[1]
TRAINED_320 = REPOSITORY / "workflows_yolov5_seg" / "assets" / "shapes-yolov5n-seg-320.onnx"
FP16_320 = REPOSITORY / "models" / "shapes-yolov5n-seg-320-fp16.onnx"


@dataclass(frozen=True)
class Variant:
    """One way of quantizing: a name and the options of :class:`workflows_yolov5_seg.quantize.QuantizationOptions`."""

    name: str
    keep_float: tuple[str, ...]
    calibration_method: str = "minmax"
    reduce_range: bool = False
    per_channel: bool = True
    symmetric_activations: bool = False

    @property
    def parts_only(self) -> bool:
        """Differs from another variant only by the parts kept in float (the variants timed at 640)."""
        return (self.calibration_method, self.reduce_range, self.per_channel, self.symmetric_activations) == (
            "minmax",
            False,
            True,
            False,
        )


VARIANTS = (
    Variant("all int8", ()),
    Variant("float decode", ("decode",)),
    Variant("float decode+detect", ("decode", "detect")),
    Variant("float decode+proto", ("decode", "proto")),
    Variant("float decode+detect+proto", ("decode", "detect", "proto")),
    Variant("float decode+detect, percentile", ("decode", "detect"), calibration_method="percentile"),
    Variant("float decode+detect, reduce_range", ("decode", "detect"), reduce_range=True),
    Variant("float decode+detect, per-tensor", ("decode", "detect"), per_channel=False),
    Variant("float decode+detect, int8 activations", ("decode", "detect"), symmetric_activations=True),
)


def quantize(variant: Variant, source: Path, calibration: Path, out: Path, images: int) -> dict:
    from workflows_yolov5_seg.quantize import QuantizationOptions, quantize_model

    options = QuantizationOptions(
        keep_float=variant.keep_float,
        calibration_method=variant.calibration_method,
        max_images=images,
        per_channel=variant.per_channel,
        reduce_range=variant.reduce_range,
        symmetric_activations=variant.symmetric_activations,
    )
    result = quantize_model(str(source), calibration, out, options, overwrite=True)
    return {
        "path": str(out),
        "bytes": result.output_bytes,
        "calibration_images": result.calibration_images,
        "float_nodes": {part: len(names) for part, names in result.float_nodes.items()},
        "quantized_operators": result.quantized_operators,
        "quantize_seconds": round(result.seconds, 1),
    }


def describe_existing(variant: Variant, source: Path, out: Path) -> dict:
    """``quantize``'s row for a model quantized by an earlier run (``--reuse``)."""
    import onnx

    from workflows_yolov5_seg.model_package import load_model_package
    from workflows_yolov5_seg.quantize import METADATA_KEY, graph_parts, quantized_operator_counts

    model = onnx.load(str(out))
    metadata = json.loads({prop.key: prop.value for prop in model.metadata_props}[METADATA_KEY])
    signature = load_model_package(source).signature
    assert signature is not None
    parts = graph_parts(onnx.load(str(source)), signature.instances_name, signature.protos_name)
    return {
        "path": str(out),
        "bytes": out.stat().st_size,
        "calibration_images": metadata["calibration_images"],
        "float_nodes": {part: len(parts[part]) for part in variant.keep_float},
        "quantized_operators": quantized_operator_counts(model),
        "reused": True,
    }


def evaluate(path: Path, data: Path, split: str) -> dict:
    from workflows_yolov5_seg.evaluate import evaluate as run
    from workflows_yolov5_seg.evaluate import load_dataset
    from workflows_yolov5_seg.model import InferenceParameters, YOLOv5SegModel

    model = YOLOv5SegModel.from_pretrained(path, backend="onnx", device="cpu")
    parameters = InferenceParameters(confidence=0.001, iou_threshold=0.6, max_detections=300, multi_label=True)
    metrics = run(model, load_dataset(data, split), parameters)
    model.close()
    return {
        kind: {"mAP50": round(metrics[kind]["mAP50"], 4), "mAP50-95": round(metrics[kind]["mAP50-95"], 4)}
        for kind in ("box", "mask")
    } | {"images": metrics["images"]}


def time_forward(paths: dict[str, Path], image: np.ndarray, repeats: int, warmup: int, seed: int) -> dict:
    """Forward times (ms) of each model on the same pre-processed image, interleaved: one call of each per round,
    in a new shuffled order every round."""
    from workflows_yolov5_seg.model import YOLOv5SegModel

    models = {name: YOLOv5SegModel.from_pretrained(path, backend="onnx", device="cpu") for name, path in paths.items()}
    tensors = {name: model.pre_process(image).tensor for name, model in models.items()}
    for name, model in models.items():
        for _ in range(warmup):
            model.backend.infer(tensors[name])
    times: dict[str, list[float]] = {name: [] for name in models}
    order = np.random.default_rng(seed)
    names = list(models)
    for _ in range(repeats):
        for index in order.permutation(len(names)):
            name = names[index]
            started = time.perf_counter()
            models[name].backend.infer(tensors[name])
            times[name].append((time.perf_counter() - started) * 1000.0)
    for model in models.values():
        model.close()
    return times


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.quantization_study", description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="dataset root with images/train and the test split")
    parser.add_argument("--split", default="test")
    parser.add_argument("--model", type=Path, default=TRAINED_320, help="float32 model to quantize and evaluate")
    parser.add_argument("--fp16", type=Path, default=FP16_320, help="its fp16 variant (evaluated and timed)")
    parser.add_argument("--model-640", type=Path, default=None, help="a 640 YOLOv5s-seg stand-in, for speed")
    parser.add_argument("--calibration-images", type=int, default=200)
    parser.add_argument("--calibration-images-640", type=int, default=16)
    parser.add_argument("--variants", default=None, help="comma-separated variant names (default: all)")
    parser.add_argument("--repeats", type=int, default=30, help="timed rounds (default 30)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--no-eval", action="store_true", help="time only")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the quantized models here")
    parser.add_argument("--reuse", action="store_true", help="reuse models an earlier run left in --workdir")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    import cv2

    args = parse_args(argv)
    variants = VARIANTS
    if args.variants:
        wanted = [name.strip() for name in args.variants.split(",")]
        known = {v.name: v for v in VARIANTS}
        unknown = [name for name in wanted if name not in known]
        if unknown:
            print(f"unknown variants {unknown}; known: {list(known)}", file=sys.stderr)
            return 2
        variants = tuple(known[name] for name in wanted)
    calibration = args.data / "images" / "train"
    test_images = sorted((args.data / "images" / args.split).glob("*"))
    image = cv2.imread(str(test_images[0]))
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="yolov5seg-qstudy-") as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        paths_320 = {"fp32": args.model}
        if args.fp16 and args.fp16.is_file():
            paths_320["fp16"] = args.fp16
        paths_640 = {"fp32": args.model_640} if args.model_640 else {}
        rows.append({"name": "fp32", "precision": "fp32", "path": str(args.model)})
        if "fp16" in paths_320:
            rows.append({"name": "fp16", "precision": "fp16", "path": str(args.fp16)})
        for index, variant in enumerate(variants):
            out = work / f"v{index}-320.onnx"
            print(f"[{variant.name}] quantizing at 320 ...", file=sys.stderr, flush=True)
            row = {"name": variant.name, "precision": "int8", "options": variant.__dict__.copy()}
            if args.reuse and out.is_file():
                row |= describe_existing(variant, args.model, out)
            else:
                row |= quantize(variant, args.model, calibration, out, args.calibration_images)
            paths_320[variant.name] = out
            if args.model_640 and variant.parts_only:
                out_640 = work / f"v{index}-640.onnx"
                print(f"[{variant.name}] quantizing at 640 ...", file=sys.stderr, flush=True)
                if args.reuse and out_640.is_file():
                    row["640"] = describe_existing(variant, args.model_640, out_640)
                else:
                    row["640"] = quantize(variant, args.model_640, calibration, out_640, args.calibration_images_640)
                paths_640[variant.name] = out_640
            rows.append(row)
        if not args.no_eval:
            for row in rows:
                print(f"[{row['name']}] evaluating ...", file=sys.stderr, flush=True)
                row["accuracy"] = evaluate(Path(row["path"]), args.data, args.split)
        timings = {}
        for size, paths in ((320, paths_320), (640, paths_640)):
            if len(paths) < 2:
                continue
            print(f"timing {len(paths)} models at {size} ({args.repeats} rounds) ...", file=sys.stderr, flush=True)
            times = time_forward(paths, image, args.repeats, args.warmup, args.seed)
            timings[size] = times
            for row in rows:
                if row["name"] in times:
                    interval = ratio_interval(times["fp32"], times[row["name"]])  # fp32 / variant: the speed-up
                    row[f"forward_{size}"] = {
                        "median_ms": round(float(np.median(times[row["name"]])), 2),
                        "speedup_vs_fp32": interval.as_dict(),
                        "times_ms": [round(t, 3) for t in times[row["name"]]],
                    }
        model_files = [Path(p) for p in [*paths_320.values(), *paths_640.values()]]
        report = {
            "command": "python -m benchmarks.quantization_study " + " ".join(sys.argv[1:] if argv is None else argv),
            "provenance": provenance(model_files),
            "settings": {
                "data": str(args.data),
                "split": args.split,
                "calibration": str(calibration),
                "calibration_images": args.calibration_images,
                "calibration_images_640": args.calibration_images_640,
                "repeats": args.repeats,
                "warmup": args.warmup,
                "timing_image": str(test_images[0]),
                "evaluation": "confidence 0.001, IoU 0.6, 300 detections, multi-label (Ultralytics val)",
            },
            "variants": rows,
        }
    print(table(rows))
    write_report(args.out, report)
    return 0


def accuracy_cell(row: dict, base: dict | None, kind: str, metric: str, delta: bool = False) -> str:
    accuracy = row.get("accuracy")
    if not accuracy:
        return ""
    value = accuracy[kind][metric]
    if delta and base and row["name"] != "fp32":
        return f"{value:.4f} ({(value - base[kind][metric]) * 100:+.2f})"
    return f"{value:.4f}"


def speed_cell(row: dict, size: int) -> str:
    forward = row.get(f"forward_{size}")
    if not forward:
        return ""
    s = forward["speedup_vs_fp32"]
    return f"{s['estimate']:.2f}x [{s['low']:.2f}, {s['high']:.2f}]"


def table(rows: list[dict]) -> str:
    """Markdown: accuracy against fp32 (points) and forward speed-up with its interval."""
    base = next((r for r in rows if r["name"] == "fp32"), {}).get("accuracy")
    lines = [
        "| variant | mask mAP50-95 (Δ pts) | mask mAP50 | box mAP50-95 (Δ pts) | box mAP50 | speed-up 320 | "
        "speed-up 640 | MB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        size = row.get("bytes") or (Path(row["path"]).stat().st_size if Path(row["path"]).is_file() else None)
        lines.append(
            f"| {row['name']} | {accuracy_cell(row, base, 'mask', 'mAP50-95', True)} | "
            f"{accuracy_cell(row, base, 'mask', 'mAP50')} | {accuracy_cell(row, base, 'box', 'mAP50-95', True)} | "
            f"{accuracy_cell(row, base, 'box', 'mAP50')} | {speed_cell(row, 320)} | {speed_cell(row, 640)} | "
            f"{'' if size is None else f'{size / 1e6:.1f}'} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
