"""16 threads segment different scenes with the bundled trained model through one Workflows engine (issue 13).

The constant-output graphs of ``test_concurrency.py`` answer the same detections for every image, so a race that
hands one thread's image, tensors or masks to another cannot show there. Here every thread segments its own
generated scenes (different seeds and sizes, so different letterbox geometries), every scene has objects, every
scene's serial answer is different from every other's, and every concurrent answer must equal the serial answer for
its scene: boxes, classes, scores and masks, bit for bit.
"""

from __future__ import annotations

import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from workflows_yolov5_seg import model_cache
from workflows_yolov5_seg.model_cache import ModelCache

from support.paths import TRAINED_MODEL
from support.required import require_file, require_module
from support.workflows import init_engine, workflow

require_module("roboflow_workflows.execution_engine.core", "the Workflows engine")

THREADS = 16
RUNS_PER_THREAD = 4
# (width, height): landscape, portrait, square, odd sizes; each thread cycles through them from its own offset.
SIZES = ((640, 480), (320, 320), (480, 640), (800, 450), (257, 193), (500, 500), (333, 611), (720, 405))
SEED = 13_000
WORKFLOW = workflow()


def scene(thread: int, run: int) -> tuple[np.ndarray, int]:
    """The ``run``-th scene of ``thread``: its image and how many object instances it holds."""
    from tools.synthetic_shapes import generate_scene

    image, instances = generate_scene(SEED + thread * RUNS_PER_THREAD + run, SIZES[(thread + run) % len(SIZES)])
    return image, len(instances)


def answer(engine, image: np.ndarray, model: Path) -> tuple:  # noqa: ANN001 - the engine
    """Boxes, class ids, scores and the SHA-256 of each mask of the workflow's detections."""
    detections = engine.run(runtime_parameters={"image": image, "model": str(model)})[0]["predictions"]
    assert np.asarray(detections.mask).shape[1:] == image.shape[:2]
    mask_hashes = tuple(hashlib.sha256(np.packbits(np.asarray(mask)).tobytes()).hexdigest() for mask in detections.mask)
    return (
        detections.xyxy.tobytes(),
        detections.class_id.tobytes(),
        detections.confidence.tobytes(),
        mask_hashes,
        len(detections),
    )


@pytest.fixture()
def engine(monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201 - the engine
    monkeypatch.setattr(model_cache, "MODELS", ModelCache())
    return init_engine(WORKFLOW)


def test_sixteen_threads_segment_different_scenes_as_serially(engine) -> None:  # noqa: ANN001
    model = require_file(TRAINED_MODEL, "the bundled trained model")
    scenes = {(t, r): scene(t, r) for t in range(THREADS) for r in range(RUNS_PER_THREAD)}
    serial = {key: answer(engine, image, model) for key, (image, _) in scenes.items()}

    for key, (_, instances) in scenes.items():
        assert instances > 0, f"scene {key} has no objects"
        assert serial[key][-1] > 0, f"the trained model finds nothing in scene {key} ({instances} objects)"
    distinct = {result[:4] for result in serial.values()}
    assert len(distinct) == len(serial), "two scenes have the same answer: a mix-up between them could not show"

    barrier = threading.Barrier(THREADS)

    def thread_work(thread: int) -> list[tuple[tuple[int, int], tuple]]:
        barrier.wait(timeout=60)  # all threads start together
        return [((thread, r), answer(engine, scenes[(thread, r)][0], model)) for r in range(RUNS_PER_THREAD)]

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        results = [item for items in pool.map(thread_work, range(THREADS)) for item in items]

    assert len(results) == THREADS * RUNS_PER_THREAD
    wrong = [key for key, result in results if result != serial[key]]
    assert not wrong, f"{len(wrong)} concurrent answers differ from the serial answer for their scene: {wrong}"
    assert model_cache.MODELS.loads == 1
