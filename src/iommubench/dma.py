"""The dma workload's side of the harness: its row measures, and the
`iommubench dma-map-benchmark` mirror of the kernel's tools/testing/selftests/dma tool.

The runner calls `measures` (dma's parameters reach the native core through parameters.py).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from iommubench import hist


def measures(total: dict[str, int], audit: dict[str, int]) -> dict[str, Any]:
    """The dma columns of a row: IOVA allocator, invalidation and IOVA-audit results (the
    lock columns are the runner's, for every lock at once)."""
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
        "iova_search_steps": total["iova_search_steps"],
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


LIMITS = {  # the kernel tool's option limits (kernel/dma/map_benchmark.c)
    "threads": (1, 1024),
    "seconds": (1, 300),
    "bits": (20, 64),
    "dir": (0, 2),
    "dma_trans_ns": (0, 10_000_000),
    "granule": (1, 1024),
}


class BenchmarkInputError(ValueError):
    """A dma-map-benchmark option out of the kernel tool's limits; the text is one line."""


def check_benchmark_args(opts: dict[str, int]) -> None:
    for name, (lo, hi) in LIMITS.items():
        value = opts[name]
        if not lo <= value <= hi:
            raise BenchmarkInputError(f"{name} must be in {lo}..{hi} (got {value})")
    node = opts["node"]
    if node != -1 and not _node_online(node):
        raise BenchmarkInputError(f"node {node} is not an online NUMA node (use -1 for none)")


def _node_online(node: int) -> bool:
    from pathlib import Path

    return node >= 0 and Path(f"/sys/devices/system/node/node{node}").is_dir()


def benchmark_point(opts: dict[str, int], invalidation: str = "strict") -> dict[str, Any]:
    """The dma point that mirrors one dma_map_benchmark run.

    Each kernel thread maps one buffer at a time, holds it dma_trans_ns, unmaps it: one worker
    per thread, one queue of depth 1, local completion, every map and unmap timed. The driver
    is lockfree and the allocator rcache (what the kernel's dma-iommu path uses); invalidation
    is strict by default (arm64's default domain, where the published SMMUv3 numbers come
    from; x86 defaults to lazy, pass --invalidation lazy). -n and -d are accepted and printed
    but change nothing here: there is no buffer to place on a node or to dirty.
    """
    return {
        "workload": "dma",
        "driver": "lockfree",
        "allocator": "rcache",
        "invalidation": invalidation,
        "depot": "list",
        "completion": "local",
        "workers": opts["threads"],
        "queues_per_worker": 1,
        "queue_depth": 1,
        "granule_pages": (opts["granule"],),
        "dma_ns": opts["dma_trans_ns"],
        "dma_bits": opts["bits"],
        "cs_ns": 0,
        "sample_every": 1,
        "seed": 1,
        "warmup_s": 0.0,
        "duration_s_requested": float(opts["seconds"]),
    }


def benchmark_lines(opts: dict[str, int], hist_map: np.ndarray, hist_unmap: np.ndarray):
    """The kernel tool's three lines."""
    map_mean, map_sd = hist_mean_sd_ns(hist_map)
    unmap_mean, unmap_sd = hist_mean_sd_ns(hist_unmap)
    return [
        f"dma mapping benchmark: threads:{opts['threads']} seconds:{opts['seconds']} "
        f"node:{opts['node']} dir:{DIRECTIONS[opts['dir']]} granule: {opts['granule']}",
        f"average map latency(us):{map_mean / 1000:.1f} standard deviation:{map_sd / 1000:.1f}",
        f"average unmap latency(us):{unmap_mean / 1000:.1f} "
        f"standard deviation:{unmap_sd / 1000:.1f}",
    ]
