"""A sweep: points x repetitions, interleaved, each run by an executor and stored as it ends.

Repetitions are interleaved (rep 0 of every point, then rep 1, ...) so slow drift in the
machine spreads over all points instead of biasing one. The executor is the seam where a
cluster engine can later replace the local runner: it takes one task and returns its result.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from iommubench.core import binding, hist
from iommubench.core.arena import ArenaSpaceError
from iommubench.run import interrupt, progress, row_flags
from iommubench.run.point import PointResult, run_point
from iommubench.run.progress import Reporter
from iommubench.run.store import RunStore
from iommubench.spec.catalogue import is_negative_control

PERCENTILES = {"p50": 50.0, "p90": 90.0, "p99": 99.0, "p999": 99.9}


@dataclass(frozen=True)
class Task:
    point: int
    rep: int
    params: dict[str, Any]
    shown: tuple[str, ...] = ()  # the parameters that vary across the sweep (progress.varying)

    @property
    def label(self) -> str:
        return progress.point_label(self.point, self.rep, self.params, self.shown)


class Executor(Protocol):
    def run(self, task: Task, timeout_s: float) -> PointResult: ...


class LocalExecutor:
    """Runs each task on this machine, one at a time."""

    def run(self, task: Task, timeout_s: float) -> PointResult:
        try:
            return run_point(task.params, timeout_s)
        except ArenaSpaceError as exc:  # /dev/shm filled up: this point fails, the rest go on
            return PointResult("failed", str(exc), measures={}, failure=row_flags.SHM_FULL)


def plan(points: list[dict[str, Any]], repetitions: int, done: Iterable[tuple[int, int]] = ()):
    """Tasks in interleaved order, skipping (point, rep) pairs already done."""
    skip = set(done)
    shown = progress.varying(points)
    return [
        Task(i, rep, params, shown)
        for rep in range(repetitions)
        for i, params in enumerate(points)
        if (i, rep) not in skip
    ]


def latency_columns(result: PointResult) -> dict[str, float | None]:
    cols: dict[str, float | None] = {}
    for op, h in (("map", result.hist_map), ("unmap", result.hist_unmap)):
        have = h is not None and hist.count(h) > 0
        values = hist.percentiles(h, list(PERCENTILES.values())) if have else [None] * 4
        for name, value in zip(PERCENTILES, values, strict=True):
            cols[f"{op}_{name}_ns"] = value
    return cols


def make_row(
    run_id: str,
    task: Task,
    result: PointResult,
    timer_ns: float,
    build: dict[str, Any] | None = None,
) -> dict[str, Any]:
    build = build or {}
    row: dict[str, Any] = {
        "run_id": run_id,
        "point": task.point,
        "rep": task.rep,
        "status": result.status,
        "error": result.error,
        "core_hash": build.get("core_hash"),
        "version": build.get("version"),
        **task.params,
        **result.measures,
    }
    if result.status == "ok":
        row.update(latency_columns(result))
        row["timer_ns"] = timer_ns
    elif result.failure:
        row["flags"] = result.failure  # the kind of failure: --resume runs it again
    return row


def timestamps(started: float, ended: float) -> dict[str, str]:
    """started_at and ended_at to the millisecond (a float cell keeps only 6 digits)."""
    return {"started_at": f"{started:.3f}", "ended_at": f"{ended:.3f}"}


def counts_as_failure(row: dict[str, Any]) -> bool:
    """A failed point, or a failed audit by anything but a negative control."""
    if row["status"] != "ok":
        return True
    return not row["audit_ok"] and not is_negative_control(row)


def stored_failures(rows: list[dict[str, str]]) -> int:
    """How many stored rows (points.csv, as text) count as failures (`counts_as_failure`)."""
    return sum(
        row["status"] != "ok" or (row["audit_ok"] == "False" and not is_negative_control(row))
        for row in rows
    )


def summary_text(row: dict[str, Any]) -> str:
    return progress.result_text(row)


def run_sweep(
    tasks: list[Task],
    store: RunStore,
    executor: Executor,
    reporter: Reporter,
    timeout_s: float,
    build: dict[str, Any] | None = None,
    before_point: Callable[[], None] = lambda: None,
    host: dict[str, Any] | None = None,
) -> int:
    """Runs every task; returns how many counted as failures.

    `build` fills each row's core_hash and version, `host` its host, cpu_model and
    cpus_allowed; `before_point` runs before each point (the check for other runs on this
    machine).
    """
    timer_ns = round(binding.lib().ib_timer_cost_ns(), 2)
    failures = 0
    reporter.start(len(tasks))
    try:
        for task in tasks:
            interrupt.raise_if_requested()
            before_point()
            reporter.point_started(task.label)
            started = time.time()
            result = executor.run(task, timeout_s)
            row = make_row(store.run_id, task, result, timer_ns, build)
            row.update(host or {}, **timestamps(started, time.time()))
            series = (
                None
                if result.series_t_ns is None or result.series_ops is None
                else (result.series_t_ns, result.series_ops)
            )
            store.append(row, result.workers, result.hist_map, result.hist_unmap, series)
            failures += counts_as_failure(row)
            reporter.point_finished(task.label, summary_text(row))
    finally:
        reporter.close()
    return failures
