"""Run a YOLOv5 script (e.g. ``segment/train.py``) with the CPU NMS shim loaded.

Usage::

    python training/run_yolov5.py [--yolov5-dir DIR] segment/train.py [script args...]

``DIR`` is the YOLOv5 code location (a clone of ultralytics/yolov5 or the
installed ``yolov5`` PyPI package directory); by default the installed
``yolov5`` package is used. The shim (:mod:`torchvision_nms_shim`) is imported
before anything imports torchvision, ``YOLO_OFFLINE=1`` is set, and the script
is run with :func:`runpy.run_path` as ``__main__``.
"""

from __future__ import annotations

import os
import runpy
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("COMET_MODE", "disabled")
# YOLOv5 7.0 calls torch.load() on its own checkpoints (pickled models) without
# weights_only=False; torch>=2.6 defaults to weights_only=True and would fail
# in strip_optimizer()/attempt_load() after training.
os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
# YOLOv5 sets OMP_NUM_THREADS = min(8, cpu_count - 1) in utils/general.py, but
# the shim imports torch first, so set it before that happens (on a 2-core
# machine: 1 thread, which also avoids OpenMP barrier stalls when the CPU is
# shared with other work).
os.environ.setdefault("OMP_NUM_THREADS", str(min(8, max(1, (os.cpu_count() or 2) - 1))))

import torchvision_nms_shim  # noqa: E402,F401  (must come before torchvision)


def _offline_font_dir() -> None:
    """Point YOLOv5's config dir at a folder holding a local stand-in for Arial.ttf.

    YOLOv5 downloads ``Arial.ttf`` / ``Arial.Unicode.ttf`` for plots; training
    runs offline, so a system TTF (DejaVu Sans) is copied under those names.
    """
    import shutil

    cfg = Path(os.environ.setdefault("YOLOV5_CONFIG_DIR", str(Path.home() / ".config" / "yolov5-offline")))
    cfg.mkdir(parents=True, exist_ok=True)
    candidates = [Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"), *Path("/usr/share/fonts").rglob("*.ttf")]
    source = next((c for c in candidates if c.is_file()), None)
    for name in ("Arial.ttf", "Arial.Unicode.ttf"):
        if source is not None and not (cfg / name).exists():
            shutil.copyfile(source, cfg / name)


_offline_font_dir()


def find_yolov5_dir(explicit: str | None = None) -> Path:
    """Return the YOLOv5 code directory (explicit path or installed package)."""
    if explicit:
        return Path(explicit).resolve()
    import importlib.util

    spec = importlib.util.find_spec("yolov5")
    if spec is None or spec.origin is None:
        raise SystemExit("yolov5 is not installed; pass --yolov5-dir")
    return Path(spec.origin).resolve().parent


def disable_hub_download() -> None:
    """Stop the PyPI ``yolov5`` package from querying the Hugging Face Hub.

    Its ``segment/train.py`` calls ``attempt_download_from_hub(weights)`` even
    for ``--weights ''``; offline (and without ``huggingface_hub``) that can
    only fail, so it is replaced by a function that finds nothing.
    """
    try:
        import yolov5.utils.downloads as downloads
    except ImportError:  # a plain clone of ultralytics/yolov5 has no such call
        return
    downloads.attempt_download_from_hub = lambda *args, **kwargs: None


def main() -> None:
    argv = sys.argv[1:]
    explicit = None
    if argv[:1] == ["--yolov5-dir"]:
        explicit, argv = argv[1], argv[2:]
    if not argv:
        raise SystemExit(__doc__)
    root = find_yolov5_dir(explicit)
    script = root / argv[0]
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    sys.argv = [str(script), *argv[1:]]
    disable_hub_download()
    runpy.run_path(str(script), run_name="__main__")


if __name__ == "__main__":
    main()
