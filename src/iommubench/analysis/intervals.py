"""The interval of a median over repetitions, and the adaptive-repetition criterion.

Pure arithmetic on a list of numbers, so the sweep may use it without the analysis layer.

With n >= 6 repetitions the interval is the distribution-free confidence interval of the
median from order statistics: [X(r), X(n+1-r)] covers the true median with probability
P(r <= B <= n - r) for B ~ Binomial(n, 1/2), whatever the distribution. r is the largest rank
whose coverage is still at least 95%; the exact coverage goes into `method`. Below 6
repetitions no pair of order statistics reaches 95% (n = 5 gives 93.8%), so the interval is
the plain range [min, max], labelled "range", never "95% CI".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

CONFIDENCE = 0.95
MIN_CI_REPS = 6


@dataclass(frozen=True)
class Interval:
    """A median with its interval: `interval` is "95% CI" or "range" (or "" when empty)."""

    estimate: float
    lo: float
    hi: float
    interval: str
    method: str
    n: int

    @property
    def is_ci(self) -> bool:
        return self.interval == "95% CI"

    @property
    def rel_halfwidth(self) -> float:
        """Half the interval's width over the estimate (NaN when there is no estimate)."""
        if not np.isfinite(self.estimate) or self.estimate == 0:
            return float("nan")
        return (self.hi - self.lo) / 2.0 / abs(self.estimate)


def clean(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """The finite values as a float array."""
    x = np.asarray(values, dtype=float)
    return x[np.isfinite(x)]


def order_statistic_rank(n: int, confidence: float = CONFIDENCE) -> tuple[int, float]:
    """(r, coverage): the largest 1-based rank r with P(r <= B <= n - r) >= confidence."""
    best = (0, float("nan"))
    for r in range(1, n // 2 + 1):
        coverage = float(sps.binom.cdf(n - r, n, 0.5) - sps.binom.cdf(r - 1, n, 0.5))
        if coverage < confidence:
            break
        best = (r, coverage)
    return best


def median_interval(values: Sequence[float] | np.ndarray) -> Interval:
    """The median and its interval: a 95% CI from order statistics, or the range below 6."""
    x = np.sort(clean(values))
    n = int(x.size)
    if n == 0:
        nan = float("nan")
        return Interval(nan, nan, nan, "", "no valid repetition", 0)
    med = float(np.median(x))
    r, coverage = order_statistic_rank(n) if n >= MIN_CI_REPS else (0, float("nan"))
    if r == 0:
        return Interval(med, float(x[0]), float(x[-1]), "range", f"range (n={n})", n)
    method = f"order statistics X({r})..X({n + 1 - r}) of {n}, coverage {coverage:.1%}"
    return Interval(med, float(x[r - 1]), float(x[n - r]), "95% CI", method, n)


def needs_more_reps(
    values: Sequence[float] | np.ndarray,
    rel_halfwidth: float = 0.05,
    min_reps: int = 3,
) -> bool:
    """True while the median's interval is wider than +-`rel_halfwidth` of the median.

    Below 6 repetitions the interval is the range, which only widens with more samples, so
    a point whose range is already tight stops early and a wide one grows until its order
    statistic CI (from 6 on) is tight or the sweep's maximum is reached.
    """
    x = clean(values)
    if x.size < min_reps:
        return True
    iv = median_interval(x)
    if iv.estimate == 0:
        return False
    return bool(iv.rel_halfwidth > rel_halfwidth)
