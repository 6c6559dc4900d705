"""Decisions from the summary frame: the verdict of a change, winners and scaling, each
from one estimator and each conditional on the load the points were measured under.

The estimator (`estimators.ESTIMATOR`): medians per point; a ratio between two points is
the Hodges-Lehmann estimate of log throughput with its distribution-free 95% CI.

Every decision between two points is taken on three views of their repetitions, and stands
only if all three agree:

1. as measured (`hl_ratio` of the used repetitions);
2. moved as far towards "no difference" as each repetition's measured load, steal and level
   shift allow (`load.Reps`: a slowdown is judged on new / low against base / high, a
   speed-up on new / high against base / low); a verdict that the first view gives and
   this one does not is `inconclusive (load)`;
3. with the repetitions set aside (another placement state, a placement change, a
   stretched window) put back; a verdict that does not hold with them is
   `inconclusive (set aside)`: setting repetitions aside can never create a verdict.

A side with fewer than `MIN_REPS` repetitions decides nothing, and a ratio whose sides are
too small for a 95% interval (3 against 3 or 4) neither.

A winner is declared only when the interval of its ratio to every other candidate lies
entirely above 1 + WIN_MARGIN in all three views: significantly ahead, and by more than a
margin too small to matter; otherwise the candidates are tied. Headline numbers (winners,
peaks, collapse) come only from valid points that are not oversubscribed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from iommubench.analysis import point_flags
from iommubench.analysis.estimators import Ratio, hl_ratio
from iommubench.analysis.load import LOAD_FLAGS, Reps
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
INCONCLUSIVE_LOAD, INCONCLUSIVE_ASIDE = "inconclusive (load)", "inconclusive (set aside)"
INCONCLUSIVE_KINDS = (INCONCLUSIVE, INCONCLUSIVE_LOAD, INCONCLUSIVE_ASIDE)
WINNER, TIED = "winner", "no significant difference"
WIN_MARGIN = 0.05
MIN_REPS = 3
# point flags a claim carries (the load flags, and what else qualifies a number)
CLAIM_FLAGS = ("oversubscribed", "noisy", *LOAD_FLAGS, "starved")


def decide(r: Ratio, threshold: float) -> str:
    """The verdict of new/base at a relative threshold, as measured.

    improvement / regression: the interval excludes 1 and the ratio is beyond the threshold;
    no significant change: the whole interval lies within 1 +- threshold; otherwise
    inconclusive (too wide to decide, or significant but not clearly beyond the threshold).
    """
    if not r.has_interval:
        return INCONCLUSIVE
    if r.hi < 1 and r.ratio < 1 - threshold:
        return REGRESSION
    if r.lo > 1 and r.ratio > 1 + threshold:
        return IMPROVEMENT
    if r.lo >= 1 - threshold and r.hi <= 1 + threshold:
        return NO_CHANGE
    return INCONCLUSIVE


def doubted(base: Reps, new: Reps) -> tuple[Ratio, Ratio]:
    """new/base moved towards no difference by what the load could explain: (the ratio a
    slowdown is judged on, the ratio a speed-up is judged on)."""
    slower = hl_ratio(base.values / base.high, new.values / new.low)
    faster = hl_ratio(base.values / base.low, new.values / new.high)
    return slower, faster


def decide_loaded(base: Reps, new: Reps, threshold: float) -> tuple[str, float, float]:
    """(verdict, lowest, highest): `decide` on the doubted ratios; the band is the interval
    widened by what the load could explain (its lower end from the speed-up's view, its
    upper end from the slowdown's)."""
    slower, faster = doubted(base, new)
    if not (slower.has_interval and faster.has_interval):
        return INCONCLUSIVE, float("nan"), float("nan")
    if slower.hi < 1 and slower.ratio < 1 - threshold:
        verdict = REGRESSION
    elif faster.lo > 1 and faster.ratio > 1 + threshold:
        verdict = IMPROVEMENT
    elif faster.lo >= 1 - threshold and slower.hi <= 1 + threshold:
        verdict = NO_CHANGE
    else:
        verdict = INCONCLUSIVE
    return verdict, faster.lo, slower.hi


@dataclass
class Judgement:
    """A decided comparison: the verdict, the ratio as measured (`ratio`), the band the load
    could stretch it to (`lo_load`, `hi_load`) and why it is not decided (`note`)."""

    verdict: str
    ratio: Ratio
    lo_load: float = float("nan")
    hi_load: float = float("nan")
    note: str = ""
    n_aside: int = 0


def judge(
    base: Reps,
    new: Reps,
    threshold: float,
    base_aside: Reps | None = None,
    new_aside: Reps | None = None,
) -> Judgement:
    """The verdict of new/base in all three views (see the module docstring)."""
    r = hl_ratio(base.values, new.values)
    n_aside = (base_aside.n if base_aside else 0) + (new_aside.n if new_aside else 0)
    j = Judgement(INCONCLUSIVE, r, n_aside=n_aside)
    if min(base.n, new.n) < MIN_REPS:
        j.note = f"fewer than {MIN_REPS} repetitions on a side ({base.n}, {new.n}): decides nothing"
        return j
    if not r.has_interval:
        j.note = r.method
        return j
    plain = decide(r, threshold)
    loaded, j.lo_load, j.hi_load = decide_loaded(base, new, threshold)
    j.verdict = loaded
    if loaded != plain:
        j.verdict = INCONCLUSIVE_LOAD
        j.note = f"{plain} as measured, but the load measured could explain {band(j)}"
        return j
    if n_aside and loaded != INCONCLUSIVE:
        b = base + base_aside if base_aside else base
        n = new + new_aside if new_aside else new
        with_aside = decide_loaded(b, n, threshold)[0]
        if with_aside != loaded:
            j.verdict = INCONCLUSIVE_ASIDE
            j.note = (
                f"{loaded} without the {n_aside} set-aside repetition(s), {with_aside} with them"
            )
    return j


def band(j: Judgement) -> str:
    """'[0.62, 1.31]' (0 and ∞ where the load could explain any ratio)."""
    lo = "0" if not j.lo_load > 0.005 else f"{j.lo_load:.2f}"
    hi = "∞" if not j.hi_load < 100 else f"{j.hi_load:.2f}"
    return f"[{lo}, {hi}]"


def sides(row: pd.Series | dict[str, Any]) -> tuple[Reps, Reps]:
    """A summary row's used repetitions and its set-aside ones that have a throughput."""
    used = Reps.from_tuples(row.get("samples"), row.get("low"), row.get("high"))
    aside = Reps.from_tuples(row.get("aside_samples"), row.get("aside_low"), row.get("aside_high"))
    return used, aside


def claim_flags(*rows: pd.Series | dict[str, Any]) -> list[str]:
    """The flags a claim about these points carries, in their documented order."""
    found: set[str] = set()
    for r in rows:
        found |= point_flags.split(r.get("flags"))
    return [f for f in CLAIM_FLAGS if f in found]


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
    "speedup_lo",
    "speedup_hi",
    "efficiency",
    "efficiency_lo",
    "efficiency_hi",
    "peak_ops_per_s",
    "peak_workers",
    "peak_verdict",
    "peak_over",
    "peak_ratio",
    "peak_lo",
    "peak_hi",
    "collapse_factor",
    "collapse_lo",
    "collapse_hi",
    "collapse_verdict",
    "collapse_note",
    "claim_flags",
    "max_workers",
]
COLLAPSE, NO_COLLAPSE, PEAK_AT_END = "collapse", "no significant collapse", "peak at the largest"
PEAK, FLAT_TOP, ONE_COUNT = "peak", "no significant peak", "one worker count"


