"""Smoke run of the benchmark command on its tiny ``--quick`` cases (hand-built graphs, no engine, no peers)."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks import benchmark


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str]:
    out = tmp_path_factory.mktemp("bench") / "results.json"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = benchmark.main(
            ["--quick", "--no-engine", "--no-peers", "--no-progress", "--repeats", "2", "--out", str(out)]
        )
    assert code == 0
    return json.loads(out.read_text()), printed.getvalue()


def test_json_has_machine_settings_cases_results_and_targets(quick_run: tuple[dict, str]) -> None:
    report, _ = quick_run
    assert {"machine", "command", "settings", "models", "cases", "notes", "results", "targets"} <= set(report)
    assert report["machine"]["cpu_count"] >= 1
    assert [c["name"] for c in report["cases"]] == [c.name for c in benchmark.QUICK_CASES]
    assert report["models"]["320"]["kind"] == "constant-graph"
    stages = {(r["case"], r["stage"], r["impl"], r["mode"]) for r in report["results"]}
    case = benchmark.QUICK_CASES[0].name
    for mode in benchmark.MODES:
        assert (case, "post_process", "ours", mode) in stages
    assert {(case, "forward", "onnxruntime", None), (case, "pre_process", "ours", None)} <= stages
    assert (benchmark.QUICK_CASES[1].name, "pipeline_x2_single", "ours", "accurate") in stages


def test_medians_and_ratios_come_from_the_measured_times(quick_run: tuple[dict, str]) -> None:
    report, _ = quick_run
    forward = {r["case"]: r for r in report["results"] if r["stage"] == "forward"}
    for row in report["results"]:
        assert len(row["times_ms"]) == 2 and all(t > 0 for t in row["times_ms"])
        assert row["median_ms"] == pytest.approx(float(np.median(row["times_ms"])), rel=1e-3)
        assert row["p90_ms"] == pytest.approx(float(np.percentile(row["times_ms"], 90)), rel=1e-3)
        if row["stage"] != "forward":
            expected = row["median_ms"] / forward[row["case"]]["median_ms"]
            assert row["vs_forward"] == pytest.approx(expected, rel=1e-6)


def test_post_processing_finds_the_injected_detections_and_reports_memory(quick_run: tuple[dict, str]) -> None:
    report, _ = quick_run
    for row in report["results"]:
        if row["stage"] == "post_process":
            case = next(c for c in benchmark.QUICK_CASES if c.name == row["case"])
            assert row["detections"] == case.detections * case.batch
            assert row["per_detection_ms"] == pytest.approx(row["median_ms"] / row["detections"])
            if row["mode"] in benchmark.MODES:  # dense masks
                assert row["peak_tracemalloc_bytes"] >= row["mask_bytes"] > 0
            else:  # compact masks, when this version has them
                assert row["mode"] == "accurate+compact" and row["mask_bytes"] is None


def test_table_and_targets_are_printed(quick_run: tuple[dict, str]) -> None:
    report, printed = quick_run
    assert printed.splitlines()[0].startswith("| case | stage | impl | mode | dets | median ms | p90 ms |")
    assert "Targets:" in printed
    batch_targets = [t for t in report["targets"] if t["target"].startswith("batch of 2")]
    assert batch_targets and all(isinstance(t["met"], bool) for t in batch_targets)
    assert any(t["met"] is None for t in report["targets"])  # peers were skipped: "not measured", never "met"
    assert "NOT MEASURED" in printed


def test_ratios_against_peers_use_per_detection_when_counts_differ() -> None:
    rows = [
        benchmark.Measurement("c", "forward", "onnxruntime", None, None, [10.0], 10.0, 10.0),
        benchmark.Measurement("c", "post_process", "ours", "accurate", 20, [4.0], 4.0, 4.0),
        benchmark.Measurement("c", "post_process", "legacy", "accurate", 10, [40.0], 40.0, 40.0),
        benchmark.Measurement("c", "post_process", "legacy", "fast", 20, [8.0], 8.0, 8.0),
        benchmark.Measurement("c", "post_process", "ours", "fast", 20, [2.0], 2.0, 2.0),
    ]
    benchmark.add_ratios(rows)
    assert rows[1].vs_forward == pytest.approx(0.4)
    assert rows[2].vs_ours == pytest.approx((40 / 10) / (4 / 20)) and "per detection" in rows[2].vs_ours_basis
    assert rows[3].vs_ours == pytest.approx(4.0) and rows[3].vs_ours_basis == "same detections"


def test_injected_rows_replace_output0_and_keep_the_network(tmp_path: Path) -> None:
    import onnxruntime

    rng = np.random.default_rng(0)
    source = benchmark.constant_graph(tmp_path / "c.onnx", 320, rng, batch=1)
    rows = benchmark.background_rows(rng, benchmark.num_rows(320), 5, 320)
    target = benchmark.inject_rows(source, rows, tmp_path / "i.onnx")
    session = onnxruntime.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    out0, out1 = session.run(None, {"images": np.zeros((1, 3, 320, 320), np.float32)})
    np.testing.assert_array_equal(out0[0], rows)
    assert out1.shape == (1, 32, 80, 80)
