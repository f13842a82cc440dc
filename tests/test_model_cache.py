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
