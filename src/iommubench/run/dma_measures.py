"""The dma workload's side of the harness: its row measures and audit (the kernel tool's
mirror is dmabench.py).

The runner calls `measures` (dma's parameters reach the native core through parameters.py).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from iommubench.core import hist


def measures(total: dict[str, int], audit: dict[str, int]) -> dict[str, Any]:
    """The dma columns of a row that are not plain sums of one counter: the rcache's hit rate,
    the flush queue's entries per flush and the IOVA audit's columns. The counters the core
    declares as measures (rcache_hits, flushes, ...) are the runner's, summed with every other
    one; the lock columns are the runner's too, for every lock at once."""
    cacheable = total["rcache_hits"] + total["rcache_misses"]
    flushes = total["flushes"]
    return {
        "rcache_hit_rate": total["rcache_hits"] / cacheable if cacheable else None,
        "entries_per_flush": total["fq_entries"] / flushes if flushes else None,
        "fq_early_frees": total["fq_early_frees"],
        # a range handed out twice while live shows as a map onto a present leaf
        "iova_double_allocs": audit["iova_double_allocs"] + total["map_conflicts"],
        "iova_leaks": audit["iova_leaks"] + audit["inflight_left"],
    }


def audit_ok(total: dict[str, int], audit: dict[str, int]) -> bool:
    """The IOVA part of the audit (the page-table part is the runner's)."""
    return (
        audit["iova_double_allocs"] == 0
        and audit["iova_leaks"] == 0
        and audit["iova_corrupt"] == 0
        and audit["inflight_left"] == 0
        and total["fq_early_frees"] == 0
        and total["iova_bad_frees"] == 0
    )


# --------------------------------------------------------------------------- latency moments


def hist_mean_sd_ns(h: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation of a latency histogram, from its bucket midpoints."""
    counts = np.asarray(h, dtype=np.float64)
    n = counts.sum()
    if n == 0:
        return 0.0, 0.0
    mids = np.array(
        [sum(hist.bucket_bounds(i)) / 2 - 0.5 if i >= 64 else i for i in range(len(counts))]
    )
    mean = float((counts * mids).sum() / n)
    var = float((counts * mids * mids).sum() / n) - mean * mean
    return mean, math.sqrt(max(var, 0.0))
