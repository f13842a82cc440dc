"""int8 models on this CPU's kernels and on the reference arithmetic: what a CPU's int8 path changes.

ONNX Runtime picks its int8 convolution kernel by CPU. With VNNI (AVX-512 VNNI, AVX-VNNI) or AMX, ``vpdpbusd``
(or the tile unit) accumulates the u8 x s8 products exactly in int32. On AVX2 (and AVX-512 without VNNI),
``vpmaddubsw`` first adds pairs of products in int16 with saturation: two products of up to 255 x 127 exceed 32767,
so a large activation next to a large weight can be clipped. The **reference** run here takes the same QDQ model
with graph optimisation disabled: ``DequantizeLinear`` -> float operator -> ``QuantizeLinear``, i.e. the exact
integer products without any saturation. On a VNNI CPU the optimised run differs from it only by rounding; on an
AVX2 CPU without VNNI it differs also by the saturated pairs, unless the weights are 7-bit (``reduce_range``: 255 x
64 x 2 = 32640 fits in int16) or unsigned (u8 x u8, which ONNX Runtime computes by widening to int16 first).

For each model (fp32 and int8 variants) and each arithmetic (``kernels``: this CPU's optimised kernels;
``reference``: graph optimisation disabled) it gives the test-split accuracy (as ``workflows-yolov5-seg
evaluate``, Ultralytics' val settings), the golden-scene comparison against fp32 of
``tests/test_quantize.py::test_shipped_int8_variant_keeps_the_float32_detections`` (per scene: count change; over the
fp32 detections of confidence >= 0.55: class kept, lowest box and mask IoU, largest confidence change), and the
forward time against fp32 (interleaved rounds, ratio of medians with a 90 % bootstrap interval)::

    python -m benchmarks.int8_kernels --data DATA --int8 shipped=workflows_yolov5_seg/assets/...-int8.onnx \\
        --int8 reduce_range=OTHER.onnx --out docs/results/int8-kernels-CPU.json
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from benchmarks.provenance import provenance, write_report
from benchmarks.quantization_study import TRAINED_320, evaluate, speed_cell, time_forward
from benchmarks.stats import ratio_interval

GOLDEN_SEED = 31  # tests/suites/test_accuracy.py's golden scenes
GOLDEN_SCENES = ((640, 360), (360, 560), (500, 500))  # (width, height)
CONFIDENT = 0.55
OPTIMISATION = "WORKFLOWS_YOLOV5_SEG_ORT_GRAPH_OPTIMIZATION"
ARITHMETIC = {"kernels": "all", "reference": "disable"}


@contextlib.contextmanager
def graph_optimisation(level: str) -> Iterator[None]:
    before = os.environ.get(OPTIMISATION)
    os.environ[OPTIMISATION] = level
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(OPTIMISATION, None)
        else:
            os.environ[OPTIMISATION] = before


def golden_images() -> list[np.ndarray]:
    from tools.synthetic_shapes import generate_scene, scene_seed

    return [generate_scene(scene_seed(GOLDEN_SEED, "golden", i), size)[0] for i, size in enumerate(GOLDEN_SCENES)]


def compare(reference, actual) -> dict:  # noqa: ANN001 - two supervision Detections
    """fp32 ``reference`` against ``actual`` on one scene, as the shipped-variant test matches them."""
    import supervision as sv

    confident = np.flatnonzero(reference.confidence >= CONFIDENT)
    rows = []
    if len(confident) and len(actual):
        box_iou = sv.box_iou_batch(reference.xyxy[confident], actual.xyxy)
        for row, k in enumerate(confident):
            j = int(box_iou[row].argmax())
            union = (reference.mask[k] | actual.mask[j]).sum()
            rows.append(
                {
                    "fp32_confidence": round(float(reference.confidence[k]), 4),
                    "class_kept": bool(actual.class_id[j] == reference.class_id[k]),
                    "box_iou": round(float(box_iou[row, j]), 4),
                    "mask_iou": round(float((reference.mask[k] & actual.mask[j]).sum() / union), 4),
                    "confidence_change": round(float(abs(actual.confidence[j] - reference.confidence[k])), 4),
                }
            )
    return {
        "count_change": int(len(actual) - len(reference)),
        "confident": len(confident),
        "classes_kept": all(r["class_kept"] for r in rows) and len(rows) == len(confident),
        "min_box_iou": min((r["box_iou"] for r in rows), default=None),
        "min_mask_iou": min((r["mask_iou"] for r in rows), default=None),
        "max_confidence_change": max((r["confidence_change"] for r in rows), default=None),
        "detections": rows,
    }


def golden(path: Path, references: list) -> list[dict]:
    from workflows_yolov5_seg.model import YOLOv5SegModel

    model = YOLOv5SegModel.from_pretrained(str(path), backend="onnx", device="cpu")
    try:
        return [compare(ref, model(image)[0]) for ref, image in zip(references, golden_images(), strict=True)]
    finally:
        model.close()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.int8_kernels", description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=None, help="dataset root (test split; else no accuracy)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--model", type=Path, default=TRAINED_320, help="the float32 model")
    parser.add_argument("--int8", action="append", default=[], metavar="NAME=PATH", help="an int8 model (repeat)")
    parser.add_argument("--repeats", type=int, default=30, help="timed rounds (0: no timing)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--no-eval", action="store_true", help="no accuracy (golden scenes and timing only)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    import cv2

    from workflows_yolov5_seg.model import YOLOv5SegModel

    args = parse_args(argv)
    models = {"fp32": args.model} | {name: Path(path) for name, path in (a.split("=", 1) for a in args.int8)}
    fp32 = YOLOv5SegModel.from_pretrained(str(args.model), backend="onnx", device="cpu")
    references = [fp32(image)[0] for image in golden_images()]
    fp32.close()
    rows = []
    for name, path in models.items():
        row: dict = {"name": name, "path": str(path)}
        for arithmetic, level in ARITHMETIC.items():
            if name == "fp32" and arithmetic == "reference":
                continue
            print(f"[{name}, {arithmetic}] ...", file=sys.stderr, flush=True)
            with graph_optimisation(level):
                result: dict = {"graph_optimization": level, "golden": golden(path, references)}
                if args.data and not args.no_eval:
                    result["accuracy"] = evaluate(path, args.data, args.split)
            row[arithmetic] = result
        rows.append(row)
    if args.repeats and args.data:
        image = cv2.imread(str(sorted((args.data / "images" / args.split).glob("*"))[0]))
        times = time_forward(models, image, args.repeats, args.warmup, args.seed)
        for row in rows:
            row["forward_320"] = {
                "median_ms": round(float(np.median(times[row["name"]])), 2),
                "speedup_vs_fp32": ratio_interval(times["fp32"], times[row["name"]]).as_dict(),
            }
    report = {
        "command": "python -m benchmarks.int8_kernels " + " ".join(sys.argv[1:] if argv is None else argv),
        "provenance": provenance(models.values()),
        "settings": {
            "golden_scenes": {"seed": GOLDEN_SEED, "sizes": GOLDEN_SCENES, "confident": CONFIDENT},
            "arithmetic": {
                "kernels": "graph optimisation all: this CPU's fused int8 kernels",
                "reference": "graph optimisation disabled: DequantizeLinear, float operator, QuantizeLinear "
                "(exact products, no saturation)",
            },
            "repeats": args.repeats,
        },
        "models": rows,
    }
    print(summary(rows))
    write_report(args.out, report)
    return 0


def summary(rows: list[dict]) -> str:
    lines = [
        "| model | arithmetic | mask mAP50-95 | box mAP50-95 | golden: count change, classes kept, min box IoU, "
        "min mask IoU, max confidence change | speed-up |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        for arithmetic in ARITHMETIC:
            if arithmetic not in row:
                continue
            result = row[arithmetic]
            accuracy = result.get("accuracy") or {}
            golden_text = "; ".join(
                f"{g['count_change']:+d} {'kept' if g['classes_kept'] else 'CHANGED'} {g['min_box_iou']} "
                f"{g['min_mask_iou']} {g['max_confidence_change']}"
                for g in result["golden"]
            )
            speed = speed_cell(row, 320) if arithmetic == "kernels" else ""
            masks, boxes = (accuracy.get(kind, {}).get("mAP50-95", "") for kind in ("mask", "box"))
            lines.append(f"| {row['name']} | {arithmetic} | {masks} | {boxes} | {golden_text} | {speed} |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
