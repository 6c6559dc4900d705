"""Compare two runs point by point: throughput and p99 latency ratios with bootstrap intervals.

Points are matched by their parameter columns, not by their index. A point regresses when
its median throughput falls by more than `threshold` and the two medians' 95% intervals do not
overlap, or when a p99 latency rises by more than `threshold` with non-overlapping intervals,
or when it had a valid result in the base run and has none in the new one (the `naive` control
excepted). A point whose handoff probes say CPU placement changed (DESIGN §4) is shown but
never counted: the two measurements were not taken in the same machine state.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from iommubench import stats

P99_COLUMNS = ("map_p99_ns", "unmap_p99_ns")


@dataclass
class PointComparison:
    label: str
    base_point: int
    new_point: int
    status: str  # ok, REGRESSION, improved, new-failure, fixed, invalid, not-comparable
    ratio: float = float("nan")
    ratio_lo: float = float("nan")
    ratio_hi: float = float("nan")
    base_median: float = float("nan")
    new_median: float = float("nan")
    notes: str = ""

    @property
    def regression(self) -> bool:
        return self.status in ("REGRESSION", "new-failure")


def _values(run: stats.Run, point: int, col: str) -> np.ndarray:
    rows = run.points[run.points["point"] == point]
    rows = rows[stats.valid_mask(rows)]
    if col not in rows:
        return np.array([])
    v = rows[col].to_numpy(dtype=float)
    return v[~np.isnan(v)]


def _index(summary: pd.DataFrame, cols: Sequence[str]) -> dict[tuple[str, ...], pd.Series]:
    out: dict[tuple[str, ...], pd.Series] = {}
    for _, r in summary.iterrows():
        out.setdefault(stats.param_key(r, cols), r)
    return out


def _state_note(b: pd.Series, n: pd.Series) -> str:
    """Why the two points were not measured in the same machine state ('' when they were)."""
    unstable = [name for name, r in (("base", b), ("new", n)) if r.get("handoff_unstable")]
    if unstable:
        return f"handoff probes disagree within the {' and '.join(unstable)} run"
    hb, hn = b.get("handoff_ns"), n.get("handoff_ns")
    if hb is None or hn is None or not (hb == hb and hn == hn) or min(hb, hn) <= 0:
        return ""
    if max(hb, hn) / min(hb, hn) > stats.HANDOFF_RATIO:
        return f"handoff probes differ between runs ({hb:.0f} ns vs {hn:.0f} ns)"
    return ""


def compare_points(
    base: stats.Run,
    new: stats.Run,
    threshold: float = 0.05,
    ignore: Sequence[str] = (),
    seed: int = stats.SEED,
) -> tuple[list[PointComparison], list[str], list[str]]:
    """Per matched point its comparison; plus the labels of base-only and new-only points."""
    bs, ns = stats.summarize(base, seed=seed), stats.summarize(new, seed=seed)
    cols = [c for c in stats.param_columns(bs) if c in ns.columns and c not in ignore]
    both = pd.concat([bs, ns], ignore_index=True)
    shown = stats.varying_params(both[cols]) if len(both) else []
    if "workers" in cols and "workers" not in shown:
        shown.append("workers")
    bidx, nidx = _index(bs, cols), _index(ns, cols)
    results: list[PointComparison] = []
    for key, b in bidx.items():
        n = nidx.get(key)
        if n is None:
            continue
        lab = stats.label(b, shown) or "all"
        pc = PointComparison(lab, int(b["point"]), int(n["point"]), "ok")
        control = b.get("driver") in stats.NEGATIVE_CONTROLS
        if not b["valid"] or not n["valid"]:
            if b["valid"] and not n["valid"]:
                pc.status = "invalid" if control else "new-failure"
                pc.notes = f"new: {n['verdict']} {n['audit_detail'] or n['error'] or ''}".strip()
            elif n["valid"]:
                pc.status = "fixed"
                pc.notes = f"base: {b['verdict']}"
            else:
                pc.status = "invalid"
                pc.notes = f"{b['verdict']} in both"
            results.append(pc)
            continue
        bv = _values(base, pc.base_point, "ops_per_s")
        nv = _values(new, pc.new_point, "ops_per_s")
        pc.base_median, blo, bhi = stats.median_ci(bv, seed=seed)
        pc.new_median, nlo, nhi = stats.median_ci(nv, seed=seed)
        pc.ratio, pc.ratio_lo, pc.ratio_hi = stats.ratio_ci(bv, nv, seed=seed)
        notes = []
        regress = improve = False
        if pc.ratio == pc.ratio:
            if pc.ratio < 1 - threshold and nhi < blo:
                regress = True
                notes.append(f"throughput -{1 - pc.ratio:.1%}")
            elif pc.ratio > 1 + threshold and nlo > bhi:
                improve = True
        for col in P99_COLUMNS:
            b99, n99 = _values(base, pc.base_point, col), _values(new, pc.new_point, col)
            if not (b99.size and n99.size):
                continue
            bm, _b_lo, b_hi = stats.median_ci(b99, seed=seed)
            nm, n_lo, _n_hi = stats.median_ci(n99, seed=seed)
            if bm > 0 and nm / bm > 1 + threshold and n_lo > b_hi:
                regress = True
                notes.append(f"{col} +{nm / bm - 1:.0%} ({bm:.0f} -> {nm:.0f} ns)")
        if regress:
            pc.status = "REGRESSION"
        elif improve:
            pc.status = "improved"
        state = _state_note(b, n)
        if state:
            notes.append(state)
            pc.status = "not-comparable" if pc.status in ("REGRESSION", "improved") else pc.status
        pc.notes = "; ".join(notes)
        results.append(pc)
    base_only = [stats.label(r, shown) or "all" for k, r in bidx.items() if k not in nidx]
    new_only = [stats.label(r, shown) or "all" for k, r in nidx.items() if k not in bidx]
    return results, base_only, new_only


def _fmt_ratio(pc: PointComparison) -> str:
    if not math.isfinite(pc.ratio):
        return "–"
    return f"{pc.ratio:6.3f} [{pc.ratio_lo:.3f}, {pc.ratio_hi:.3f}]"


def compare(
    base_dir: str | Path,
    new_dir: str | Path,
    threshold: float = 0.05,
    ignore: Sequence[str] = (),
) -> tuple[str, int]:
    """A printable comparison of two runs, and the exit code: 1 on a regression, else 0."""
    base, new = stats.load_run(base_dir), stats.load_run(new_dir)
    results, base_only, new_only = compare_points(base, new, threshold, ignore)
    width = max([len(r.label) for r in results] + [5])
    lines = [
        f"base: {base.run_id} ({base.run_dir})",
        f"new:  {new.run_id} ({new.run_dir})",
        f"threshold: {threshold:.1%} with non-overlapping 95% bootstrap intervals",
        "",
        f"{'point'.ljust(width)}  {'base ops/s':>11}  {'new ops/s':>11}  "
        f"{'new/base [95% CI]':>24}  status",
    ]
    for r in results:
        lines.append(
            f"{r.label.ljust(width)}  {_eng(r.base_median):>11}  {_eng(r.new_median):>11}  "
            f"{_fmt_ratio(r):>24}  {r.status}" + (f"  ({r.notes})" if r.notes else "")
        )
    if base_only:
        lines += ["", "only in base (not compared):", *[f"  {x}" for x in base_only]]
    if new_only:
        lines += ["", "only in new (not compared):", *[f"  {x}" for x in new_only]]
    regressions = [r for r in results if r.regression]
    improved = [r for r in results if r.status == "improved"]
    skipped = [r for r in results if r.status == "not-comparable"]
    lines.append("")
    lines.append(
        f"{len(results)} matched, {len(regressions)} regression(s), {len(improved)} improved, "
        f"{len(skipped)} not comparable, {len(base_only) + len(new_only)} unmatched"
    )
    if not results:
        lines.append("no points matched: compare runs of the same configuration")
    return "\n".join(lines), 1 if regressions else 0


def _eng(v: float) -> str:
    if not math.isfinite(v):
        return "–"
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"{v / div:.3f}{suffix}"
    return f"{v:.1f}"
