"""Competing load and row flags: schedstat shares, steal from /proc/stat, the flags the
runner sets, and real points (a busy process on the worker's CPU, a stopped worker, a dma
point that exhausts its IOVA space, a walker mode that lets a freed table be read)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import multiprocess
import numpy as np
import pytest

from conftest import prefault_point
from iommubench.run import competing_load, row_flags, walker_measures
from iommubench.run.point import run_point

pytestmark = pytest.mark.slow  # starts worker processes, runs or compiles

STAT_BEFORE = """cpu  100 0 100 800 0 0 0 0 0 0
cpu0 50 0 50 400 0 0 0 0 0 0
cpu1 50 0 50 400 0 0 0 0 0 0
intr 1
"""
# cpu0: 100 ticks of which 10 steal; cpu1: 100 ticks, none
STAT_AFTER = """cpu  200 0 200 1600 0 0 0 10 0 0
cpu0 90 0 60 440 0 0 0 10 0 0
cpu1 100 0 100 400 0 0 0 0 0 0
intr 2
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_steal_share_over_the_allowed_cpus(tmp_path) -> None:
    before = competing_load.read_cpu_times([0, 1], write(tmp_path, "a", STAT_BEFORE))
    after = competing_load.read_cpu_times([0, 1], write(tmp_path, "b", STAT_AFTER))
    assert competing_load.steal_share(before, after) == pytest.approx(10 / 200)
    only0 = competing_load.steal_share(
        competing_load.read_cpu_times([0], write(tmp_path, "c", STAT_BEFORE)),
        competing_load.read_cpu_times([0], write(tmp_path, "d", STAT_AFTER)),
    )
    assert only0 == pytest.approx(10 / 100)
    assert competing_load.read_cpu_times([5], write(tmp_path, "e", STAT_BEFORE)) is None
    assert competing_load.steal_share(None, after) is None


def worker(start, end, oncpu, runq, ok=1):
    return dict(start_ns=start, end_ns=end, sched_oncpu_ns=oncpu, sched_runq_ns=runq, sched_ok=ok)


def test_worker_shares_average_each_workers_own_window() -> None:
    shares = competing_load.worker_shares([worker(0, 1000, 900, 100), worker(10, 510, 250, 250)])
    assert shares["runq_wait_share"] == pytest.approx((0.1 + 0.5) / 2)
    assert shares["oncpu_share"] == pytest.approx((0.9 + 0.5) / 2)
    assert competing_load.worker_shares([worker(0, 1000, 1, 1, ok=0)]) == {
        "runq_wait_share": None,
        "oncpu_share": None,
    }


def measures(**overrides):
    m = dict(ops=1000, duration_s=1.0, oversubscribed=False, runq_wait_share=0.0,
             iova_alloc_failures=0)  # fmt: skip
    m.update(overrides)
    return m


def test_row_flags_from_crafted_measures() -> None:
    point = {"duration_s_requested": 1.0, "cycles": 0}
    assert row_flags.row_flags(point, measures()) == []
    assert row_flags.row_flags(point, measures(ops=0)) == ["no-work"]
    assert row_flags.row_flags(point, measures(ops=0, iova_alloc_failures=3)) == [
        "no-work",
        "iova-exhausted",
    ]
    assert row_flags.row_flags(point, measures(duration_s=1.9)) == ["window-stretched"]
    assert row_flags.row_flags(point, measures(duration_s=1.01)) == []
    # fixed-work points have no requested window to stretch
    assert row_flags.row_flags({**point, "cycles": 3}, measures(duration_s=9.0)) == []
    busy = competing_load.RUNQ_WAIT_THRESHOLD * 2
    assert row_flags.row_flags(point, measures(runq_wait_share=busy)) == ["competing-load"]
    # an oversubscribed point waits on a run queue by construction: not competing load
    assert row_flags.row_flags(point, measures(runq_wait_share=busy, oversubscribed=True)) == []


