"""Estimators over repetitions: the median with its interval, ratios between two sets of
repetitions, spread within one repetition's time series, and fairness.

Ratios use Welch's t interval on log(throughput): exp of the difference of the mean logs is
the ratio of the geometric means, and its 95% interval is exact when throughput is
log-normal, from n = 2 per side, without assuming equal variances (scipy.stats.ttest_ind).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from iommubench.analysis.intervals import (
    CONFIDENCE,
    Interval,
    clean,
    median_interval,
    needs_more_reps,
)
from iommubench.run import timeseries

BATCHES = 10
RATIO_METHOD = "Welch t on log throughput (ratio of geometric means), 95% CI"

__all__ = [
    "CONFIDENCE",
    "Interval",
    "Ratio",
    "batch_means_cv",
    "cv",
    "jain_index",
    "log_ratio",
    "median_ci",
    "median_interval",
    "needs_more_reps",
    "ratio_ci",
]


@dataclass(frozen=True)
class Ratio:
    """new / base with its interval; NaN bounds when a side has fewer than 2 values."""

    ratio: float
    lo: float
    hi: float
    method: str
    n_base: int
    n_new: int

    @property
    def min_detectable(self) -> float:
        """The smallest relative change this interval could tell from none (its half-width)."""
        if not (np.isfinite(self.lo) and np.isfinite(self.hi)) or self.lo <= 0:
            return float("nan")
        return float(np.expm1((np.log(self.hi) - np.log(self.lo)) / 2.0))


def log_ratio(
    base: Sequence[float] | np.ndarray,
    new: Sequence[float] | np.ndarray,
    confidence: float = CONFIDENCE,
) -> Ratio:
    """new / base as a ratio of geometric means with Welch's t interval on the logs."""
    b, n = clean(base), clean(new)
    b, n = b[b > 0], n[n > 0]
    nan = float("nan")
    if b.size == 0 or n.size == 0:
        return Ratio(nan, nan, nan, "no valid repetitions on one side", b.size, n.size)
    lb, ln = np.log(b), np.log(n)
    ratio = float(np.exp(ln.mean() - lb.mean()))
    if b.size < 2 or n.size < 2:
        return Ratio(ratio, nan, nan, "one repetition on a side: no interval", b.size, n.size)
    if np.ptp(lb) == 0 and np.ptp(ln) == 0:
        return Ratio(ratio, ratio, ratio, "identical repetitions on both sides", b.size, n.size)
    with warnings.catch_warnings():  # scipy warns when one side's values are (nearly) equal
        warnings.simplefilter("ignore", RuntimeWarning)
        ci = sps.ttest_ind(ln, lb, equal_var=False).confidence_interval(confidence)
    return Ratio(ratio, float(np.exp(ci.low)), float(np.exp(ci.high)), RATIO_METHOD, b.size, n.size)


def ratio_ci(
    base: Sequence[float] | np.ndarray,
    new: Sequence[float] | np.ndarray,
    confidence: float = CONFIDENCE,
) -> tuple[float, float, float]:
    """(ratio, lo, hi) of new / base: see `log_ratio`."""
    r = log_ratio(base, new, confidence)
    return r.ratio, r.lo, r.hi


def median_ci(values: Sequence[float] | np.ndarray) -> tuple[float, float, float]:
    """(median, lo, hi): the order-statistic 95% CI from 6 values, the range below."""
    iv = median_interval(values)
    return iv.estimate, iv.lo, iv.hi


def cv(values: Sequence[float] | np.ndarray) -> float:
    """Coefficient of variation (sample std / mean); NaN with fewer than 2 values."""
    x = clean(values)
    if x.size < 2 or x.mean() == 0:
        return float("nan")
    return float(x.std(ddof=1) / x.mean())


def batch_means_cv(t_ns: np.ndarray, ops: np.ndarray, batches: int = BATCHES) -> float:
    """CV of throughput over `batches` equal stretches of one repetition's window.

    `ops` is cumulative per worker and tick (workers x ticks); batches of many ticks average
    out the tick clock's jitter, so what remains is drift or level shifts within the run.
    NaN with fewer than two ticks per batch.
    """
    if np.asarray(t_ns).size < 2 * batches:
        return float("nan")
    with np.errstate(divide="ignore", invalid="ignore"):  # a zero-length tick: NaN, dropped
        rates = timeseries.per_tick_throughput(t_ns, ops)
    return cv(timeseries.batch_means(rates, batches))


def jain_index(values: Sequence[float] | np.ndarray) -> float:
    """Jain's fairness index (sum x)^2 / (n sum x^2): 1 is perfectly fair, 1/n is one hog."""
    x = clean(values)
    if x.size == 0 or not np.any(x):
        return float("nan")
    return float(x.sum() ** 2 / (x.size * (x**2).sum()))
