"""``blocks/*.json`` and ``manifest.json`` match a fresh generation from the code."""

from __future__ import annotations

import json
import sys
from importlib import metadata
from pathlib import Path

import pytest

from workflows_yolov5_seg import __version__, load_blocks
from workflows_yolov5_seg.describe import (
    BACKENDS,
    DESCRIPTIONS_GENERATED_WITH,
    INFERENCE_VERSIONS_TESTED,
    MANIFEST_FILE,
    REGENERATE_COMMAND,
    block_file_name,
    generate_files,
    stale_files,
)

from support.paths import REPOSITORY
from support.required import require_module

require_module("inference.core.interfaces.http.handlers.workflows", "Inference's HTTP handlers (the inference extra)")


@pytest.fixture(scope="module")
def generated() -> dict[str, str]:
    return generate_files()


def inference_version() -> str | None:
    try:
        return metadata.version("inference-core")
    except metadata.PackageNotFoundError:
        return None


def test_manifest_matches_a_fresh_generation(generated: dict[str, str]) -> None:
    committed = REPOSITORY / MANIFEST_FILE
    assert committed.is_file(), f"{MANIFEST_FILE} is missing; generate it: {REGENERATE_COMMAND}"
    assert committed.read_text(encoding="utf-8") == generated[MANIFEST_FILE], (
        f"{MANIFEST_FILE} is out of date with the code; regenerate: {REGENERATE_COMMAND}"
    )


def test_block_descriptions_match_a_fresh_generation(generated: dict[str, str]) -> None:
    version = inference_version()
    if version != DESCRIPTIONS_GENERATED_WITH:
        # The descriptions embed Inference's kind documentation, which may change between releases.
        pytest.skip(f"inference-core {version}: the descriptions are generated with {DESCRIPTIONS_GENERATED_WITH}")
    block_paths = {path for path in generated if path != MANIFEST_FILE}
    stale = stale_files(REPOSITORY, {path: generated[path] for path in block_paths})
    assert not stale, f"out of date with the code: {', '.join(stale)}; regenerate: {REGENERATE_COMMAND}"


def test_generation_is_deterministic(generated: dict[str, str]) -> None:
    assert generate_files() == generated


def test_manifest_names_the_plugin_blocks_backends_and_extras(generated: dict[str, str]) -> None:
    manifest = json.loads(generated[MANIFEST_FILE])
    assert manifest["distribution"] == "workflows-yolov5-seg"
    assert manifest["module"] == "workflows_yolov5_seg"
    assert manifest["version"] == __version__
    block_types = [block.get_manifest().model_json_schema()["properties"]["type"]["const"] for block in load_blocks()]
    assert [b["type"] for b in manifest["blocks"]] == sorted(block_types)
    for block in manifest["blocks"]:
        assert (REPOSITORY / block["description_file"]).name == block_file_name(block["type"])
        assert (
            block["execution_engine_compatibility"]
            == load_blocks()[0].get_manifest().get_execution_engine_compatibility()
        )
        assert "mask_format" in block["inputs"]
    assert set(manifest["backends"]["available"]) == {"onnx", "trt"}
    assert manifest["inference_versions_tested"] == list(INFERENCE_VERSIONS_TESTED)


def test_manifest_names_the_generations_architectures_and_layouts(generated: dict[str, str]) -> None:
    models = json.loads(generated[MANIFEST_FILE])["models"]
    assert models["generations"] == ["YOLOv5", "YOLOv8", "YOLOv9", "YOLO11", "YOLO12", "YOLO26"]
    assert models["architectures"] == ["yolov5", "yolov8", "yolov11", "yolo26"]  # inference-models' registry keys
    assert set(models["output_layouts"]) == {"yolov5", "anchor-free", "end2end"}


def test_backend_extras_exist_in_pyproject() -> None:
    if sys.version_info < (3, 11):
        pytest.skip("tomllib needs Python 3.11")
    import tomllib

    pyproject = tomllib.loads((REPOSITORY / "pyproject.toml").read_text(encoding="utf-8"))
    extras = pyproject["project"]["optional-dependencies"]
    for backend in BACKENDS.values():
        for extra in backend["extras"]:
            assert extra in extras, f"manifest names extra '{extra}' that pyproject.toml does not declare"
    assert "inference" in extras


def test_check_mode_reports_drift(tmp_path: Path, generated: dict[str, str], capsys: pytest.CaptureFixture) -> None:
    from workflows_yolov5_seg import describe

    assert describe.write_files(tmp_path, generated)  # all new
    assert not stale_files(tmp_path, generated)
    (tmp_path / MANIFEST_FILE).write_text("{}\n", encoding="utf-8")
    (tmp_path / "blocks" / "stray.json").write_text("{}\n", encoding="utf-8")
    assert stale_files(tmp_path, generated) == [MANIFEST_FILE, "blocks/stray.json (no longer generated)"]
    describe.write_files(tmp_path, generated)
    assert not stale_files(tmp_path, generated) and not (tmp_path / "blocks" / "stray.json").exists()
