"""Per-lock attribution, as `perf lock contention` shows it: for every lock of every point,
acquisitions, the share of them that had to wait, the share of worker time spent waiting,
the mean wait per contended acquisition and the longest single wait."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from iommubench.spec.catalogue import LOCKS

LOCK_TABLE_COLUMNS = [
    "point",
    "lock",
    "name",
    "acquisitions",
    "contended_share",
    "wait_share",
    "mean_wait_ns",
    "max_wait_ns",
]


def _get(r: pd.Series, col: str) -> float:
    v = r.get(col)
    return float(v) if v is not None and np.isfinite(v) else float("nan")


def _ratio(a: float, b: float) -> float:
    return a / b if np.isfinite(a) and np.isfinite(b) and b > 0 else float("nan")


def lock_row(r: pd.Series, prefix: str) -> dict[str, Any] | None:
    """One lock of one summary row, or None when it has no counters or none moved."""
    acq, cont = _get(r, f"{prefix}_acquisitions"), _get(r, f"{prefix}_contended")
    wait, mx = _get(r, f"{prefix}_wait_ns"), _get(r, f"{prefix}_max_wait_ns")
    if not any(np.isfinite(v) and v > 0 for v in (acq, cont, wait, mx)):
        return None
    worker_ns = _get(r, "duration_s") * 1e9 * _get(r, "workers")
    return {
        "point": int(r["point"]),
        "lock": prefix,
        "name": LOCKS[prefix],
        "acquisitions": acq,
        "contended_share": _ratio(cont, acq),
        "wait_share": _ratio(wait, worker_ns),
        "mean_wait_ns": _ratio(wait, cont),
        "max_wait_ns": mx,
    }


def lock_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Every lock that moved at every valid point (medians over the point's repetitions;
    max wait: the longest over them). Empty when the run has no per-lock columns."""
    if summary.empty:
        return pd.DataFrame(columns=LOCK_TABLE_COLUMNS)
    v = summary[summary["valid"].astype(bool)]
    rows = [row for _, r in v.iterrows() for p in LOCKS if (row := lock_row(r, p)) is not None]
    return pd.DataFrame(rows, columns=LOCK_TABLE_COLUMNS)
