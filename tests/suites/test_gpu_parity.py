"""Parity of the backends on a GPU: ONNX Runtime CPU vs ONNX Runtime CUDA vs TensorRT fp16 on the bundled trained
model (the tests marked ``gpu``, skipped with the reason where the GPU, a library or the model is missing: never
reported as passed), and the detection comparison they use, checked on the CPU so that a GPU run can trust it.

Run the GPU tests (these and the backends' own, in tests/backends/) on a GPU machine with::

    pip install -e '.[onnx-gpu,test]' && pip install --extra-index-url https://pypi.nvidia.com tensorrt-cu12 cuda-python
    pytest -m gpu -rs tests

The parity test writes its figures (engine build time, raw vs end-to-end latency, agreement) to stdout and to
``$WORKFLOWS_YOLOV5_SEG_GPU_REPORT`` when that is set.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import pytest
import supervision as sv

from workflows_yolov5_seg.backends.onnx import OnnxRuntimeBackend
from workflows_yolov5_seg.backends.tensorrt import load_tensorrt_backend, probe_cuda_device
from workflows_yolov5_seg.model import InferenceParameters, YOLOv5SegModel
from workflows_yolov5_seg.model_package import load_model_package

from support.paths import TRAINED_MODEL
from support.required import require_file

TRT_INSTALL = "pip install --extra-index-url https://pypi.nvidia.com tensorrt-cu12"


@pytest.fixture(scope="module")
def trained_model() -> Path:
    return require_file(TRAINED_MODEL, "the bundled trained model")


def _box_iou(a: np.ndarray, b: np.ndarray) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def compare_detections(reference, candidate, confidence: float) -> dict:
    """Matches detections by class and box IoU; returns worst box difference, worst mask IoU and unmatched ones.

    A detection within 0.01 of the confidence threshold may legitimately appear on one side only (fp16 shifts
    scores by ~1e-3); it is counted as ``borderline``, any other unmatched detection as ``missing`` / ``extra``.
    """
    used: set[int] = set()
    worst_box, worst_iou, missing, borderline = 0.0, 1.0, 0, 0
    for i in range(len(reference)):
        candidates = [
            (j, _box_iou(reference.xyxy[i], candidate.xyxy[j]))
            for j in range(len(candidate))
            if j not in used and candidate.class_id[j] == reference.class_id[i]
        ]
        best = max(candidates, key=lambda c: c[1], default=None)
        if best is None or best[1] < 0.5:
            if abs(reference.confidence[i] - confidence) < 0.01:
                borderline += 1
            else:
                missing += 1
            continue
        j = best[0]
        used.add(j)
        worst_box = max(worst_box, float(np.abs(reference.xyxy[i] - candidate.xyxy[j]).max()))
        a, b = reference.mask[i], candidate.mask[j]
        union = np.logical_or(a, b).sum()
        worst_iou = min(worst_iou, float(np.logical_and(a, b).sum() / union) if union else 1.0)
    extra = [j for j in range(len(candidate)) if j not in used]
    extra_real = sum(abs(candidate.confidence[j] - confidence) >= 0.01 for j in extra)
    return {
        "worst_box_px": worst_box,
        "worst_mask_iou": worst_iou,
        "missing": missing,
        "extra": int(extra_real),
        "borderline": borderline + len(extra) - int(extra_real),
    }


# ------------------------------------------------------------------------------------------- the comparison, on the CPU


def detections(boxes: list[list[float]], classes: list[int], scores: list[float], shift: int = 0) -> sv.Detections:
    masks = np.zeros((len(boxes), 100, 100), bool)
    for mask, (x1, y1, x2, y2) in zip(masks, boxes, strict=True):
        mask[int(y1) : int(y2), int(x1) + shift : int(x2) + shift] = True
    return sv.Detections(
        xyxy=np.array(boxes, np.float32).reshape(-1, 4),
        mask=masks,
        class_id=np.array(classes),
        confidence=np.array(scores, np.float32),
    )


def test_comparison_of_identical_detections() -> None:
    a = detections([[10, 10, 50, 50], [60, 60, 90, 90]], [0, 1], [0.9, 0.8])
    result = compare_detections(a, a, 0.4)
    assert result == {"worst_box_px": 0.0, "worst_mask_iou": 1.0, "missing": 0, "extra": 0, "borderline": 0}


def test_comparison_is_order_independent_and_measures_differences() -> None:
    a = detections([[10, 10, 50, 50], [60, 60, 90, 90]], [0, 1], [0.9, 0.8])
    b = detections([[60.5, 60, 90, 90], [10, 10, 50, 51]], [1, 0], [0.8, 0.9], shift=1)
    result = compare_detections(a, b, 0.4)
    assert result["worst_box_px"] == 1.0 and 0.9 < result["worst_mask_iou"] < 1.0
    assert result["missing"] == result["extra"] == 0


def test_comparison_counts_missing_extra_and_borderline() -> None:
    a = detections([[10, 10, 50, 50], [60, 60, 90, 90], [0, 0, 5, 5]], [0, 1, 2], [0.9, 0.8, 0.405])
    b = detections([[10, 10, 50, 50], [20, 70, 30, 80]], [0, 2], [0.9, 0.7])
    result = compare_detections(a, b, 0.4)
    assert (result["missing"], result["extra"], result["borderline"]) == (1, 1, 1)


# ------------------------------------------------------------------------------------------------ parity (gpu)


def _median_ms(function, repeats: int = 30) -> float:
    for _ in range(3):
        function()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


@pytest.mark.gpu
@pytest.mark.parametrize("candidate", ["onnx-cuda", "trt-fp16"])
def test_parity_with_onnxruntime_cpu(candidate: str, trained_model: Path, tmp_path: Path) -> None:
    """ORT-CPU vs ORT-CUDA vs TensorRT fp16 on the trained model: same detections, boxes within 1 px,
    mask IoU >= 0.97."""
    from tools.synthetic_shapes import generate_scene

    package = load_model_package(trained_model)
    if candidate == "onnx-cuda":
        import onnxruntime

        if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
            pytest.skip("onnxruntime has no CUDAExecutionProvider (install onnxruntime-gpu, alone)")
        build_s = 0.0
        backend = OnnxRuntimeBackend(package, device="cuda")
    else:
        gpu, reason = probe_cuda_device(0)
        if gpu is None:
            pytest.skip(f"no CUDA device visible through cuda-python: {reason}")
        pytest.importorskip("tensorrt", reason=f"tensorrt is not installed ({TRT_INSTALL})")
        started = time.perf_counter()
        backend = load_tensorrt_backend(package, precision="fp16", cache_dir=tmp_path / "cache")
        build_s = time.perf_counter() - started
    reference_model = YOLOv5SegModel(package, OnnxRuntimeBackend(package))
    model = YOLOv5SegModel(package, backend)
    parameters = InferenceParameters(confidence=0.4)
    images = [generate_scene(seed, size=(480, 360))[0] for seed in range(24)]
    totals = {
        "images": len(images),
        "detections": 0,
        "worst_box_px": 0.0,
        "worst_mask_iou": 1.0,
        "missing": 0,
        "extra": 0,
        "borderline": 0,
    }
    for image in images:
        [expected] = reference_model.infer(image, parameters)
        [got] = model.infer(image, parameters)
        result = compare_detections(expected, got, parameters.confidence)
        totals["detections"] += len(expected)
        totals["worst_box_px"] = max(totals["worst_box_px"], result["worst_box_px"])
        totals["worst_mask_iou"] = min(totals["worst_mask_iou"], result["worst_mask_iou"])
        for key in ("missing", "extra", "borderline"):
            totals[key] += result[key]
    tensor = model.pre_process(images[0]).tensor
    totals.update(
        candidate=candidate,
        device=model.backend.info.device,
        providers=list(model.backend.info.providers),
        engine_build_or_load_s=round(build_s, 2),
        raw_forward_ms=round(_median_ms(lambda: model.forward(tensor)), 3),
        end_to_end_ms=round(_median_ms(lambda: model.infer(images[0], parameters)), 3),
        cpu_raw_forward_ms=round(_median_ms(lambda: reference_model.forward(tensor), 10), 3),
    )
    print(json.dumps(totals))
    report = os.environ.get("WORKFLOWS_YOLOV5_SEG_GPU_REPORT")
    if report:
        with open(report, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(totals) + "\n")
    model.close()
    assert totals["detections"] > 0, "the trained model found nothing: parity would be vacuous"
    assert totals["missing"] == 0 and totals["extra"] == 0, totals
    assert totals["worst_box_px"] <= 1.0, totals
    assert totals["worst_mask_iou"] >= 0.97, totals
