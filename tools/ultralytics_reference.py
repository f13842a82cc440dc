"""Ultralytics ``predict`` reference data for the parity tests of the Ultralytics-family exports (issue 20).

Runs in the Ultralytics venv (``/work/ul-venv``, see training/README.md), offline::

    /work/ul-venv/bin/python tools/ultralytics_reference.py --data /work/ul-run/data

For each committed export ``models/shapes-yolo*-seg-*.onnx`` (YOLOv5's left out) it runs
``YOLO(path, task="segment").predict(image, imgsz=<export imgsz>, conf=C, iou=0.7, retina_masks=True, max_det=300)``
on the package's demo scene and the first 5 images of the synthetic test split (copied into
``tests/data/family_reference/images/``), at conf 0.25 (predict's default) and 0.001, plus ``agnostic_nms=True`` at
0.25 for ``shapes-yolov8n-seg-320``, and writes ``tests/data/family_reference/<model stem>.json``: per image and
setting the detections as Ultralytics returns them (``xyxy`` float boxes in original-image pixels, class ids,
confidences, masks as COCO RLE from ``pycocotools.mask.encode`` with ``counts`` as str), the letterboxed input shape
Ultralytics fed the model, and how many detections it dropped for an empty mask.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "training"))

from train_ultralytics import setup_offline  # noqa: E402

DEMO = ROOT / "workflows_yolov5_seg" / "assets" / "demo-scene.jpg"
OUT = ROOT / "tests" / "data" / "family_reference"
SETTINGS = {  # name -> predict arguments (iou 0.7, retina masks and max_det 300 throughout)
    "conf0.25": {"conf": 0.25},
    "conf0.001": {"conf": 0.001},
}
AGNOSTIC_MODEL = "shapes-yolov8n-seg-320"
AGNOSTIC = {"conf0.25-agnostic": {"conf": 0.25, "agnostic_nms": True}}


def images(data: Path, count: int = 5) -> list[Path]:
    """The demo scene and the first ``count`` test images (copied into the reference folder)."""
    folder = OUT / "images"
    folder.mkdir(parents=True, exist_ok=True)
    chosen = sorted((data / "images" / "test").glob("*.jpg"))[:count]
    for path in chosen:
        if not (folder / path.name).exists():
            shutil.copyfile(path, folder / path.name)
    return [DEMO, *(folder / p.name for p in chosen)]


def rle(mask) -> dict:
    import numpy as np
    from pycocotools import mask as mask_utils

    encoded = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(s) for s in encoded["size"]], "counts": encoded["counts"].decode("ascii")}


def reference(path: Path, image_paths: list[Path], low_conf_masks: bool = True) -> dict:
    import cv2
    from ultralytics import YOLO
    from ultralytics.models.yolo.segment.predict import SegmentationPredictor

    seen: dict = {}
    original = SegmentationPredictor.construct_result

    def construct_result(self, pred, img, orig_img, img_path, proto):  # record what predict does not return
        seen["input_shape"] = [int(s) for s in img.shape]
        seen["before_mask_filter"] = int(pred.shape[0])
        return original(self, pred, img, orig_img, img_path, proto)

    SegmentationPredictor.construct_result = construct_result
    model = YOLO(str(path), task="segment")
    imgsz = 640 if "-640" in path.name else 320
    settings = dict(SETTINGS, **(AGNOSTIC if path.stem == AGNOSTIC_MODEL else {}))
    out: dict = {
        "model": f"models/{path.name}",
        "imgsz": imgsz,
        "iou": 0.7,
        "retina_masks": True,
        "max_det": 300,
        "settings": settings,
        "images": {},
    }
    try:
        for image_path in image_paths:
            image = cv2.imread(str(image_path))  # BGR, as predict reads a path
            entry = {"file": str(image_path.relative_to(ROOT)), "shape": list(image.shape[:2]), "results": {}}
            for name, kwargs in settings.items():
                seen.clear()
                result = model.predict(
                    image, imgsz=imgsz, iou=0.7, retina_masks=True, max_det=300, verbose=False, device="cpu", **kwargs
                )[0]
                boxes = result.boxes
                masks = result.masks.data.cpu().numpy() > 0.5 if result.masks is not None else []
                keep_masks = low_conf_masks or kwargs["conf"] >= 0.25
                entry["results"][name] = {
                    "input_shape": seen.get("input_shape"),
                    "dropped_empty_masks": seen.get("before_mask_filter", 0) - len(boxes),
                    "xyxy": [[round(float(v), 4) for v in b] for b in boxes.xyxy.tolist()],
                    "class_id": [int(c) for c in boxes.cls.tolist()],
                    "confidence": [round(float(c), 6) for c in boxes.conf.tolist()],
                    "masks": [rle(m) for m in masks] if keep_masks else None,
                }
            out["images"][image_path.name] = entry
    finally:
        SegmentationPredictor.construct_result = original
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("/work/ul-run/data"), help="synthetic shapes data set")
    parser.add_argument("--models", type=Path, nargs="*", help="default: models/shapes-yolo*-seg-*.onnx but YOLOv5's")
    parser.add_argument("--no-low-conf-masks", action="store_true", help="keep only boxes at conf 0.001 (size)")
    args = parser.parse_args(argv)
    setup_offline(args.data.parent)
    import ultralytics

    paths = args.models or sorted(
        p for p in (ROOT / "models").glob("shapes-yolo*-seg-*.onnx") if not p.name.startswith("shapes-yolov5")
    )
    image_paths = images(args.data)
    for path in paths:
        t0 = time.time()
        data = reference(path, image_paths, low_conf_masks=not args.no_low_conf_masks)
        data["ultralytics"] = ultralytics.__version__
        data["date"] = time.strftime("%Y-%m-%d", time.gmtime())
        target = OUT / f"{path.stem}.json"
        target.write_text(json.dumps(data, separators=(",", ":")) + "\n")
        counts = {n: len(e["results"]["conf0.25"]["class_id"]) for n, e in data["images"].items()}
        print(
            f"{target.relative_to(ROOT)}: {target.stat().st_size} bytes, {time.time() - t0:.0f} s, "
            f"detections at 0.25: {counts}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
