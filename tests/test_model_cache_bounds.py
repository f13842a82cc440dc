"""The model cache keeps nothing per key it failed to load (issue 13: no cache without bounds)."""

from __future__ import annotations

import threading

import pytest

from workflows_yolov5_seg.model_cache import ModelCache


def test_failed_loads_leave_no_lock_behind() -> None:
    cache: ModelCache[object] = ModelCache(max_models=2)

    def fail() -> object:
        raise FileNotFoundError("no such model")

    for index in range(1000):
        with pytest.raises(FileNotFoundError):
            cache.get(f"/models/missing-{index}.onnx", fail)
    assert cache._key_locks == {} and len(cache) == 0 and cache.loads == 0


def test_loaded_and_evicted_models_leave_no_lock_behind() -> None:
    cache: ModelCache[object] = ModelCache(max_models=2)
    for index in range(50):
        cache.get(("model", index), object)
    assert cache._key_locks == {} and len(cache) == 2 and cache.loads == 50


def test_a_failed_load_is_retried_by_the_next_caller() -> None:
    cache: ModelCache[str] = ModelCache(max_models=2)
    attempts = []

    def flaky() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise OSError("first attempt fails")
        return "model"

    with pytest.raises(OSError):
        cache.get("key", flaky)
    assert cache.get("key", flaky) == "model" and cache.get("key", flaky) == "model"
    assert len(attempts) == 2 and cache.loads == 1


def test_concurrent_first_requests_still_load_once() -> None:
    cache: ModelCache[object] = ModelCache(max_models=2)
    started, release, loads = threading.Event(), threading.Event(), []

    def slow() -> object:
        loads.append(1)
        started.set()
        release.wait(10)
        return object()

    results = []
    threads = [threading.Thread(target=lambda: results.append(cache.get("key", slow))) for _ in range(8)]
    for thread in threads:
        thread.start()
    started.wait(10)
    release.set()
    for thread in threads:
        thread.join(10)
    assert len(loads) == 1 and len(results) == 8 and len({id(result) for result in results}) == 1
    assert cache._key_locks == {}
