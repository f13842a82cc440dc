"""The load test's memory figures and provenance (issue 13), without a server."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from benchmarks import loadtest

MIB = 1024


def test_rss_growth_compares_window_medians_after_the_warmup() -> None:
    # warm-up to 1000; then samples that swing by +-15 % around 1000 MiB, and a last window around 1050 MiB
    swings = [1000, 1150, 870, 1000, 1010]
    samples = [[done, done / 10, 700 * MIB] for done in range(100, 1000, 100)]
    samples += [[1000 + 100 * i, 0.0, swings[i % 5] * MIB] for i in range(10)]
    samples += [[2000 + 100 * i, 0.0, (swings[i % 5] + 50) * MIB] for i in range(11)]
    after = loadtest._rss_after(samples, 1000, {"VmRSS": 920 * MIB}, window=1000)
    assert after["requests"] == 1000 and after["end_requests"] == 3000 and not after["windows_overlap"]
    assert after["first_window_median_kib"] == 1000 * MIB
    assert after["last_window_median_kib"] == 1050 * MIB
    assert after["growth"] == 0.05
    assert after["point_growth"] == -0.08, "single samples: 1000 MiB at 1000 requests, 920 at the end"
    assert after["max_kib"] == 1200 * MIB and after["max_growth"] == 0.2
    assert loadtest._rss_after(samples, 5000, {"VmRSS": 1}) is None, "no sample after the warm-up"
    assert loadtest._rss_after(samples, 1000, None) is None, "no final reading"


def test_a_leak_shows_in_the_window_medians() -> None:
    samples = [[1000 + 100 * i, 0.0, (1000 + 10 * i) * MIB] for i in range(41)]  # +1 % every 100 requests
    after = loadtest._rss_after(samples, 1000, {"VmRSS": 1400 * MIB}, window=1000)
    assert after["growth"] > 0.25  # medians 1045 -> 1355 MiB


def test_growth_after_reads_the_last_column() -> None:
    samples = [[100, 1.0, 1000], [200, 2.0, 1100]]
    assert loadtest._growth_after(samples, 150, {"VmRSS": 1210}) == 0.1


def test_rss_limit_option_is_parsed() -> None:
    arguments = loadtest.build_parser().parse_args(
        ["--requests", "5000", "--max-rss-growth", "0.1", "--warmup-requests", "1000", "--rss-every", "50"]
        + ["--rss-window", "500"]
    )
    assert (arguments.requests, arguments.max_rss_growth, arguments.warmup_requests, arguments.rss_every) == (
        5000,
        0.1,
        1000,
        50,
    )
    assert arguments.rss_window == 500
    assert loadtest.build_parser().parse_args([]).max_rss_growth is None


def test_provenance_names_the_commit_model_and_versions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = tmp_path / "m.onnx"
    model.write_bytes(b"not really onnx")
    monkeypatch.setenv("MALLOC_ARENA_MAX", "2")
    monkeypatch.setenv("WORKFLOWS_YOLOV5_SEG_MMAP_THRESHOLD", "0")
    provenance = loadtest.run_provenance(str(model))
    assert provenance["model_sha256"] == hashlib.sha256(b"not really onnx").hexdigest()
    assert provenance["model_file"] == "m.onnx"
    assert provenance["versions"]["numpy"] and "supervision" in provenance["versions"]
    assert len(provenance["load_average_before"]) == 3
    assert provenance["allocator_environment"]["MALLOC_ARENA_MAX"] == "2"
    assert provenance["allocator_environment"]["WORKFLOWS_YOLOV5_SEG_MMAP_THRESHOLD"] == "0"
    if (loadtest.REPOSITORY / ".git").exists():
        assert provenance["git_commit"] and len(provenance["git_commit"]) == 40
    folder = tmp_path / "package"
    folder.mkdir()
    (folder / "weights.onnx").write_bytes(b"w")
    assert loadtest.run_provenance(str(folder))["model_file"] == "weights.onnx"


def test_a_machine_is_quiet_only_when_the_last_minutes_were() -> None:
    assert loadtest.is_quiet([0.3, 1.2, 9.0])
    assert not loadtest.is_quiet([1.37, 6.37, 9.71]), "other jobs ran just before: the 5-minute average shows it"
    assert not loadtest.is_quiet([3.15, 1.0, 1.0])
