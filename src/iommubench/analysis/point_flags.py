"""Point-level flags and the warnings that qualify a run's numbers.

Flag words (the summary's `flags` column, `;`-joined): `oversubscribed`, `noisy`,
`competing-load`, `level-shift`, `window-stretched`, `placement-changed`, `starved`,
`audit-failed`. The middle four are the load flags (`load.LOAD_FLAGS`): a comparison
involving such a point is decided only beyond what its measured load could explain.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from iommubench.analysis.run_reader import Run, label, norm_value, varying_params
from iommubench.run import machine
from iommubench.spec.catalogue import is_negative_control

CV_WARN = 0.10
STARVATION_RATIO = 2.0
HANDOFF_RATIO = 1.5
FLAG_ORDER = (
    "oversubscribed",
    "noisy",
    "competing-load",
    "level-shift",
    "window-stretched",
    "placement-changed",
    "starved",
    "audit-failed",
)


@dataclass(frozen=True)
class Starvation:
    """The repetition of a point with the largest busiest/least-busy worker ratio."""

    rep: int
    busiest: float
    least: float

    @property
    def ratio(self) -> float:
        return self.busiest / self.least if self.least > 0 else float("inf")

    @property
    def starved(self) -> bool:
        return self.ratio > STARVATION_RATIO

    def describe(self) -> str:
        ratio = "the least busy did none" if not np.isfinite(self.ratio) else f"{self.ratio:.1f}x"
        return (
            f"repetition {self.rep}: busiest worker {self.busiest:.0f} ops, "
            f"least busy {self.least:.0f} ({ratio})"
        )


def worker_extremes(run: Run, point: int, rows: pd.DataFrame) -> list[Starvation]:
    """Per repetition of `rows`: its busiest and least busy worker's ops.

    From workers.csv when it has the repetition, else from the row's own
    worker_ops_max / worker_ops_min (both from the same repetition, never medians).
    """
    out = []
    w = run.workers
    have = not w.empty and {"point", "rep", "ops"} <= set(w.columns)
    for _, r in rows.iterrows():
        rep = int(r["rep"])
        ops = w[(w["point"] == point) & (w["rep"] == rep)]["ops"] if have else pd.Series([])
        if len(ops):
            out.append(Starvation(rep, float(ops.max()), float(ops.min())))
            continue
        hi, lo = r.get("worker_ops_max"), r.get("worker_ops_min")
        if hi is not None and lo is not None and np.isfinite(hi) and np.isfinite(lo):
            out.append(Starvation(rep, float(hi), float(lo)))
    return out


def worst_starvation(extremes: list[Starvation]) -> Starvation | None:
    """The repetition with the largest ratio, if any exceeds `STARVATION_RATIO`."""
    starved = [s for s in extremes if s.starved]
    return max(starved, key=lambda s: s.ratio) if starved else None


def join(flags: set[str]) -> str:
    """The flags in their documented order, `;`-joined."""
    return ";".join(f for f in FLAG_ORDER if f in flags)


def split(text: object) -> set[str]:
    if not isinstance(text, str):
        return set()
    return {f for f in text.split(";") if f}


# --------------------------------------------------------------------------- warnings


def _name(r: pd.Series, shown: list[str]) -> str:
    return f"point {int(r['point'])} ({label(r, shown)})"


def _run_level(summary: pd.DataFrame) -> list[str]:
    out = []
    over = summary[summary["oversubscribed"]]
    if len(over):
        cpus = (
            norm_value(over["cpus_available"].dropna().iloc[0]) if "cpus_available" in over else "?"
        )
        out.append(
            f"oversubscribed: {len(over)} point(s) run more workers than the {cpus} CPUs "
            f"available ({', '.join(str(int(p)) for p in over['point'])}); their workers "
            "time-share CPUs, so lock holders get preempted; they feed no headline number"
        )
    short = summary[summary["valid"] & (summary["n"] < 6)]
    if len(short):
        out.append(
            f"few repetitions: {len(short)} point(s) have fewer than 6 same-state valid "
            "repetitions; their interval is the range of the repetitions, not a 95% CI"
        )
    aside = int(summary["n_set_aside"].sum()) if "n_set_aside" in summary else 0
    if aside:
        out.append(
            f"set aside: {aside} repetition(s) do not feed any estimate (per point below); "
            "every decision holds with and without them or is inconclusive (set aside)"
        )
    return out


def _details(r: pd.Series) -> list[str]:
    """What qualifies one point's number, one phrase each."""
    fl = split(r.get("flags"))
    if r["verdict"] == "error":
        return [f"every repetition failed: {r['error'] or 'no error text'}"]
    out = []
    if r["verdict"] == "audit-failed":
        out.append(f"AUDIT FAILED ({r['audit_detail'] or 'audit_ok is False'})")
    if r["verdict"] == "partial":
        out.append(
            f"{int(r['reps'] - r['reps_ok'])} of {int(r['reps'])} repetitions failed"
            + (f": {r['error']}" if r["error"] else "")
        )
    if is_negative_control(r) and r["verdict"] != "caught" and (r.get("workers") or 0) > 1:
        out.append("the negative control passed its audit: the race was not exercised")
    if r["valid"] and "noisy" in fl and r.get("noisy_detail"):
        out.append(f"noisy: {r['noisy_detail']}")
    if "competing-load" in fl:
        share = r.get("load_share")
        how = f" (load share median {share:.0%})" if share == share and share is not None else ""
        out.append(f"competing load: workers waited on a run queue for a CPU{how}")
    if r.get("level_shifts"):
        out.append(f"level shift within a repetition ({r['level_shifts']})")
    if "starved" in fl:
        out.append(
            f"starvation (busiest/least busy worker over {STARVATION_RATIO:g}x) in "
            f"{r['starved_detail']}"
        )
    if "placement-changed" in fl:
        out.append(
            "the handoff probes before and after a repetition fell in different placement "
            "states; such repetitions are set aside"
        )
    if r.get("set_aside"):
        out.append(f"set aside: {r['set_aside']}")
    return out


