"""One row per point over its repetitions: the summary frame every renderer and figure uses.

Which repetitions feed a point's estimate: the valid ones (see `rundata.valid_mask`) measured
in one placement state (see `placement`): the run's most common state when the point has two
or more repetitions in it, so that the points set beside each other share a state, else the
point's own majority. The others are counted in `set_aside` with the reason; those that still
have a throughput (another placement state, a placement change, a stretched window) are kept
apart as `aside_samples`, because a decision must hold with them as well as without them
(`decisions.judge`). The estimate is the median of the used ones with
`intervals.median_interval`. Each repetition also carries what its measured load could
explain (`load.factors`: `low`, `high`, and `aside_low`, `aside_high`).
A point without any valid repetition keeps the median of its completed repetitions for
display but is `valid = False`: never drawn as part of a line, never a headline number.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from iommubench.analysis import load, placement
from iommubench.analysis import point_flags as _flags
from iommubench.analysis.estimators import batch_means_cv, cv, jain_index
from iommubench.analysis.intervals import median_interval
from iommubench.analysis.run_reader import (
    AUDIT_COUNTERS,
    LATENCY_COLUMNS,
    STRATEGY_PARTS,
    Run,
    has_flag,
    invalid_reason,
    param_columns,
    valid_mask,
)
from iommubench.spec.catalogue import LOCKS, is_negative_control

# measures summarised as the median over a point's repetitions
MEDIAN_COLUMNS = [
    "duration_s",
    "ops",
    "maps",
    "unmaps",
    *LATENCY_COLUMNS,
    "timer_ns",
    "cas_attempts",
    "cas_failures",
    "rcache_hits",
    "rcache_misses",
    "invalidations",
    "walker_reads",
    "walker_uaf_reads",
    "walker_pass_ns",
    "contention_share",
    "cas_fail_per_op",
    "rcache_hit_rate",
    "runq_wait_share",
    "steal_share",
    "oncpu_share",
    "within_cv",
]
LOCK_SUFFIXES = ("_acquisitions", "_contended", "_wait_ns")


def lock_columns(df: pd.DataFrame) -> list[str]:
    """The per-lock counter columns present (medians), `_max_wait_ns` excluded (a max)."""
    return [f"{p}{s}" for p in LOCKS for s in LOCK_SUFFIXES if f"{p}{s}" in df]


def _first(series: pd.Series) -> Any:
    s = series.dropna()
    return s.iloc[0] if len(s) else None


def _verdict(control: bool, reps: int, ok: int, audit_failed: int) -> str:
    if ok == 0:
        return "error"
    if audit_failed:
        return "caught" if control else "audit-failed"
    if ok < reps:
        return "partial"
    return "ok"


# set aside for a reason that leaves the repetition's throughput meaningful
WITH_THROUGHPUT = ("window-stretched", "placement changed", "other state")


def _select(
    g: pd.DataFrame, states: placement.States, prefer: str = ""
) -> tuple[pd.DataFrame, str, dict[str, int], pd.DataFrame]:
    """(the repetitions that feed the estimate, the point's state, set-aside counts, the
    set-aside repetitions that have a throughput).

    The state is the run's preferred one (`prefer`, its most common) whenever the point has
    at least two repetitions in it, so that points compared with each other were measured
    in one state; else the point's own majority."""
    aside: dict[str, int] = {}
    valid = valid_mask(g)
    kept = []
    for i, r in g[~valid].iterrows():
        reason = invalid_reason(r) or "not valid"
        aside[reason] = aside.get(reason, 0) + 1
        if reason == "window-stretched":
            kept.append(i)
    v = g[valid]
    rep_state = pd.Series(
        [
            states.of_rep(r.get("handoff_ns_before"), r.get("handoff_ns_after"))
            for _, r in v.iterrows()
        ],
        index=v.index,
        dtype=object,
    )
    in_preferred = int((rep_state == prefer).sum()) if prefer else 0
    state = prefer if in_preferred >= 2 else placement.majority(rep_state)
    if not state:
        changed = placement.CHANGED if (rep_state == placement.CHANGED).any() else ""
        return v, changed, aside, g.loc[kept]
    keep = rep_state.isin([state, ""])
    for s in rep_state[~keep]:
        reason = "placement changed" if s == placement.CHANGED else f"other state ({s})"
        aside[reason] = aside.get(reason, 0) + 1
    return v[keep], state, aside, pd.concat([g.loc[kept], v[~keep]]).sort_values("rep")


