"""What the figures read beside the summary: a repetition's histograms and time series."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from iommubench import hist, stats


def npz_path(run_dir: str | Path, point: int, rep: int) -> Path:
    return Path(run_dir) / "hist" / f"p{int(point):04d}-r{int(rep):03d}.npz"


def load_hist(run_dir: str | Path, point: int, rep: int, kind: str) -> np.ndarray | None:
    """One repetition's merged `map` or `unmap` histogram, or None when not written."""
    path = npz_path(run_dir, point, rep)
    if not path.exists():
        return None
    with np.load(path) as z:
        if kind not in z.files:
            return None
        return np.asarray(z[kind], dtype=np.uint64)


def point_hist(run_dir: str | Path, points: pd.DataFrame, point: int, kind: str) -> np.ndarray:
    """A point's histogram of `kind` merged over its valid repetitions (empty if none)."""
    rows = points[(points["point"] == point) & stats.valid_mask(points)]
    found = [load_hist(run_dir, point, int(r), kind) for r in rows["rep"]]
    return hist.merge(h for h in found if h is not None)


def _read_series(run_dir: str | Path, point: int, rep: int) -> tuple[np.ndarray, np.ndarray] | None:
    path = npz_path(run_dir, point, rep)
    if not path.exists():
        return None
    with np.load(path) as z:
        if "series_t_ns" not in z.files or "series_ops" not in z.files:
            return None
        return np.asarray(z["series_t_ns"], dtype=np.uint64), np.asarray(
            z["series_ops"], dtype=np.uint64
        )


def load_series(run_dir: str | Path, point: int, rep: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(tick times in ns from the start of the counted window, shape (ticks,); cumulative
    counted ops per worker, shape (workers, ticks)), or None for a repetition without them.

    The runner's own reader is used when the package has one."""
    try:
        from iommubench.timeseries import load_series as reader
    except ImportError:
        reader = _read_series
    return reader(run_dir, point, rep)


def tick_rates(t_ns: np.ndarray, ops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(tick edges in s, throughput over each tick in ops/s) from a cumulative series: the
    difference of the workers' summed ops over the difference of the tick times. The counted
    window starts at t = 0 with no op counted, so the first tick has a rate too; there is one
    more edge than rates (tick k spans edges k..k+1)."""
    t = np.concatenate([[0.0], np.asarray(t_ns, dtype=np.float64)])
    summed = np.atleast_2d(np.asarray(ops, dtype=np.float64)).sum(axis=0)
    if summed.size != t.size - 1 or summed.size == 0:
        return np.array([]), np.array([])
    total = np.concatenate([[0.0], summed])
    dt = np.diff(t)
    keep = dt > 0  # a tick at t = 0 itself spans nothing; dropping it keeps edges contiguous
    if not keep.any():
        return np.array([]), np.array([])
    rate = np.diff(total)[keep] / (dt[keep] / 1e9)
    edges = np.concatenate([[t[0]], t[1:][keep]]) / 1e9
    return edges, rate
