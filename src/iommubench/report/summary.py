"""Report assembly: everything a report says, as one JSON-ready dict (summary.json).

Every renderer (Markdown, HTML, text) reads this dict and computes nothing itself. Numbers
stay numbers (NaN becomes null); lists of flags stay lists.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from iommubench.analysis import decisions, load, lock_attribution, point_flags, strategies, usl
from iommubench.analysis.estimators import ESTIMATOR, ESTIMATOR_SHORT
from iommubench.analysis.run_reader import (
    STRATEGY_PARTS,
    Run,
    label,
    norm_value,
    param_columns,
    varying_params,
)
from iommubench.report import sections
from iommubench.run import machine
from iommubench.spec.catalogue import NEGATIVE_CONTROLS, unit_for
from iommubench.spec.columns import typed_json

SCHEMA = 1
POINT_MEASURES = [
    "cv",
    "batch_cv",
    "speedup",
    "efficiency",
    "contention_share",
    "cas_fail_per_op",
    "map_p99_ns",
    "unmap_p99_ns",
    "jain",
    "runq_wait_share",
    "steal_share",
    "handoff_ns",
    "load_share",
    "load_max",
    "level_shifts",
]


def jsonable(v: Any) -> Any:
    """Plain JSON values: NaN/inf -> None, numpy scalars -> Python, tuples -> lists."""
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return float(v) if math.isfinite(v) else None
    if v is None or v is pd.NA:
        return None
    if isinstance(v, Path):
        return str(v)
    return v


def _set_aside(text: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for part in str(text or "").split("; "):
        if ": " in part:
            k, v = part.rsplit(": ", 1)
            out[k] = int(v)
    return out


def _point(r: pd.Series, shown: list[str]) -> dict[str, Any]:
    named = [*param_columns(r.to_frame().T), *(c for c in STRATEGY_PARTS if c in r)]
    params = {c: norm_value(r.get(c)) for c in dict.fromkeys(named)}
    return {
        "point": int(r["point"]),
        "label": label(r, shown) or "all",
        "params": {k: v for k, v in params.items() if v != ""},
        "estimate": r["ops_per_s"],
        "lo": r["ci_lo"],
        "hi": r["ci_hi"],
        "interval": r["interval"],
        "method": r["method"],
        "n": int(r["n"]),
        "flags": sorted(point_flags.split(r["flags"]), key=point_flags.FLAG_ORDER.index),
        "state": r["state"],
        "valid": bool(r["valid"]),
        "verdict": r["verdict"],
        "reps": int(r["reps"]),
        "set_aside": _set_aside(r["set_aside"]),
        "audit_detail": r["audit_detail"],
        **{c: r.get(c) for c in POINT_MEASURES},
    }


def _winners(frame: pd.DataFrame) -> list[dict[str, Any]]:
    w = decisions.winners(frame)
    return [{**r.to_dict(), "workers": norm_value(r["workers"])} for _, r in w.iterrows()]


def _scaling(frame: pd.DataFrame) -> list[dict[str, Any]]:
    sc = decisions.scaling(frame)
    controls = frame["point"][frame["driver"].isin(NEGATIVE_CONTROLS)] if "driver" in frame else []
    sc = sc[~sc["point"].isin(list(controls))]
    out = []
    for g, d in sc.groupby("group", sort=False):
        r = d.iloc[0]
        if not np.isfinite(r["peak_ops_per_s"]):
            continue
        out.append(
            {
                "group": g,
                "peak": r["peak_ops_per_s"],
                "peak_workers": norm_value(r["peak_workers"]),
                "peak_verdict": r["peak_verdict"],
                "peak_over": norm_value(r["peak_over"]),
                "peak_ratio": r["peak_ratio"],
                "peak_lo": r["peak_lo"],
                "peak_hi": r["peak_hi"],
                "max_workers": norm_value(r["max_workers"]),
                "collapse_factor": r["collapse_factor"],
                "collapse_lo": r["collapse_lo"],
                "collapse_hi": r["collapse_hi"],
                "collapse_verdict": r["collapse_verdict"],
                "collapse_note": r["collapse_note"],
                "flags": list(r["claim_flags"]),
            }
        )
    return out


def _usl(frame: pd.DataFrame) -> dict[str, Any]:
    fits, skipped = usl.fit_run(frame, usl.cpus_of(frame)) if len(frame) else ([], [])
    return usl.to_json(fits, skipped)


def _strategies(frame: pd.DataFrame) -> list[dict[str, Any]]:
    t = strategies.strategy_table(frame)
    return [{**r.to_dict(), "workers": norm_value(r["workers"])} for _, r in t.iterrows()]


def _locks(frame: pd.DataFrame, shown: list[str]) -> list[dict[str, Any]]:
    names = {int(r["point"]): label(r, shown) or "all" for _, r in frame.iterrows()}
    t = lock_attribution.lock_table(frame)
    return [{**r.to_dict(), "label": names[int(r["point"])]} for _, r in t.iterrows()]


def _overview(run: Run, frame: pd.DataFrame) -> dict[str, Any]:
    meta = run.meta
    n = len(frame)
    totals: dict[str, int] = {}
    for text in frame["set_aside"] if n else []:
        for k, v in _set_aside(text).items():
            totals[k] = totals.get(k, 0) + v
    measured = _load(run)
    overlapping = _overlapping(meta)
    machines = _machines(run)
    return {
        "points": n,
        "repetitions": int(frame["reps"].sum()) if n else 0,
        "valid_points": int(frame["valid"].sum()) if n else 0,
        "verdicts": frame["verdict"].value_counts().to_dict() if n else {},
        "set_aside": totals,
        "load": measured,
        "overlapping_runs": overlapping,
        "started": meta.get("started", "unknown"),
        "version": meta.get("version") or meta.get("iommubench_version") or "?",
        "git_sha": meta.get("git_sha") or "unknown",
        "machines": machines,
        "conditions": _conditions(measured, overlapping, totals, machines),
        "estimator": ESTIMATOR,
        "estimator_short": ESTIMATOR_SHORT,
    }


def _load(run: Run) -> dict[str, Any]:
    """Repetitions under competing load, and the load share (run-queue wait beyond
    oversubscription's own, plus steal) over every repetition that ran."""
    df = run.points
    ok = df[df["status"] == "ok"] if len(df) else df
    measured = ok["runq_wait_share"].notna() if "runq_wait_share" in ok else []
    shares = [load.load_share(r) for _, r in ok[measured].iterrows()] if len(ok) else []
    flagged = ok["flags"].map(lambda f: "competing-load" in point_flags.split(f)) if len(ok) else []
    return {
        "repetitions": len(ok),
        "competing": int(np.sum(flagged)),
        "median_share": float(np.median(shares)) if shares else None,
        "max_share": float(np.max(shares)) if shares else None,
    }


def _overlapping(meta: dict[str, Any]) -> list[dict[str, Any]]:
    """Other iommubench runs that shared the machine with this one (meta.json's sessions)."""
    seen: dict[tuple[Any, Any], dict[str, Any]] = {}
    for session in meta.get("sessions") or []:
        for other in session.get("overlapping_runs") or []:
            seen.setdefault((other.get("pid"), other.get("started")), other)
    return list(seen.values())


def _conditions(
    load_: dict[str, Any], overlapping: list[Any], aside: dict[str, int], machines: list[str]
) -> str:
    """The run's conditions in one line: load, overlapping runs, set-aside repetitions,
    hosts ("pooled identical hosts" only when there are several)."""
    reps, hit = load_["repetitions"], load_["competing"]
    share, top = load_["median_share"], load_["max_share"]
    spread = (
        f" (load share median {share:.0%}, max {top:.0%})"
        if share is not None
        else " (run-queue wait not measured)"
    )
    parts = [
        f"competing load in {hit} of {reps} repetitions{spread}"
        if hit
        else f"no competing load in {reps} repetitions{spread}"
    ]
    parts.append(
        f"{len(overlapping)} other iommubench run(s) overlapped it"
        if overlapping
        else "no other iommubench run overlapped it"
    )
    total = sum(aside.values())
    detail = ", ".join(f"{k} {v}" for k, v in aside.items())
    parts.append(f"{total} repetition(s) set aside ({detail})" if total else "none set aside")
    pooled = [m for m in machines if "+" in m]
    if pooled:
        parts.append("pooled identical hosts " + ", ".join(pooled))
    others = [m for m in machines if "+" not in m]
    if others:
        parts.append(("host " if len(others) == 1 else "hosts ") + ", ".join(others))
    return "; ".join(parts)


def _machines(run: Run) -> list[str]:
    """The machines the rows ran on, as analysed: identical hosts pooled ("lab-a+lab-b")."""
    if "host" not in run.points:
        return []
    return sorted({str(h) for h in run.points["host"].dropna() if str(h)})


def _correctness(frame: pd.DataFrame) -> list[str]:
    failed = frame[frame["verdict"] == "audit-failed"] if len(frame) else frame
    lines = [
        f"point {int(r['point'])}: AUDIT FAILED ({r['audit_detail'] or 'audit_ok is False'})"
        for _, r in failed.iterrows()
    ]
    lines += [f"{n} — expected for the negative control" for n in point_flags.audit_notes(frame)]
    return lines or ["every point passed its audit"]


def _workload(frame: pd.DataFrame) -> str:
    w = {norm_value(v) for v in frame.get("workload", pd.Series(dtype=object))}
    return w.pop() if len(w) == 1 else ""


def build(
    run: Run,
    frame: pd.DataFrame,
    figures: Sequence[Path] = (),
    captions: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The summary of a run (see the module docstring); `frame` is `summarize`'s output
    with the scaling columns merged in."""
    cfg = run.config or {}
    shown = varying_params(frame) if len(frame) else []
    if len(frame) and "workers" in frame and "workers" not in shown:
        shown.append("workers")
    workload = _workload(frame)
    captions = captions or {}
    pngs = [f for f in figures if f.suffix == ".png"]
    summary = {
        "schema": SCHEMA,
        "run_id": run.run_id,
        "run_dir": str(run.run_dir),
        "generated": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "name": cfg.get("name", ""),
        "description": cfg.get("description", ""),
        "workload": workload,
        "unit": unit_for(workload),
        "shown": shown,
        "overview": _overview(run, frame),
        "warnings": point_flags.run_warnings(run, frame),
        "point_warnings": point_flags.point_warnings(frame),
        "correctness": _correctness(frame),
        "points": [_point(r, shown) for _, r in frame.iterrows()],
        "winners": _winners(frame) if len(frame) else [],
        "strategies": _strategies(frame) if len(frame) else [],
        "scaling": _scaling(frame) if len(frame) else [],
        "locks": _locks(frame, shown) if len(frame) else [],
        "usl": _usl(frame),
        "sections": sections.for_run(run),
        "figures": [
            {
                "name": f.stem,
                "png": f.name,
                "svg": f.with_suffix(".svg").name if f.with_suffix(".svg").exists() else None,
                "caption": captions.get(f.stem, ""),
            }
            for f in pngs
        ],
        "machine": [list(kv) for kv in machine.summary_items(run.meta)],
        "config_path": run.meta.get("config_path"),
        "config_text": run.config_text,
        "command": run.meta.get("command"),
    }
    return jsonable(summary)


def write(summary: dict[str, Any], path: Path) -> Path:
    """Write summary.json (strict JSON: no NaN)."""
    path.write_text(json.dumps(typed_json(summary), indent=1, allow_nan=False) + "\n")
    return path