def _noise(run: Run, point: int, used: pd.DataFrame) -> tuple[bool, str, float]:
    """Whether the point is noisy, why, and the largest CV of batch means within one of its
    repetitions (NaN without a time series)."""
    reasons = []
    c = cv(used["ops_per_s"]) if "ops_per_s" in used else float("nan")
    if c == c and c > _flags.CV_WARN:
        reasons.append(f"CV {c:.1%} across repetitions")
    within = []
    for rep in used["rep"]:
        s = run.series(point, int(rep))
        if s is not None:
            within.append(batch_means_cv(*s))
    w = float(np.nanmax(within)) if within and np.isfinite(within).any() else float("nan")
    if w == w and w > _flags.CV_WARN:
        reasons.append(f"CV {w:.1%} of batch means within a repetition")
    return bool(reasons), "; ".join(reasons), w


def _shifts(used: pd.DataFrame) -> str:
    """'' or the level shifts within the used repetitions ('rep 2: 1.6x')."""
    if "level_shift" not in used:
        return ""
    hit = used[used["level_shift"].astype("boolean").fillna(False).astype(bool)]
    return ", ".join(f"rep {int(r['rep'])}: {load.shift_ratio(r):.2f}x" for _, r in hit.iterrows())


def _handoff(g: pd.DataFrame, row: dict[str, Any]) -> None:
    if not {"handoff_ns_before", "handoff_ns_after"} <= set(g.columns):
        row["handoff_ns"] = row["handoff_ratio"] = float("nan")
        return
    b = g["handoff_ns_before"].astype(float)
    a = g["handoff_ns_after"].astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = (np.maximum(a, b) / np.minimum(a, b)).replace([np.inf], np.nan)
    row["handoff_ns"] = float(pd.concat([b, a]).median())
    row["handoff_ratio"] = float(ratio.max()) if ratio.notna().any() else float("nan")


def _fairness(run: Run, point: int, use: pd.DataFrame, row: dict[str, Any]) -> set[str]:
    extremes = _flags.worker_extremes(run, point, use)
    worst = _flags.worst_starvation(extremes)
    row["worker_ops_min"] = float(np.median([e.least for e in extremes])) if extremes else np.nan
    row["worker_ops_max"] = float(np.median([e.busiest for e in extremes])) if extremes else np.nan
    row["starved"] = worst is not None
    row["starved_detail"] = worst.describe() if worst else ""
    w = run.workers
    jains = []
    if not w.empty and {"point", "rep", "ops"} <= set(w.columns):
        for rep in use["rep"]:
            ops = w[(w["point"] == point) & (w["rep"] == rep)]["ops"]
            if len(ops):
                jains.append(jain_index(ops.to_numpy()))
    row["jain"] = float(np.median(jains)) if jains else float("nan")
    return {"starved"} if worst else set()


def _medians(use: pd.DataFrame, ok: pd.DataFrame, row: dict[str, Any]) -> None:
    for c in [*MEDIAN_COLUMNS, *lock_columns(use)]:
        vals = use[c].to_numpy(dtype=float) if c in use else np.array([])
        vals = vals[~np.isnan(vals)]
        row[c] = float(np.median(vals)) if vals.size else float("nan")
    for c in [f"{p}_max_wait_ns" for p in LOCKS if f"{p}_max_wait_ns" in use]:
        vals = use[c].to_numpy(dtype=float)
        row[c] = float(np.nanmax(vals)) if np.isfinite(vals).any() else float("nan")
    for c in AUDIT_COUNTERS:
        vals = ok[c].to_numpy(dtype=float) if c in ok else np.array([])
        vals = vals[~np.isnan(vals)]
        row[c] = float(vals.max()) if vals.size else float("nan")
    row["audit_detail"] = ", ".join(
        f"{c}={int(row[c])}" for c in AUDIT_COUNTERS if row[c] == row[c] and row[c] > 0
    )


def _identity(g: pd.DataFrame, row: dict[str, Any]) -> None:
    """Parameters (the strategy's parts too), CPUs and oversubscription of a point."""
    for c in dict.fromkeys([*param_columns(g), *(c for c in STRATEGY_PARTS if c in g)]):
        row[c] = _first(g[c])
    row["cpus_available"] = _first(g["cpus_available"]) if "cpus_available" in g else None
    over = "oversubscribed" in g and g["oversubscribed"].astype("boolean").fillna(False).any()
    cpus, wk = row["cpus_available"], row.get("workers")
    row["oversubscribed"] = bool(over or (cpus is not None and wk is not None and wk > cpus))


def _status(g: pd.DataFrame, ok: pd.DataFrame, row: dict[str, Any]) -> None:
    """Repetition counts, the verdict and the first error text."""
    audit_failed = int((ok["audit_ok"].astype("boolean") == False).sum())  # noqa: E712
    row["reps"], row["reps_ok"], row["reps_valid"] = len(g), len(ok), int(valid_mask(g).sum())
    row["verdict"] = _verdict(is_negative_control(row), len(g), len(ok), audit_failed)
    errors = g["error"].dropna().astype(str) if "error" in g else pd.Series(dtype=str)
    row["error"] = errors.iloc[0] if len(errors) else None


