"""Throughput per tick from a repetition's cumulative series (read through `Run.series`)."""

from __future__ import annotations

import numpy as np


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
