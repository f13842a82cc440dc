"""Run a YOLOv5 script (e.g. ``segment/train.py``) with the CPU NMS shim loaded.

Usage::

    python training/run_yolov5.py [--yolov5-dir DIR] [--nbs N] segment/train.py [script args...]

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
    from offline_fonts import copy_font_stand_ins

    copy_font_stand_ins(
        Path(os.environ.setdefault("YOLOV5_CONFIG_DIR", str(Path.home() / ".config" / "yolov5-offline")))
    )


_offline_font_dir()


def _numpy2_compat() -> None:
    """NumPy 2.x removed ``np.trapz`` (now ``np.trapezoid``); YOLOv5 7.0's mAP uses it."""
    import numpy as np

    if not hasattr(np, "trapz"):
        np.trapz = np.trapezoid


_numpy2_compat()


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

    def no_hub(*args: object, **kwargs: object) -> None:
        return None

    downloads.attempt_download_from_hub = no_hub
    # Modules that already did ``from yolov5.utils.downloads import ...``
    # (yolov5/__init__.py imports models.common) hold their own reference.
    for name, module in list(sys.modules.items()):
        if name.startswith("yolov5") and getattr(module, "attempt_download_from_hub", None) is not None:
            module.attempt_download_from_hub = no_hub


def main() -> None:
    argv = sys.argv[1:]
    explicit = None
    nbs = None
    while argv[:1] in (["--yolov5-dir"], ["--nbs"]):
        if argv[0] == "--yolov5-dir":
            explicit = argv[1]
        else:
            nbs = int(argv[1])
        argv = argv[2:]
    if not argv:
        raise SystemExit(__doc__)
    root = find_yolov5_dir(explicit)
    script = root / argv[0]
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    sys.argv = [str(script), *argv[1:]]
    disable_hub_download()
    if nbs is None:
        runpy.run_path(str(script), run_name="__main__")
        return
    # ``--nbs N``: YOLOv5 hard-codes the nominal batch size (``nbs = 64``; the
    # optimizer steps every nbs/batch_size batches). Run the script with that
    # one line changed, e.g. ``--nbs 16`` with ``--batch-size 16`` steps every
    # batch (4x more optimizer steps, which matters for Adam on a short run).
    source = script.read_text()
    line = "    nbs = 64  # nominal batch size\n"
    if source.count(line) != 1:
        raise SystemExit(f"--nbs: cannot find {line!r} in {script}")
    source = source.replace(line, f"    nbs = {nbs}  # nominal batch size (set by run_yolov5.py --nbs)\n")
    code = compile(source, str(script), "exec")
    exec(code, {"__name__": "__main__", "__file__": str(script), "__builtins__": __builtins__})  # noqa: S102


if __name__ == "__main__":
    main()