def _estimate(used: pd.DataFrame, use: pd.DataFrame, row: dict[str, Any]) -> None:
    """The median with its interval, the CV, and the samples a ratio is computed from."""
    iv = median_interval(use.get("ops_per_s", []))
    row.update(ops_per_s=iv.estimate, ci_lo=iv.lo, ci_hi=iv.hi, interval=iv.interval)
    row.update(method=iv.method, n=iv.n, ci_single=iv.n == 1, ci_rel_halfwidth=iv.rel_halfwidth)
    row["cv"] = cv(use["ops_per_s"]) if "ops_per_s" in use else float("nan")
    vals = used["ops_per_s"].to_numpy(dtype=float) if "ops_per_s" in used else np.array([])
    finite = np.isfinite(vals) & (vals > 0)
    row["samples"] = tuple(float(v) for v in vals[finite])
    row["used_reps"] = tuple(int(r) for r in used["rep"].to_numpy()[finite])


def _load(used: pd.DataFrame, aside: pd.DataFrame, row: dict[str, Any]) -> None:
    """Per used and set-aside repetition: what its measured load could explain; and the
    point's load share (median and largest over the used repetitions)."""
    reps, extra = load.Reps.of(used), load.Reps.of(aside)
    row["low"], row["high"] = tuple(reps.low.tolist()), tuple(reps.high.tolist())
    row["aside_samples"] = tuple(extra.values.tolist())
    row["aside_low"], row["aside_high"] = tuple(extra.low.tolist()), tuple(extra.high.tolist())
    shares = [load.load_share(r) for _, r in used.iterrows()]
    row["load_share"] = float(np.median(shares)) if shares else float("nan")
    row["load_max"] = float(np.max(shares)) if shares else float("nan")


def _point_flags(
    row: dict[str, Any], use: pd.DataFrame, fairness: set[str], aside: dict[str, int]
) -> str:
    found = set(fairness)
    found |= {"oversubscribed"} if row["oversubscribed"] else set()
    found |= {"noisy"} if row["noisy"] else set()
    found |= {"level-shift"} if row["level_shifts"] else set()
    found |= {"window-stretched"} if "window-stretched" in aside else set()
    found |= {"placement-changed"} if row["handoff_unstable"] else set()
    found |= {"competing-load"} if has_flag(use, "competing-load").any() else set()
    found |= {"audit-failed"} if row["verdict"] == "audit-failed" else set()
    return _flags.join(found)


def _point_row(
    run: Run, point: int, g: pd.DataFrame, states: placement.States, prefer: str
) -> dict[str, Any]:
    g = g.sort_values("rep")
    ok = g[g["status"] == "ok"]
    used, state, aside, aside_rows = _select(g, states, prefer)
    use = used if len(used) else ok
    row: dict[str, Any] = {"point": int(point)}
    _identity(g, row)
    _status(g, ok, row)
    row["valid"] = len(used) > 0
    _estimate(used, use, row)
    _load(used, aside_rows, row)
    row["state"] = state
    row["set_aside"] = "; ".join(f"{k}: {v}" for k, v in sorted(aside.items()))
    row["n_set_aside"] = sum(aside.values())
    noisy, row["noisy_detail"], row["batch_cv"] = _noise(run, point, use)
    row["noisy"] = noisy and row["valid"]
    row["level_shifts"] = _shifts(used)
    _medians(use, ok, row)
    fairness = _fairness(run, point, use, row)
    _handoff(g, row)
    row["handoff_unstable"] = state == placement.CHANGED or "placement changed" in aside
    row["flags"] = _point_flags(row, use, fairness, aside)
    return row


def preferred_state(states: placement.States, *frames: pd.DataFrame) -> str:
    """The most common state over every valid repetition of the given points frames."""
    reps = [
        states.of_rep(r.get("handoff_ns_before"), r.get("handoff_ns_after"))
        for df in frames
        for _, r in df[valid_mask(df)].iterrows()
    ]
    return placement.majority(reps)


def summarize(
    run: Run, states: placement.States | None = None, prefer: str | None = None
) -> pd.DataFrame:
    """One row per point (see the module docstring); `states` defaults to the run's own, and
    `prefer` to the run's most common state."""
    df = run.points
    if states is None:
        states = placement.classify(placement.probe_values(df))
    if prefer is None:
        prefer = preferred_state(states, df)
    groups = df.groupby("point", sort=True)
    rows = [_point_row(run, int(p), g, states, prefer) for p, g in groups]
    return pd.DataFrame(rows)
