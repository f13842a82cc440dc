"""The built wheel holds the product only: runtime stages, the block, the CLI, settings, serving glue and the demo's
assets; no benchmark, load-test, dataset-generator or parity code, and no test- or benchmark-only model files."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from workflows_yolov5_seg import demo

from support.paths import REPOSITORY

# Lab code that lives beside the package (benchmarks/, tools/, training/) and must never ship.
LAB_MODULES = (
    "benchmark",
    "peers",
    "loadtest",
    "memory_probe",
    "synthetic_shapes",
    "parity_ultralytics",
    "train",
    "export_onnx",
)
LAB_PACKAGES = ("benchmarks", "tools", "training", "tests", "models")
# The int8 variant ships too (issue 14): CPU users get the faster model without running `quantize` (2.5 MB).
DEMO_ASSETS = {demo.DEMO_MODEL, demo.DEMO_MODEL_INT8, demo.DEMO_IMAGE, demo.DEMO_WORKFLOW, "class_names.txt"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    # No build isolation: the installed setuptools builds it, so the test needs no network.
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), "."],
        cwd=REPOSITORY,
        check=True,
        timeout=300,
    )
    [built] = out.glob("workflows_yolov5_seg-*.whl")
    return zipfile.ZipFile(built)


def test_wheel_holds_only_the_package_and_its_metadata(wheel: zipfile.ZipFile) -> None:
    top_level = {name.split("/", 1)[0] for name in wheel.namelist()}
    assert {entry for entry in top_level if not entry.endswith(".dist-info")} == {"workflows_yolov5_seg"}
    assert not top_level & set(LAB_PACKAGES)


def test_wheel_holds_no_lab_modules(wheel: zipfile.ZipFile) -> None:
    modules = [Path(name) for name in wheel.namelist() if name.endswith(".py")]
    assert not [str(path) for path in modules if path.stem in LAB_MODULES]
    for path in modules:
        source = wheel.read(str(path)).decode("utf-8")
        for package in LAB_PACKAGES:
            assert f"from {package}" not in source and f"import {package}" not in source, (path, package)


def test_wheel_assets_are_what_the_demo_needs(wheel: zipfile.ZipFile) -> None:
    assets = {Path(name).name for name in wheel.namelist() if name.startswith("workflows_yolov5_seg/assets/")}
    assert assets == DEMO_ASSETS
