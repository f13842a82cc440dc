"""The oldest Inference release that pyproject.toml allows runs the plugin as the newest (the test environment) does.

A fresh venv gets this package (from a copy of its sources, with its ``inference`` and ``onnx-cpu`` extras) and
exactly the lower bound of ``inference-core`` / ``inference-sdk`` in the ``inference`` extra. There,
``tests/support/inference_version_probe.py`` loads the plugin through the blocks loader (``WORKFLOWS_PLUGINS``),
lists it with the describe handler, runs real workflows (the bundled model on the bundled scene, then Roboflow's
mask visualisation block) with dense, RLE and compact masks through the Execution Engine and through the HTTP app
that ``workflows-yolov5-seg serve`` builds, and asks that app for a missing model. The same probe runs here, on the
newest release; both must list the same block and give the same detections, polygons and RLE strings (a polygon
may differ only where Inference's own serialiser changed: see ``assert_same_predictions``).

The install needs the package index and about 7 GB (PyTorch comes with inference-models); the venv is deleted
afterwards. Outside CI (``CI`` unset) the test skips when the index cannot be reached; in CI every failure, an
install's included, fails it. Two cheap tests keep the extra's bounds, ``INFERENCE_VERSIONS_TESTED`` and the
release CI installs in step.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from packaging.version import Version

from support.paths import REPOSITORY
from support.required import in_ci
from support.venvs import copy_of_sources, pip, skip_without_index

TESTS = REPOSITORY / "tests"
PROBE = "support.inference_version_probe"  # run with python -m from tests/ (it imports support.workflows)
INSTALL_TIMEOUT_S = 1800
PROBE_TIMEOUT_S = 900
# Inference's serialiser picks the largest contour of a mask from this release on, the first one before.
POLYGON_FIX = Version("1.3.9")


def inference_extra_bounds() -> dict[str, tuple[str, str]]:
    """``{distribution: (lowest, highest)}`` of the ``inference`` extra's ``"name[extras]>=X,<=Y"`` lines."""
    text = (REPOSITORY / "pyproject.toml").read_text(encoding="utf-8")
    extra = re.search(r"^inference = \[(.*)\]$", text, re.MULTILINE)
    assert extra, "pyproject.toml has no 'inference' extra on one line"
    found = re.findall(r'"([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?>=([^,"]+),<=([^,"]+)"', extra[1])
    assert len(found) == extra[1].count('"') // 2, f"give each requirement of the extra >=X,<=Y bounds: {extra[1]}"
    return {name: (lowest, highest) for name, lowest, highest in found}


def start_probe(python: Path | str, pythonpath: str | None, folder: Path) -> subprocess.Popen:
    """Starts the probe with ``python`` from ``tests/``: the package comes from ``pythonpath`` or the venv, never the
    checkout by accident; its output goes to ``folder``."""
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "WORKFLOWS_PLUGINS")}
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "stdout", "w") as stdout, open(folder / "stderr", "w") as stderr:
        return subprocess.Popen(
            [str(python), "-m", PROBE, "--serve"], cwd=TESTS, env=env, stdout=stdout, stderr=stderr, text=True
        )


def probe_result(process: subprocess.Popen, folder: Path, what: str) -> dict[str, Any]:
    try:
        process.wait(timeout=PROBE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        pytest.fail(f"the probe ({what}) ran past {PROBE_TIMEOUT_S} s:\n{(folder / 'stderr').read_text()[-3000:]}")
    assert process.returncode == 0, f"the probe ({what}) failed:\n{(folder / 'stderr').read_text()[-5000:]}"
    # Inference logs to stdout too; the report is the last line.
    return json.loads((folder / "stdout").read_text().strip().splitlines()[-1])


def contours(rle: dict[str, Any]) -> list[list[list[float]]]:
    """The contours of an RLE mask, found as Inference's serialiser finds them (its polygon is one of them)."""
    import cv2
    from pycocotools import mask as coco_mask

    mask = coco_mask.decode({"size": rle["size"], "counts": rle["counts"].encode("ascii")})
    found, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)
    return [np.squeeze(contour, axis=1).astype(float).tolist() for contour in found]


def assert_same_predictions(
    result: dict[str, Any], reference: dict[str, Any], what: str, masks: dict[str, Any] | None = None
) -> None:
    """Same detections, RLE strings and polygons; ``masks`` (the newest's RLE run) explains a polygon that differs.

    Inference before 1.3.9 serialises the first contour of a mask with several (its serialiser's
    ``mask_to_polygon``), later releases the largest; both are contours of the same mask.
    """
    assert "error" not in result, f"{what}: {result}"
    assert "error" not in reference, f"{what} (newest): {reference}"
    assert result["image"] == reference["image"], what
    predictions, expected = result["predictions"], reference["predictions"]
    assert [p["class"] for p in predictions] == [p["class"] for p in expected], what
    assert [p["class_id"] for p in predictions] == [p["class_id"] for p in expected], what
    np.testing.assert_allclose([p["box"] for p in predictions], [p["box"] for p in expected], atol=1e-2)
    np.testing.assert_allclose([p["confidence"] for p in predictions], [p["confidence"] for p in expected], atol=1e-4)
    assert [p["rle_mask"] for p in predictions] == [p["rle_mask"] for p in expected], f"{what}: RLE masks differ"
    for index, (prediction, reference_prediction) in enumerate(zip(predictions, expected, strict=True)):
        if prediction["points"] == reference_prediction["points"]:
            continue
        assert masks is not None, f"{what}: the polygon of detection {index} differs"
        found = contours(masks["predictions"][index]["rle_mask"])
        assert len(found) > 1, f"{what}: the polygon of detection {index} differs, and its mask has one contour"
        assert prediction["points"] in found and reference_prediction["points"] in found, (
            f"{what}: the polygons of detection {index} are not both contours of its mask"
        )
    assert (result["annotated_image_bytes"] is None) == (reference["annotated_image_bytes"] is None), what


