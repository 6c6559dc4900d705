"""Compare two runs point by point: one verdict per matched point.

Points are matched by their parameter values (all but the `--ignore`d ones), never by
index; an `--ignore`d parameter that tells two points of one run apart is refused, since
the match would then pick one of them. Both runs' handoff probes are clustered together
(`placement.classify`), so a state means the same thing on both sides. For each matched
point:

- `not comparable`: the placement states differ (or every repetition changed state), the
  audit verdict differs, or a side has no valid result;
- `regression` also when the base had a valid result and the new run has none, or when a
  repetition of the new run failed its audit and none of the base did (the negative control
  excepted: its audit is expected to fail);
- otherwise new/base of the same-state valid repetitions (Hodges-Lehmann on log throughput
  with its 95% CI), decided by `decisions.judge` at the threshold: as measured, beyond what
  the load measured on either side could explain (else `inconclusive (load)`), and with and
  without the set-aside repetitions (else `inconclusive (set aside)`). The line carries the
  flags of both points.

p99 latency is decided as measured and reported as a secondary note only.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from iommubench.analysis import decisions, placement
from iommubench.analysis.estimators import ESTIMATOR, hl_ratio
from iommubench.analysis.load import LOAD_FLAGS
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
    *decisions.INCONCLUSIVE_KINDS,
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
    lo_load: float = float("nan")
    hi_load: float = float("nan")
    min_detectable: float = float("nan")
    method: str = ""
    n_base: int = 0
    n_new: int = 0
    n_set_aside: int = 0
    base_estimate: float = float("nan")
    new_estimate: float = float("nan")
    flags: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def regression(self) -> bool:
        return self.verdict == decisions.REGRESSION


def pct(fraction: float) -> str:
    """A threshold as a percentage, one way everywhere: 0.05 -> '5%', 0.005 -> '0.5%'."""
    return f"{100 * fraction:.4g}%"


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
        return "placement changed during every repetition"
    if sb and sn and sb != sn:
        return f"placement state differs ({sb} vs {sn})"
    if b["verdict"] != n["verdict"] and "audit-failed" in (b["verdict"], n["verdict"]):
        return f"audit verdict differs ({b['verdict']} vs {n['verdict']})"
    return ""


def _all_set_aside(s: pd.Series) -> bool:
    """The point ran and passed its audits, but every repetition was set aside."""
    return not s["valid"] and s["verdict"] in ("ok", "partial") and s.get("n_set_aside", 0) > 0


def _validity(pc: PointComparison, b: pd.Series, n: pd.Series) -> bool:
    """Set the verdict when a side has no valid result; True when that decided it."""
    if b["valid"] and n["valid"]:
        return False
    if _all_set_aside(b) or _all_set_aside(n):
        # it ran and passed its audits, but no repetition was left to estimate from: the
        # setting aside decided nothing, so it decides no verdict either
        pc.verdict = decisions.INCONCLUSIVE_ASIDE
        for side, s in (("base", b), ("new", n)):
            if _all_set_aside(s):
                pc.notes.append(f"every repetition of the {side} run set aside ({s['set_aside']})")
        return True
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
    loaded = bool(set(decisions.claim_flags(b, n)) & set(LOAD_FLAGS))
    for col in P99_COLUMNS:
        bv = _rep_values(base, int(b["point"]), b["used_reps"], col)
        nv = _rep_values(new, int(n["point"]), n["used_reps"], col)
        r = hl_ratio(bv, nv)
        verdict = decisions.decide(r, threshold)
        if verdict in (decisions.REGRESSION, decisions.IMPROVEMENT):
            worse = "worse" if verdict == decisions.IMPROVEMENT else "better"
            measured = ", as measured under load" if loaded else ""
            notes.append(f"{col} {r.ratio - 1:+.0%} [{r.lo:.2f}, {r.hi:.2f}] ({worse}{measured})")
    return notes


def _why_inconclusive(pc: PointComparison, threshold: float) -> str:
    if not math.isfinite(pc.min_detectable):
        return "no interval"
    if pc.lo > 1 or pc.hi < 1:
        return f"a significant change, not clearly beyond ±{pct(threshold)}"
    return f"too wide to decide at ±{pct(threshold)}"


def _decide(pc: PointComparison, b: pd.Series, n: pd.Series, threshold: float) -> None:
    """The verdict of two valid, comparable points (decisions.judge) into `pc`."""
    (bu, ba), (nu, na) = decisions.sides(b), decisions.sides(n)
    j = decisions.judge(bu, nu, threshold, ba, na)
    pc.verdict, pc.lo_load, pc.hi_load = j.verdict, j.lo_load, j.hi_load
    pc.n_set_aside = j.n_aside
    if j.note:
        pc.notes.append(j.note)
    elif pc.verdict == decisions.INCONCLUSIVE:
        pc.notes.append(_why_inconclusive(pc, threshold))
    decided = (decisions.REGRESSION, decisions.IMPROVEMENT, decisions.NO_CHANGE)
    if j.n_aside and pc.verdict in decided:
        pc.notes.append(f"holds with and without {j.n_aside} set-aside repetition(s)")


def _compare_one(
    base: Run, new: Run, b: pd.Series, n: pd.Series, lab: str, cols: list[str], threshold: float
) -> PointComparison:
    named = dict.fromkeys([*cols, *(STRATEGY_PARTS if STRATEGY in cols else ())])
    params = {c: norm_value(b.get(c)) for c in named if norm_value(b.get(c))}
    pc = PointComparison(lab, params, int(b["point"]), int(n["point"]), decisions.NOT_COMPARABLE)
    pc.base_estimate, pc.new_estimate = float(b["ops_per_s"]), float(n["ops_per_s"])
    pc.n_base, pc.n_new = int(b["n"]), int(n["n"])
    pc.flags = decisions.claim_flags(b, n)
    if _validity(pc, b, n):
        return pc
    r = hl_ratio(b["samples"], n["samples"])
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
    _decide(pc, b, n, threshold)
    if b["oversubscribed"] or n["oversubscribed"]:
        pc.notes.append("oversubscribed: measures the CPU share the workers won")
    pc.notes += _p99_notes(base, new, b, n, threshold)
    return pc


def _index(
    summary: pd.DataFrame, cols: Sequence[str], run: Run, ignore: Sequence[str]
) -> dict[tuple[str, ...], pd.Series]:
    """Points by their key; refuses a run in which two points share one (an ignored
    parameter told them apart), naming what tells them apart."""
    out: dict[tuple[str, ...], pd.Series] = {}
    for _, r in summary.iterrows():
        key = param_key(r, cols)
        if key in out:
            raise CompareError(_ambiguous(run, out[key], r, ignore))
        out[key] = r
    return out


def _ambiguous(run: Run, a: pd.Series, b: pd.Series, ignore: Sequence[str]) -> str:
    differ = [
        c
        for c in dict.fromkeys([*param_columns(pd.DataFrame([a, b])), *STRATEGY_PARTS])
        if c in a and norm_value(a.get(c)) != norm_value(b.get(c))
    ]
    what = ", ".join(f"{c} ({norm_value(a.get(c))}, {norm_value(b.get(c))})" for c in differ)
    flag = f"--ignore {', '.join(ignore)}: " if ignore else ""
    return (
        f"{flag}points {int(a['point'])} and {int(b['point'])} of {run.run_dir} differ only in "
        f"{what or 'nothing'}: compare runs that hold one value of it each"
    )


def _differing(bs: pd.DataFrame, ns: pd.DataFrame, cols: Sequence[str]) -> list[str]:
    """'cs_ns (base 0; new 30)' for each parameter whose values differ between the runs."""
    out = []
    for c in cols:
        if c not in bs or c not in ns:
            continue
        bv = sorted({norm_value(v) for v in bs[c]})
        nv = sorted({norm_value(v) for v in ns[c]})
        if bv != nv:
            out.append(f"{c} (base {', '.join(bv) or '–'}; new {', '.join(nv) or '–'})")
    return out


def _span(run: Run) -> tuple[float, float] | None:
    df = run.points
    if not {"started_at", "ended_at"} <= set(df.columns):
        return None
    s = pd.to_numeric(df["started_at"], errors="coerce").dropna()
    e = pd.to_numeric(df["ended_at"], errors="coerce").dropna()
    return (float(s.min()), float(e.max())) if len(s) and len(e) else None


def _clock(t: float, day: bool = True) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M:%S"[0 if day else 9 :])


def timing(base: Run, new: Run) -> str:
    """Whether the runs were measured at different times (the usual case): then what
    changed on the machine between them was not randomised."""
    if base.run_dir.resolve() == new.run_dir.resolve():
        return "the same run on both sides"
    a, b = _span(base), _span(new)
    if a is None or b is None:
        return "when each run was measured is not recorded"
    if a[0] < b[1] and b[0] < a[1]:
        return "the runs overlap in time: their repetitions were interleaved"
    return (
        f"measured at different times (base {_clock(a[0])}–{_clock(a[1], False)}, new "
        f"{_clock(b[0])}–{_clock(b[1], False)} UTC): what changed on the machine between them "
        "is not randomised; the load each run measured is accounted for"
    )


def conditions(run: Run, summary: pd.DataFrame) -> str:
    """'12 points, 60 repetitions: 54 under competing load (median load share 31%)'."""
    df = run.points
    reps = len(df)
    loaded = int(df["flags"].fillna("").astype(str).str.contains("competing-load").sum())
    share = summary["load_share"].dropna() if "load_share" in summary else pd.Series([])
    med = f" (median load share {share.median():.0%})" if len(share) else ""
    aside = int(summary["n_set_aside"].sum()) if "n_set_aside" in summary else 0
    return (
        f"{len(summary)} points, {reps} repetitions: {loaded} under competing load{med}, "
        f"{aside} set aside"
    )


@dataclass
class Comparison:
    base: Run
    new: Run
    threshold: float
    ignore: list[str]
    points: list[PointComparison]
    base_only: list[str]
    new_only: list[str]
    differing: list[str] = field(default_factory=list)
    when: str = ""
    base_conditions: str = ""
    new_conditions: str = ""

    def exit_code(self, strict: bool = False) -> int:
        if any(p.regression for p in self.points):
            return EXIT_REGRESSION
        if strict and any(p.verdict in decisions.INCONCLUSIVE_KINDS for p in self.points):
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
    bidx, nidx = _index(bs, cols, base, ignore), _index(ns, cols, new, ignore)
    results = [
        _compare_one(base, new, b, nidx[key], label(b, shown) or "all", cols, threshold)
        for key, b in bidx.items()
        if key in nidx
    ]
    base_only = [label(r, shown) or "all" for k, r in bidx.items() if k not in nidx]
    new_only = [label(r, shown) or "all" for k, r in nidx.items() if k not in bidx]
    return Comparison(
        base, new, threshold, list(ignore), results, base_only, new_only,
        _differing(bs, ns, cols), timing(base, new), conditions(base, bs), conditions(new, ns),
    )  # fmt: skip


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


def _tail(pc: PointComparison) -> str:
    parts = ([", ".join(pc.flags)] if pc.flags else []) + pc.notes
    return f"  ({'; '.join(parts)})" if parts else ""


def format_text(c: Comparison) -> str:
    width = max([len(r.label) for r in c.points] + [5])
    lines = [
        f"base: {c.base.run_id} ({c.base.run_dir}): {c.base_conditions}",
        f"new:  {c.new.run_id} ({c.new.run_dir}): {c.new_conditions}",
        f"when: {c.when}",
        f"estimator: {ESTIMATOR}",
        f"threshold: ±{pct(c.threshold)}; a verdict must also stand beyond what the load "
        "measured on either side could explain, and with and without set-aside repetitions",
        "min detectable: the smallest change the interval could tell from none",
    ]
    if c.ignore:
        lines.append(f"ignored parameters: {', '.join(c.ignore)}")
    lines += [
        "",
        f"{'point'.ljust(width)}  {'base':>10}  {'new':>10}  {'new/base [95% CI]':>24}  "
        f"{'min det.':>8}  verdict  (flags; notes)",
    ]
    for r in c.points:
        lines.append(
            f"{r.label.ljust(width)}  {_eng(r.base_estimate):>10}  {_eng(r.new_estimate):>10}  "
            f"{_ratio_text(r):>24}  {_mdc(r):>8}  {r.verdict}{_tail(r)}"
        )
    if c.base_only:
        lines += ["", "only in base (not compared):", *[f"  {x}" for x in c.base_only]]
    if c.new_only:
        lines += ["", "only in new (not compared):", *[f"  {x}" for x in c.new_only]]
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
        differ = "; they differ in " + ", ".join(c.differing) if c.differing else ""
        hint = c.differing[0].split(" ")[0] if c.differing else "PARAM"
        raise CompareError(
            f"{base_dir} and {new_dir}: no point matched by parameters "
            f"({len(c.base_only)} only in base, {len(c.new_only)} only in new){differ}; "
            f"--ignore {hint} matches points that differ only there"
        )
    text = format_json(c) if fmt == "json" else format_text(c)
    return text, c.exit_code(strict)
