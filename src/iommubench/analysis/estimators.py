"""Estimators over repetitions: the median with its interval, the ratio between two sets of
repetitions, spread within one repetition's time series, and fairness.

One estimator end to end. A point is its median over repetitions (`intervals`); the ratio
of two points is the Hodges-Lehmann estimate on log throughput, exp of the median of every
pairwise difference log(new_j) - log(base_i), i.e. the median of every pairwise ratio
new_j / base_i. Its interval is the distribution-free one that goes with it (Moses, from
the exact null distribution of the Mann-Whitney U statistic): [D(k), D(mn + 1 - k)] of the
m x n sorted differences, k the largest rank whose two-sided coverage is still at least
95%. It assumes only that the two sets differ by a shift on the log scale, so a heavy tail
or one repetition hit by another process moves it little. The price: with 3 repetitions
against 3 (or 4) no pair of ranks reaches 95%, so such a ratio has no interval; 4 against 4
(97.1%), 5 against 5 (96.8%) or 3 against 5 (96.4%) do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

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
RATIO_METHOD = "Hodges-Lehmann on log throughput (median of pairwise ratios), 95% CI"
ESTIMATOR = (
    "medians; a ratio is the Hodges-Lehmann estimate (the median of every pairwise ratio "
    "new/base of the repetitions) with its distribution-free 95% CI (Moses)"
)
ESTIMATOR_SHORT = "medians; ratios: Hodges-Lehmann with its 95% CI"
EXACT_UP_TO = 50  # m + n at most this: the exact U distribution; beyond, the normal one

__all__ = [
    "CONFIDENCE",
    "ESTIMATOR",
    "ESTIMATOR_SHORT",
    "RATIO_METHOD",
    "Interval",
    "Ratio",
    "batch_means_cv",
    "cv",
    "hl_ratio",
    "jain_index",
    "median_ci",
    "median_interval",
    "needs_more_reps",
    "rank_for",
]


@dataclass(frozen=True)
class Ratio:
    """new / base with its interval; NaN bounds when no pair of ranks reaches 95%."""

    ratio: float
    lo: float
    hi: float
    method: str
    n_base: int
    n_new: int
    coverage: float = float("nan")

    @property
    def min_detectable(self) -> float:
        """The smallest relative change this interval could tell from none (its half-width)."""
        if not (np.isfinite(self.lo) and np.isfinite(self.hi)) or self.lo <= 0:
            return float("nan")
        return float(np.expm1((np.log(self.hi) - np.log(self.lo)) / 2.0))

    @property
    def has_interval(self) -> bool:
        return bool(np.isfinite(self.lo) and np.isfinite(self.hi))


@lru_cache(maxsize=512)
def _u_cdf(m: int, n: int) -> tuple[float, ...]:
    """P(U <= u), u = 0 .. m n, for the Mann-Whitney U of samples of m and n without ties:
    the coefficients of the Gaussian binomial [m + n choose m]_q over their sum, built as
    prod_i (1 - q^(n+i)) / (1 - q^i)."""
    c = np.zeros(m * n + 1)
    c[0] = 1.0
    for i in range(1, m + 1):
        s = n + i
        c[s:] = c[s:] - c[:-s]  # times (1 - q^s): the right side is read before it is written
        for k in range(i, c.size):  # over (1 - q^i): a running sum with stride i
            c[k] += c[k - i]
    cdf = np.cumsum(c) / c.sum()
    return tuple(float(v) for v in cdf)


def rank_for(m: int, n: int, confidence: float = CONFIDENCE) -> tuple[int, float]:
    """(k, coverage): the largest k with P(U <= k - 1) <= (1 - confidence) / 2, so that
    [D(k), D(mn + 1 - k)] covers the shift with probability `coverage` >= confidence;
    (0, nan) when no k does (e.g. 3 against 3)."""
    if m < 1 or n < 1:
        return 0, float("nan")
    tail = (1 - confidence) / 2
    if m + n > EXACT_UP_TO:
        mu, sd = m * n / 2, np.sqrt(m * n * (m + n + 1) / 12)
        k = int(np.floor(mu - sps.norm.ppf(1 - tail) * sd + 0.5))
        if k < 1:
            return 0, float("nan")
        return k, float(1 - 2 * sps.norm.cdf((k - 0.5 - mu) / sd))
    cdf = _u_cdf(min(m, n), max(m, n))
    k = 0
    while k < len(cdf) and cdf[k] <= tail:
        k += 1
    if k == 0:
        return 0, float("nan")
    return k, 1 - 2 * cdf[k - 1]


def hl_ratio(
    base: Sequence[float] | np.ndarray,
    new: Sequence[float] | np.ndarray,
    confidence: float = CONFIDENCE,
) -> Ratio:
    """new / base: the Hodges-Lehmann shift of log throughput with its Moses interval."""
    b, n = clean(base), clean(new)
    b, n = b[b > 0], n[n > 0]
    nan = float("nan")
    if b.size == 0 or n.size == 0:
        return Ratio(nan, nan, nan, "no valid repetitions on one side", b.size, n.size)
    d = np.sort((np.log(n)[None, :] - np.log(b)[:, None]).ravel())
    ratio = float(np.exp(np.median(d)))
    k, coverage = rank_for(b.size, n.size, confidence)
    if k == 0:
        why = f"{b.size} against {n.size} repetitions: no 95% interval (needs 4 against 4)"
        return Ratio(ratio, nan, nan, why, b.size, n.size)
    lo, hi = float(np.exp(d[k - 1])), float(np.exp(d[d.size - k]))
    method = f"{RATIO_METHOD}, coverage {coverage:.1%}"
    return Ratio(ratio, lo, hi, method, b.size, n.size, coverage)


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
