"""One point: arena, pinned worker processes, barrier, collect, audit.

`measure_point` (through `run_point`, run/point.py) is the whole contract with the sweep:
give it a point's parameters and get back a PointResult (the row's measures and flags, per-
worker counters, merged histograms, the throughput series). It never raises for a failure of
the point itself (a worker died, the point timed out); those come back as status "failed"
with the reason, and the arena is unlinked and every worker reaped whatever happened.
"""

from __future__ import annotations

import ctypes
import functools
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import multiprocess
import multiprocess.connection
import numpy as np

from iommubench.core import binding
from iommubench.core.arena import Arena
from iommubench.run import (
    competing_load,
    dma_measures,
    interrupt,
    kernel_code,
    row_flags,
    timeseries,
    walker_measures,
)
from iommubench.spec import parameters
from iommubench.spec.catalogue import LOCK_SUFFIXES, LOCKS, counter_measures

HANDOFF_ROUNDS = 20000
# Workers start this long after the release: the parent is asleep again by then, so the
# worker it preempted to write the release starts with the rest instead of microseconds late.
START_DELAY_NS = 1_000_000
ABORTED_EXIT = 103  # 100 + IB_ERR_ABORTED: the worker saw the abort flag and left
# While the workers run, the parent sleeps on their exit (a failure is seen at once; a signal
# interrupts the sleep) and wakes this often only to check the deadline. Polling every 0.5 ms
# instead woke the parent 1900 times a second and took 3.0 % of a CPU from the workers of a
# 2-worker point on this 2-CPU VM; this takes 0.3-0.7 % (20 wake-ups a second).
RUN_POLL_S = 0.05
ARRIVAL_POLL_S = 0.0005  # before the release the workers only prefault: poll for arrival


# The busy work inside each map and unmap call (ns), and the model's own single-page call
# costs a cost profile was calibrated against (None without a profile): run/calibrate.py.
Busy = tuple[int, int, float | None, float | None]


@dataclass
class PointResult:
    status: str  # "ok" or "failed"
    error: str = ""
    measures: dict[str, Any] = field(default_factory=dict)
    workers: list[dict[str, Any]] = field(default_factory=list)
    hist_map: np.ndarray | None = None
    hist_unmap: np.ndarray | None = None
    series_t_ns: np.ndarray | None = None  # (ticks,) ns after the counted window started
    series_ops: np.ndarray | None = None  # (workers, ticks) cumulative counted ops
    # a failure's kind when it came from outside the point (row_flags.ENVIRONMENT_FAILURES)
    failure: str = ""


def allowed_cpus() -> list[int]:
    return sorted(os.sched_getaffinity(0))


def handoff_probe(cpus: list[int]) -> float | None:
    """ns per cache-line handoff between the first two allowed CPUs; None on one CPU."""
    if len(cpus) < 2:
        return None
    ns = binding.lib().ib_handoff_probe_ns(cpus[0], cpus[1], HANDOFF_ROUNDS)
    return round(ns, 1) if ns > 0 else None


PR_SET_PDEATHSIG = 1
STOP_SIGNALS = set(interrupt.HANDLED)
# a worker killed by one of these was stopped from outside (the OOM killer, a user), not by
# a fault of the core (SIGSEGV, SIGBUS, SIGABRT, ...)
OUTSIDE_SIGNALS = {signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT}
TIMED_OUT_TEXT = "point timed out"


def _die_with_parent(parent: int) -> None:
    """A worker whose harness was killed must not spin at the barrier forever."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(98)


def _worker_main(arena: Arena, role: str, index: int, cpu: int, parent: int) -> None:
    """Child process body: pin, run the native worker or walker, leave without teardown."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when a point stops
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # likewise when the terminal hangs up
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)  # held while the parent forked
    try:
        _die_with_parent(parent)
        os.sched_setaffinity(0, {cpu})
        core = binding.lib()
        run = core.ib_worker_run if role == "worker" else core.ib_walker_run
        rc = run(arena.base, index)
    except BaseException:  # a child must exit with a code, never a traceback
        rc = 99
    os._exit(rc)