def _peak(v: pd.DataFrame, peak: pd.Series) -> dict[str, Any]:
    """Whether the peak stands above the next best worker count of its group, decided like
    an improvement at WIN_MARGIN in all three views."""
    nan = float("nan")
    rest = v[v["point"] != peak["point"]]
    if rest.empty:
        return dict(peak_verdict=ONE_COUNT, peak_over=nan, peak_ratio=nan, peak_lo=nan,
                    peak_hi=nan)  # fmt: skip
    second = rest.loc[rest["ops_per_s"].idxmax()]
    (sb, sa), (pb, pa) = sides(second), sides(peak)
    j = judge(sb, pb, WIN_MARGIN, sa, pa)
    verdict = {IMPROVEMENT: PEAK, NO_CHANGE: FLAT_TOP, REGRESSION: FLAT_TOP}
    r = j.ratio
    return dict(
        peak_verdict=verdict.get(j.verdict, j.verdict),
        peak_over=second["workers"],
        peak_ratio=r.ratio,
        peak_lo=r.lo,
        peak_hi=r.hi,
    )


def _collapse(peak: pd.Series, last: pd.Series) -> dict[str, Any]:
    """Peak over the largest worker count's throughput, decided like a regression of the
    largest against the peak at WIN_MARGIN (all three views)."""
    nan = float("nan")
    if peak["point"] == last["point"]:
        return dict(collapse_factor=1.0, collapse_lo=nan, collapse_hi=nan,
                    collapse_verdict=PEAK_AT_END, collapse_note="")  # fmt: skip
    (pb, pa), (lb, la) = sides(peak), sides(last)
    j = judge(pb, lb, WIN_MARGIN, pa, la)
    r = j.ratio
    verdict = {REGRESSION: COLLAPSE, NO_CHANGE: NO_COLLAPSE, IMPROVEMENT: NO_COLLAPSE}
    return dict(
        collapse_factor=1 / r.ratio if r.ratio > 0 else nan,
        collapse_lo=1 / r.hi if r.has_interval and r.hi > 0 else nan,
        collapse_hi=1 / r.lo if r.has_interval and r.lo > 0 else nan,
        collapse_verdict=verdict.get(j.verdict, j.verdict),
        collapse_note=j.note,
    )


