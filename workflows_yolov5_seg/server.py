"""Starts Roboflow Inference's own HTTP server with this plugin loaded, without Docker.

The app is built the way Inference's CPU image builds it (``docker/config/cpu_http.py``): a Roboflow model
registry, a model manager (with active learning when enabled) behind a fixed-size cache, pingback, and
:class:`inference.core.interfaces.http.http_api.HttpInterface`, served by uvicorn. Two things differ from the image:

- ``WORKFLOWS_PLUGINS`` gets ``workflows_yolov5_seg`` appended (other plugins already listed are kept), before
  Inference is imported, because Inference reads the variable at import time.
- ``HttpInterface`` mounts its landing page from folders relative to the working directory
  (``./inference/landing/out``), which only exist in the image. They are created (empty, plus a small index page)
  in a server working directory outside the source tree, the app is built from there, the mounts are made absolute,
  and the process goes back to the directory it was started from, so relative paths in requests (e.g. a ``model``
  path) keep meaning what they mean in the caller's shell.

Inference settings (``MAX_ACTIVE_MODELS``, ``ALLOW_ORIGINS``, ``METRICS_ENABLED``, ...) are read from the
environment exactly as in the image.

On glibc, ``serve`` also fixes malloc's mmap threshold (:func:`tune_allocator`): with glibc's dynamic threshold the
server's RSS grew from 1.3 GiB to 2.4 GiB over 5000 requests at concurrency 16 while the memory in use stayed at
~450 MiB: freed blocks stayed in malloc's heaps (docs/reliability.md, "Memory").
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from workflows_yolov5_seg import settings

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9001

# Relative to the working directory, as HttpInterface mounts them.
LANDING_DIRS = ("inference/landing/out", "inference/landing/out/static", "inference/landing/out/_next/static")
INDEX_HTML = """<!doctype html>
<html><head><meta charset="utf-8"><title>Inference server + workflows-yolov5-seg</title></head>
<body>
<h1>Roboflow Inference server with the workflows-yolov5-seg plugin</h1>
<p>API documentation: <a href="/docs">/docs</a>. Blocks: <code>POST /workflows/blocks/describe</code>.
Run a workflow: <code>POST /workflows/run</code>.</p>
</body></html>
"""

logger = logging.getLogger(__name__)


def prepare_workdir(workdir: Path | None = None) -> Path:
    """Creates the folders ``HttpInterface`` mounts (``inference/landing/out/...``) under ``workdir``.

    Falls back to a fresh temporary folder when ``workdir`` cannot be written.
    """
    workdir = Path(workdir) if workdir is not None else settings.server_dir()
    try:
        _create_landing(workdir)
    except OSError as error:
        fallback = Path(tempfile.mkdtemp(prefix="workflows-yolov5-seg-server-"))
        logger.warning("Cannot write the server folder %s (%s); using %s instead.", workdir, error, fallback)
        workdir = fallback
        _create_landing(workdir)
    return workdir.resolve()


def _create_landing(workdir: Path) -> None:
    for relative in LANDING_DIRS:
        (workdir / relative).mkdir(parents=True, exist_ok=True)
    index = workdir / LANDING_DIRS[0] / "index.html"
    if not index.exists() or index.read_text(encoding="utf-8") != INDEX_HTML:
        index.write_text(INDEX_HTML, encoding="utf-8")


@contextmanager
def working_directory(path: Path) -> Iterator[None]:
    previous = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


def _absolutize_static_mounts(app: Any, workdir: Path) -> None:
    """Makes the relative ``StaticFiles`` folders of ``app`` absolute, so they work from any working directory."""
    from starlette.routing import Mount
    from starlette.staticfiles import StaticFiles

    for route in app.routes:
        static = getattr(route, "app", None) if isinstance(route, Mount) else None
        if not isinstance(static, StaticFiles) or static.directory is None:
            continue
        directory = os.path.join(str(workdir), os.fspath(static.directory))
        static.directory = directory
        static.all_directories = [
            d if os.path.isabs(d) else os.path.join(str(workdir), os.fspath(d)) for d in static.all_directories
        ]


def build_model_manager() -> Any:
    """The model manager of Inference's CPU image: registry, (active-learning) manager, fixed-size cache, pingback."""
    from inference.core.cache import cache
    from inference.core.env import ACTIVE_LEARNING_ENABLED, GCP_SERVERLESS, LAMBDA, MAX_ACTIVE_MODELS
    from inference.core.managers.active_learning import ActiveLearningManager, BackgroundTaskActiveLearningManager
    from inference.core.managers.base import ModelManager
    from inference.core.managers.decorators.fixed_size_cache import WithFixedSizeCache
    from inference.core.registries.roboflow import RoboflowModelRegistry
    from inference.models.utils import ROBOFLOW_MODEL_TYPES

    model_registry = RoboflowModelRegistry(ROBOFLOW_MODEL_TYPES)
    if ACTIVE_LEARNING_ENABLED:
        manager_class = ActiveLearningManager if (LAMBDA or GCP_SERVERLESS) else BackgroundTaskActiveLearningManager
        model_manager = manager_class(model_registry=model_registry, cache=cache)
    else:
        model_manager = ModelManager(model_registry=model_registry)
    model_manager = WithFixedSizeCache(model_manager, max_size=MAX_ACTIVE_MODELS)
    model_manager.init_pingback()
    return model_manager


# glibc <malloc.h>: mallopt parameter of the mmap threshold; setting it also turns off the dynamic threshold.
M_MMAP_THRESHOLD = -3
GLIBC_MMAP_THRESHOLD_MAX = 32 * 1024 * 1024  # HEAP_MAX_SIZE / 2 on 64-bit: mallopt refuses more
MALLOC_MMAP_THRESHOLD_ENV = "MALLOC_MMAP_THRESHOLD_"