class _Workers:
    """The point's worker processes, then its walkers, pinned round-robin over the allowed
    CPUs in that order; always reaped by stop()."""

    def __init__(self, arena: Arena, cpus: list[int], count: int, walkers: int = 0) -> None:
        ctx = multiprocess.get_context("fork")
        self.roles = [("worker", w) for w in range(count)] + [("walker", w) for w in range(walkers)]
        self.cpus = [cpus[i % len(cpus)] for i in range(len(self.roles))]
        self.procs = [
            ctx.Process(
                target=_worker_main,
                args=(arena, role, index, cpu, os.getpid()),
                daemon=True,
            )
            for (role, index), cpu in zip(self.roles, self.cpus, strict=True)
        ]

    def start(self) -> None:
        """Inside the caller's try, so stop() reaps whatever started. SIGINT and SIGTERM wait
        until the forks are done: raised inside fork's at-fork callbacks, their interrupt
        would be printed and dropped."""
        held = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            for proc in self.procs:
                proc.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)

    def first_failure(self) -> str | None:
        for (role, index), proc in zip(self.roles, self.procs, strict=True):
            code = proc.exitcode
            if code not in (None, 0):
                return _describe_exit(f"{role} {index}", code)
        return None

    def killed_from_outside(self) -> bool:
        """Whether the first process that failed was killed by a signal from outside."""
        for proc in self.procs:
            if proc.exitcode not in (None, 0):
                return proc.exitcode < 0 and -proc.exitcode in OUTSIDE_SIGNALS
        return False

    def all_exited(self) -> bool:
        return all(proc.exitcode is not None for proc in self.procs if proc.pid is not None)

    def wait_any_exit(self, timeout_s: float) -> None:
        """Sleep until one of the running processes exits, or timeout_s passes."""
        running = [p.sentinel for p in self.procs if p.pid is not None and p.exitcode is None]
        if running:
            multiprocess.connection.wait(running, timeout_s)

    def stop(self, grace_s: float = 1.0) -> None:
        started = [proc for proc in self.procs if proc.pid is not None]
        deadline = time.monotonic() + grace_s
        for proc in started:
            proc.join(max(0.0, deadline - time.monotonic()))
        for proc in started:
            if proc.exitcode is None:
                proc.kill()
        for proc in started:
            proc.join()


def _failure_kind(failure: str, workers: _Workers) -> str:
    """The row flag of a failure from outside the point, or "" for the point's own."""
    if failure == TIMED_OUT_TEXT:
        return row_flags.TIMED_OUT
    return row_flags.WORKER_KILLED if workers.killed_from_outside() else ""


