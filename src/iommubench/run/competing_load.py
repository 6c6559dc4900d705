"""Competing load on the point's CPUs: run-queue wait per worker, hypervisor steal.

Each worker publishes its own schedstat deltas over its counted window (time on a CPU, time
runnable but waiting on a run queue); the harness reads the allowed CPUs' steal time from
/proc/stat before and after the point. A point that is not oversubscribed yet whose workers
waited on a run queue had to share their CPUs with something else.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

PROC_STAT = Path("/proc/stat")
STEAL_FIELD = 8  # cpuN user nice system idle iowait irq softirq steal ...

# Flag a non-oversubscribed point as competing-load when its workers spent more than this
# share of their window waiting on a run queue. Measured on the 2-vCPU development VM (1 s
# lock-free prefault and dma points, taken only when a spin probe on each CPU just before and
# after saw no run-queue wait): 1 worker 0.00-0.01 %, 2 workers 0.4-0.5 % (the harness's own
# wake-ups, 20 a second, and kernel threads), with single excursions to 7-9 % while other
# processes came and went. A busy process pinned to the worker's CPU gives 52-53 %. 5 % is
# ten times the ordinary 2-worker value and a tenth of a CPU shared with one other process.
RUNQ_WAIT_THRESHOLD = 0.05


def read_cpu_times(cpus: list[int], path: Path = PROC_STAT) -> dict[int, list[int]] | None:
    """Clock ticks per field of each allowed CPU's `cpuN` line; None when unreadable."""
    wanted = {f"cpu{c}": c for c in cpus}
    out: dict[int, list[int]] = {}
    try:
        text = path.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        name, _, rest = line.partition(" ")
        if name in wanted:
            out[wanted[name]] = [int(v) for v in rest.split()]
    return out if len(out) == len(wanted) else None


def steal_share(
    before: dict[int, list[int]] | None, after: dict[int, list[int]] | None
) -> float | None:
    """Steal over all the allowed CPUs' time between two readings (None when unknown)."""
    if before is None or after is None:
        return None
    steal = total = 0
    for cpu, fields in after.items():
        old = before.get(cpu)
        if old is None or len(fields) <= STEAL_FIELD - 1:
            return None
        delta = [a - b for a, b in zip(fields, old, strict=False)]
        steal += delta[STEAL_FIELD - 1]
        total += sum(delta[:STEAL_FIELD])  # guest time is already inside user and nice
    return steal / total if total > 0 else None


def clock_ticks_per_s() -> int:
    return int(os.sysconf("SC_CLK_TCK"))


def worker_shares(workers: list[dict[str, Any]]) -> dict[str, float | None]:
    """runq_wait_share and oncpu_share: each worker's schedstat delta over its own window,
    averaged over the workers (None when the kernel gave no schedstat)."""
    runq, oncpu = [], []
    for w in workers:
        span = w["end_ns"] - w["start_ns"]
        if not w.get("sched_ok") or span <= 0:
            continue
        runq.append(w["sched_runq_ns"] / span)
        oncpu.append(w["sched_oncpu_ns"] / span)
    if not runq:
        return {"runq_wait_share": None, "oncpu_share": None}
    return {"runq_wait_share": sum(runq) / len(runq), "oncpu_share": sum(oncpu) / len(oncpu)}


def competing_load(oversubscribed: bool, runq_wait_share: float | None) -> bool:
    """Workers that had a CPU each yet waited for one beyond the threshold."""
    return (
        not oversubscribed and runq_wait_share is not None and runq_wait_share > RUNQ_WAIT_THRESHOLD
    )