def _speedup(one: pd.Series | None, r: pd.Series) -> tuple[float, float, float]:
    """(speedup, lo, hi): the point over the group's 1-worker point (HL, 95% CI)."""
    nan = float("nan")
    if one is None:
        return nan, nan, nan
    if one["point"] == r["point"]:
        return 1.0, 1.0, 1.0
    x = hl_ratio(one["samples"], r["samples"])
    return x.ratio, x.lo, x.hi


def _group_rows(g: pd.DataFrame, glabel: str) -> list[dict[str, Any]]:
    v = g[headline(g)].sort_values("workers")
    ones = v[v["workers"] == 1]
    one = ones.iloc[0] if len(ones) else None
    nan = float("nan")
    shared: dict[str, Any] = dict(
        peak_ops_per_s=nan, peak_workers=nan, max_workers=nan, claim_flags=[],
        peak_verdict="", peak_over=nan, peak_ratio=nan, peak_lo=nan, peak_hi=nan,
        collapse_factor=nan, collapse_lo=nan, collapse_hi=nan, collapse_verdict="",
        collapse_note="",
    )  # fmt: skip
    if len(v):
        peak, last = v.loc[v["ops_per_s"].idxmax()], v.iloc[-1]
        shared.update(peak_ops_per_s=float(peak["ops_per_s"]), peak_workers=peak["workers"])
        shared.update(max_workers=last["workers"], **_collapse(peak, last), **_peak(v, peak))
        shared["claim_flags"] = claim_flags(*[x for x in (one, peak, last) if x is not None])
    out = []
    use = set(v["point"])
    for _, r in g.iterrows():
        sp, lo, hi = _speedup(one, r) if r["point"] in use else (nan, nan, nan)
        w = float(r["workers"]) if r["workers"] else nan
        row = dict(point=r["point"], group=glabel, workers=r["workers"])
        row.update(speedup=sp, speedup_lo=lo, speedup_hi=hi)
        row.update(efficiency=sp / w, efficiency_lo=lo / w, efficiency_hi=hi / w)
        out.append({**row, **shared})
    return out