def _point_level(r: pd.Series, shown: list[str]) -> list[str]:
    n = _name(r, shown)
    return [f"{n}: {d}" for d in _details(r)]


def _shown(summary: pd.DataFrame) -> list[str]:
    shown = varying_params(summary)
    if "workers" not in shown and "workers" in summary:
        shown = [*shown, "workers"]
    return shown


def run_warnings(run: Run, summary: pd.DataFrame) -> list[str]:
    """What qualifies the run as a whole (the machine, oversubscription, few repetitions,
    set-aside repetitions), one sentence each."""
    out = [f"machine: {w}" for w in machine.noise_warnings(run.meta)]
    if summary.empty:
        return [*out, "no points in this run"]
    return out + _run_level(summary)


def point_warnings(summary: pd.DataFrame) -> list[dict[str, object]]:
    """One entry per point with something to say: its label, flags and the details."""
    if summary.empty:
        return []
    shown = _shown(summary)
    out: list[dict[str, object]] = []
    for _, r in summary.iterrows():
        details = _details(r)
        if details:
            fl = [f for f in FLAG_ORDER if f in split(r.get("flags"))]
            entry = {"point": int(r["point"]), "label": label(r, shown), "flags": fl}
            out.append({**entry, "details": details})
    return out


def warnings(run: Run, summary: pd.DataFrame) -> list[str]:
    """Everything that qualifies a number in this run, one sentence each."""
    out = run_warnings(run, summary)
    if summary.empty:
        return out
    shown = _shown(summary)
    for _, r in summary.iterrows():
        out += _point_level(r, shown)
    return out


def audit_notes(summary: pd.DataFrame) -> list[str]:
    """One line per negative-control point the audit caught (expected, not an error)."""
    if summary.empty:
        return []
    shown = varying_params(summary, exclude=["driver"])
    caught = summary[summary["verdict"] == "caught"]
    return [
        f"point {int(r['point'])} ({r['driver']} {label(r, shown)}): caught by the audit "
        f"({r['audit_detail'] or 'audit_ok is False'})"
        for _, r in caught.iterrows()
    ]
