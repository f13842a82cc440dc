"""Accuracy of the Ultralytics family exports through this package, next to Ultralytics' own ``yolo val``.

For every export recorded in ``docs/results/ultralytics-val.json`` (Ultralytics' ``yolo val`` of the file, run in the
Ultralytics venv by ``training/train_ultralytics.py --stages val``), this runs ``workflows-yolov5-seg evaluate`` on
the same file and split, with the same settings as ``yolo val`` (conf 0.001, IoU 0.7, 300 detections, multi-label),
and records both mask and box mAP50-95 side by side with the file's SHA-256, so a stale record shows::

    python -m tools.synthetic_shapes --out ../ul-run/data --seed 0 --train 800 --val 150 --test 150 --size 320
    .venv/bin/python -m benchmarks.family_accuracy --data ../ul-run/data --out docs/results/evaluate-family.json

The criterion (issue 20): ours may not be below ``yolo val`` by more than 0.3 mask mAP50-95 points (0.003).
``yolo val`` scores masks at the prototype grid with its own AP code; ``evaluate`` decodes them at the original
resolution and scores them with pycocotools, so the two are close but not equal.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

from benchmarks.provenance import REPOSITORY, git_state, package_versions, write_report
from workflows_yolov5_seg.backends.engine_cache import file_sha256
from workflows_yolov5_seg.evaluate import evaluate, load_dataset
from workflows_yolov5_seg.model import InferenceParameters, YOLOSegModel

ULTRALYTICS_VAL = REPOSITORY / "docs" / "results" / "ultralytics-val.json"
MAX_BELOW_ULTRALYTICS = 0.003


def run(data: Path, splits: Sequence[str]) -> dict:
    recorded = json.loads(ULTRALYTICS_VAL.read_text())
    rows = []
    for theirs in recorded["results"]:
        if theirs["split"] not in splits:
            continue
        path = REPOSITORY / theirs["model"]
        model = YOLOSegModel.from_pretrained(path, backend="onnx", device="cpu")
        parameters = InferenceParameters(confidence=0.001, iou_threshold=0.7, max_detections=300, multi_label=True)
        ours = evaluate(model, load_dataset(data, theirs["split"], "auto"), parameters)
        model.close()
        difference = ours["mask"]["mAP50-95"] - theirs["mask_map50_95"]
        rows.append(
            {
                "model": theirs["model"],
                "sha256": file_sha256(path),
                "layout": model.layout.name,
                "split": theirs["split"],
                "ours": {"mask_map50_95": ours["mask"]["mAP50-95"], "box_map50_95": ours["box"]["mAP50-95"]},
                "ultralytics_val": {"mask_map50_95": theirs["mask_map50_95"], "box_map50_95": theirs["box_map50_95"]},
                "mask_map50_95_difference": difference,
                "meets_criterion": difference >= -MAX_BELOW_ULTRALYTICS,
                "in_graph_confidence": ours.get("in_graph_confidence"),
            }
        )
        print(
            f"{theirs['model']} {theirs['split']}: mask mAP50-95 ours {ours['mask']['mAP50-95']:.4f}, yolo val "
            f"{theirs['mask_map50_95']:.4f} ({difference:+.4f})"
        )
    return {
        "what": "evaluate (this package) next to yolo val (Ultralytics) on the same exports and splits",
        "settings": {"confidence": 0.001, "iou": 0.7, "max_detections": 300, "multi_label": True},
        "criterion": f"ours >= yolo val - {MAX_BELOW_ULTRALYTICS} mask mAP50-95",
        "results": rows,
        "git": git_state(),
        "versions": package_versions(["onnxruntime", "numpy", "supervision", "pycocotools", "opencv-python-headless"]),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, type=Path, help="the shapes dataset (tools.synthetic_shapes, seed 0)")
    parser.add_argument("--splits", default="test", help="comma-separated (default: test, the held-out split)")
    parser.add_argument("--out", type=Path, help="write the JSON record here")
    args = parser.parse_args(argv)
    report = run(args.data, args.splits.split(","))
    write_report(args.out, report)
    return 0 if all(row["meets_criterion"] for row in report["results"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
