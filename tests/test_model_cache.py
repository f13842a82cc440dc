from __future__ import annotations

import gc
import threading
import weakref

import pytest

from workflows_yolov5_seg.model_cache import ModelCache


class Loaded:
    """Stands for a loaded model (any object)."""


def test_concurrent_first_requests_load_once() -> None:
    cache: ModelCache[Loaded] = ModelCache(max_models=4)
    calls = []
    barrier = threading.Barrier(16)
    results: list[Loaded] = []

    def load() -> Loaded:
        calls.append(1)
        return Loaded()

    def request() -> None:
        barrier.wait()
        results.append(cache.get("model", load))

    threads = [threading.Thread(target=request) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1 and cache.loads == 1
    assert all(result is results[0] for result in results)


def test_least_recently_used_model_is_evicted() -> None:
    cache: ModelCache[Loaded] = ModelCache(max_models=2)
    a, b = cache.get("a", Loaded), cache.get("b", Loaded)
    assert cache.get("a", Loaded) is a  # "a" is now the most recent
    cache.get("c", Loaded)
    assert "a" in cache and "c" in cache and "b" not in cache
    assert b is not None


def test_an_evicted_model_in_use_stays_alive_until_released() -> None:
    cache: ModelCache[Loaded] = ModelCache(max_models=1)
    in_use = cache.get("a", Loaded)
    reference = weakref.ref(in_use)
    cache.get("b", Loaded)
    assert "a" not in cache
    gc.collect()
    assert reference() is in_use, "a running step keeps its model"
    del in_use
    gc.collect()
    assert reference() is None, "memory is released once nobody uses the evicted model"


def test_a_failed_load_is_not_cached() -> None:
    cache: ModelCache[Loaded] = ModelCache(max_models=2)

    def broken() -> Loaded:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        cache.get("a", broken)
    assert "a" not in cache
    assert isinstance(cache.get("a", Loaded), Loaded)


def test_size_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKFLOWS_YOLOV5_SEG_MAX_LOADED_MODELS", "3")
    assert ModelCache().max_models == 3


# --- no cache without bounds (issue 13): nothing kept per key that failed to load --------------------------------
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
