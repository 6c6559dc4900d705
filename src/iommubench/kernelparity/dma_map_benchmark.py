"""`iommubench dma-map-benchmark`: the kernel's tools/dma/dma_map_benchmark on the model.

Options, their ranges, their error messages and the output lines are upstream's (the tool's
option string `t:s:n:b:d:x:g:m:`, kernel/dma/map_benchmark.c's checks and arithmetic). Each
kernel thread is one worker with one queue of depth 1: it maps a buffer (`-m 0`:
dma_map_single, one map call for the granule's pages; `-m 1`: dma_map_sg of `-g` single-page
entries, one IOVA for the list and one map call per entry), holds it `-x` ns, unmaps it (one
unmap call and one invalidation either way), and every map and unmap is timed.

The kernel truncates each sample to whole 100 ns units, sums the units and their squares, and
prints avg = sum / n and sqrt(sum_sq / n - avg^2) in integer 100 ns units, divided by 10 (so
a 60 ns map prints 0.0 us). The model's samples are summed the same way natively
(`map_sample_100ns`, ...); `--ns` prints the same mean and deviation from the untruncated
samples, in ns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MODES = {0: "SINGLE_MODE", 1: "SG_MODE"}
MAP_MODES = {0: "single", 1: "sg"}  # the map_mode parameter each -m value runs
DIRECTIONS = {0: "BIDIRECTIONAL", 1: "TO_DEVICE", 2: "FROM_DEVICE"}
MAX_THREADS = 1024  # DMA_MAP_MAX_THREADS
MAX_SECONDS = 300  # DMA_MAP_MAX_SECONDS
MAX_TRANS_DELAY = 10_000_000  # DMA_MAP_MAX_TRANS_DELAY: 10 ms in ns
MAX_GRANULE = 1024

# upstream's options, in its order: (option, name, default)
OPTIONS = (
    ("-t", "threads", 1),
    ("-s", "seconds", 20),
    ("-n", "node", -1),
    ("-b", "bits", 32),
    ("-d", "dir", 0),
    ("-x", "dma_trans_ns", 0),
    ("-g", "granule", 1),
    ("-m", "mode", 0),
)


class BenchmarkInputError(ValueError):
    """An option out of upstream's range; the text is upstream's message (one line)."""


def check_options(opts: dict[str, int], max_threads: int) -> None:
    """Upstream's checks in upstream's order, with its messages; then the kernel's check of
    the node, and this machine's limit on worker processes."""
    checks = (
        (opts["mode"] in MODES, "invalid map mode, SINGLE_MODE:0, SG_MODE: 1"),
        (
            1 <= opts["threads"] <= MAX_THREADS,
            f"invalid number of threads, must be in 1-{MAX_THREADS}",
        ),
        (
            1 <= opts["seconds"] <= MAX_SECONDS,
            f"invalid number of seconds, must be in 1-{MAX_SECONDS}",
        ),
        (
            0 <= opts["dma_trans_ns"] <= MAX_TRANS_DELAY,
            f"invalid transmit delay, must be in 0-{MAX_TRANS_DELAY}",
        ),
        (20 <= opts["bits"] <= 64, "invalid dma mask bit, must be in 20-64"),
        (opts["dir"] in DIRECTIONS, "invalid dma direction"),
        (1 <= opts["granule"] <= MAX_GRANULE, "invalid granule size"),
        (opts["node"] == -1 or _node_possible(opts["node"]), "invalid numa node"),
        (
            opts["threads"] <= max_threads,
            f"invalid number of threads, must be in 1-{max_threads} on this machine (64 x the "
            "CPUs this process may use: one worker process per thread)",
        ),
    )
    for ok, message in checks:
        if not ok:
            raise BenchmarkInputError(message)


def _node_possible(node: int) -> bool:
    return node >= 0 and Path(f"/sys/devices/system/node/node{node}").is_dir()


def benchmark_point(
    opts: dict[str, int], invalidation: str = "strict", profile: str = "none"
) -> dict[str, Any]:
    """The dma point that mirrors one dma_map_benchmark run.

    One worker per thread, one queue of depth 1, local completion, every map and unmap timed.
    The driver is lockfree and the allocator rcache (what the kernel's dma-iommu path uses);
    invalidation is strict by default (arm64's default domain, where the published SMMUv3
    numbers come from; x86 defaults to lazy). -n and -d are checked and printed but change
    nothing here: there is no buffer to place on a node or to dirty.
    """
    return {
        "workload": "dma",
        "driver": "lockfree",
        "allocator": "rcache",
        "invalidation": invalidation,
        "profile": profile,
        "depot": "list",
        "completion": "local",
        "map_mode": MAP_MODES[opts["mode"]],
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


@dataclass(frozen=True)
class Samples:
    """One direction's timed samples: their count and sums (ns, and whole 100 ns units)."""

    n: int
    ns: int
    ns_sq: int
    units: int
    units_sq: int

    @classmethod
    def of(cls, workers: list[dict[str, int]], direction: str) -> Samples:
        """Summed over the workers' counters; direction is "map" or "unmap"."""

        def total(suffix: str) -> int:
            return sum(int(w[f"{direction}_{suffix}"]) for w in workers)

        return cls(
            total("samples"),
            total("sample_ns"),
            total("sample_ns_sq"),
            total("sample_100ns"),
            total("sample_100ns_sq"),
        )


def kernel_mean_sd(n: int, units: int, units_sq: int) -> tuple[int, int]:
    """The kernel's integer arithmetic: mean and standard deviation in whole 100 ns units
    (div64_u64 and int_sqrt64 of sum_sq / n - mean^2); (0, 0) without samples."""
    if n == 0:
        return 0, 0
    avg = units // n
    return avg, math.isqrt(max(units_sq // n - avg * avg, 0))


def ns_mean_sd(n: int, ns: int, ns_sq: int) -> tuple[float, float]:
    """Mean and sqrt(E[x^2] - mean^2) of the untruncated samples, in ns."""
    if n == 0:
        return 0.0, 0.0
    mean = ns / n
    return mean, math.sqrt(max(ns_sq / n - mean * mean, 0.0))


def header(opts: dict[str, int]) -> str:
    return (
        f"dma mapping benchmark({MODES[opts['mode']]}): threads:{opts['threads']} "
        f"seconds:{opts['seconds']} node:{opts['node']} dir:{DIRECTIONS[opts['dir']]} "
        f"granule:{opts['granule']}"
    )


def result_line(direction: str, s: Samples, ns: bool) -> str:
    if ns:
        mean, sd = ns_mean_sd(s.n, s.ns, s.ns_sq)
        return f"average {direction} latency(ns):{mean:.1f} standard deviation:{sd:.1f}"
    avg, sd_units = kernel_mean_sd(s.n, s.units, s.units_sq)
    return (
        f"average {direction} latency(us):{avg / 10.0:.1f} standard deviation:{sd_units / 10.0:.1f}"
    )


def lines(opts: dict[str, int], workers: list[dict[str, int]], ns: bool = False) -> list[str]:
    """The tool's three lines: the header, then map and unmap."""
    return [
        header(opts),
        result_line("map", Samples.of(workers, "map"), ns),
        result_line("unmap", Samples.of(workers, "unmap"), ns),
    ]