def test_the_inference_extra_allows_exactly_the_tested_releases() -> None:
    from workflows_yolov5_seg.describe import INFERENCE_VERSIONS_TESTED

    bounds = inference_extra_bounds()
    tested = (INFERENCE_VERSIONS_TESTED[0], INFERENCE_VERSIONS_TESTED[-1])
    assert bounds == {"inference-core": tested, "inference-sdk": tested}


def test_ci_runs_the_newest_supported_inference() -> None:
    """The whole suite runs on the newest release the extra allows (the oldest runs the test below)."""
    if not in_ci():
        pytest.skip("outside CI the environment may hold any supported release")
    newest = inference_extra_bounds()["inference-core"][1]
    for distribution in ("inference-core", "inference-sdk"):
        try:
            installed = metadata.version(distribution)
        except metadata.PackageNotFoundError:
            pytest.fail(f"{distribution} is not installed; CI installs the 'inference' extra")
        assert Version(installed) == Version(newest), f"{distribution} {installed}, the extra's newest is {newest}"


@pytest.mark.slow
@pytest.mark.ci_only
def test_oldest_supported_inference_runs_the_plugin_as_the_newest(tmp_path: Path) -> None:
    if not in_ci() and importlib.util.find_spec("inference") is None:
        pytest.skip("needs the Workflows engine here (pip install -e '.[inference]'); in CI its absence fails")
    skip_without_index("inference-core")
    bounds = inference_extra_bounds()
    oldest = bounds["inference-core"][0]

    # The newest (this environment) runs while the oldest installs: the two share little but the CPU.
    started = time.monotonic()
    newest_probe = start_probe(sys.executable, str(REPOSITORY), tmp_path / "newest")
    venv = tmp_path / "venv"
    try:
        subprocess.run([sys.executable, "-m", "venv", venv], check=True, capture_output=True, timeout=300)
        python = venv / "bin" / "python"
        pip(
            python,
            "install",
            f"{copy_of_sources(tmp_path / 'source')}[inference,onnx-cpu]",
            f"inference-core[http]=={oldest}",
            f"inference-sdk=={bounds['inference-sdk'][0]}",
            timeout_s=INSTALL_TIMEOUT_S,
            index_probe="inference-core",
        )
        install_s = time.monotonic() - started
        old = probe_result(start_probe(python, None, tmp_path / "oldest"), tmp_path / "oldest", oldest)
        new = probe_result(newest_probe, tmp_path / "newest", "this environment")
    except BaseException:
        newest_probe.kill()
        newest_probe.wait()
        raise
    finally:
        shutil.rmtree(venv, ignore_errors=True)  # about 7 GB (PyTorch); pytest keeps the last three tmp folders
    total_s = time.monotonic() - started
    print(f"inference-core {oldest}: installed in {install_s:.0f} s, probes done after {total_s:.0f} s")

    assert Version(old["versions"]["inference-core"]) == Version(oldest), old["versions"]
    assert Path(old["package"]).is_relative_to(venv), old["package"]
    assert Version(new["versions"]["inference-core"]) > Version(oldest), new["versions"]

    # The plugin loads and is described alike.
    for report in (old, new):
        assert [b["source"] for b in report["blocks"]["loaded"]] == ["workflows_yolov5_seg"], report["blocks"]
    assert old["blocks"] == new["blocks"]

    # Real workflow runs give the same detections, polygons and RLE strings, in the engine and over HTTP.
    assert new["engine"]["dense"]["predictions"], "the demo scene should give detections"
    masks = new["engine"]["rle"]
    polygons_may_differ = Version(oldest) < POLYGON_FIX
    for variant, reference in new["engine"].items():
        explain = masks if polygons_may_differ else None
        assert_same_predictions(old["engine"][variant], reference, f"{variant} (engine, {oldest})", explain)
        assert_same_predictions(old["server"]["runs"][variant], reference, f"{variant} (HTTP, {oldest})", explain)
        assert_same_predictions(new["server"]["runs"][variant], reference, f"{variant} (HTTP, newest)")
    assert old["server"]["described"] and new["server"]["described"]
    # Below 1.0.0 the engine does not know inference-models' ModelNotFoundError and answers a missing model 500.
    assert old["server"]["missing_model"] == new["server"]["missing_model"] == {"status": 404, "names_the_model": True}
