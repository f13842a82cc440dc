"""Where things are in the checkout."""

from __future__ import annotations

from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]
EXAMPLES = REPOSITORY / "examples"
TEST_DATA = REPOSITORY / "tests" / "data"
ASSETS = REPOSITORY / "workflows_yolov5_seg" / "assets"
TRAINED_MODEL = ASSETS / "shapes-yolov5n-seg-320.onnx"
DEMO_IMAGE = ASSETS / "demo-scene.jpg"

# Environment -> the cache root it gives (settings.cache_root's precedence), for the tests of everything under it.
CACHE_ROOT_CASES = [
    ({"WORKFLOWS_YOLOV5_SEG_CACHE_DIR": "/x/cache", "MODEL_CACHE_DIR": "/m"}, "/x/cache"),
    ({"MODEL_CACHE_DIR": "/m", "XDG_CACHE_HOME": "/xdg"}, "/m/workflows-yolov5-seg"),
    ({"XDG_CACHE_HOME": "/xdg"}, "/xdg/workflows-yolov5-seg"),
    ({"HOME": "/home/u"}, "/home/u/.cache/workflows-yolov5-seg"),
]
