"""``benchmarks.ultralytics_family`` (its block part; the Ultralytics part needs the Ultralytics venv) and
``benchmarks.family_accuracy`` run end to end on small inputs and write the records the docs quote."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import family_accuracy, ultralytics_family

from support.paths import REPOSITORY
from support.required import require_module


def test_the_block_part_times_forward_pipeline_and_block_on_one_model(tmp_path: Path) -> None:
    require_module("roboflow_workflows", "the Workflows engine (the inference extra)")
    out = tmp_path / "block.json"
    model = REPOSITORY / "models" / "shapes-yolov8n-seg-320.onnx"
    argv = ["block", "--model", str(model), "--confidence", "0.05", "--min-detections", "1", "--seeds", "3"]
    assert ultralytics_family.main([*argv, "--rounds", "2", "--warmup", "0", "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["layout"] == "anchor-free" and record["detections"] >= 1 and record["input_hw"] == [320, 320]
    assert set(record["samples_ms"]) == {"forward", "pipeline", "block"}
    assert all(len(samples) == 2 for samples in record["samples_ms"].values())
    assert record["target"]["verdict"] in ("met", "borderline", "not met")


def test_family_accuracy_scores_every_recorded_export_next_to_yolo_val(tmp_path: Path) -> None:
    require_module("pycocotools", "pycocotools (the evaluate and test extras)")
    from tools.synthetic_shapes import write_dataset

    data = write_dataset(tmp_path / "data", seed=5, train=0, val=0, test=2, size=320).parent  # its data.yaml
    report = family_accuracy.run(data, ["test"])
    recorded = json.loads(family_accuracy.ULTRALYTICS_VAL.read_text())
    assert [row["model"] for row in report["results"]] == [
        row["model"] for row in recorded["results"] if row["split"] == "test"
    ]
    for row in report["results"]:
        assert 0.0 <= row["ours"]["mask_map50_95"] <= 1.0
        assert row["mask_map50_95_difference"] == pytest.approx(
            row["ours"]["mask_map50_95"] - row["ultralytics_val"]["mask_map50_95"]
        )
        assert row["meets_criterion"] is (row["mask_map50_95_difference"] >= -family_accuracy.MAX_BELOW_ULTRALYTICS)
