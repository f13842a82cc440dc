"""The lowest numpy and supervision that pyproject.toml allows run the pipeline as the test environment does.

A fresh venv (no Workflows engine) gets exactly the lower bounds of the base dependencies, onnxruntime, and this
package without dependencies; the bundled model then runs on the demo image there and here, and both runs must give
the same detections, masks and RLE strings. pip needs the package index: outside CI (``CI`` not ``true``) the test skips
when the index cannot be reached; in CI it fails.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from packaging.version import Version

from support.paths import REPOSITORY
from support.venvs import copy_of_sources, pip, skip_without_index

# Runs in both environments; prints one JSON object. cv2 comes with supervision's OpenCV dependency.
PROBE = """
import json
from pathlib import Path

import cv2
import numpy as np
import supervision

import workflows_yolov5_seg
from workflows_yolov5_seg.detections import encode_coco_rle
from workflows_yolov5_seg.model import YOLOv5SegModel


assets = Path(workflows_yolov5_seg.__file__).parent / "assets"
model = YOLOv5SegModel.from_pretrained(assets / "shapes-yolov5n-seg-320.onnx", backend="onnx", device="cpu")
image = cv2.imread(str(assets / "demo-scene.jpg"))


def summary(detections):
    return {
        "xyxy": detections.xyxy.tolist(),
        "confidence": detections.confidence.tolist(),
        "class_id": detections.class_id.tolist(),
        "mask_pixels": [int(mask.sum()) for mask in detections.mask],
        "rle": [encode_coco_rle(mask) for mask in detections.mask],
    }


print(json.dumps({
    "versions": {"numpy": np.__version__, "supervision": supervision.__version__},
    "package": workflows_yolov5_seg.__file__,
    "dense": summary(model(image)[0]),
    "compact": summary(model(image, compact_masks=True)[0]),
}))
"""


def lower_bounds() -> dict[str, str]:
    """``{distribution: lowest version}`` of the base dependencies (their ``"name>=X,<Y"`` lines in pyproject)."""
    text = (REPOSITORY / "pyproject.toml").read_text(encoding="utf-8")
    dependencies = re.search(r"^dependencies = \[(.*?)^\]", text, re.MULTILINE | re.DOTALL)
    assert dependencies, "pyproject.toml has no [project] dependencies list"
    return dict(re.findall(r'"([A-Za-z0-9_.-]+)>=([^,"]+)', dependencies.group(1)))


def run_probe(python: Path | str, cwd: Path, pythonpath: str | None) -> dict:
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    done = subprocess.run([python, "-c", PROBE], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.ci_only
def test_lowest_numpy_and_supervision_give_the_same_results(tmp_path: Path) -> None:
    bounds = lower_bounds()
    assert set(bounds) == {"numpy", "supervision"}, f"give every base dependency a tested lower bound: {bounds}"
    skip_without_index("numpy")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", venv], check=True, capture_output=True, timeout=300)
    python = venv / "bin" / "python"
    pins = [f"{name}=={version}" for name, version in bounds.items()]
    pip(python, "install", "--only-binary=:all:", *pins, "onnxruntime", timeout_s=600, index_probe="numpy")
    pip(python, "install", "--no-deps", str(copy_of_sources(tmp_path / "source")), timeout_s=600, index_probe="numpy")

    lowest = run_probe(python, tmp_path, pythonpath=None)
    here = run_probe(sys.executable, tmp_path, pythonpath=str(REPOSITORY))

    assert {name: Version(version) for name, version in lowest["versions"].items()} == {
        name: Version(version) for name, version in bounds.items()
    }
    assert Path(lowest["package"]).is_relative_to(venv)
    assert here["dense"]["class_id"], "the demo image should give detections"
    for result in (lowest, here):
        assert result["compact"] == result["dense"]
    dense, reference = lowest["dense"], here["dense"]
    np.testing.assert_allclose(dense["xyxy"], reference["xyxy"], atol=1e-3)
    np.testing.assert_allclose(dense["confidence"], reference["confidence"], atol=1e-5)
    for key in ("class_id", "mask_pixels", "rle"):
        assert dense[key] == reference[key], key
