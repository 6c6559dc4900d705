"""Adaptive repetitions: which points get one more repetition, from the rows stored so far
(the sweep runs the tasks; the decision is the median interval's, analysis/intervals.py)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from iommubench.analysis.intervals import needs_more_reps
from iommubench.run.progress import varying
from iommubench.run.sweep import Task

__all__ = ["adaptive_round", "valid_throughputs"]


def valid_throughputs(rows: Iterable[dict[str, str]]) -> dict[int, list[float]]:
    """ops/s of each point's repetitions that ran and passed their audit."""
    out: dict[int, list[float]] = {}
    for row in rows:
        if row["status"] == "ok" and row["audit_ok"] == "True":
            out.setdefault(int(row["point"]), []).append(float(row["ops_per_s"]))
    return out


def adaptive_round(
    points: list[dict[str, Any]],
    rows: list[dict[str, str]],
    max_repetitions: int,
    target_halfwidth: float,
) -> list[Task]:
    """One more repetition of every point whose interval is still wider than the target.

    Points with no valid repetition (a failed point, the naive control) get none: more runs
    cannot narrow an interval they do not have.
    """
    runs: dict[int, int] = {}
    next_rep: dict[int, int] = {}
    for row in rows:
        point, rep = int(row["point"]), int(row["rep"])
        runs[point] = runs.get(point, 0) + 1
        next_rep[point] = max(next_rep.get(point, 0), rep + 1)  # never a rep already stored
    valid = valid_throughputs(rows)
    shown = varying(points)
    return [
        Task(i, next_rep.get(i, 0), params, shown)
        for i, params in enumerate(points)
        if runs.get(i, 0) < max_repetitions
        and i in valid
        and needs_more_reps(valid[i], target_halfwidth, min_reps=2)
    ]