def _describe_exit(who: str, code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"{who} killed by {name}"
    if code == ABORTED_EXIT:
        return f"{who} aborted"
    return f"{who} exited with status {code}"


def _wait(
    workers: _Workers, done: Callable[[], bool], deadline: float, nap: Callable[[], None]
) -> str | None:
    """Check until done() or a worker fails or the deadline passes, calling nap() between
    checks; the reason on failure."""
    while not done():
        interrupt.raise_if_requested()
        failure = workers.first_failure()
        if failure:
            return failure
        if time.monotonic() > deadline:
            return TIMED_OUT_TEXT
        nap()
    return None


def _collect_series(arena: Arena, rows: list[dict[str, Any]]) -> np.ndarray:
    """(workers, ticks) cumulative ops, cut to the ticks every worker recorded."""
    ffi, lib = binding.load()
    ticks = min(int(r["series_ticks"]) for r in rows)
    out = np.zeros((len(rows), ticks), dtype=np.uint64)
    buf = np.zeros(int(lib.IB_SERIES_SLOTS), dtype=np.uint64)
    for w in range(len(rows)):
        n = lib.ib_read_series(arena.base, w, ffi.from_buffer("uint64_t[]", buf), buf.size)
        out[w] = buf[:ticks] if n >= ticks else 0
    return out


def series_tick_ns(params: Any) -> int:
    ffi, lib = binding.load()
    layout = ffi.new("struct ib_layout *")
    lib.ib_layout(params, layout)
    return int(layout.series_tick_ns)


def _collect(arena: Arena, count: int) -> tuple[list[dict[str, Any]], np.ndarray, np.ndarray]:
    ffi, lib = binding.load()
    rows = []
    buckets = int(lib.IB_HIST_BUCKETS)
    hist_map = np.zeros(buckets, dtype=np.uint64)
    hist_unmap = np.zeros(buckets, dtype=np.uint64)
    counters = ffi.new("struct ib_counters *")
    fields = binding.struct_fields("struct ib_counters")
    mbuf, ubuf = np.zeros(buckets, np.uint64), np.zeros(buckets, np.uint64)
    for w in range(count):
        lib.ib_read_counters(arena.base, w, counters)
        rows.append({name: int(getattr(counters, name)) for name in fields})
        lib.ib_read_histograms(
            arena.base, w, ffi.from_buffer("uint64_t[]", mbuf), ffi.from_buffer("uint64_t[]", ubuf)
        )
        hist_map += mbuf
        hist_unmap += ubuf
    return rows, hist_map, hist_unmap


def _audit(arena: Arena) -> dict[str, int] | None:
    """The audit's findings, or None when it could not run (which fails the point: an audit
    that did not look must never read as a pass)."""
    ffi, lib = binding.load()
    result = ffi.new("struct ib_audit_result *")
    if lib.ib_audit(arena.base, result) != 0:
        return None
    fields = binding.struct_fields("struct ib_audit_result")
    return {name: int(getattr(result, name)) for name in fields}


def lock_columns(workers: list[dict[str, Any]]) -> dict[str, int]:
    """Every lock's counters: summed over workers, except the longest single wait (max)."""
    cols = {}
    for prefix in LOCKS:
        for suffix in LOCK_SUFFIXES:
            name = prefix + suffix
            values = [w[name] for w in workers]
            cols[name] = max(values) if suffix == "_max_wait_ns" else sum(values)
    return cols


def _measures(
    point: dict[str, Any],
    workers: list[dict[str, Any]],
    walker_rows: list[dict[str, int]],
    audit: dict[str, int],
    busy: Busy,
) -> dict[str, Any]:
    timestamps = {"start_ns", "end_ns", "worker", "cpu"}
    total = {name: sum(w[name] for w in workers) for name in workers[0] if name not in timestamps}
    start = min(w["start_ns"] for w in workers)
    end = max(w["end_ns"] for w in workers)
    # the window from the first worker's start to the last one's end: conservative when
    # workers start or stop unevenly, exact when they run together
    duration_s = max(end - start, 1) / 1e9
    lost = audit["lost_mappings"] + total["unmap_missing"] + audit["kernel_missing"]
    walker_cols = walker_measures.measures(point, walker_rows, workers)
    audit_ok = (
        lost == 0
        and audit["wrong_translations"] == 0
        and audit["kernel_wrong"] == 0
        and audit["kernel_warns"] == 0
        and audit["kernel_pool_after_free"] == 0
        and audit["stray_mappings"] == 0
        and audit["leaked_tables"] == 0
        and audit["double_frees"] == 0
        and audit["multiply_linked"] == 0
        and audit["corrupt_entries"] == 0
        and total["map_conflicts"] == 0
        and dma_measures.audit_ok(total, audit)
        and walker_measures.audit_ok(point, walker_cols, audit)
    )
    ops = [w["ops"] for w in workers]
    return {
        # every counter the core declares as a measure, summed over the workers
        **{name: total[name] for name in counter_measures()},
        **dma_measures.measures(total, audit),
        **walker_cols,
        "limbo_pages_end": audit["limbo_pages"],
        "duration_s": duration_s,
        "ops_per_s": total["ops"] / duration_s,
        "worker_ops_min": min(ops),
        "worker_ops_max": max(ops),
        **lock_columns(workers),
        **competing_load.worker_shares(workers),
        "lost_mappings": lost,
        "wrong_translations": audit["wrong_translations"] + audit["kernel_wrong"],
        "stray_mappings": audit["stray_mappings"],
        "leaked_tables": audit["leaked_tables"],
        "double_frees": audit["double_frees"] + audit["multiply_linked"],
        **kernel_code.row_columns(point),
        **(
            {
                "kernel_warns": audit["kernel_warns"],
                "kernel_tlb_flush_walks": total["kernel_tlb_flush_walks"],
            }
            if kernel_code.variant_of(point)
            else {}
        ),
        "audit_ok": audit_ok,
        **cost_columns(busy),
    }


def cost_columns(busy: Busy) -> dict[str, Any]:
    """The busy work the point ran with inside each map and unmap call, and, under a cost
    profile, the model's own call costs it was calibrated against."""
    busy_map, busy_unmap, bare_map, bare_unmap = busy
    return {
        "cs_map_busy_ns": busy_map,
        "cs_unmap_busy_ns": busy_unmap,
        "bare_map_ns": bare_map,
        "bare_unmap_ns": bare_unmap,
    }


def _release_and_wait(
    arena: Arena, workers: _Workers, cpus: list[int], timeout_s: float
) -> tuple[str | None, float | None]:
    """Wait for every process at the barrier, release them, wait for them to finish; the
    failure (None when all went well) and the allowed CPUs' steal share meanwhile."""
    lib = binding.lib()
    deadline = time.monotonic() + timeout_s
    everyone = len(workers.procs)

    def arrived() -> bool:
        return lib.ib_arrived(arena.base) == everyone

    failure = _wait(workers, arrived, deadline, functools.partial(time.sleep, ARRIVAL_POLL_S))
    if failure is not None:
        return failure, None
    before = competing_load.read_cpu_times(cpus)
    lib.ib_release(arena.base, lib.ib_now_ns() + START_DELAY_NS)
    nap = functools.partial(workers.wait_any_exit, RUN_POLL_S)
    failure = _wait(workers, workers.all_exited, deadline, nap)
    steal = competing_load.steal_share(before, competing_load.read_cpu_times(cpus))
    return failure or workers.first_failure(), steal


def measure_point(point: dict[str, Any], busy: Busy, timeout_s: float = 120.0) -> PointResult:
    """Run one point with the given busy work in each call to completion (or failure) and
    audit it (`run_point` in run/point.py finds the busy work of the point's profile)."""
    cpus = allowed_cpus()
    count = point["workers"]
    n_walkers = point.get("walkers", 0)
    params = parameters.native_params(point)
    params.cs_map_ns, params.cs_unmap_ns = busy[0], busy[1]
    placement = {
        "cpus_available": len(cpus),
        "oversubscribed": count + n_walkers > len(cpus),
        "handoff_ns_before": handoff_probe(cpus),
    }
    lib = binding.lib()
    kernel_obj = kernel_code.object_for(point)
    with Arena(params) as arena:
        # a page table loaded from the kernel's code is created before any worker forks
        obj_path = str(kernel_obj.path).encode() if kernel_obj else binding.ffi().NULL
        if lib.ib_pgtable_attach(arena.base, obj_path) != 0:
            return PointResult(
                "failed", f"cannot create the {point['pgtable']} page table", measures=placement
            )
        alloc_obj = kernel_code.allocator_object_for(point)
        alloc_path = str(alloc_obj.path).encode() if alloc_obj else binding.ffi().NULL
        if lib.ib_allocator_attach(arena.base, alloc_path) != 0:
            return PointResult(
                "failed", f"cannot create the {point['allocator']} allocator", measures=placement
            )
        workers = _Workers(arena, cpus, count, n_walkers)
        try:
            workers.start()
            failure, steal = _release_and_wait(arena, workers, cpus, timeout_s)
        finally:
            if workers.first_failure() or not workers.all_exited():
                lib.ib_abort(arena.base)
            workers.stop()
        placement["handoff_ns_after"] = handoff_probe(cpus)
        if failure:
            kind = _failure_kind(failure, workers)
            return PointResult("failed", failure, measures=placement, failure=kind)
        rows, hist_map, hist_unmap = _collect(arena, count)
        series_ops = _collect_series(arena, rows)
        walker_rows = walker_measures.collect(arena.base, n_walkers)
        audit = _audit(arena)
    if audit is None:
        return PointResult(
            "failed",
            "the audit could not run (out of memory)",
            measures=placement,
            failure=row_flags.OUT_OF_MEMORY,
        )
    for w, row in enumerate(rows):
        row["worker"] = w
        row["cpu"] = workers.cpus[w]
    tick_ns = series_tick_ns(params)
    series_t_ns = timeseries.tick_times(tick_ns, series_ops.shape[1])
    measures = {
        **placement,
        **_measures(point, rows, walker_rows, audit, busy),
        **timeseries.summarise(tick_ns, series_t_ns, series_ops),
        "steal_share": steal,
    }
    measures["flags"] = row_flags.join(row_flags.row_flags(point, measures, series_ops, rows))
    return PointResult("ok", "", measures, rows, hist_map, hist_unmap, series_t_ns, series_ops)
