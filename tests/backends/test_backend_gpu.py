"""GPU tests: the real TensorRT, cuda-python and onnxruntime-gpu. Every test here is marked ``gpu`` and is skipped,
with the reason, where the GPU, a library or the trained model is missing: never reported as passed.

Run them on a GPU machine with::

    pip install -e '.[onnx-gpu,test]' && pip install --extra-index-url https://pypi.nvidia.com tensorrt-cu12 cuda-python
    pytest -m gpu -rs tests/backends/test_backend_gpu.py

The parity test writes its figures (engine build time, raw vs end-to-end latency, agreement) to stdout and to
``$WORKFLOWS_YOLOV5_SEG_GPU_REPORT`` when that is set.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import time
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto
from onnx_graphs import box_protos, make_constant_seg_onnx, make_row
from required import require_file

from workflows_yolov5_seg.backends.onnx import OnnxRuntimeBackend
from workflows_yolov5_seg.backends.tensorrt import load_tensorrt_backend, probe_cuda_device
from workflows_yolov5_seg.model import InferenceParameters, YOLOv5SegModel
from workflows_yolov5_seg.model_package import load_model_package

pytestmark = pytest.mark.gpu

TRAINED_MODEL = Path(__file__).resolve().parents[2] / "workflows_yolov5_seg" / "assets" / "shapes-yolov5n-seg-320.onnx"
TRT_INSTALL = "pip install --extra-index-url https://pypi.nvidia.com tensorrt-cu12"


@pytest.fixture(scope="module")
def cuda_device() -> None:
    gpu, reason = probe_cuda_device(0)
    if gpu is None:
        pytest.skip(f"no CUDA device visible through cuda-python: {reason}")


@pytest.fixture(scope="module")
def tensorrt(cuda_device: None):  # noqa: ANN201
    return pytest.importorskip("tensorrt", reason=f"tensorrt is not installed ({TRT_INSTALL})")


@pytest.fixture(scope="module")
def ort_cuda() -> None:
    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        pytest.skip(
            "onnxruntime has no CUDAExecutionProvider (install onnxruntime-gpu, alone); providers: "
            f"{onnxruntime.get_available_providers()}"
        )


@pytest.fixture(scope="module")
def trained_model() -> Path:
    return require_file(TRAINED_MODEL, "the bundled trained model")


def constant_model(path: Path, input_type: int = TensorProto.FLOAT) -> Path:
    protos, coefficients = box_protos((80, 80))
    rows = np.stack(
        [
            make_row((40, 60, 120, 140), 0.9, [0.1, 0.95, 0.2], coefficients),
            make_row((200, 180, 300, 260), 0.8, [0.9, 0.1, 0.1], coefficients),
        ]
    )
    return make_constant_seg_onnx(path, rows, protos, names={0: "a", 1: "b", 2: "c"}, input_type=input_type)


# ------------------------------------------------------------------------------------------------ ONNX Runtime CUDA


def test_onnxruntime_cuda_really_runs_on_the_gpu(ort_cuda: None, tmp_path: Path) -> None:
    model = constant_model(tmp_path / "m.onnx")
    gpu = OnnxRuntimeBackend(load_model_package(model), device="cuda")  # raises if ONNX Runtime fell back to the CPU
    assert gpu.info.device == "cuda:0" and gpu.info.providers[0] == "CUDAExecutionProvider"
    batch = np.random.default_rng(0).random((2, 3, 320, 320), dtype=np.float32)
    for got, expected in zip(gpu.infer(batch), OnnxRuntimeBackend(load_model_package(model)).infer(batch), strict=True):
        np.testing.assert_allclose(got, expected, atol=1e-5)


# ------------------------------------------------------------------------------------------------ TensorRT


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_tensorrt_builds_caches_and_runs(
    tensorrt, tmp_path: Path, precision: str, caplog: pytest.LogCaptureFixture
) -> None:
    model = constant_model(tmp_path / "m.onnx")
    package = load_model_package(model)
    cache = tmp_path / "cache"
    with caplog.at_level(logging.INFO):
        backend = load_tensorrt_backend(package, precision=precision, batch="1,2,4", cache_dir=cache)
    assert "Built the TensorRT engine" in caplog.text
    assert backend.info.name == "trt" and backend.info.precision == precision and backend.info.max_batch_size == 4
    [engine] = (cache / "trt").glob("*.engine")
    assert engine.stat().st_mode & 0o777 == 0o600
    batch = np.random.default_rng(0).random((3, 3, 320, 320), dtype=np.float32)
    for got, expected in zip(
        backend.infer(batch), OnnxRuntimeBackend(load_model_package(model)).infer(batch), strict=True
    ):
        assert got.dtype == np.float32
        # fp16 keeps ~3 significant digits: box coordinates of ~300 px are within ~0.2 px.
        tolerance = {"rtol": 2e-3, "atol": 1e-2} if precision == "fp16" else {"rtol": 1e-6, "atol": 1e-5}
        np.testing.assert_allclose(got, expected, **tolerance)
    backend.close()
    caplog.clear()
    with caplog.at_level(logging.INFO):
        load_tensorrt_backend(package, precision=precision, batch="1,2,4", cache_dir=cache).close()
    assert "Using the cached TensorRT engine" in caplog.text and "Built the TensorRT engine" not in caplog.text


def test_tensorrt_rebuilds_a_corrupted_cache(tensorrt, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    package = load_model_package(constant_model(tmp_path / "m.onnx"))
    cache = tmp_path / "cache"
    load_tensorrt_backend(package, precision="fp32", cache_dir=cache).close()
    [engine] = (cache / "trt").glob("*.engine")
    engine.write_bytes(engine.read_bytes()[:1000])  # truncated, as after a crash of a non-atomic writer
    backend = load_tensorrt_backend(package, precision="fp32", cache_dir=cache)
    assert "deleting and rebuilding" in caplog.text
    backend.infer(np.zeros((1, 3, 320, 320), np.float32))
    backend.close()


def test_tensorrt_fp16_input_engine(tensorrt, tmp_path: Path) -> None:
    model = constant_model(tmp_path / "h.onnx", input_type=TensorProto.FLOAT16)
    backend = load_tensorrt_backend(load_model_package(model), cache_dir=tmp_path / "cache")
    assert backend.info.input_dtype == np.float16
    instances, protos = backend.infer(np.zeros((1, 3, 320, 320), np.float32))
    assert instances.dtype == np.float32 and protos.dtype == np.float32
    backend.close()


def test_tensorrt_concurrent_forwards(tensorrt, tmp_path: Path) -> None:
    import threading

    model = constant_model(tmp_path / "m.onnx")
    backend = load_tensorrt_backend(load_model_package(model), precision="fp32", cache_dir=tmp_path / "cache")
    expected = OnnxRuntimeBackend(load_model_package(model)).infer(np.zeros((1, 3, 320, 320), np.float32))[0]
    errors: list[BaseException] = []

    def run() -> None:
        try:
            for size in (1, 4, 2, 8):
                got = backend.infer(np.zeros((size, 3, 320, 320), np.float32))[0]
                np.testing.assert_allclose(got, np.repeat(expected, size, axis=0), atol=1e-5)
        except BaseException as error:  # noqa: BLE001
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    backend.close()
    assert errors == []


# ------------------------------------------------------------------------------------------------ parity


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


def _median_ms(function, repeats: int = 30) -> float:
    for _ in range(3):
        function()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


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
