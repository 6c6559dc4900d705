"""Statistics over a run directory: per-point intervals, scaling, contention, fairness.

`load_run` reads what the runner wrote; `summarize` gives one row per point over its
repetitions; `scaling` compares the points of one group (every parameter but `workers`);
`warnings` lists what a reader must know before trusting a number.

A repetition is *valid* when its status is "ok" and its audit passed. Only valid repetitions
feed throughput statistics. A point without any valid repetition keeps the numbers of its
completed repetitions but is marked `valid = False`: plots draw it as a cross, never as part of
a line, and tables show its verdict (`caught` for the `naive` negative control, whose audit is
expected to fail).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from iommubench import hist as _hist
from iommubench import machine
from iommubench.columns import AUDIT, MEASURES, PARAMETERS, PLACEMENT

NEGATIVE_CONTROLS = frozenset({"naive"})
CV_WARN = 0.10
HALFWIDTH_WARN = 0.05
STARVATION_RATIO = 2.0
HANDOFF_RATIO = 1.5
N_RESAMPLES = 2000
CONFIDENCE = 0.95
SEED = 0

STRING_COLUMNS = [
    "run_id",
    "status",
    "error",
    "workload",
    "driver",
    "allocator",
    "invalidation",
    "walker_safety",
    "completion",
    "depot",
    "granule_pages",
]
BOOL_COLUMNS = ["audit_ok", "oversubscribed"]
LATENCY_COLUMNS = [c for c in MEASURES if c.endswith("_ns") and c[:-3].split("_")[-1][0] == "p"]
AUDIT_COUNTERS = [c for c in AUDIT if c != "audit_ok"]
WAIT_COLUMNS = ["lock_wait_ns", "iova_lock_wait_ns", "inv_lock_wait_ns", "guard_wait_ns"]

# measures summarised as the median over a point's repetitions
MEDIAN_COLUMNS = [
    "duration_s",
    "ops",
    "maps",
    "unmaps",
    *LATENCY_COLUMNS,
    "timer_ns",
    "lock_acquisitions",
    "lock_contended",
    "lock_wait_ns",
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
]


# --------------------------------------------------------------------------- loading


@dataclass
class Run:
    """One run directory: its rows, per-worker rows, metadata and resolved config."""

    run_dir: Path
    points: pd.DataFrame
    workers: pd.DataFrame
    meta: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] | None = None
    config_text: str | None = None

    @property
    def run_id(self) -> str:
        rid = self.meta.get("run_id")
        if rid:
            return str(rid)
        if "run_id" in self.points and self.points["run_id"].notna().any():
            return str(self.points["run_id"].dropna().iloc[0])
        return self.run_dir.name

    def hist(self, point: int, rep: int) -> dict[str, np.ndarray] | None:
        """The merged `map`/`unmap` histograms of one repetition, or None if not written."""
        path = self.run_dir / "hist" / f"p{int(point):04d}-r{int(rep):03d}.npz"
        if not path.exists():
            return None
        with np.load(path) as z:
            return {k: np.asarray(z[k], dtype=np.uint64) for k in z.files}

    def point_hist(self, point: int, kind: str = "map", valid_only: bool = True) -> np.ndarray:
        """A point's histogram of `kind` merged over its (valid) repetitions."""
        rows = self.points[self.points["point"] == point]
        if valid_only:
            rows = rows[valid_mask(rows)]
        hs = [h[kind] for r in rows["rep"] if (h := self.hist(point, int(r))) and kind in h]
        return _hist.merge(hs)


def _to_bool(series: pd.Series) -> pd.Series:
    mapping = {"true": True, "1": True, "1.0": True, "false": False, "0": False, "0.0": False}

    def conv(v: Any) -> Any:
        if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
            return pd.NA
        if isinstance(v, (bool, np.bool_)):
            return bool(v)
        return mapping.get(str(v).strip().lower(), pd.NA)

    return series.map(conv).astype("boolean")


