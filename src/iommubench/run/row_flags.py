"""Row flags: what makes one repetition's row not a clean result, decided by the runner.

`no-work`, `iova-exhausted` and `window-stretched` make a row invalid (the analysis never
treats it as a clean valid result); `competing-load` keeps it valid but flagged. A failed
row's flags say whether it failed for a reason outside the point (`ENVIRONMENT_FAILURES`). The audit
(`audit_ok`) stays about correctness only: a point that did no work broke nothing, so its
audit can pass, and the flag is what keeps it out of the results.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from iommubench.run import competing_load

NO_WORK = "no-work"
IOVA_EXHAUSTED = "iova-exhausted"
WINDOW_STRETCHED = "window-stretched"
COMPETING_LOAD = "competing-load"
INVALIDATING = frozenset({NO_WORK, IOVA_EXHAUSTED, WINDOW_STRETCHED})

# The kind of a failed row (status "failed"), in its flags: a failure of the environment, not
# of the point, which `--resume` runs again. A failed row without one of these failed on its
# own (a crash of the core, an error of its strategy) and is kept, as a failed audit is.
TIMED_OUT = "timed-out"  # the point did not end within point_timeout_s
WORKER_KILLED = "worker-killed"  # a worker process killed from outside (SIGKILL, SIGTERM, ...)
SHM_FULL = "shm-full"  # /dev/shm could not hold the arena
OUT_OF_MEMORY = "out-of-memory"  # the audit could not allocate its memory
LOST_HOST = "lost-host"  # a fleet host died or stopped answering while it ran the point
HOST_ERROR = "host-error"  # a fleet host could not run the task (an error outside the point)
ENVIRONMENT_FAILURES = frozenset(
    {TIMED_OUT, WORKER_KILLED, SHM_FULL, OUT_OF_MEMORY, LOST_HOST, HOST_ERROR}
)


def failed_outside_the_point(flags: str | None) -> bool:
    """Whether a failed row's flags say it failed for a reason outside the point."""
    return bool(set((flags or "").split(";")) & ENVIRONMENT_FAILURES)


# The measured window (first worker's start to last worker's end) may exceed the requested
# one by the time to finish a batch and the start skew, i.e. microseconds to a millisecond or
# two; a stopped or starved worker adds its whole stall. Flag anything beyond 20 % + 50 ms.
STRETCH_FACTOR = 1.2
STRETCH_SLACK_S = 0.05
# A worker stopped inside the window (and resumed before its end) leaves the window its
# length but counts nothing for a while: a worker with work whose throughput series stays
# flat for this share of the window (and at least STALL_MIN_TICKS ticks), and which was
# neither on a CPU nor waiting for one for that share (schedstat), stretches its own window
# just the same. The second test keeps a worker that spins, starved by a lock or the walk
# guard, from counting as stopped: a spinning worker is always running or runnable.
STALL_FRACTION = 0.25
STALL_MIN_TICKS = 3


def window_stretched(point: dict[str, Any], duration_s: float) -> bool:
    """A timed window much longer than requested (fixed-cycle points have no requested one)."""
    if point.get("cycles", 0):
        return False
    requested = float(point.get("duration_s_requested", 0.0))
    return requested > 0 and duration_s > requested * STRETCH_FACTOR + STRETCH_SLACK_S


def longest_flat_run(counts: np.ndarray) -> int:
    """The most consecutive ticks in which a cumulative count did not move."""
    flat = np.diff(np.asarray(counts, dtype=np.int64), prepend=0) == 0
    best = run = 0
    for f in flat:
        run = run + 1 if f else 0
        best = max(best, run)
    return best


def absent_share(worker: dict[str, Any]) -> float | None:
    """Share of a worker's window it was neither on a CPU nor runnable (None: unknown)."""
    span = worker.get("end_ns", 0) - worker.get("start_ns", 0)
    if not worker.get("sched_ok") or span <= 0:
        return None
    return max(0.0, 1.0 - (worker["sched_oncpu_ns"] + worker["sched_runq_ns"]) / span)


def worker_stalled(
    point: dict[str, Any],
    series_ops: np.ndarray | None,
    workers: list[dict[str, Any]] | None = None,
) -> bool:
    """A worker that counted ops, yet none for a sizeable part of a timed window while it
    was off every CPU and run queue (stopped)."""
    if point.get("cycles", 0) or series_ops is None or series_ops.size == 0:
        return False
    rows = np.atleast_2d(series_ops)
    need = max(STALL_MIN_TICKS, int(np.ceil(STALL_FRACTION * rows.shape[1])))
    for w, row in enumerate(rows):
        if row[-1] == 0 or longest_flat_run(row) < need:
            continue
        absent = absent_share(workers[w]) if workers is not None else None
        if absent is None or absent >= STALL_FRACTION:
            return True
    return False


def row_flags(
    point: dict[str, Any],
    measures: dict[str, Any],
    series_ops: np.ndarray | None = None,
    workers: list[dict[str, Any]] | None = None,
) -> list[str]:
    """The flags of one ok row, in a fixed order."""
    flags = []
    if measures["ops"] == 0:
        flags.append(NO_WORK)
    if (measures.get("iova_alloc_failures") or 0) > 0:
        flags.append(IOVA_EXHAUSTED)
    stalled = worker_stalled(point, series_ops, workers)
    if window_stretched(point, measures["duration_s"]) or stalled:
        flags.append(WINDOW_STRETCHED)
    if competing_load.competing_load(
        bool(measures["oversubscribed"]), measures.get("runq_wait_share")
    ):
        flags.append(COMPETING_LOAD)
    return flags


def join(flags: list[str]) -> str:
    return ";".join(flags)
