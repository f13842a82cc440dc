"""Accuracy of the bundled trained model through this package's pipeline (issue 3, item 6).

- A small generated set (20 scenes of ``write_dataset(seed=31)``; the bundled model was trained on seed 0 and the
  demo scene uses seed 2024) is evaluated with :func:`workflows_yolov5_seg.evaluate.evaluate` at Ultralytics' val
  settings (conf 0.001, IoU 0.6, multi-label; at most 100 detections per image, COCO's own cap, to keep the test
  fast). Its mask mAP50 must reach a bound the model really reaches (measured minus 0.05), and a deliberately broken
  mask decode (the letterbox pads swapped between the axes, so masks land beside their objects) must not. Its mask
  mAP50-95, deterministic on this set (ONNX Runtime on the CPU), must reach a bound 0.003 under the measured value:
  tight enough that every mask shifted by one pixel (left, right, up or down) falls below it.
- Golden outputs of three fixed generated scenes (landscape, portrait, square) pin boxes (1 px), classes, scores
  (0.01), mask areas (2 %) and mask centroids (1 px), at conf 0.2 / IoU 0.45, so a regression of pre-processing,
  scoring, NMS or decoding shows.

The measured figures, the bound and the goldens live in ``tests/data/accuracy_golden.json``, computed with the
bundled model. After a deliberate change of the model or the pipeline, regenerate them (it checks that the broken
decode still falls below the new bound) with::

    python tests/suites/test_accuracy.py --regenerate
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest

# Its own paths (not support.paths): the module also runs as a script, before tests/ is on sys.path.
REPOSITORY = Path(__file__).resolve().parents[2]
TRAINED_MODEL = REPOSITORY / "workflows_yolov5_seg" / "assets" / "shapes-yolov5n-seg-320.onnx"
GOLDEN_FILE = REPOSITORY / "tests" / "data" / "accuracy_golden.json"

SMALL_SET_SEED = 31
SMALL_SET_IMAGES = 20
BOUND_MARGIN = 0.05
# mask mAP50-95 is deterministic on the small set; a one-pixel shift of every mask costs it 0.009 to 0.021
MAP50_95_MARGIN = 0.003
ONE_PIXEL_SHIFTS = {"right": (0, 1), "left": (0, -1), "down": (1, 0), "up": (-1, 0)}  # (rows, columns)
GOLDEN_SEED = 31
GOLDEN_SCENES = ((640, 360), (360, 560), (500, 500))  # (width, height)
# The block's defaults.
GOLDEN_PARAMETERS = {"confidence": 0.4, "iou_threshold": 0.3}


def _model():  # noqa: ANN202
    from support.required import require_file

    require_file(TRAINED_MODEL, "the bundled trained model")
    from workflows_yolov5_seg.model import YOLOv5SegModel

    return YOLOv5SegModel.from_pretrained(TRAINED_MODEL, backend="onnx", device="cpu")


def _small_set(root: Path):  # noqa: ANN202
    from tools.synthetic_shapes import write_dataset
    from workflows_yolov5_seg.evaluate import load_dataset

    write_dataset(root, seed=SMALL_SET_SEED, train=0, val=0, test=SMALL_SET_IMAGES, size=320)
    return load_dataset(root, "test")


def _parameters():  # noqa: ANN202
    from workflows_yolov5_seg.model import InferenceParameters

    return InferenceParameters(confidence=0.001, iou_threshold=0.6, max_detections=100, multi_label=True)


def _swapped_pad_axes(exact_axes):  # noqa: ANN001, ANN202
    """``masks._axes`` with the left pad used for the top and the top pad for the left (and right / bottom)."""

    def axes(geometry, protos_hw, grid_hw):  # noqa: ANN001, ANN202
        left, top, right, bottom = geometry.pad_ltrb
        return exact_axes(dataclasses.replace(geometry, pad_ltrb=(top, left, bottom, right)), protos_hw, grid_hw)

    return axes


def _shifted_decode(exact_decode, shift: tuple[int, int]):  # noqa: ANN001, ANN202
    """``model.decode_masks`` whose every (dense) mask is moved by ``shift`` = (rows, columns) pixels, zero-filled."""
    dy, dx = shift

    def decode(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        masks = np.asarray(exact_decode(*args, **kwargs))
        moved = np.zeros_like(masks)
        height, width = masks.shape[1:]
        moved[:, max(dy, 0) : height + min(dy, 0), max(dx, 0) : width + min(dx, 0)] = masks[
            :, max(-dy, 0) : height - max(dy, 0), max(-dx, 0) : width - max(dx, 0)
        ]
        return moved

    return decode


def _golden() -> dict:
    if not GOLDEN_FILE.is_file():
        pytest.fail(
            f"{GOLDEN_FILE} is missing: measure the bundled model's bound and goldens with "
            "`python tests/suites/test_accuracy.py --regenerate` and commit the file."
        )
    return json.loads(GOLDEN_FILE.read_text())


def _model_note() -> str:
    golden = _golden()
    actual = hashlib.sha256(TRAINED_MODEL.read_bytes()).hexdigest()
    if actual == golden["model_sha256"]:
        return ""
    return (
        f" NOTE: the goldens were computed for a model with SHA-256 {golden['model_sha256'][:12]}, the bundled one "
        f"is {actual[:12]}; if the model was replaced deliberately, run "
        "`python tests/suites/test_accuracy.py --regenerate`."
    )


@pytest.fixture(scope="module")
def model():  # noqa: ANN201
    return _model()


@pytest.fixture(scope="module")
def small_set(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    return _small_set(tmp_path_factory.mktemp("accuracy_set"))


def test_small_set_reaches_the_mask_map_bound(model, small_set) -> None:  # noqa: ANN001
    from workflows_yolov5_seg.evaluate import evaluate

    golden = _golden()["small_set"]
    bound, bound_50_95 = golden["mask_mAP50_bound"], golden["mask_mAP50-95_bound"]
    metrics = evaluate(model, small_set, _parameters())

    assert metrics["images"] == SMALL_SET_IMAGES
    assert metrics["mask"]["mAP50"] >= bound, f"mask mAP50 {metrics['mask']['mAP50']:.4f} < {bound}.{_model_note()}"
    assert metrics["mask"]["mAP50-95"] >= bound_50_95, (
        f"mask mAP50-95 {metrics['mask']['mAP50-95']:.4f} < {bound_50_95} (measured "
        f"{golden['measured']['mask_mAP50-95']}).{_model_note()}"
    )


def test_masks_one_pixel_off_fall_below_the_map50_95_bound(model, small_set, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    """Every mask moved one pixel right (the shift that costs the least, with the one up): mAP50 barely moves,
    mAP50-95 falls below its bound."""
    from workflows_yolov5_seg import model as model_module
    from workflows_yolov5_seg.evaluate import evaluate

    golden = _golden()["small_set"]
    monkeypatch.setattr(model_module, "decode_masks", _shifted_decode(model_module.decode_masks, (0, 1)))
    metrics = evaluate(model, small_set, _parameters())

    assert metrics["mask"]["mAP50"] >= golden["mask_mAP50_bound"], "a one-pixel shift should not matter at IoU 0.5"
    assert metrics["mask"]["mAP50-95"] < golden["mask_mAP50-95_bound"], metrics["mask"]


def test_swapped_letterbox_pads_fall_below_the_bound(model, small_set, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    """The same evaluation with masks decoded through swapped pads: boxes are right, masks are not."""
    from workflows_yolov5_seg import masks
    from workflows_yolov5_seg.evaluate import evaluate

    bound = _golden()["small_set"]["mask_mAP50_bound"]
    monkeypatch.setattr(masks, "_axes", _swapped_pad_axes(masks._axes))
    metrics = evaluate(model, small_set, _parameters())

    assert metrics["mask"]["mAP50"] < bound, metrics["mask"]


def _golden_scene(index: int) -> np.ndarray:
    from tools.synthetic_shapes import generate_scene, scene_seed

    image, _ = generate_scene(scene_seed(GOLDEN_SEED, "golden", index), GOLDEN_SCENES[index])
    return image


def _describe(model, image: np.ndarray) -> dict:  # noqa: ANN001
    detections = model(image, **GOLDEN_PARAMETERS)[0]
    described = []
    for box, mask, class_id, confidence in zip(
        detections.xyxy, detections.mask, detections.class_id, detections.confidence, strict=True
    ):
        rows, cols = np.nonzero(mask)
        described.append(
            {
                "class": model.class_names[int(class_id)],
                "confidence": round(float(confidence), 4),
                "box": [round(float(v), 2) for v in box],
                "mask_area": int(rows.size),
                "mask_centroid_xy": [round(float(cols.mean()), 2), round(float(rows.mean()), 2)] if rows.size else None,
            }
        )
    return {"image_sha256": hashlib.sha256(image.tobytes()).hexdigest(), "detections": described}


@pytest.mark.parametrize("index", range(len(GOLDEN_SCENES)))
def test_golden_scene(model, index: int) -> None:  # noqa: ANN001
    golden = _golden()["scenes"][index]
    image = _golden_scene(index)
    assert hashlib.sha256(image.tobytes()).hexdigest() == golden["image_sha256"], (
        "synthetic_shapes.generate_scene no longer reproduces this golden scene; if that change was deliberate, "
        "regenerate the goldens with `python tests/suites/test_accuracy.py --regenerate`."
    )
    actual = _describe(model, image)["detections"]
    note = _model_note()
    assert len(actual) == len(golden["detections"]), f"{actual} != {golden['detections']}.{note}"
    unmatched = list(actual)
    for expected in golden["detections"]:
        match = next(
            (
                d
                for d in unmatched
                if d["class"] == expected["class"] and np.abs(np.subtract(d["box"], expected["box"])).max() <= 1.0
            ),
            None,
        )
        assert match is not None, f"no detection like {expected} in {actual}.{note}"
        unmatched.remove(match)
        assert abs(match["confidence"] - expected["confidence"]) <= 0.01, (match, expected, note)
        assert abs(match["mask_area"] - expected["mask_area"]) <= 0.02 * expected["mask_area"], (match, expected, note)
        if expected["mask_centroid_xy"] is not None:
            shift = np.abs(np.subtract(match["mask_centroid_xy"], expected["mask_centroid_xy"])).max()
            assert shift <= 1.0, (match, expected, note)


FP16_MODEL = REPOSITORY / "models" / "shapes-yolov5n-seg-320-fp16.onnx"


@pytest.fixture(scope="module")
def fp16_model():  # noqa: ANN201
    from workflows_yolov5_seg.model import YOLOv5SegModel

    from support.required import require_file

    require_file(FP16_MODEL, "the bundled fp16 variant")
    return YOLOv5SegModel.from_pretrained(FP16_MODEL, backend="onnx", device="cpu")


@pytest.mark.parametrize("index", range(len(GOLDEN_SCENES)))
def test_fp16_variant_matches_the_float32_model(model, fp16_model, index: int) -> None:  # noqa: ANN001
    """The bundled fp16 export (training/export_fp16.py) keeps the float32 model's detections."""
    image = _golden_scene(index)
    expected, actual = model(image, **GOLDEN_PARAMETERS)[0], fp16_model(image, **GOLDEN_PARAMETERS)[0]
    assert len(actual) == len(expected) >= 2
    np.testing.assert_array_equal(actual.class_id, expected.class_id)
    np.testing.assert_allclose(actual.confidence, expected.confidence, atol=0.01)
    np.testing.assert_allclose(actual.xyxy, expected.xyxy, atol=1.0)
    intersection = (actual.mask & expected.mask).sum(axis=(1, 2))
    union = (actual.mask | expected.mask).sum(axis=(1, 2))
    assert (intersection / union).min() >= 0.97


