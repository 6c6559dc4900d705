"""Decisions from the summary frame: scaling, winners, and the verdict of a change.

Headline numbers come only from valid points that are not oversubscribed: with more workers
than CPUs, throughput follows the CPU share the workers win, not the IOMMU. A winner is
declared only when the 95% interval of its throughput ratio to every other candidate lies
entirely above 1 + WIN_MARGIN (`estimators.log_ratio`): significantly ahead, and by more than
a margin too small to matter. Otherwise the candidates are tied. The margin is what keeps
chance winners away: with two drivers drawn from one log-normal distribution, 1000 trials of
3 repetitions each named a winner 3.8% of the time at 1% noise with the bare interval, never
with the margin, and 1.8% of the time at 20% noise (0.5% with 10 repetitions).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from iommubench.analysis.estimators import Ratio, log_ratio
from iommubench.analysis.run_reader import (
    STRATEGY,
    label,
    norm_value,
    param_columns,
    param_key,
    varying_params,
)
from iommubench.spec.catalogue import NEGATIVE_CONTROLS

IMPROVEMENT, REGRESSION = "improvement", "regression"
NO_CHANGE, INCONCLUSIVE, NOT_COMPARABLE = "no significant change", "inconclusive", "not comparable"
WINNER, TIED = "winner", "no significant difference"
WIN_MARGIN = 0.05


def decide(r: Ratio, threshold: float) -> str:
    """The verdict of new/base at a relative threshold.

    improvement / regression: the interval excludes 1 and the ratio is beyond the threshold;
    no significant change: the whole interval lies within 1 +- threshold; otherwise
    inconclusive (too wide to decide, or significant but not clearly beyond the threshold).
    """
    if not (np.isfinite(r.lo) and np.isfinite(r.hi)):
        return INCONCLUSIVE
    if r.hi < 1 and r.ratio < 1 - threshold:
        return REGRESSION
    if r.lo > 1 and r.ratio > 1 + threshold:
        return IMPROVEMENT
    if r.lo >= 1 - threshold and r.hi <= 1 + threshold:
        return NO_CHANGE
    return INCONCLUSIVE


def headline(summary: pd.DataFrame) -> pd.Series:
    """Points that may feed a headline number: valid, with an estimate, not oversubscribed."""
    if summary.empty:
        return pd.Series(dtype=bool)
    ok = summary["valid"].astype(bool) & summary["ops_per_s"].notna()
    return ok & ~summary["oversubscribed"].astype(bool)


# --------------------------------------------------------------------------- scaling


def group_columns(summary: pd.DataFrame) -> list[str]:
    """The scaling group: every parameter but `workers`."""
    return [c for c in param_columns(summary) if c != "workers"]


SCALING_COLUMNS = [
    "point",
    "group",
    "workers",
    "speedup",
    "efficiency",
    "peak_ops_per_s",
    "peak_workers",
    "collapse_factor",
    "max_workers",
]


def _group_rows(g: pd.DataFrame, glabel: str) -> list[dict[str, Any]]:
    v = g[headline(g)].sort_values("workers")
    one = v[v["workers"] == 1]
    t1 = float(one["ops_per_s"].iloc[0]) if len(one) else float("nan")
    nan = float("nan")
    peak = peak_w = collapse = top = nan
    if len(v):
        ipeak = v["ops_per_s"].idxmax()
        peak, peak_w = float(v.at[ipeak, "ops_per_s"]), v.at[ipeak, "workers"]
        last, top = float(v["ops_per_s"].iloc[-1]), v["workers"].iloc[-1]
        collapse = peak / last if last > 0 else float("inf")
    out = []
    use = set(v["point"])
    for _, r in g.iterrows():
        sp = r["ops_per_s"] / t1 if r["point"] in use and t1 == t1 and t1 > 0 else nan
        eff = sp / r["workers"] if sp == sp and r["workers"] else nan
        out.append(
            dict(
                point=r["point"],
                group=glabel,
                workers=r["workers"],
                speedup=sp,
                efficiency=eff,
                peak_ops_per_s=peak,
                peak_workers=peak_w,
                collapse_factor=collapse,
                max_workers=top,
            )
        )
    return out


def scaling(summary: pd.DataFrame) -> pd.DataFrame:
    """Per point: speedup and efficiency vs its group's 1-worker point, and group peak/collapse.

    Only valid, non-oversubscribed points take part (the others get NaN); collapse is the
    peak over the throughput at the group's largest such worker count (`max_workers`).
    """
    if summary.empty or "workers" not in summary:
        return pd.DataFrame(columns=SCALING_COLUMNS)
    gcols = group_columns(summary)
    shown = varying_params(summary, exclude=["workers"])
    keys = summary.apply(lambda r: param_key(r, gcols), axis=1)
    out = []
    for _, g in summary.groupby(keys, sort=False):
        out += _group_rows(g, label(g.iloc[0], shown) if shown else "all")
    return pd.DataFrame(out, columns=SCALING_COLUMNS)


def with_scaling(summary: pd.DataFrame) -> pd.DataFrame:
    """The summary with the scaling columns merged in (one row per point)."""
    sc = scaling(summary).drop(columns=["workers"])
    return summary.merge(sc, on="point", how="left")


# --------------------------------------------------------------------------- winners

WINNER_COLUMNS = [
    "context",
    "workers",
    "verdict",
    "winner",
    "tied",
    "best_ops_per_s",
    "runner_up",
    "ratio",
    "lo",
    "hi",
    "method",
    "candidates",
]


def _states_differ(g: pd.DataFrame) -> bool:
    """Candidates measured in different placement states cannot be ranked against each other."""
    if "state" not in g:
        return False
    known = {str(s) for s in g["state"].fillna("") if s}
    return len(known) > 1


def _decide_group(g: pd.DataFrame, by: str) -> dict[str, Any]:
    g = g.sort_values("ops_per_s", ascending=False)
    if _states_differ(g):
        by_state = g.groupby(g["state"].fillna(""))[by].apply(lambda s: ", ".join(map(str, s)))
        nan = float("nan")
        return {
            "verdict": NOT_COMPARABLE,
            "winner": "",
            "tied": [],
            "best_ops_per_s": float(g["ops_per_s"].iloc[0]),
            "runner_up": "",
            "ratio": nan,
            "lo": nan,
            "hi": nan,
            "method": "placement states differ: "
            + "; ".join(f"{st or 'unknown'}: {d}" for st, d in by_state.items()),
            "candidates": len(g),
        }
    best = g.iloc[0]
    ratios = [(o, log_ratio(o["samples"], best["samples"])) for _, o in g.iloc[1:].iterrows()]
    ahead = 1 + WIN_MARGIN
    tied = [norm_value(best[by])] + [norm_value(o[by]) for o, r in ratios if not r.lo > ahead]
    closest = min(ratios, key=lambda x: x[1].lo if np.isfinite(x[1].lo) else -np.inf)
    other, r = closest
    won = len(tied) == 1
    return {
        "verdict": WINNER if won else TIED,
        "winner": norm_value(best[by]) if won else "",
        "tied": tied if not won else [],
        "best_ops_per_s": float(best["ops_per_s"]),
        "runner_up": norm_value(other[by]),
        "ratio": r.ratio,
        "lo": r.lo,
        "hi": r.hi,
        "method": r.method,
        "candidates": len(g),
    }


def winners(summary: pd.DataFrame, by: str | None = None) -> pd.DataFrame:
    """Per context (parameters but `by` and `workers`) and worker count: a significant winner.

    `by` defaults to the locking strategy (driver x lock) where the frame has it, else the
    driver. Candidates: headline points (valid, not oversubscribed) except negative
    controls; a context needs two. `ratio`/`lo`/`hi` compare the best with its closest rival
    (the one whose ratio interval has the lowest lower bound); `tied` lists the best and
    every rival it does not separate from.
    """
    by = by or (STRATEGY if STRATEGY in summary else "driver")
    if summary.empty or by not in summary or "workers" not in summary:
        return pd.DataFrame(columns=WINNER_COLUMNS)
    ccols = param_columns(summary, ignore=[by, "workers"])
    shown = varying_params(summary, exclude=[by, "workers"])
    v = summary[headline(summary)]
    v = v[~v["driver"].isin(NEGATIVE_CONTROLS)] if "driver" in v else v
    if v.empty:
        return pd.DataFrame(columns=WINNER_COLUMNS)
    keys = v.apply(lambda r: (*param_key(r, ccols), r["workers"]), axis=1)
    out = []
    for _, g in v.groupby(keys, sort=False):
        if len(g) < 2:
            continue
        ctx = {
            "context": label(g.iloc[0], shown) if shown else "all",
            "workers": g["workers"].iloc[0],
        }
        out.append({**ctx, **_decide_group(g, by)})
    if not out:
        return pd.DataFrame(columns=WINNER_COLUMNS)
    return pd.DataFrame(out, columns=WINNER_COLUMNS).sort_values(
        ["context", "workers"], kind="stable"
    )
