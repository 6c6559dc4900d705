"""One point as the sweep runs it: the busy work of its cost profile (calibrated once per
process, run/calibrate.py), then the runner."""

from __future__ import annotations

from typing import Any

from iommubench.run import calibrate, runner
from iommubench.run.runner import PointResult

__all__ = ["PointResult", "run_point"]


def run_point(point: dict[str, Any], timeout_s: float = 120.0) -> PointResult:
    """Run one point to completion (or failure) and audit it."""
    return runner.measure_point(point, calibrate.busy_for(point), timeout_s)
