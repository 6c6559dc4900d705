"""Compare two runs point by point: one verdict per matched point.

Points are matched by their parameter values (all but the `--ignore`d ones), never by
index. Both runs' handoff probes are clustered together (`placement.classify`), so a state
means the same thing on both sides. For each matched point:

- `not comparable`: the placement states differ (or a repetition changed state), the
  competing-load flag differs, the audit verdict differs, or a side has no valid result;
- `regression` also when the base had a valid result and the new run has none, or when a
  repetition of the new run failed its audit and none of the base did (the negative control
  excepted: its audit is expected to fail);
- otherwise the ratio new/base of the same-state valid repetitions with Welch's t interval
  on the logs, decided by `decisions.decide` at the threshold.

p99 latency is decided the same way and reported as a secondary note only.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from iommubench.analysis import decisions, placement
from iommubench.analysis.estimators import RATIO_METHOD, log_ratio
from iommubench.analysis.point_flags import split
from iommubench.analysis.point_summary import preferred_state, summarize
from iommubench.analysis.run_reader import (
    STRATEGY,
    STRATEGY_PARTS,
    Run,
    label,
    load_run,
    norm_value,
    param_columns,
    param_key,
    varying_params,
)
from iommubench.spec.catalogue import NEGATIVE_CONTROLS
from iommubench.spec.columns import MATCH_COLUMNS, typed_json
from iommubench.spec.parameters import FOLLOWERS

P99_COLUMNS = ("map_p99_ns", "unmap_p99_ns")
VERDICTS = (
    decisions.IMPROVEMENT,
    decisions.REGRESSION,
    decisions.NO_CHANGE,
    decisions.INCONCLUSIVE,
    decisions.NOT_COMPARABLE,
)
EXIT_OK, EXIT_REGRESSION, EXIT_INCONCLUSIVE = 0, 1, 3


class CompareError(Exception):
    """Bad input to compare (unknown --ignore parameter, nothing matched): exit 2."""


@dataclass
class PointComparison:
    label: str
    params: dict[str, str]
    base_point: int
    new_point: int
    verdict: str
    ratio: float = float("nan")
    lo: float = float("nan")
    hi: float = float("nan")
    min_detectable: float = float("nan")
    method: str = ""
    n_base: int = 0
    n_new: int = 0
    base_estimate: float = float("nan")
    new_estimate: float = float("nan")
    notes: list[str] = field(default_factory=list)

    @property
    def regression(self) -> bool:
        return self.verdict == decisions.REGRESSION


def check_ignore(ignore: Sequence[str]) -> None:
    allowed = [*MATCH_COLUMNS, STRATEGY]
    unknown = [p for p in ignore if p not in allowed]
    if unknown:
        raise CompareError(f"--ignore {unknown[0]}: not a parameter; allowed: {', '.join(allowed)}")


def with_derived(ignore: Sequence[str]) -> set[str]:
    """The ignored parameters and those that follow them (parameters.FOLLOWERS)."""
    return {d for p in ignore for d in (p, *FOLLOWERS.get(p, ()))}


def _rep_values(run: Run, point: int, reps: Sequence[int], col: str) -> np.ndarray:
    df = run.points
    if col not in df:
        return np.array([])
    rows = df[(df["point"] == point) & df["rep"].isin(list(reps))]
    v = rows[col].to_numpy(dtype=float)
    return v[np.isfinite(v)]


def _not_comparable(b: pd.Series, n: pd.Series) -> str:
    """Why base and new were not measured alike ('' when they were)."""
    sb, sn = b["state"], n["state"]
    if placement.CHANGED in (sb, sn):
        return "placement changed during a repetition"
    if sb and sn and sb != sn:
        return f"placement state differs ({sb} vs {sn})"
    cb, cn = ("competing-load" in split(r["flags"]) for r in (b, n))
    if cb != cn:
        return f"competing load in the {'base' if cb else 'new'} run only"
    if b["verdict"] != n["verdict"] and "audit-failed" in (b["verdict"], n["verdict"]):
        return f"audit verdict differs ({b['verdict']} vs {n['verdict']})"
    return ""


def _validity(pc: PointComparison, b: pd.Series, n: pd.Series) -> bool:
    """Set the verdict when a side has no valid result; True when that decided it."""
    if b["valid"] and n["valid"]:
        return False
    control = b.get("driver") in NEGATIVE_CONTROLS
    pc.verdict = decisions.NOT_COMPARABLE
    if b["valid"] and not control:
        pc.verdict = decisions.REGRESSION
        detail = n["audit_detail"] or n["error"] or ""
        pc.notes.append(f"new run has no valid result: {n['verdict']} {detail}".strip())
    elif b["valid"]:
        pc.notes.append(f"negative control: {n['verdict']} in the new run")
    elif n["valid"]:
        pc.notes.append(f"base run had no valid result ({b['verdict']})")
    else:
        pc.notes.append(f"no valid result in either run ({b['verdict']}, {n['verdict']})")
    return True


def _p99_notes(base: Run, new: Run, b: pd.Series, n: pd.Series, threshold: float) -> list[str]:
    notes = []
    for col in P99_COLUMNS:
        bv = _rep_values(base, int(b["point"]), b["used_reps"], col)
        nv = _rep_values(new, int(n["point"]), n["used_reps"], col)
        r = log_ratio(bv, nv)
        verdict = decisions.decide(r, threshold)
        if verdict in (decisions.REGRESSION, decisions.IMPROVEMENT):
            worse = "worse" if verdict == decisions.IMPROVEMENT else "better"
            notes.append(f"{col} {r.ratio - 1:+.0%} [{r.lo:.2f}, {r.hi:.2f}] ({worse})")
    return notes


def _why_inconclusive(pc: PointComparison, threshold: float) -> str:
    if not math.isfinite(pc.min_detectable):
        return "no interval: fewer than 2 valid repetitions on a side"
    if pc.lo > 1 or pc.hi < 1:
        return f"a significant change, not clearly beyond ±{threshold:.0%}"
    return f"too wide to decide at ±{threshold:.0%}"


def _compare_one(
    base: Run, new: Run, b: pd.Series, n: pd.Series, lab: str, cols: list[str], threshold: float
) -> PointComparison:
    named = dict.fromkeys([*cols, *(STRATEGY_PARTS if STRATEGY in cols else ())])
    params = {c: norm_value(b.get(c)) for c in named if norm_value(b.get(c))}
    pc = PointComparison(lab, params, int(b["point"]), int(n["point"]), decisions.NOT_COMPARABLE)
    pc.base_estimate, pc.new_estimate = float(b["ops_per_s"]), float(n["ops_per_s"])
    pc.n_base, pc.n_new = int(b["n"]), int(n["n"])
    if _validity(pc, b, n):
        return pc
    r = log_ratio(b["samples"], n["samples"])
    pc.ratio, pc.lo, pc.hi, pc.method = r.ratio, r.lo, r.hi, r.method
    pc.min_detectable = r.min_detectable
    if n["verdict"] == "audit-failed" and b["verdict"] != "audit-failed":
        pc.verdict = decisions.REGRESSION
        pc.notes.append(f"new audit failure: {n['audit_detail'] or 'audit_ok is False'}")
        return pc
    why = _not_comparable(b, n)
    if why:
        pc.notes.append(why)
        return pc
    pc.verdict = decisions.decide(r, threshold)
    if pc.verdict == decisions.INCONCLUSIVE:
        pc.notes.append(_why_inconclusive(pc, threshold))
    if b["oversubscribed"] or n["oversubscribed"]:
        pc.notes.append("oversubscribed: measures the CPU share the workers won")
    pc.notes += _p99_notes(base, new, b, n, threshold)
    return pc


def _index(
    summary: pd.DataFrame, cols: Sequence[str]
) -> tuple[dict[tuple[str, ...], pd.Series], int]:
    out: dict[tuple[str, ...], pd.Series] = {}
    dup = 0
    for _, r in summary.iterrows():
        key = param_key(r, cols)
        dup += key in out
        out.setdefault(key, r)
    return out, dup


@dataclass
class Comparison:
    base: Run
    new: Run
    threshold: float
    ignore: list[str]
    points: list[PointComparison]
    base_only: list[str]
    new_only: list[str]
    duplicates: int

    def exit_code(self, strict: bool = False) -> int:
        if any(p.regression for p in self.points):
            return EXIT_REGRESSION
        if strict and any(p.verdict == decisions.INCONCLUSIVE for p in self.points):
            return EXIT_INCONCLUSIVE
        return EXIT_OK


def compare_runs(
    base: Run, new: Run, threshold: float = 0.05, ignore: Sequence[str] = ()
) -> Comparison:
    """Every matched point's comparison, and the labels of the unmatched ones."""
    check_ignore(ignore)
    states = placement.classify(placement.probe_values(base.points, new.points))
    prefer = preferred_state(states, base.points, new.points)
    bs, ns = summarize(base, states, prefer), summarize(new, states, prefer)
    skipped = sorted(with_derived(ignore))
    cols = [c for c in param_columns(bs, ignore=skipped) if c in ns.columns]
    shown = (
        varying_params(pd.concat([bs, ns], ignore_index=True)[cols]) if len(bs) + len(ns) else []
    )
    if "workers" in cols and "workers" not in shown:
        shown.append("workers")
    (bidx, bdup), (nidx, ndup) = _index(bs, cols), _index(ns, cols)
    results = [
        _compare_one(base, new, b, nidx[key], label(b, shown) or "all", cols, threshold)
        for key, b in bidx.items()
        if key in nidx
    ]
    base_only = [label(r, shown) or "all" for k, r in bidx.items() if k not in nidx]
    new_only = [label(r, shown) or "all" for k, r in nidx.items() if k not in bidx]
    return Comparison(base, new, threshold, list(ignore), results, base_only, new_only, bdup + ndup)


