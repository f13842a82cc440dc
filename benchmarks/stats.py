"""Statistics of the benchmark's headline figures: ratios of medians with bootstrap intervals, and target verdicts.

A headline ratio (block / forward, peer / ours, int8 / fp32) is the ratio of two medians of timed calls. Its
uncertainty comes from the spread of the calls, so each ratio is reported with a percentile bootstrap interval
(default 90 %) and the number of calls on each side:

- **paired** when both samples were timed in the same rounds (the benchmark interleaves the stages of a case, one
  call of each per round): rounds are resampled, keeping each round's two calls together, so a load change that hit
  both calls of a round stays in both;
- **independent** otherwise (different counts): each sample is resampled on its own.

A target is judged on the interval, never on the point estimate alone (:func:`verdict`): ``met`` when the whole
interval meets it (for an upper bound such as "<= 1.2x", the interval's upper end), ``not met`` when none of it does,
``borderline`` when the threshold falls inside the interval.

Usage::

    interval = ratio_interval(int8_ms, fp32_ms)     # fp32 / int8 would be ratio_interval(fp32_ms, int8_ms)
    verdict(interval, 1.5, "at_least")              # "met" / "borderline" / "not met"
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np

DEFAULT_CONFIDENCE = 0.90
DEFAULT_RESAMPLES = 4000
Direction = Literal["at_least", "at_most"]


@dataclass(frozen=True)
class RatioInterval:
    """A ratio of medians with its bootstrap interval.

    Attributes:
        estimate: ``median(numerator) / median(denominator)`` on the full samples.
        low: lower end of the interval.
        high: upper end.
        confidence: coverage of the interval, e.g. 0.9.
        numerator_n: calls in the numerator's sample; ``denominator_n`` likewise.
        paired: whether rounds were resampled together (equal counts, timed interleaved).
        resamples: bootstrap resamples drawn.
    """

    estimate: float
    low: float
    high: float
    confidence: float
    numerator_n: int
    denominator_n: int
    paired: bool
    resamples: int

    def as_dict(self) -> dict:
        return asdict(self)

    def text(self, spec: str = ".2f", suffix: str = "x") -> str:
        """``1.53x [1.41, 1.62] (90 %, n=30 paired)``."""
        count = f"n={self.numerator_n} paired" if self.paired else f"n={self.numerator_n}/{self.denominator_n}"
        return (
            f"{self.estimate:{spec}}{suffix} [{self.low:{spec}}, {self.high:{spec}}] "
            f"({round(self.confidence * 100)} %, {count})"
        )


def ratio_interval(
    numerator: Sequence[float],
    denominator: Sequence[float],
    *,
    paired: bool | None = None,
    confidence: float = DEFAULT_CONFIDENCE,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> RatioInterval:
    """``median(numerator) / median(denominator)`` with a percentile bootstrap interval.

    Args:
        numerator: timed calls ``(n,)``, e.g. of the int8 forward pass (ms).
        denominator: timed calls ``(m,)``, e.g. of the fp32 forward pass.
        paired: resample rounds together; default: when ``n == m`` (both timed in the same interleaved rounds).
        confidence: the interval's coverage, in (0, 1).
        resamples: bootstrap resamples.
        seed: of the resampling (the interval is reproducible).

    Returns:
        The estimate, the interval and the sample sizes.

    Raises:
        ValueError: an empty sample, a non-positive median, ``paired`` with different counts, or a confidence
            outside (0, 1).
    """
    a = np.asarray(numerator, dtype=np.float64)
    b = np.asarray(denominator, dtype=np.float64)
    if a.size == 0 or b.size == 0:
        raise ValueError("both samples need at least one timed call")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if paired is None:
        paired = a.size == b.size
    if paired and a.size != b.size:
        raise ValueError(f"paired samples need equal counts, got {a.size} and {b.size}")
    if np.median(b) <= 0:
        raise ValueError("the denominator's median must be positive")
    rng = np.random.default_rng(seed)
    if paired:
        rows = rng.integers(0, a.size, size=(resamples, a.size))
        a_med, b_med = np.median(a[rows], axis=1), np.median(b[rows], axis=1)
    else:
        a_med = np.median(a[rng.integers(0, a.size, size=(resamples, a.size))], axis=1)
        b_med = np.median(b[rng.integers(0, b.size, size=(resamples, b.size))], axis=1)
    ratios = a_med / np.maximum(b_med, np.finfo(np.float64).tiny)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(ratios, [tail, 1.0 - tail])
    return RatioInterval(
        estimate=float(np.median(a) / np.median(b)),
        low=float(low),
        high=float(high),
        confidence=confidence,
        numerator_n=int(a.size),
        denominator_n=int(b.size),
        paired=bool(paired),
        resamples=resamples,
    )


def verdict(interval: RatioInterval, threshold: float, direction: Direction) -> str:
    """``met`` / ``borderline`` / ``not met`` for a target on a ratio.

    Args:
        interval: the measured ratio.
        threshold: the target's bound, e.g. 1.5.
        direction: ``at_least`` (ratio >= threshold, e.g. a speed-up) or ``at_most`` (ratio <= threshold, e.g. an
            overhead).

    Returns:
        ``met`` when the whole interval meets the target (its worse end does), ``not met`` when its better end does
        not, ``borderline`` otherwise.
    """
    if direction == "at_least":
        worse, better = interval.low, interval.high
        meets = worse >= threshold
        misses = better < threshold
    elif direction == "at_most":
        worse, better = interval.high, interval.low
        meets = worse <= threshold
        misses = better > threshold
    else:
        raise ValueError(f"direction must be 'at_least' or 'at_most', got {direction!r}")
    if meets:
        return "met"
    return "not met" if misses else "borderline"
