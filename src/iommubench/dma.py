"""The dma workload's side of the harness: its native parameters, its row measures, and the
`iommubench dma-map-benchmark` mirror of the kernel's tools/testing/selftests/dma tool.

The runner calls `fill_params` and `measures`; everything dma-specific stays here.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from iommubench import hist, native_core

DEPOTS = ("bounded", "list")
COMPLETIONS = ("local", "remote")
MAX_GRANULES = 64  # IB_MAX_GRANULES in core.h
DEFAULT_DMA_BITS = 32


def fill_params(p: Any, point: dict[str, Any]) -> None:
    """Write a dma point's parameters into the native struct ib_params `p`."""
    granules = point.get("granule_pages", (1,))
    if isinstance(granules, int):
        granules = (granules,)
    granules = tuple(granules)
    if not 1 <= len(granules) <= MAX_GRANULES:
        raise ValueError(f"granule mix of {len(granules)} sizes; at most {MAX_GRANULES}")
    p.allocator = native_core.allocator_names().index(point.get("allocator", "rcache"))
    p.invalidation = native_core.invalidation_names().index(point.get("invalidation", "lazy"))
    p.depot = DEPOTS.index(point.get("depot", "list"))
    p.completion = COMPLETIONS.index(point.get("completion", "local"))
    p.queues_per_worker = point.get("queues_per_worker", 1)
    p.queue_depth = point.get("queue_depth", 32)
    p.dma_ns = point.get("dma_ns", 0)
    p.inv_ns = point.get("inv_ns", 240)
    p.dma_bits = point.get("dma_bits", DEFAULT_DMA_BITS)
    p.n_granules = len(granules)
    for i, g in enumerate(granules):
        p.granules[i] = g
    # no prefault region: the audit then expects no mapping at all once the I/Os are drained
    p.region_pages = 0
    p.chunk_pages = 0
    p.cycles = 0


def measures(total: dict[str, int], audit: dict[str, int]) -> dict[str, Any]:
    """The dma columns of a row: IOVA allocator, invalidation and IOVA-audit results."""
    cacheable = total["rcache_hits"] + total["rcache_misses"]
    flushes = total["flushes"]
    return {
        "rcache_hits": total["rcache_hits"],
        "rcache_misses": total["rcache_misses"],
        "rcache_hit_rate": total["rcache_hits"] / cacheable if cacheable else None,
        "depot_pushes": total["depot_pushes"],
        "depot_pops": total["depot_pops"],
        "depot_trims": total["depot_trims"],
        "iova_fallbacks": total["iova_fallbacks"],
        "iova_lock_acquisitions": total["iova_lock_acquisitions"],
        "iova_lock_contended": total["iova_lock_contended"],
        "iova_lock_wait_ns": total["iova_lock_wait_ns"],
        "depot_lock_contended": total["depot_lock_contended"],
        "inv_lock_acquisitions": total["inv_lock_acquisitions"],
        "inv_lock_contended": total["inv_lock_contended"],
        "inv_lock_wait_ns": total["inv_lock_wait_ns"],
        "invalidations": total["invalidations"],
        "flushes": flushes,
        "entries_per_flush": total["fq_entries"] / flushes if flushes else None,
        "fq_early_frees": total["fq_early_frees"],
        "iova_alloc_failures": total["iova_alloc_failures"],
        "pages_mapped": total["pages_mapped"],
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


# --------------------------------------------------------------------------- dma-map-benchmark

DIRECTIONS = {0: "BIDIRECTIONAL", 1: "TO_DEVICE", 2: "FROM_DEVICE"}


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