def _glibc_version() -> str | None:
    try:
        text = os.confstr("CS_GNU_LIBC_VERSION")
    except (AttributeError, ValueError, OSError):
        return None
    return text.split()[-1] if text and text.startswith("glibc") else None


def tune_allocator() -> str:
    """Fixes glibc malloc's mmap threshold for this server process and its workers; returns what was done.

    glibc serves blocks of at least ``M_MMAP_THRESHOLD`` bytes (128 KiB at start) with ``mmap`` and unmaps them when
    freed, but raises the threshold to the size of each mapped block freed, up to 32 MiB. After a few requests every
    image, mask and tensor comes from malloc's heaps, and concurrent requests leave them fragmented: freed memory
    stays resident. A fixed threshold (:data:`settings.MMAP_THRESHOLD`, 256 KiB by default) keeps large blocks mapped,
    so what a request frees goes back to the system. Set here with ``mallopt`` for this process and exported as
    ``MALLOC_MMAP_THRESHOLD_`` for uvicorn's worker processes. Nothing is changed when the threshold is 0, when
    ``MALLOC_MMAP_THRESHOLD_`` is already set (glibc applied it at start), or when the C library is not glibc.
    """
    threshold = settings.MMAP_THRESHOLD.get()
    if threshold == 0:
        return f"glibc's dynamic mmap threshold ({settings.MMAP_THRESHOLD.name}=0)"
    if os.environ.get(MALLOC_MMAP_THRESHOLD_ENV, "").strip():
        return f"mmap threshold from {MALLOC_MMAP_THRESHOLD_ENV}={os.environ[MALLOC_MMAP_THRESHOLD_ENV]}"
    if not sys.platform.startswith("linux") or _glibc_version() is None:
        return "the C library's own allocator settings (not glibc)"
    if threshold > GLIBC_MMAP_THRESHOLD_MAX:
        logger.warning(
            "%s=%d is over glibc's maximum (%d); malloc keeps its dynamic mmap threshold.",
            settings.MMAP_THRESHOLD.name,
            threshold,
            GLIBC_MMAP_THRESHOLD_MAX,
        )
        return "glibc's dynamic mmap threshold (the setting is over glibc's maximum)"
    try:
        mallopt = ctypes.CDLL(None).mallopt
        mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
        applied = mallopt(M_MMAP_THRESHOLD, threshold) == 1
    except (OSError, AttributeError):
        applied = False
    if not applied:
        logger.warning("mallopt(M_MMAP_THRESHOLD, %d) failed; malloc keeps its dynamic mmap threshold.", threshold)
        return "glibc's dynamic mmap threshold (mallopt failed)"
    os.environ[MALLOC_MMAP_THRESHOLD_ENV] = str(threshold)
    return f"mmap threshold {threshold} bytes ({settings.MMAP_THRESHOLD.name})"


def require_inference_server() -> None:
    """Raises :class:`MissingDependencyError` with the install command when Inference's HTTP server is missing."""
    import importlib.util

    from workflows_yolov5_seg.errors import MissingDependencyError

    for module, package in (("inference", "inference-core[http]"), ("uvicorn", "uvicorn"), ("fastapi", "fastapi")):
        if importlib.util.find_spec(module) is None:
            raise MissingDependencyError(package, "inference", "The Inference HTTP server (workflows-yolov5-seg serve)")


def create_app(workdir: Path | None = None) -> Any:
    """Builds Inference's FastAPI app with this plugin registered (also a uvicorn factory, for ``--workers``)."""
    settings.register_plugin()
    require_inference_server()
    workdir = prepare_workdir(workdir)
    from inference.core.interfaces.http.http_api import HttpInterface

    model_manager = build_model_manager()
    with working_directory(workdir):
        interface = HttpInterface(model_manager)
    _absolutize_static_mounts(interface.app, workdir)
    return interface.app


def serve(
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    workers: int = 1,
    workdir: Path | None = None,
    log_level: str = "info",
    model_roots: Sequence[Path] = (),
) -> None:
    """Runs the server in the foreground until interrupted.

    The process is marked served (``WORKFLOWS_YOLOV5_SEG_SERVING=served``): local model paths must lie under the
    model roots, and with none configured they are refused (Roboflow model ids keep working).

    Args:
        host: interface to bind (``0.0.0.0`` to accept connections from other machines).
        port: TCP port.
        workers: uvicorn worker processes; each loads its own models.
        workdir: folder for the landing-page mounts (default: :func:`workflows_yolov5_seg.settings.server_dir`).
        log_level: uvicorn log level.
        model_roots: folders local model paths may come from, added to ``WORKFLOWS_YOLOV5_SEG_MODEL_ROOTS``.
    """
    settings.register_plugin()
    require_inference_server()
    import uvicorn

    logger.info("Memory allocator: %s.", tune_allocator())
    # Set in the environment, so uvicorn's worker processes inherit them.
    os.environ[settings.SERVING.name] = "served"
    if model_roots:
        configured = settings.MODEL_ROOTS.raw()
        os.environ[settings.MODEL_ROOTS.name] = os.pathsep.join(
            [*([configured] if configured else []), *(str(Path(root).expanduser().absolute()) for root in model_roots)]
        )

    workdir = prepare_workdir(workdir)
    if workers > 1:
        # Worker processes import the factory themselves; they inherit the environment set here.
        os.environ[settings.SERVER_DIR.name] = str(workdir)
        uvicorn.run(f"{__name__}:create_app", factory=True, host=host, port=port, workers=workers, log_level=log_level)
    else:
        uvicorn.run(create_app(workdir), host=host, port=port, log_level=log_level)