def scaling(summary: pd.DataFrame) -> pd.DataFrame:
    """Per point: speedup and efficiency vs its group's 1-worker point (HL ratios with their
    95% CI), and the group's peak and collapse (decided, with the claim's flags).

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
    "leader",
    "runner_up",
    "ratio",
    "lo",
    "hi",
    "method",
    "note",
    "flags",
    "candidates",
]
AHEAD, NOT_AHEAD, LOAD, ASIDE, NO_INTERVAL = "ahead", "not ahead", "load", "set aside", "none"


def _states_differ(g: pd.DataFrame) -> bool:
    """Candidates measured in different placement states cannot be ranked against each other."""
    if "state" not in g:
        return False
    known = {str(s) for s in g["state"].fillna("") if s}
    return len(known) > 1


def _ahead(best: pd.Series, rival: pd.Series) -> tuple[str, Ratio]:
    """Whether `best` is ahead of `rival` by more than WIN_MARGIN in all three views."""
    (b, ba), (o, oa) = sides(best), sides(rival)
    r = hl_ratio(o.values, b.values)
    if min(b.n, o.n) < MIN_REPS or not r.has_interval:
        return NO_INTERVAL, r
    bar = 1 + WIN_MARGIN
    if not r.lo > bar:
        return NOT_AHEAD, r
    if not doubted(o, b)[1].lo > bar:
        return LOAD, r
    if (ba.n or oa.n) and not doubted(o + oa, b + ba)[1].lo > bar:
        return ASIDE, r
    return AHEAD, r


def _not_comparable(g: pd.DataFrame, by: str) -> dict[str, Any]:
    by_state = g.groupby(g["state"].fillna(""))[by].apply(lambda s: ", ".join(map(str, s)))
    nan = float("nan")
    return {
        "verdict": NOT_COMPARABLE,
        "winner": "",
        "tied": [],
        "best_ops_per_s": float(g["ops_per_s"].iloc[0]),
        "leader": "",
        "runner_up": "",
        "ratio": nan,
        "lo": nan,
        "hi": nan,
        "method": "placement states differ: "
        + "; ".join(f"{st or 'unknown'}: {d}" for st, d in by_state.items()),
        "note": "",
        "flags": claim_flags(*[r for _, r in g.iterrows()]),
        "candidates": len(g),
    }


def _group_verdict(statuses: list[str]) -> tuple[str, str]:
    """The context's verdict from the best's status against each rival, and a note."""
    if all(s == AHEAD for s in statuses):
        return WINNER, ""
    if NO_INTERVAL in statuses:
        return INCONCLUSIVE, f"fewer than {MIN_REPS} repetitions, or too few for a 95% interval"
    if all(s in (AHEAD, LOAD, ASIDE) for s in statuses):
        if LOAD in statuses:
            return INCONCLUSIVE_LOAD, "ahead as measured; the load measured could explain it"
        return INCONCLUSIVE_ASIDE, "ahead only without the set-aside repetitions"
    return TIED, ""


def _decide_group(g: pd.DataFrame, by: str) -> dict[str, Any]:
    g = g.sort_values("ops_per_s", ascending=False)
    if _states_differ(g):
        return _not_comparable(g, by)
    best = g.iloc[0]
    rivals = [(o, *_ahead(best, o)) for _, o in g.iloc[1:].iterrows()]
    verdict, note = _group_verdict([st for _, st, _ in rivals])
    tied = [norm_value(best[by])] + [norm_value(o[by]) for o, st, _ in rivals if st != AHEAD]
    other, _, r = min(rivals, key=lambda x: x[2].lo if np.isfinite(x[2].lo) else -np.inf)
    names = [norm_value(best[by]), norm_value(other[by])]
    ratio, lo, hi = r.ratio, r.lo, r.hi
    if ratio < 1:  # the best median need not be ahead of its rival by the ratio: say it so
        names.reverse()
        ratio, lo, hi = 1 / ratio, 1 / hi if hi > 0 else np.nan, 1 / lo if lo > 0 else np.nan
    return {
        "verdict": verdict,
        "winner": names[0] if verdict == WINNER else "",
        "tied": tied if verdict == TIED else [],
        "best_ops_per_s": float(best["ops_per_s"]),
        "leader": names[0],
        "runner_up": names[1],
        "ratio": ratio,
        "lo": lo,
        "hi": hi,
        "method": r.method,
        "note": note,
        "flags": claim_flags(*[x for _, x in g.iterrows()]),
        "candidates": len(g),
    }


def winners(summary: pd.DataFrame, by: str | None = None) -> pd.DataFrame:
    """Per context (parameters but `by` and `workers`) and worker count: a significant winner.

    `by` defaults to the locking strategy (driver x lock) where the frame has it, else the
    driver. Candidates: headline points (valid, not oversubscribed) except negative
    controls; a context needs two. `ratio`/`lo`/`hi` compare the `leader` (the one the
    ratio puts ahead) with its closest rival (the one whose interval has the lowest lower
    bound); `tied` lists the best and every rival it does not separate from; `flags` are
    the flags of every candidate, which the claim carries.
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
