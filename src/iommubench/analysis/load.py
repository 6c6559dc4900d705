"""What the load measured during a repetition could explain of its throughput.

Every decision between two points (compare's verdicts, the report's winners and collapse
factors, reproduce's shape checks) is taken twice: on the repetitions as measured, and on
the repetitions moved as far as the measured conditions allow towards "no difference". A
verdict stands only when it survives the second; otherwise it is `inconclusive (load)`.

The rule, per repetition i of a point with w workers:

- **Competing load.** Each worker measures the share of its window it spent runnable but
  waiting for a CPU (`runq_wait_share`, from schedstat), and the harness the allowed CPUs'
  steal (`steal_share`). Let l_i be their sum, less the wait that oversubscription causes by
  itself (1 - CPUs / w). A worker that is off its CPU for a share l of the window loses at
  most that share of its work: one worker's throughput is at least (1 - l) of what it would
  have been. With w workers that may wait on each other (a lock holder preempted stalls the
  others), work is surely done only while every worker runs, at least 1 - w l of the window
  (the union bound). So the repetition could have run up to 1 / (1 - w l_i) faster without
  the load: its lower factor is `low_i = 1 - w l_i` (floored at 0.001, where anything can be
  explained).
- **A level shift.** A repetition whose throughput stepped by a ratio R within its window
  (`level_shift`, `level_shift_ratio`) was measured partly under other conditions; its
  result could be off by up to R either way: `low_i = min(low_i, 1 / R)`, `high_i = R`.

Then a slowdown (new below base) is decided on new_i / low_i against base_i / high_i, and a
speed-up on new_i / high_i against base_i / low_i. Measured on the development VM (docs/
results.md, "What load can explain"): single workers lost on average about the share they
waited (0.51 of the throughput at l = 0.50, 0.68 at 0.33, 0.84 at 0.18), and two workers
sharing a lock more than l but less than 2 l.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

FLOOR = 1e-3
# Point flags that say a point's conditions changed under it: a comparison involving one is
# decided only beyond what the measured load could explain, and its claim carries the flags.
LOAD_FLAGS = ("competing-load", "level-shift", "window-stretched", "placement-changed")


def _num(v: Any, default: float = 0.0) -> float:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return default
    return x if np.isfinite(x) else default


def load_share(row: pd.Series | dict[str, Any]) -> float:
    """l: run-queue wait beyond what oversubscription causes by itself, plus steal."""
    workers = max(1.0, _num(row.get("workers"), 1.0))
    cpus = _num(row.get("cpus_available"), workers) or workers
    own = max(0.0, 1.0 - cpus / workers)
    runq = max(0.0, _num(row.get("runq_wait_share")) - own)
    return runq + max(0.0, _num(row.get("steal_share")))


def shift_ratio(row: pd.Series | dict[str, Any]) -> float:
    """R >= 1 of a repetition with a level shift (1 without one)."""
    flag = row.get("level_shift")
    if flag is None or flag is pd.NA or not bool(flag):
        return 1.0
    r = _num(row.get("level_shift_ratio"), 1.0)
    return max(r, 1.0 / r) if r > 0 else 1.0


def factors(row: pd.Series | dict[str, Any]) -> tuple[float, float]:
    """(low, high) of one repetition: it could have been up to 1 / low faster and up to
    high slower under clean conditions (see the module docstring)."""
    workers = max(1.0, _num(row.get("workers"), 1.0))
    r = shift_ratio(row)
    low = min(1.0 - workers * load_share(row), 1.0 / r)
    return max(FLOOR, low), r


@dataclass(frozen=True)
class Reps:
    """The repetitions behind one side of a decision: throughputs and their factors."""

    values: np.ndarray
    low: np.ndarray
    high: np.ndarray

    @property
    def n(self) -> int:
        return int(self.values.size)

    @classmethod
    def of(cls, rows: pd.DataFrame) -> Reps:
        """From points rows (ops_per_s and the load columns)."""
        v = pd.to_numeric(rows.get("ops_per_s"), errors="coerce")
        keep = v.notna() & (v > 0) if len(rows) else pd.Series(dtype=bool)
        rows = rows[keep]
        fl = [factors(r) for _, r in rows.iterrows()]
        return cls(
            rows["ops_per_s"].to_numpy(dtype=float) if len(rows) else np.array([]),
            np.array([f[0] for f in fl], dtype=float),
            np.array([f[1] for f in fl], dtype=float),
        )

    @classmethod
    def from_tuples(cls, values: Any, low: Any = None, high: Any = None) -> Reps:
        """From a summary row's tuples (factors of 1 when absent: nothing to explain)."""
        v = np.asarray(list(values) if values is not None else [], dtype=float)
        lo = np.ones_like(v) if low is None or len(low) != v.size else np.asarray(low, float)
        hi = np.ones_like(v) if high is None or len(high) != v.size else np.asarray(high, float)
        return cls(v, lo, hi)

    def __add__(self, other: Reps) -> Reps:
        return Reps(
            np.concatenate([self.values, other.values]),
            np.concatenate([self.low, other.low]),
            np.concatenate([self.high, other.high]),
        )

    @property
    def explains(self) -> bool:
        """Whether any repetition's conditions could explain a difference at all."""
        return bool(np.any(self.low < 1.0) or np.any(self.high > 1.0))
