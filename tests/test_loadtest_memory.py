"""The load test's memory figures and provenance (issue 13), without a server."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from benchmarks import loadtest

MIB = 1024


def test_rss_growth_is_measured_from_the_first_sample_after_the_warmup() -> None:
    samples = [[500, 10.0, 900 * MIB], [1000, 20.0, 1000 * MIB], [1500, 30.0, 1080 * MIB], [2000, 40.0, 1050 * MIB]]
    after = loadtest._rss_after(samples, 1000, {"VmRSS": 1050 * MIB})
    assert after == {
        "requests": 1000,
        "kib": 1000 * MIB,
        "end_kib": 1050 * MIB,
        "max_kib": 1080 * MIB,
        "growth": 0.05,
        "max_growth": 0.08,
    }
    assert loadtest._rss_after(samples, 1001, {"VmRSS": 1050 * MIB})["requests"] == 1500
    assert loadtest._rss_after(samples, 5000, {"VmRSS": 1050 * MIB}) is None, "no sample after the warm-up"
    assert loadtest._rss_after(samples, 1000, None) is None, "no final reading"


def test_growth_after_reads_the_last_column() -> None:
    samples = [[100, 1.0, 1000], [200, 2.0, 1100]]
    assert loadtest._growth_after(samples, 150, {"VmRSS": 1210}) == 0.1


def test_rss_limit_option_is_parsed() -> None:
    arguments = loadtest.build_parser().parse_args(
        ["--requests", "5000", "--max-rss-growth", "0.1", "--warmup-requests", "1000", "--rss-every", "50"]
    )
    assert (arguments.requests, arguments.max_rss_growth, arguments.warmup_requests, arguments.rss_every) == (
        5000,
        0.1,
        1000,
        50,
    )
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
