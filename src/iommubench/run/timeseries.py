"""Throughput within one repetition: the per-worker tick series the native core records.

Each worker records its cumulative counted ops at ticks of `tick_ns` after its counted window
started (10 ms by default). From them come the point's per-tick throughput, its spread within
the run (CV, batch means) and the detection of a level shift during the run (the machine's
placement flips move throughput by 1.3-6x). Every function here is pure (numpy/scipy) except
`load_series`, which reads a repetition's arrays from the run directory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats

from iommubench.run.cells import read_repetition
from iommubench.run.store import repetition_file

# A level shift is reported when the best single split of the series into a before and an
# after segment, each at least MIN_SEGMENT_FRACTION of the window, changes the median per-tick
# throughput by at least MIN_SHIFT_RATIO and a rank test separates the two segments at
# SHIFT_ALPHA. The ratio threshold sits below the 1.3x that must be found so that estimation
# noise does not hide a real 1.3x step; the rank test keeps CV-10% stationary noise from
# passing it.
MIN_SEGMENT_FRACTION = 0.2
MIN_SHIFT_RATIO = 1.2
SHIFT_ALPHA = 1e-3
MIN_TICKS = 10  # fewer ticks than this: no level-shift verdict, no CV


@dataclass(frozen=True)
class LevelShift:
    found: bool
    ratio: float | None  # median after / median before at the best split (None: too short)
    at_tick: int | None  # index of the first tick after the split


def tick_times(tick_ns: int, ticks: int) -> np.ndarray:
    """Tick times relative to the start of the counted window: tick_ns, 2 tick_ns, ..."""
    return np.arange(1, ticks + 1, dtype=np.uint64) * np.uint64(tick_ns)


def per_tick_throughput(t_ns: np.ndarray, ops: np.ndarray) -> np.ndarray:
    """Ops/s of the whole point in each tick interval, from cumulative per-worker counts of
    shape (workers, ticks) (a 1-D array is one worker)."""
    counts = np.atleast_2d(np.asarray(ops, dtype=np.float64)).sum(axis=0)
    times = np.asarray(t_ns, dtype=np.float64)
    if counts.size == 0:
        return np.zeros(0)
    done = np.diff(counts, prepend=0.0)
    spans = np.diff(times, prepend=0.0) / 1e9
    return done / spans


def within_cv(rates: np.ndarray) -> float | None:
    """Coefficient of variation of per-tick throughput; None with too few ticks or none."""
    x = np.asarray(rates, dtype=np.float64)
    if x.size < MIN_TICKS or x.mean() <= 0:
        return None
    return float(x.std(ddof=1) / x.mean())


def batch_means(rates: np.ndarray, batches: int) -> np.ndarray:
    """Means of `batches` contiguous, equal batches (a trailing remainder is dropped)."""
    x = np.asarray(rates, dtype=np.float64)
    size = x.size // batches if batches > 0 else 0
    if size == 0:
        return np.zeros(0)
    return x[: size * batches].reshape(batches, size).mean(axis=1)


def _ratio(after: float, before: float) -> float:
    if before > 0:
        return after / before
    return 1.0 if after <= 0 else float("inf")


def level_shift(rates: np.ndarray) -> LevelShift:
    """The best single step change of the series, and whether it counts as a level shift."""
    x = np.asarray(rates, dtype=np.float64)
    n = x.size
    if n < MIN_TICKS:
        return LevelShift(False, None, None)
    m = max(3, int(np.ceil(MIN_SEGMENT_FRACTION * n)))
    # the split is the least-squares one (binary segmentation's CUSUM statistic): the mean
    # difference weighted by sqrt(k (n - k) / n), which does not favour short segments
    k = np.arange(m, n - m + 1)
    prefix = np.cumsum(x)
    mean_before = prefix[k - 1] / k
    mean_after = (prefix[-1] - prefix[k - 1]) / (n - k)
    score = np.abs(mean_after - mean_before) * np.sqrt(k * (n - k) / n)
    best_k = int(k[int(np.argmax(score))])
    best_ratio = _ratio(float(np.median(x[best_k:])), float(np.median(x[:best_k])))
    big = max(best_ratio, 1 / best_ratio if best_ratio > 0 else float("inf")) >= MIN_SHIFT_RATIO
    found = False
    if big:
        before, after = x[:best_k], x[best_k:]
        if np.ptp(x) > 0:
            found = bool(stats.mannwhitneyu(before, after).pvalue < SHIFT_ALPHA)
    return LevelShift(found, best_ratio, best_k)


def summarise(tick_ns: int, t_ns: np.ndarray, ops: np.ndarray) -> dict[str, object]:
    """The points.csv columns of one repetition's series."""
    ticks = int(np.asarray(t_ns).size)
    rates = per_tick_throughput(t_ns, ops) if ticks else np.zeros(0)
    shift = level_shift(rates)
    return {
        "tick_ns": int(tick_ns),
        "series_ticks": ticks,
        "within_cv": within_cv(rates),
        "level_shift": shift.found if shift.ratio is not None else None,
        # a level that starts from nothing has no finite ratio (the flag still says it)
        "level_shift_ratio": shift.ratio
        if shift.ratio is None or np.isfinite(shift.ratio)
        else None,
    }


def load_series(run_dir: Path | str, point: int, rep: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(series_t_ns, series_ops) of one repetition, or None when it has no series; a damaged
    file raises cells.DamagedFileError naming it."""
    path = repetition_file(run_dir, point, rep)
    if not path.exists():
        return None
    arrays = read_repetition(path)
    if "series_t_ns" not in arrays:
        return None
    return arrays["series_t_ns"], arrays["series_ops"]