def test_a_worker_flat_for_a_quarter_of_the_window_is_a_stretched_window() -> None:
    point = {"duration_s_requested": 1.0, "cycles": 0}
    steady = np.arange(1, 101, dtype=np.uint64) * 1000
    stalled = steady.copy()
    stalled[40:] -= 25 * 1000  # no op in ticks 40..64
    stalled[40:65] = stalled[39]
    idle = np.zeros(100, dtype=np.uint64)  # a worker with no work at all is not stalled
    assert row_flags.longest_flat_run(stalled) == 25
    assert row_flags.row_flags(point, measures(), np.array([steady, idle])) == []
    assert row_flags.row_flags(point, measures(), np.array([steady, stalled])) == [
        "window-stretched"
    ]
    brief = steady.copy()
    brief[40:50] = brief[39]  # 10 flat ticks out of 100: a hiccup
    brief[50:] -= 10 * 1000
    assert row_flags.row_flags(point, measures(), np.array([brief])) == []
    assert row_flags.row_flags({**point, "cycles": 2}, measures(), np.array([stalled])) == []
    # flat, but running or runnable all along: starved by a lock or the walk guard, not stopped
    spinning = [worker(0, 1000, 900, 100), worker(0, 1000, 1000, 0)]
    assert row_flags.row_flags(point, measures(), np.array([steady, stalled]), spinning) == []
    stopped = [worker(0, 1000, 1000, 0), worker(0, 1000, 600, 50)]
    assert row_flags.row_flags(point, measures(), np.array([steady, stalled]), stopped) == [
        "window-stretched"
    ]


def test_safe_walker_modes_fail_the_audit_on_any_freed_table_read() -> None:
    clean = {"walker_uaf_reads": 0, "walker_uaf_tables": 0, "walker_corrupt_reads": 0}
    audit = {"limbo_pages": 0}
    for mode in ("exclusive", "deferred-free"):
        point = {"walker_safety": mode}
        assert walker_measures.audit_ok(point, clean, audit)
        for name in clean:
            assert not walker_measures.audit_ok(point, {**clean, name: 1}, audit), (mode, name)
    # unsafe modes measure the race: freed-table reads are the result, not a failure
    assert walker_measures.audit_ok(
        {"walker_safety": "unsafe"}, {**clean, "walker_uaf_tables": 5}, audit
    )


def test_a_real_exclusive_walker_run_passes_with_no_freed_table_read() -> None:
    # a gap between passes lets the worker through often enough to free tables under it
    point = prefault_point(cycles=0, warmup_s=0.02, duration_s_requested=0.2, region_mib=128,
                           chunk_pages=32768, unmap_pages=512, walkers=1,
                           walker_safety="exclusive", walker_gap_us=200)  # fmt: skip
    result = run_point(point)
    assert result.status == "ok", result.error
    m = result.measures
    assert m["walker_passes"] > 0 and m["tables_freed"] > 0
    assert m["walker_uaf_tables"] == 0 and m["walker_corrupt_reads"] == 0
    assert m["audit_ok"]


def timed_point(**overrides):
    params = dict(cycles=0, warmup_s=0.05, duration_s_requested=0.3, region_mib=16,
                  chunk_pages=512)  # fmt: skip
    params.update(overrides)
    return prefault_point(**params)


def stop_a_worker_for(seconds: float, after: float) -> threading.Thread:
    """SIGSTOPs the first worker process `after` s after it appears, SIGCONTs it later."""

    def body() -> None:
        deadline = time.monotonic() + 10
        while not multiprocess.active_children() and time.monotonic() < deadline:
            time.sleep(0.001)
        children = multiprocess.active_children()
        if not children:
            return
        time.sleep(after)
        pid = children[0].pid
        os.kill(pid, signal.SIGSTOP)
        time.sleep(seconds)
        os.kill(pid, signal.SIGCONT)

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    return thread


def test_a_worker_stopped_past_the_window_end_stretches_it() -> None:
    # stopped 0.15 s after it starts (inside the 0.05 s warm-up + 0.3 s window) for 0.8 s
    thread = stop_a_worker_for(0.8, after=0.15)
    result = run_point(timed_point(), timeout_s=30)
    thread.join()
    assert result.status == "ok", result.error
    assert result.measures["duration_s"] > 0.3 * row_flags.STRETCH_FACTOR
    assert "window-stretched" in result.measures["flags"].split(";")


