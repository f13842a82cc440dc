"""The int8 rows of the benchmark (``benchmarks/int8.py``): speed-ups with intervals and the issue's two targets."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import benchmark, int8


def _row(case: str, stage: str, precision: str, times: np.ndarray, detections: int | None = None):  # noqa: ANN202
    times = [float(t) for t in times]
    return benchmark.Measurement(
        case, stage, precision, None, detections, times, float(np.median(times)), float(np.percentile(times, 90))
    )


def _results(speedup_640: float) -> list[benchmark.Measurement]:
    rng = np.random.default_rng(0)
    load = rng.uniform(1.0, 1.3, 30)  # the same round hit both precisions alike
    return [
        _row("int8-320-1280x720", "forward", "fp32", 40 * load),
        _row("int8-320-1280x720", "forward", "int8", 32 * load),
        _row("int8-320-1280x720", "forward", "fp16", 60 * load),
        _row("int8-320-1280x720", "block", "fp32", 55 * load, 12),
        _row("int8-320-1280x720", "block", "int8", 47 * load, 11),
        _row("int8-640-1280x720", "forward", "fp32", 400 * load),
        _row("int8-640-1280x720", "forward", "int8", 400 / speedup_640 * load * rng.uniform(0.97, 1.03, 30)),
    ]


def test_speedups_are_fp32_over_the_other_precision_with_paired_intervals() -> None:
    rows = int8.speedups(_results(1.7))
    assert [(r["case"][:8], r["stage"], r["precision"]) for r in rows] == [
        ("int8-320", "forward", "int8"),
        ("int8-320", "forward", "fp16"),
        ("int8-320", "block", "int8"),
        ("int8-640", "forward", "int8"),
    ]
    forward_320 = rows[0]["speedup"]
    assert forward_320["estimate"] == pytest.approx(40 / 32)
    assert forward_320["paired"] and forward_320["numerator_n"] == 30
    assert rows[2]["detections"] == [12, 11]
    assert rows[1]["speedup"]["estimate"] < 1  # fp16 on the CPU is slower than fp32


def test_speed_target_is_judged_on_the_interval() -> None:
    accuracy = {"fp32": {"mask": {"mAP50-95": 0.6688}}, "int8": {"mask": {"mAP50-95": 0.6612}}}
    met = int8.targets(int8.speedups(_results(1.7)), accuracy)
    assert [t["verdict"] for t in met] == ["met", "met"]
    assert "0.6612 vs 0.6688 (-0.76 points)" in met[1]["measured"]
    missed = int8.targets(int8.speedups(_results(1.3)), {})
    assert [t["verdict"] for t in missed] == ["not met", "not measured"]
    assert missed[0]["met"] is False and missed[1]["met"] is None
    close = int8.targets(int8.speedups(_results(1.5)), {})
    assert close[0]["verdict"] == "borderline" and close[0]["met"] is False


def test_accuracy_target_allows_one_point() -> None:
    accuracy = {"fp32": {"mask": {"mAP50-95": 0.6688}}, "int8": {"mask": {"mAP50-95": 0.6580}}}
    [_, target] = int8.targets([], accuracy)
    assert target["verdict"] == "not met" and "-1.08 points" in target["measured"]