def _normalise_points(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    for col in STRING_COLUMNS:
        if col in df:
            df[col] = df[col].astype(object).where(df[col].notna(), None)
    for col in BOOL_COLUMNS:
        if col in df:
            df[col] = _to_bool(df[col])
    numeric = [
        c
        for c in [*PARAMETERS, *PLACEMENT, *MEASURES, *AUDIT_COUNTERS, "point", "rep"]
        if c in df and c not in STRING_COLUMNS and c not in BOOL_COLUMNS
    ]
    for col in numeric:
        df[col] = pd.to_numeric(df[col], errors="coerce")
    if "status" not in df:
        df["status"] = "ok"
    df["status"] = df["status"].fillna("ok").astype(str)
    if "audit_ok" not in df:
        df["audit_ok"] = pd.array([pd.NA] * len(df), dtype="boolean")
    # derived per-repetition measures
    ones = pd.Series(np.nan, index=df.index)
    # every lock a worker can wait on: the domain lock, the IOVA tree, the invalidation queue
    # and the walk guard (for the global allocator the tree lock is where the waiting is)
    waits = [df[c].fillna(0) for c in WAIT_COLUMNS if c in df]
    wait = sum(waits) if waits else ones
    dur, wk = (df.get(c, ones) for c in ("duration_s", "workers"))
    with np.errstate(divide="ignore", invalid="ignore"):
        df["contention_share"] = wait / (dur * 1e9 * wk)
        df["cas_fail_per_op"] = df.get("cas_failures", ones) / df.get("ops", ones)
        hits, misses = df.get("rcache_hits", ones), df.get("rcache_misses", ones)
        df["rcache_hit_rate"] = hits / (hits + misses)
    for col in ("contention_share", "cas_fail_per_op", "rcache_hit_rate"):
        df[col] = df[col].replace([np.inf, -np.inf], np.nan)
    return df


def load_run(run_dir: str | Path) -> Run:
    """Read a run directory written by the runner (points.csv is required)."""
    run_dir = Path(run_dir)
    points_path = run_dir / "points.csv"
    if not points_path.exists():
        raise FileNotFoundError(f"{points_path} not found: is {run_dir} a run directory?")
    raw = pd.read_csv(points_path, dtype={c: object for c in STRING_COLUMNS})
    points = _normalise_points(raw)
    workers_path = run_dir / "workers.csv"
    workers = pd.read_csv(workers_path) if workers_path.exists() else pd.DataFrame()
    meta: dict[str, Any] = {}
    if (run_dir / "meta.json").exists():
        meta = json.loads((run_dir / "meta.json").read_text())
    config_text = config = None
    if (run_dir / "config.yaml").exists():
        config_text = (run_dir / "config.yaml").read_text()
        try:
            import yaml

            config = yaml.safe_load(config_text)
        except Exception:  # a config we cannot parse is still shown as text
            config = None
    return Run(run_dir, points, workers, meta, config, config_text)


# --------------------------------------------------------------------------- intervals


def valid_mask(df: pd.DataFrame) -> pd.Series:
    """Rows that count for throughput: status ok and an audit that did not fail."""
    ok = df["status"].astype(str) == "ok"
    audit = df["audit_ok"].astype("boolean").fillna(True).astype(bool)
    return ok & audit


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    stat: Callable[..., Any] = np.median,
    confidence: float = CONFIDENCE,
    n_resamples: int = N_RESAMPLES,
    seed: int = SEED,
) -> tuple[float, float]:
    """Percentile bootstrap interval of `stat` (which must accept `axis=1`)."""
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if x.size == 0:
        return float("nan"), float("nan")
    if x.size == 1 or np.all(x == x[0]):
        v = float(stat(x))
        return v, v
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(n_resamples, x.size))
    stats = stat(x[idx], axis=1)
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(stats, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def median_ci(
    values: Sequence[float] | np.ndarray,
    confidence: float = CONFIDENCE,
    n_resamples: int = N_RESAMPLES,
    seed: int = SEED,
) -> tuple[float, float, float]:
    """(median, lo, hi): the median and its bootstrap interval. One value: (v, v, v)."""
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if x.size == 0:
        return float("nan"), float("nan"), float("nan")
    lo, hi = bootstrap_ci(x, np.median, confidence, n_resamples, seed)
    return float(np.median(x)), lo, hi


def ratio_ci(
    base: Sequence[float] | np.ndarray,
    new: Sequence[float] | np.ndarray,
    confidence: float = CONFIDENCE,
    n_resamples: int = N_RESAMPLES,
    seed: int = SEED,
) -> tuple[float, float, float]:
    """median(new) / median(base) and a bootstrap interval resampling each side independently."""
    b = np.asarray(base, dtype=float)
    n = np.asarray(new, dtype=float)
    b, n = b[~np.isnan(b)], n[~np.isnan(n)]
    if b.size == 0 or n.size == 0 or np.median(b) == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    bm = np.median(b[rng.integers(0, b.size, size=(n_resamples, b.size))], axis=1)
    nm = np.median(n[rng.integers(0, n.size, size=(n_resamples, n.size))], axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = nm / bm
    ratios = ratios[np.isfinite(ratios)]
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(ratios, [alpha, 1.0 - alpha])
    return float(np.median(n) / np.median(b)), float(lo), float(hi)


def cv(values: Sequence[float] | np.ndarray) -> float:
    """Coefficient of variation (sample std / mean); NaN with fewer than 2 values."""
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if x.size < 2 or x.mean() == 0:
        return float("nan")
    return float(x.std(ddof=1) / x.mean())


def needs_more_reps(
    values: Sequence[float] | np.ndarray,
    rel_halfwidth: float = HALFWIDTH_WARN,
    min_reps: int = 3,
) -> bool:
    """True while the median's CI half-width exceeds `rel_halfwidth` of the median.

    A sweep may call this after each repetition of a point (up to its own maximum).
    """
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if x.size < min_reps:
        return True
    med, lo, hi = median_ci(x)
    if med == 0:
        return False
    return (hi - lo) / 2.0 > rel_halfwidth * abs(med)


def jain_index(values: Sequence[float] | np.ndarray) -> float:
    """Jain's fairness index (sum x)^2 / (n sum x^2): 1 is perfectly fair, 1/n is one hog."""
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if x.size == 0 or not np.any(x):
        return float("nan")
    return float(x.sum() ** 2 / (x.size * (x**2).sum()))


# --------------------------------------------------------------------------- parameters


def norm_value(v: Any) -> str:
    """A parameter value as a stable string: '' for empty, '4' for 4.0."""
    if v is None or v is pd.NA:
        return ""
    if isinstance(v, (float, np.floating)):
        if math.isnan(v):
            return ""
        if float(v).is_integer():
            return str(int(v))
        return repr(float(v))
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    return str(v)


def param_columns(df: pd.DataFrame) -> list[str]:
    """The parameter columns present in a frame, in schema order."""
    return [c for c in PARAMETERS if c in df.columns]


def varying_params(df: pd.DataFrame, exclude: Sequence[str] = ()) -> list[str]:
    """Parameters that take more than one value across the frame's rows."""
    out = []
    for c in param_columns(df):
        if c in exclude:
            continue
        if df[c].map(norm_value).nunique() > 1:
            out.append(c)
    return out


def param_key(row: pd.Series | dict[str, Any], cols: Sequence[str]) -> tuple[str, ...]:
    """The identity of a point by its parameter values (used to match across runs)."""
    return tuple(norm_value(row.get(c)) for c in cols)


def label(row: pd.Series | dict[str, Any], cols: Sequence[str]) -> str:
    """A short human label such as 'lockfree rcache w=4' from the given parameter columns."""
    parts = []
    for c in cols:
        v = norm_value(row.get(c))
        if c == "workers":
            parts.append(f"w={v}")
        elif c in STRING_COLUMNS:
            parts.append(v or "-")
        else:
            parts.append(f"{c}={v}")
    return " ".join(parts)


# --------------------------------------------------------------------------- summary


def _fairness(run: Run) -> pd.DataFrame:
    """Per (point, rep): worker ops min, max, Jain's index, from workers.csv."""
    w = run.workers
    if w.empty or not {"point", "rep", "ops"} <= set(w.columns):
        return pd.DataFrame(columns=["point", "rep", "w_min", "w_max", "jain"])
    g = w.groupby(["point", "rep"])["ops"]
    out = pd.DataFrame(
        {"w_min": g.min(), "w_max": g.max(), "jain": g.apply(lambda s: jain_index(s.values))}
    )
    return out.reset_index()


def _first(series: pd.Series) -> Any:
    s = series.dropna()
    return s.iloc[0] if len(s) else None


def _verdict(driver: Any, reps: int, ok: int, audit_failed: int) -> str:
    if ok == 0:
        return "error"
    if audit_failed:
        return "caught" if driver in NEGATIVE_CONTROLS else "audit-failed"
    if ok < reps:
        return "partial"
    return "ok"


def summarize(run: Run, seed: int = SEED) -> pd.DataFrame:
    """One row per point: parameters, verdict, median ops/s with its CI, CV and medians."""
    df = run.points
    fair = _fairness(run)
    params = param_columns(df)
    rows = []
    for point, g in df.groupby("point", sort=True):
        g = g.sort_values("rep")
        ok = g[g["status"] == "ok"]
        valid = g[valid_mask(g)]
        audit_failed = int((ok["audit_ok"].astype("boolean") == False).sum())  # noqa: E712
        use = valid if len(valid) else ok
        row: dict[str, Any] = {"point": int(point)}
        for c in params:
            row[c] = _first(g[c])
        row["cpus_available"] = _first(g["cpus_available"]) if "cpus_available" in g else None
        over = g["oversubscribed"].astype("boolean") if "oversubscribed" in g else None
        row["oversubscribed"] = bool(over.fillna(False).any()) if over is not None else False
        if not row["oversubscribed"] and row.get("workers") is not None:
            cpus = row["cpus_available"]
            row["oversubscribed"] = bool(cpus is not None and row["workers"] > cpus)
        row["reps"] = len(g)
        row["reps_ok"] = len(ok)
        row["reps_valid"] = len(valid)
        row["valid"] = len(valid) > 0
        row["verdict"] = _verdict(row.get("driver"), len(g), len(ok), audit_failed)
        errors = g["error"].dropna().astype(str) if "error" in g else pd.Series(dtype=str)
        row["error"] = errors.iloc[0] if len(errors) else None
        tput = use["ops_per_s"].to_numpy(dtype=float) if "ops_per_s" in use else np.array([])
        med, lo, hi = median_ci(tput, seed=seed)
        row["ops_per_s"] = med
        row["ci_lo"] = lo
        row["ci_hi"] = hi
        row["ci_single"] = int(np.sum(~np.isnan(tput))) == 1
        row["cv"] = cv(tput)
        half = (hi - lo) / 2.0 if med == med else float("nan")
        row["ci_rel_halfwidth"] = half / med if med else float("nan")
        row["noisy"] = bool(
            (row["cv"] == row["cv"] and row["cv"] > CV_WARN)
            or (
                row["ci_rel_halfwidth"] == row["ci_rel_halfwidth"]
                and row["ci_rel_halfwidth"] > HALFWIDTH_WARN
            )
        )
        for c in MEDIAN_COLUMNS:
            vals = use[c].to_numpy(dtype=float) if c in use else np.array([])
            vals = vals[~np.isnan(vals)]
            row[c] = float(np.median(vals)) if vals.size else float("nan")
        for c in AUDIT_COUNTERS:
            vals = ok[c].to_numpy(dtype=float) if c in ok else np.array([])
            vals = vals[~np.isnan(vals)]
            row[c] = float(vals.max()) if vals.size else float("nan")
        row["audit_detail"] = ", ".join(
            f"{c}={int(row[c])}" for c in AUDIT_COUNTERS if row[c] == row[c] and row[c] > 0
        )
        # fairness: per-worker ops of the repetitions used
        f = fair[(fair["point"] == point) & fair["rep"].isin(use["rep"])]
        if len(f):
            row["worker_ops_min"] = float(f["w_min"].median())
            row["worker_ops_max"] = float(f["w_max"].median())
            row["jain"] = float(f["jain"].median())
            row["starved"] = bool((f["w_max"] > STARVATION_RATIO * f["w_min"]).any())
        else:
            wmin = use["worker_ops_min"].astype(float) if "worker_ops_min" in use else None
            wmax = use["worker_ops_max"].astype(float) if "worker_ops_max" in use else None
            row["worker_ops_min"] = float(wmin.median()) if wmin is not None else float("nan")
            row["worker_ops_max"] = float(wmax.median()) if wmax is not None else float("nan")
            row["jain"] = float("nan")
            row["starved"] = bool(
                wmin is not None and wmax is not None and (wmax > STARVATION_RATIO * wmin).any()
            )
        # handoff probes taken before and after each repetition
        if {"handoff_ns_before", "handoff_ns_after"} <= set(g.columns):
            b = g["handoff_ns_before"].astype(float)
            a = g["handoff_ns_after"].astype(float)
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.maximum(a, b) / np.minimum(a, b)
            ratio = ratio.replace([np.inf], np.nan)
            row["handoff_ns"] = float(pd.concat([b, a]).median())
            row["handoff_ratio"] = float(ratio.max()) if ratio.notna().any() else float("nan")
        else:
            row["handoff_ns"] = row["handoff_ratio"] = float("nan")
        hr = row["handoff_ratio"]
        row["handoff_unstable"] = bool(hr == hr and hr > HANDOFF_RATIO)
        rows.append(row)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- scaling


def group_columns(summary: pd.DataFrame) -> list[str]:
    """The scaling group: every parameter but `workers`."""
    return [c for c in param_columns(summary) if c != "workers"]


def scaling(summary: pd.DataFrame) -> pd.DataFrame:
    """Per point: speedup and efficiency vs its group's 1-worker point, and group peak/collapse.

    Columns: point, group, workers, speedup, efficiency, peak_ops_per_s, peak_workers,
    collapse_factor (peak / throughput at the group's largest valid worker count).
    Only valid points take part; invalid ones get NaN.
    """
    cols = [
        "point",
        "group",
        "workers",
        "speedup",
        "efficiency",
        "peak_ops_per_s",
        "peak_workers",
        "collapse_factor",
    ]
    if summary.empty or "workers" not in summary:
        return pd.DataFrame(columns=cols)
    gcols = group_columns(summary)
    shown = varying_params(summary, exclude=["workers"])
    keys = summary.apply(lambda r: param_key(r, gcols), axis=1)
    out = []
    for _, g in summary.groupby(keys, sort=False):
        v = g[g["valid"] & g["ops_per_s"].notna()].sort_values("workers")
        one = v[v["workers"] == 1]
        t1 = float(one["ops_per_s"].iloc[0]) if len(one) else float("nan")
        if len(v):
            ipeak = v["ops_per_s"].idxmax()
            peak, peak_w = float(v.at[ipeak, "ops_per_s"]), v.at[ipeak, "workers"]
            last = float(v["ops_per_s"].iloc[-1])
            collapse = peak / last if last > 0 else float("inf")
        else:
            peak = peak_w = collapse = float("nan")
        glabel = label(g.iloc[0], shown) if shown else "all"
        for _, r in g.iterrows():
            ok = bool(r["valid"]) and r["ops_per_s"] == r["ops_per_s"]
            sp = r["ops_per_s"] / t1 if ok and t1 == t1 and t1 > 0 else float("nan")
            out.append(
                {
                    "point": r["point"],
                    "group": glabel,
                    "workers": r["workers"],
                    "speedup": sp,
                    "efficiency": sp / r["workers"] if sp == sp and r["workers"] else float("nan"),
                    "peak_ops_per_s": peak,
                    "peak_workers": peak_w,
                    "collapse_factor": collapse,
                }
            )
    return pd.DataFrame(out, columns=cols)


def with_scaling(summary: pd.DataFrame) -> pd.DataFrame:
    """The summary with the scaling columns merged in (one row per point)."""
    sc = scaling(summary).drop(columns=["workers"])
    return summary.merge(sc, on="point", how="left")


# --------------------------------------------------------------------------- winners


def winners(summary: pd.DataFrame, band: float = 0.05, by: str = "driver") -> pd.DataFrame:
    """Per context (parameters but `by` and `workers`) and worker count: the best `by` values.

    Every valid value within `band` of the best median throughput is a co-winner.
    Columns: context, workers, winners, best_ops_per_s, candidates.
    """
    cols = ["context", "workers", "winners", "best_ops_per_s", "candidates"]
    if summary.empty or by not in summary or "workers" not in summary:
        return pd.DataFrame(columns=cols)
    ccols = [c for c in param_columns(summary) if c not in (by, "workers")]
    shown = varying_params(summary, exclude=[by, "workers"])
    v = summary[summary["valid"] & summary["ops_per_s"].notna()]
    v = v[~v[by].isin(NEGATIVE_CONTROLS)] if by == "driver" else v
    if v.empty:
        return pd.DataFrame(columns=cols)
    keys = v.apply(lambda r: (*param_key(r, ccols), r["workers"]), axis=1)
    out = []
    for _, g in v.groupby(keys, sort=False):
        best = float(g["ops_per_s"].max())
        win = g[g["ops_per_s"] >= (1.0 - band) * best].sort_values("ops_per_s", ascending=False)
        out.append(
            {
                "context": label(g.iloc[0], shown) if shown else "all",
                "workers": g["workers"].iloc[0],
                "winners": ", ".join(norm_value(x) for x in win[by]),
                "best_ops_per_s": best,
                "candidates": len(g),
            }
        )
    return pd.DataFrame(out, columns=cols).sort_values(["context", "workers"], kind="stable")


# --------------------------------------------------------------------------- warnings


def warnings(run: Run, summary: pd.DataFrame) -> list[str]:
    """Everything that qualifies a number in this run, one sentence each."""
    out = [f"machine: {w}" for w in machine.noise_warnings(run.meta)]
    if summary.empty:
        return [*out, "no points in this run"]
    shown = varying_params(summary)
    if "workers" not in shown and "workers" in summary:
        shown = [*shown, "workers"]

    def name(r: pd.Series) -> str:
        return f"point {int(r['point'])} ({label(r, shown)})"

    over = summary[summary["oversubscribed"]]
    if len(over):
        cpus = norm_value(_first(over["cpus_available"]))
        out.append(
            f"oversubscribed: {len(over)} point(s) run more workers than the {cpus} CPUs "
            f"available ({', '.join(str(int(p)) for p in over['point'])}); their workers "
            "time-share CPUs, so lock holders get preempted"
        )
    single = summary[summary["valid"] & summary["ci_single"]]
    if len(single):
        which = (
            "all"
            if len(single) == len(summary)
            else ", ".join(str(int(p)) for p in single["point"])
        )
        out.append(
            f"single repetition: {len(single)} point(s) ({which}) have one valid repetition: "
            "no confidence interval, noise cannot be judged (run with repetitions >= 3)"
        )
    for _, r in summary.iterrows():
        n = name(r)
        if r["verdict"] == "error":
            out.append(f"{n}: every repetition failed: {r['error'] or 'no error text'}")
            continue
        if r["verdict"] == "audit-failed":
            out.append(f"{n}: AUDIT FAILED ({r['audit_detail'] or 'audit_ok is False'})")
        if r["verdict"] == "partial":
            out.append(
                f"{n}: {r['reps'] - r['reps_ok']} of {r['reps']} repetitions failed"
                + (f": {r['error']}" if r["error"] else "")
            )
        if (
            r.get("driver") in NEGATIVE_CONTROLS
            and r["verdict"] != "caught"
            and (r.get("workers") or 0) > 1
        ):
            out.append(f"{n}: the naive control passed its audit: the race was not exercised")
        if r["valid"] and r["noisy"]:
            out.append(
                f"{n}: noisy: CV {r['cv']:.1%}, CI half-width {r['ci_rel_halfwidth']:.1%} "
                "of the median"
            )
        if r["starved"]:
            out.append(
                f"{n}: starvation: the busiest worker did more than {STARVATION_RATIO:g}x the "
                f"ops of the least busy (min {r['worker_ops_min']:.0f}, "
                f"max {r['worker_ops_max']:.0f})"
            )
        if r["handoff_unstable"]:
            out.append(
                f"{n}: handoff probes before and after disagree by {r['handoff_ratio']:.1f}x: "
                "CPU placement changed during the point; do not compare it across runs"
            )
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
