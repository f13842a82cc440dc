"""Process-wide cache of loaded models: each (model, backend) is loaded once and shared by every step and thread.

A Roboflow model id is shared too, but each caller's API key is authorised before the model is handed out
(:func:`workflows_yolov5_seg.model_source.authorize_model`).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from workflows_yolov5_seg import settings
from workflows_yolov5_seg.model import YOLOSegModel
from workflows_yolov5_seg.model_source import authorize_model

T = TypeVar("T")


class ModelCache(Generic[T]):
    """A bounded LRU of loaded models with single-flight loading.

    Concurrent first requests for the same key wait for one load. An evicted model is only dropped from the
    cache: callers that still hold it (a running step) keep using it, and its memory is released when the last
    reference goes.
    """

    def __init__(self, max_models: int | None = None) -> None:
        self.max_models = max_models or settings.MAX_LOADED_MODELS.get()
        self._models: OrderedDict[Hashable, T] = OrderedDict()
        self._lock = threading.Lock()
        self._key_locks: dict[Hashable, threading.Lock] = {}
        self.loads = 0

    def get(self, key: Hashable, load: Callable[[], T]) -> T:
        """Returns the model for ``key``, calling ``load`` once if it is not cached."""
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                if key in self._models:
                    self._models.move_to_end(key)
                    return self._models[key]
            try:
                model = load()
            except BaseException:
                # dropped when the load fails too: a lock kept per key ever asked for would grow without bound (a
                # server asked for many models that do not load); threads waiting on it load again themselves
                self._drop_key_lock(key, key_lock)
                raise
            with self._lock:
                self.loads += 1
                self._models[key] = model
                while len(self._models) > self.max_models:
                    self._models.popitem(last=False)
                self._drop_key_lock(key, key_lock, locked=True)
            return model

    def _drop_key_lock(self, key: Hashable, key_lock: threading.Lock, locked: bool = False) -> None:
        if not locked:
            with self._lock:
                self._drop_key_lock(key, key_lock, locked=True)
            return
        if self._key_locks.get(key) is key_lock:
            del self._key_locks[key]

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._models

    def __len__(self) -> int:
        with self._lock:
            return len(self._models)

    def clear(self) -> None:
        with self._lock:
            self._models.clear()


MODELS: ModelCache[YOLOSegModel] = ModelCache()


def get_model(model: str, backend: str, api_key: str | None) -> YOLOSegModel:
    """The process-wide model for ``(model, backend)``, loaded at first use (see :data:`MODELS`).

    For a Roboflow model id, ``api_key`` is authorised at every call, loaded or not.

    Raises:
        RoboflowAPIError: the key may not read the Roboflow model (missing, refused, not confirmed offline).
    """
    authorize_model(model, api_key)
    return MODELS.get((model, backend), lambda: YOLOSegModel.from_pretrained(model, backend=backend, api_key=api_key))