def regenerate() -> None:
    """Measures the small set (exact and broken decode) and the golden scenes with the bundled model."""
    import tempfile

    from workflows_yolov5_seg import masks
    from workflows_yolov5_seg import model as model_module
    from workflows_yolov5_seg.evaluate import evaluate

    model = _model()
    with tempfile.TemporaryDirectory() as folder:
        dataset = _small_set(Path(folder))
        exact = evaluate(model, dataset, _parameters())
        again = evaluate(model, dataset, _parameters())
        if again["mask"] != exact["mask"]:
            raise SystemExit(f"mask mAP differs between two evaluations: {exact['mask']} != {again['mask']}")
        exact_axes = masks._axes
        masks._axes = _swapped_pad_axes(exact_axes)
        try:
            broken = evaluate(model, dataset, _parameters())
        finally:
            masks._axes = exact_axes
        exact_decode = model_module.decode_masks
        shifted = {}
        for name, shift in ONE_PIXEL_SHIFTS.items():
            model_module.decode_masks = _shifted_decode(exact_decode, shift)
            try:
                shifted[name] = evaluate(model, dataset, _parameters())["mask"]
            finally:
                model_module.decode_masks = exact_decode
    bound = float(np.floor((exact["mask"]["mAP50"] - BOUND_MARGIN) * 1000) / 1000)
    if broken["mask"]["mAP50"] >= bound:
        raise SystemExit(
            f"the broken decode reaches mask mAP50 {broken['mask']['mAP50']:.4f} >= bound {bound}: the accuracy "
            "test could not fail; the model is too weak for this check."
        )
    bound_50_95 = float(np.floor((exact["mask"]["mAP50-95"] - MAP50_95_MARGIN) * 1000) / 1000)
    reaching = {name: value["mAP50-95"] for name, value in shifted.items() if value["mAP50-95"] >= bound_50_95}
    if reaching:
        raise SystemExit(
            f"masks shifted by one pixel reach the mask mAP50-95 bound {bound_50_95}: {reaching}; the bound is not "
            "tight enough to catch them."
        )
    scenes = [
        {"generate_scene": f"scene_seed({GOLDEN_SEED}, 'golden', {index}), size {GOLDEN_SCENES[index]}"}
        | _describe(model, _golden_scene(index))
        for index in range(len(GOLDEN_SCENES))
    ]
    if any(len(scene["detections"]) < 2 for scene in scenes):
        raise SystemExit(f"a golden scene has fewer than 2 detections, too few to pin anything: {scenes}")
    figures = {
        "mask_mAP50": round(exact["mask"]["mAP50"], 4),
        "mask_mAP50-95": round(exact["mask"]["mAP50-95"], 4),
        "box_mAP50": round(exact["box"]["mAP50"], 4),
        "box_mAP50-95": round(exact["box"]["mAP50-95"], 4),
    }
    broken_figures = {"mask_mAP50": round(broken["mask"]["mAP50"], 4), "box_mAP50": round(broken["box"]["mAP50"], 4)}
    shifted_figures = {
        name: {"mask_mAP50": round(value["mAP50"], 4), "mask_mAP50-95": round(value["mAP50-95"], 4)}
        for name, value in shifted.items()
    }
    document = {
        "model": TRAINED_MODEL.name,
        "model_sha256": hashlib.sha256(TRAINED_MODEL.read_bytes()).hexdigest(),
        "small_set": {
            "write_dataset": f"seed={SMALL_SET_SEED}, test={SMALL_SET_IMAGES}, size=320",
            "parameters": dataclasses.asdict(_parameters()),
            "measured": figures,
            "mask_mAP50_bound": bound,
            "mask_mAP50-95_bound": bound_50_95,
            "measured_with_swapped_pads": broken_figures,
            "measured_with_masks_one_pixel_off": shifted_figures,
        },
        "scenes": scenes,
    }
    GOLDEN_FILE.parent.mkdir(parents=True, exist_ok=True)
    GOLDEN_FILE.write_text(json.dumps(document, indent=1) + "\n")
    print(json.dumps(document["small_set"], indent=1))
    print(f"Wrote {GOLDEN_FILE}")


if __name__ == "__main__":
    if sys.argv[1:] != ["--regenerate"]:
        raise SystemExit(__doc__)
    # tools/ (the scene generator) and tests/ (support), as pytest's pythonpath gives the tests
    sys.path[:0] = [str(REPOSITORY), str(REPOSITORY / "tests")]
    regenerate()