# --------------------------------------------------------------------------- output


def _eng(v: float) -> str:
    if not math.isfinite(v):
        return "–"
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"{v / div:.3f}{suffix}"
    return f"{v:.1f}"


def _ratio_text(pc: PointComparison) -> str:
    if not math.isfinite(pc.ratio):
        return "–"
    if not (math.isfinite(pc.lo) and math.isfinite(pc.hi)):
        return f"{pc.ratio:.3f} [no interval]"
    return f"{pc.ratio:.3f} [{pc.lo:.3f}, {pc.hi:.3f}]"


def _mdc(pc: PointComparison) -> str:
    return f"±{pc.min_detectable:.1%}" if math.isfinite(pc.min_detectable) else "–"


def format_text(c: Comparison) -> str:
    width = max([len(r.label) for r in c.points] + [5])
    lines = [
        f"base: {c.base.run_id} ({c.base.run_dir})",
        f"new:  {c.new.run_id} ({c.new.run_dir})",
        f"threshold: ±{c.threshold:.1%}; ratio new/base: {RATIO_METHOD}",
        "min detectable: the smallest change the interval could tell from none",
    ]
    if c.ignore:
        lines.append(f"ignored parameters: {', '.join(c.ignore)}")
    lines += [
        "",
        f"{'point'.ljust(width)}  {'base':>10}  {'new':>10}  {'new/base [95% CI]':>24}  "
        f"{'min det.':>8}  verdict",
    ]
    for r in c.points:
        lines.append(
            f"{r.label.ljust(width)}  {_eng(r.base_estimate):>10}  {_eng(r.new_estimate):>10}  "
            f"{_ratio_text(r):>24}  {_mdc(r):>8}  {r.verdict}"
            + (f"  ({'; '.join(r.notes)})" if r.notes else "")
        )
    if c.base_only:
        lines += ["", "only in base (not compared):", *[f"  {x}" for x in c.base_only]]
    if c.new_only:
        lines += ["", "only in new (not compared):", *[f"  {x}" for x in c.new_only]]
    if c.duplicates:
        lines += ["", f"{c.duplicates} point(s) share parameters with another; the first is used"]
    counts = {v: sum(r.verdict == v for r in c.points) for v in VERDICTS}
    lines += [
        "",
        f"{len(c.points)} matched: "
        + ", ".join(f"{k} {v}" for k, v in counts.items())
        + f"; {len(c.base_only) + len(c.new_only)} unmatched",
    ]
    return "\n".join(lines)


def _clean(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def format_json(c: Comparison) -> str:
    out = []
    for r in c.points:
        d = {k: _clean(v) for k, v in asdict(r).items()}
        d["notes"] = "; ".join(r.notes)
        out.append(d)
    return json.dumps(typed_json(out), indent=1, allow_nan=False)


def compare(
    base_dir: str | Path,
    new_dir: str | Path,
    threshold: float = 0.05,
    ignore: Sequence[str] = (),
    fmt: str = "text",
    strict: bool = False,
) -> tuple[str, int]:
    """The printable comparison of two runs and the exit code (0, 1 on a regression, 3
    with `strict` when a point is inconclusive). Raises CompareError when nothing matched."""
    check_ignore(ignore)
    c = compare_runs(load_run(base_dir), load_run(new_dir), threshold, ignore)
    if not c.points:
        raise CompareError(
            f"{base_dir} and {new_dir}: no point matched by parameters "
            f"({len(c.base_only)} only in base, {len(c.new_only)} only in new); "
            "--ignore PARAM matches points that differ only in PARAM"
        )
    text = format_json(c) if fmt == "json" else format_text(c)
    return text, c.exit_code(strict)