def test_a_worker_stopped_inside_the_window_is_flagged() -> None:
    # stopped 0.15 s after it starts for 0.3 s, resumed well before the 0.8 s window ends:
    # the window keeps its length, but the worker counted nothing for over a quarter of it
    thread = stop_a_worker_for(0.3, after=0.15)
    result = run_point(timed_point(duration_s_requested=0.8), timeout_s=30)
    thread.join()
    assert result.status == "ok", result.error
    assert "window-stretched" in result.measures["flags"].split(";")


def test_a_dma_point_that_exhausts_its_iova_space_is_flagged() -> None:
    point = {
        "workload": "dma", "driver": "lockfree", "workers": 1, "allocator": "global",
        "invalidation": "lazy", "queues_per_worker": 1, "queue_depth": 4096,
        "granule_pages": [1024], "dma_bits": 20, "dma_ns": 0, "inv_ns": 0,
        "warmup_s": 0.02, "duration_s_requested": 0.2, "sample_every": 64, "seed": 1,
    }  # fmt: skip
    result = run_point(point, timeout_s=30)
    assert result.status == "ok", result.error
    m = result.measures
    assert m["iova_alloc_failures"] > 0
    flags = m["flags"].split(";")
    assert "iova-exhausted" in flags
    if m["ops"] == 0:
        assert "no-work" in flags
    # the audit stays about correctness: nothing was lost, so it passes; the flag is what
    # keeps the row from counting as a clean result
    assert m["audit_ok"]


BUSY_PINNED = textwrap.dedent(
    """
    import json, os, subprocess, sys, time
    sys.path.insert(0, {tests!r})
    from conftest import prefault_point
    from iommubench.run.point import run_point

    cpu = max(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {{cpu}})  # the harness, and so its one worker, on one CPU

    def probe():
        # run-queue wait share of a 0.1 s spin on this CPU: is anything else running?
        a = open("/proc/thread-self/schedstat").read().split()
        t0 = time.monotonic_ns()
        while time.monotonic_ns() - t0 < 100_000_000:
            pass
        b = open("/proc/thread-self/schedstat").read().split()
        return (int(b[1]) - int(a[1])) / (time.monotonic_ns() - t0)

    before = probe()
    busy = None
    if {busy}:
        busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        time.sleep(0.2)
    try:
        point = prefault_point(cycles=0, warmup_s=0.05, duration_s_requested=0.4,
                               region_mib=16, chunk_pages=512)
        result = run_point(point, timeout_s=30)
    finally:
        if busy:
            busy.kill()
            busy.wait()
    m = result.measures
    print(json.dumps({{"status": result.status, "flags": m.get("flags"),
                      "runq": m.get("runq_wait_share"), "probes": [before, probe()]}}))
    """
)


def run_pinned(busy: bool) -> dict:
    tests = str(Path(__file__).resolve().parents[1])
    code = BUSY_PINNED.format(tests=tests, busy=busy)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    import json

    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_busy_process_on_the_workers_cpu_is_competing_load() -> None:
    got = run_pinned(busy=True)
    assert got["status"] == "ok"
    assert got["runq"] > competing_load.RUNQ_WAIT_THRESHOLD
    assert "competing-load" in got["flags"].split(";")


def test_a_worker_alone_on_its_cpu_is_not_competing_load() -> None:
    # Other processes share this machine and come and go: one unflagged attempt out of four
    # passes. Every attempt flagged fails if any of them had a quiet CPU on both sides (a spin
    # probe just before and after it waited on no run queue), and is skipped otherwise.
    seen = []
    for _ in range(4):
        got = run_pinned(busy=False)
        assert got["status"] == "ok"
        if "competing-load" not in got["flags"].split(";"):
            return
        seen.append(got)
    quiet = [g for g in seen if max(g["probes"]) < competing_load.RUNQ_WAIT_THRESHOLD / 5]
    assert not quiet, f"flagged in every attempt, on a quiet CPU: {quiet}"
    pytest.skip(f"the CPU was busy with other processes in every attempt: {seen}")
