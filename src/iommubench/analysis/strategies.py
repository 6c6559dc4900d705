"""Locking strategies side by side: for every context (the parameters other than the
strategy and the worker count) and worker count where two or more strategies ran, each
strategy's throughput, its share of the best one's, its fairness and its own lock's
contention.

A strategy is the driver with the algorithm of the lock it takes (catalogue.strategy:
`domain-lock/ticket`, `table-lock/mcs`, `lockfree`). Fairness is Jain's index of the
per-worker operation counts (1 = every worker did the same work, 1/n = one did it all) and
the spread between the busiest and the least busy worker; a FIFO lock (ticket, MCS,
qspinlock) should keep both near 1 where a test-and-set lock lets the holder's CPU win
again. Only headline points take part (valid, within the CPU count), never a negative
control. Whether one strategy beats another is decided in decisions.winners; this table
shows the numbers beside each other.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from iommubench.analysis.decisions import headline
from iommubench.analysis.run_reader import STRATEGY, label, param_columns, param_key, varying_params
from iommubench.spec.catalogue import NEGATIVE_CONTROLS

STRATEGY_COLUMNS = [
    "context",
    "workers",
    "strategy",
    "point",
    "ops_per_s",
    "lo",
    "hi",
    "interval",
    "n",
    "of_best",
    "jain",
    "ops_spread",
    "lock_contended_share",
    "lock_mean_wait_ns",
]


def _ratio(a: Any, b: Any) -> float:
    a, b = float(a) if a is not None else np.nan, float(b) if b is not None else np.nan
    return a / b if np.isfinite(a) and np.isfinite(b) and b > 0 else float("nan")


def _row(r: pd.Series, best: float, context: str) -> dict[str, Any]:
    return {
        "context": context,
        "workers": r["workers"],
        "strategy": r[STRATEGY],
        "point": int(r["point"]),
        "ops_per_s": r["ops_per_s"],
        "lo": r.get("ci_lo"),
        "hi": r.get("ci_hi"),
        "interval": r.get("interval"),
        "n": r.get("n"),
        "of_best": _ratio(r["ops_per_s"], best),
        "jain": r.get("jain"),
        "ops_spread": _ratio(r.get("worker_ops_max"), r.get("worker_ops_min")),
        "lock_contended_share": _ratio(r.get("lock_contended"), r.get("lock_acquisitions")),
        "lock_mean_wait_ns": _ratio(r.get("lock_wait_ns"), r.get("lock_contended")),
    }


def strategy_table(summary: pd.DataFrame) -> pd.DataFrame:
    """One row per strategy per (context, workers) with two or more strategies, fastest
    first (see the module docstring). Empty when the frame has no strategy column."""
    if summary.empty or STRATEGY not in summary or "workers" not in summary:
        return pd.DataFrame(columns=STRATEGY_COLUMNS)
    v = summary[headline(summary)]
    if "driver" in v:
        v = v[~v["driver"].isin(NEGATIVE_CONTROLS)]
    ccols = param_columns(v, ignore=[STRATEGY, "workers"])
    shown = varying_params(summary, exclude=[STRATEGY, "workers"])
    keys = v.apply(lambda r: (*param_key(r, ccols), r["workers"]), axis=1)
    rows: list[dict[str, Any]] = []
    for _, g in v.groupby(keys, sort=False) if len(v) else []:
        if g[STRATEGY].nunique() < 2:
            continue
        g = g.sort_values("ops_per_s", ascending=False)
        context = label(g.iloc[0], shown) if shown else "all"
        best = float(g["ops_per_s"].iloc[0])
        rows += [_row(r, best, context) for _, r in g.iterrows()]
    return pd.DataFrame(rows, columns=STRATEGY_COLUMNS)
