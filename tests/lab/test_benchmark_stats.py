"""``benchmarks.stats`` (ratio intervals, target verdicts) and ``benchmarks.provenance`` (what a record came from)."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import numpy as np
import pytest

from benchmarks import provenance
from benchmarks.stats import RatioInterval, ratio_interval, verdict


def test_ratio_of_medians_with_an_interval_around_it() -> None:
    rng = np.random.default_rng(0)
    fp32 = rng.normal(100.0, 5.0, 30)
    int8 = fp32 / 1.6 + rng.normal(0.0, 1.0, 30)
    interval = ratio_interval(fp32, int8)
    assert interval.estimate == pytest.approx(np.median(fp32) / np.median(int8))
    assert interval.low < interval.estimate < interval.high
    assert 1.5 < interval.low and interval.high < 1.7
    assert interval.paired and interval.numerator_n == interval.denominator_n == 30
    assert interval.confidence == 0.9


def test_interval_is_reproducible_and_narrows_with_more_rounds() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.lognormal(0.0, 0.2, 400), rng.lognormal(0.3, 0.2, 400)
    assert ratio_interval(a[:30], b[:30]) == ratio_interval(a[:30], b[:30])
    width_30 = ratio_interval(a[:30], b[:30]).high - ratio_interval(a[:30], b[:30]).low
    width_400 = ratio_interval(a, b).high - ratio_interval(a, b).low
    assert width_400 < width_30 / 2


def test_pairing_keeps_a_load_change_out_of_the_ratio() -> None:
    """Rounds 15-29 ran under load (both calls 3x slower): resampling rounds in pairs keeps the ratio near 2, while
    resampling each sample on its own mixes loaded and quiet calls."""
    load = np.r_[np.ones(15), np.full(15, 3.0)]
    slow, fast = 20.0 * load, 10.0 * load
    paired = ratio_interval(slow * (1 + 0.01 * np.sin(np.arange(30))), fast, paired=True)
    independent = ratio_interval(slow, fast, paired=False)
    assert paired.high - paired.low < 0.2
    assert independent.high - independent.low > 1.0


def test_independent_when_counts_differ() -> None:
    interval = ratio_interval([10.0, 11.0, 12.0, 13.0], [5.0, 6.0, 5.5])
    assert not interval.paired and (interval.numerator_n, interval.denominator_n) == (4, 3)
    with pytest.raises(ValueError, match="equal counts"):
        ratio_interval([1.0, 2.0], [1.0], paired=True)
    with pytest.raises(ValueError, match="at least one"):
        ratio_interval([], [1.0])
    with pytest.raises(ValueError, match="confidence"):
        ratio_interval([1.0], [1.0], confidence=1.0)


def _interval(low: float, high: float) -> RatioInterval:
    return RatioInterval((low + high) / 2, low, high, 0.9, 30, 30, True, 100)


@pytest.mark.parametrize(
    ("low", "high", "threshold", "direction", "expected"),
    [
        (1.6, 1.8, 1.5, "at_least", "met"),  # the whole interval is a speed-up of at least 1.5x
        (1.4, 1.7, 1.5, "at_least", "borderline"),  # the median may meet it, the lower end does not
        (1.2, 1.45, 1.5, "at_least", "not met"),  # even the upper end falls short
        (1.5, 1.6, 1.5, "at_least", "met"),  # the bound itself counts
        (1.05, 1.15, 1.2, "at_most", "met"),  # an overhead whose upper end is within the bound
        (1.15, 1.25, 1.2, "at_most", "borderline"),  # the upper end exceeds it: never "met"
        (1.21, 1.3, 1.2, "at_most", "not met"),
    ],
)
def test_verdict_comes_from_the_interval(low: float, high: float, threshold: float, direction, expected) -> None:  # noqa: ANN001
    assert verdict(_interval(low, high), threshold, direction) == expected


def test_interval_text() -> None:
    assert _interval(1.4, 1.6).text() == "1.50x [1.40, 1.60] (90 %, n=30 paired)"


def test_provenance_records_commit_hashes_and_versions(tmp_path: Path) -> None:
    model = tmp_path / "m.onnx"
    model.write_bytes(b"weights")
    record = provenance.provenance([model])
    assert record["models"][str(model)] == {"sha256": hashlib.sha256(b"weights").hexdigest(), "bytes": 7}
    assert set(provenance.DISTRIBUTIONS) <= set(record["versions"])
    assert record["versions"]["numpy"] == np.__version__
    assert len(record["git"]["commit"]) == 40 and isinstance(record["git"]["dirty"], bool)
    assert record["cpu"]["logical_cpus"] >= 1
    cpu = record["cpu"]
    if cpu["isa"] is not None:  # Linux: /proc/cpuinfo; the int8 flags sit beside the CPU's model name
        assert list(cpu)[:2] == ["model", "int8"]
        assert set(cpu["int8"]) == {"avx2", "avx512_vnni", "avx_vnni", "amx_int8", "kernel_path"}


@pytest.mark.parametrize(
    ("flags", "path"),
    [
        ({"avx2"}, "avx2-saturating"),  # the EPYC of the recorded benchmarks
        ({"avx2", "avx512bw"}, "avx2-saturating"),  # AVX-512 without VNNI: vpmaddubsw too
        ({"avx2", "avx512bw", "avx512_vnni", "avx_vnni"}, "vnni"),
        ({"avx2", "avx_vnni"}, "vnni"),
        ({"avx2", "avx512_vnni", "amx_int8"}, "vnni"),
        (set(), "none"),
    ],
)
def test_int8_kernel_path_follows_the_vnni_flags(flags: set[str], path: str) -> None:
    isa = {flag: flag in flags for flag in ("avx2", "avx512bw", "avx512_vnni", "avx_vnni", "amx_int8")}
    assert provenance.int8_kernel_path(isa) == path
    assert provenance.int8_features(isa)["kernel_path"] == path
    assert provenance.int8_kernel_path(None) is None and provenance.int8_features(None) is None


def test_dirty_tree_is_marked_and_can_be_refused(tmp_path: Path) -> None:
    repository = tmp_path / "repo"
    repository.mkdir()

    def run(*args: str) -> None:
        subprocess.run(["git", "-C", str(repository), *args], check=True, capture_output=True)

    run("init", "-q")
    (repository / "a.txt").write_text("a")
    run("add", "a.txt")
    run("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "a")
    clean = provenance.git_state(repository)
    assert clean["dirty"] is False and len(clean["commit"]) == 40
    provenance.require_clean(clean)
    (repository / "a.txt").write_text("changed")
    dirty = provenance.git_state(repository)
    assert dirty["dirty"] is True and dirty["changed"] == ["a.txt"]
    with pytest.raises(provenance.DirtyTreeError, match="a.txt"):
        provenance.require_clean(dirty)
