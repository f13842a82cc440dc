"""The server under load (issue 8), with :mod:`benchmarks.loadtest`.

In the default run: a small load (60 workflow requests at concurrency 8, one malformed request after every 6 good
ones) against a server the load test starts itself (with a 4 MP pixel limit, so the oversized request stays small).
The full load (1000 requests at concurrency 16) is the documented command of docs/reliability.md; it also runs here
when ``WORKFLOWS_YOLOV5_SEG_FULL_LOAD_TEST=1``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from benchmarks import loadtest

from support.models import make_ring_model
from support.required import require_file


@pytest.fixture(scope="module")
def load_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_ring_model(tmp_path_factory.mktemp("load") / "ring.onnx")


def test_jobs_are_bounded_and_interleave_every_malformed_kind() -> None:
    jobs = loadtest.build_jobs(loadtest.Settings(requests=100, malformed_every=10, images=4))
    assert len(jobs) == 110
    assert [job.kind for job in jobs[:11]] == ["good"] * 10 + ["bad_base64"]
    assert {job.kind for job in jobs} == {"good", *loadtest.MALFORMED_KINDS}
    assert {job.image for job in jobs if job.kind == "good"} == {0, 1, 2, 3}
    assert [job.index for job in jobs] == list(range(110))


def test_percentile_is_nearest_rank() -> None:
    values = list(range(1, 101))
    assert loadtest.percentile(values, 50) == 50
    assert loadtest.percentile(values, 99) == 99
    assert loadtest.percentile([5.0], 99) == 5.0


def test_only_loopback_urls_are_targeted(load_model: Path) -> None:
    with pytest.raises(ValueError, match="loopback"):
        loadtest.run_load_test(loadtest.Settings(url="http://10.0.0.1:9001", model=str(load_model)))
    assert loadtest.is_loopback("http://127.0.0.1:9001") and loadtest.is_loopback("http://localhost:1")


def check(report: dict, expected_good: int) -> None:
    assert report["sent"]["good"] == expected_good and not report["stopped_by_wall_cap"], report
    assert report["good_ok"] == expected_good, report["failures"]
    assert report["good_mismatches"] == 0 and report["good_incomplete"] == 0
    assert all(report["serial_detections"]), f"an image without detections: {report['serial_detections']}"
    memory = report["server_rss_kib"]
    assert memory["ready"] and memory["after_load"], "the server's memory was not read"
    for kind, statuses in report["malformed_by_kind"].items():
        assert all(400 <= int(status) < 500 for status in statuses), f"{kind} got {statuses}, not 4xx"
    assert set(report["malformed_by_kind"]) == set(loadtest.MALFORMED_KINDS)
    assert report["ok"] and report["server_errors_5xx"] == 0, report


@pytest.mark.server
def test_small_load(load_model: Path, tmp_path: Path) -> None:
    settings = loadtest.Settings(requests=60, concurrency=8, malformed_every=6, images=4, model=str(load_model))
    report = loadtest.run_load_test(settings, log=lambda message: None)
    (tmp_path / "load.json").write_text(json.dumps(report, indent=2))
    print(loadtest.summary(report))
    check(report, 60)


@pytest.mark.server
@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("WORKFLOWS_YOLOV5_SEG_FULL_LOAD_TEST") != "1", reason="set WORKFLOWS_YOLOV5_SEG_FULL_LOAD_TEST=1"
)
def test_full_load() -> None:
    model = require_file(loadtest.DEFAULT_MODEL, "the bundled trained model")
    report = loadtest.run_load_test(loadtest.Settings(model=str(model)), log=print)
    print(loadtest.summary(report))
    check(report, 1000)
