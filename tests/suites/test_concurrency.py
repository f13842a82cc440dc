"""Many threads share models through the real Execution Engine (issue: reliability)."""

from __future__ import annotations

import gc
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from workflows_yolov5_seg import model_cache
from workflows_yolov5_seg.model_cache import ModelCache

from support.models import CLASS_NAMES
from support.onnx_graphs import box_protos, make_constant_seg_onnx, make_row
from support.required import require_module
from support.workflows import init_engine, workflow

require_module("roboflow_workflows.execution_engine.core", "the Workflows engine")

IMAGES = [np.full((h, w, 3), v, np.uint8) for h, w, v in [(160, 320, 0), (427, 640, 50), (240, 240, 200), (90, 60, 9)]]


@pytest.fixture(scope="module")
def second_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    protos, coefficients = box_protos((80, 80))
    rows = np.stack([make_row((10, 10, 300, 200), 0.8, [0.2, 0.1, 0.9], coefficients)])
    return make_constant_seg_onnx(tmp_path_factory.mktemp("second") / "m.onnx", rows, protos, names=CLASS_NAMES)


@pytest.fixture()
def engine(monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201 - the engine
    monkeypatch.setattr(model_cache, "MODELS", ModelCache())
    return init_engine(workflow())


def summary(detections) -> tuple:  # noqa: ANN001 - sv.Detections
    return (detections.xyxy.tobytes(), detections.class_id.tobytes(), np.packbits(detections.mask).tobytes())


def run_once(engine, image_index: int, model: Path) -> tuple:  # noqa: ANN001
    result = engine.run(runtime_parameters={"image": IMAGES[image_index], "model": str(model)})
    return summary(result[0]["predictions"])


def test_sixteen_threads_share_one_model(engine, two_box_model: Path) -> None:  # noqa: ANN001
    serial = [run_once(engine, i, two_box_model) for i in range(len(IMAGES))]
    assert all(boxes for boxes, _, _ in serial), "every image has detections: equal empty answers prove nothing"
    jobs = [(n % len(IMAGES), two_box_model) for n in range(16 * 100)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(lambda job: (job[0], run_once(engine, *job)), jobs))
    assert len(results) == 1600
    assert all(result == serial[index] for index, result in results)
    assert model_cache.MODELS.loads == 1


def test_two_models_alternating(engine, two_box_model: Path, second_model: Path) -> None:  # noqa: ANN001
    models = [two_box_model, second_model]
    serial = {(i, m): run_once(engine, i, m) for i in range(len(IMAGES)) for m in models}
    assert serial[(0, two_box_model)] != serial[(0, second_model)]
    assert all(boxes for boxes, _, _ in serial.values()), "every image has detections with both models"
    jobs = [(n % len(IMAGES), models[n % 2]) for n in range(16 * 50)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(lambda job: (job, run_once(engine, *job)), jobs))
    assert all(result == serial[job] for job, result in results)
    assert model_cache.MODELS.loads == 2


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads resident memory from /proc")
def test_resident_memory_is_stable_over_2000_runs(engine, two_box_model: Path) -> None:  # noqa: ANN001
    for n in range(200):  # warm up allocator pools and caches
        run_once(engine, n % len(IMAGES), two_box_model)
    gc.collect()
    before = resident_bytes()
    for n in range(2000):
        run_once(engine, n % len(IMAGES), two_box_model)
    gc.collect()
    growth = (resident_bytes() - before) / before
    print(f"resident memory growth over 2000 runs: {growth:.2%} (from {before / 2**20:.0f} MiB)")
    assert growth < 0.05
